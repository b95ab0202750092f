"""ASGI entry point: `daphne deskchat.asgi:application`.

HTTP goes to Django; websockets pass the origin checks (deskchat/origins.py, then the allowed
hosts) and the session, then the chat router.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deskchat.settings")
django_asgi_app = get_asgi_application()  # sets up Django before the consumers import models

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from chat.routing import websocket_urlpatterns  # noqa: E402
from deskchat.admission import ConnectGate  # noqa: E402
from deskchat.origins import SameOriginValidator  # noqa: E402


def daphne_class_to_patch(name: str, marker: str):
    """Return daphne's websocket class `name`, marked as patched; None if not served by daphne or patched already."""
    try:
        from daphne import ws_protocol
    except ImportError:  # served by something other than daphne
        return None
    found = getattr(ws_protocol, name)
    if getattr(found, marker, False):
        return None
    setattr(found, marker, True)
    return found


def close_oversized_frames_with_1009() -> None:
    """Make daphne answer a frame over --websocket-max-message-size with close code 1009.

    daphne's websocket layer (autobahn) fails a connection by dropping TCP unless `failByDrop` is
    off, so a browser would see 1006 and never learn why. With it off, autobahn sends the close
    frame RFC 6455 asks for (1009 "message too big", 1002 for protocol errors). daphne offers no
    option for it, and imports this module before it builds its factory, so set it here.
    """
    WebSocketFactory = daphne_class_to_patch("WebSocketFactory", "_deskchat_clean_close")
    if WebSocketFactory is None:
        return
    original_init = WebSocketFactory.__init__

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.failByDrop = False

    WebSocketFactory.__init__ = __init__


close_oversized_frames_with_1009()


def send_close_reasons() -> None:
    """Make daphne send the reason a websocket.close message gives (ASGI 2.3); it sends the code only.

    The reasons say why a socket was closed (4429) and when to come back (4503, deskchat/admission.py).
    """
    WebSocketProtocol = daphne_class_to_patch("WebSocketProtocol", "_deskchat_close_reason")
    if WebSocketProtocol is None:
        return
    original_handle_reply = WebSocketProtocol.handle_reply

    def handle_reply(self, message):
        if message.get("type") == "websocket.close" and message.get("reason") and self.state != self.STATE_CONNECTING:
            self.sendClose(code=message.get("code") or 1000, reason=str(message["reason"]))
            return
        original_handle_reply(self, message)

    WebSocketProtocol.handle_reply = handle_reply


send_close_reasons()

from deskchat.logs import route_daphne_access_log  # noqa: E402

route_daphne_access_log()

from django.conf import settings  # noqa: E402

from chat.presence import start_sweeper_with_daphne  # noqa: E402
from deskchat import gc_pauses  # noqa: E402

start_sweeper_with_daphne()
gc_pauses.watch(settings.GC_PAUSE_LOG_MS)

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # The host must be allowed, and then the whole origin (scheme, host, port) must be ours; then the
        # handshake waits for a place among those the process works on (deskchat/admission.py).
        "websocket": SameOriginValidator(
            AllowedHostsOriginValidator(ConnectGate(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))))
        ),
    }
)

# Last: everything loaded so far lives as long as the process (deskchat/gc_pauses.py).
gc_pauses.freeze_when_served(settings.GC_FREEZE)
