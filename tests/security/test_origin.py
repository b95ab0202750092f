"""The websocket Origin check compares scheme, host and port, as Django's CSRF check does for forms.

A page on another port or scheme of the same host is another origin (another program, or a plain
HTTP page next to the HTTPS site), so it must not open a socket that rides the user's cookie.
"""

import asyncio
import json

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from deskchat.origins import origin_allowed
from tests.chat.wsutil import connect, session_cookie


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/ws/chat/", "/ws/hud/"])
@pytest.mark.parametrize(
    "origin", [b"http://localhost:8399", b"https://localhost", b"localhost:8398", b"http://localhost:80", None]
)
async def test_other_ports_schemes_and_no_origin_are_refused_in_process(world, path, origin):
    """With a valid cookie, a handshake from another port or scheme, a bare host, or no Origin is refused."""
    user = world["carol"].user if path == "/ws/chat/" else world["dana"].user
    socket, connected, _ = await connect(user, path, origin=origin)
    assert not connected, origin


@pytest.mark.django_db(transaction=True)
async def test_the_own_origin_and_a_trusted_origin_are_accepted(world, settings):
    """The origin of the page's own Host is accepted, and so is one listed in CSRF_TRUSTED_ORIGINS."""
    socket, connected, _ = await connect(world["carol"].user, "/ws/chat/", origin=b"http://localhost")
    assert connected
    await socket.close()
    settings.CSRF_TRUSTED_ORIGINS = ["https://localhost:8443"]
    socket, connected, _ = await connect(world["carol"].user, "/ws/chat/", origin=b"https://localhost:8443")
    assert connected
    await socket.close()


def _scope(origin, host="chat.example.com", scheme="ws", **extra):
    headers = [(b"host", host.encode())] + ([(b"origin", origin.encode())] if origin else [])
    headers += [(name.encode(), value.encode()) for name, value in extra.items()]
    return {"type": "websocket", "scheme": scheme, "headers": headers}


def test_the_site_origin_follows_the_socket_scheme_and_a_trusted_proxy(settings):
    """wss means an https page; behind TLS at the proxy, X-Forwarded-Proto counts only with SECURE_SSL's header."""
    settings.CSRF_TRUSTED_ORIGINS = []
    settings.SECURE_PROXY_SSL_HEADER = None
    assert origin_allowed(_scope("https://chat.example.com", scheme="wss"))
    assert not origin_allowed(_scope("http://chat.example.com", scheme="wss"))
    assert not origin_allowed(_scope("https://chat.example.com", **{"x-forwarded-proto": "https"}))
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert origin_allowed(_scope("https://chat.example.com", **{"x-forwarded-proto": "https"}))
    assert not origin_allowed(_scope("http://chat.example.com", **{"x-forwarded-proto": "https"}))


def test_trusted_origins_match_exactly_or_by_subdomain_wildcard(settings):
    """CSRF_TRUSTED_ORIGINS entries are exact origins, or https://*.domain for its subdomains, scheme included."""
    settings.SECURE_PROXY_SSL_HEADER = None
    settings.CSRF_TRUSTED_ORIGINS = ["https://desk.example.com", "https://*.example.org"]
    assert origin_allowed(_scope("https://desk.example.com", host="internal:8001"))
    assert origin_allowed(_scope("https://a.example.org", host="internal:8001"))
    assert not origin_allowed(_scope("http://a.example.org", host="internal:8001"))
    assert not origin_allowed(_scope("https://desk.example.com:444", host="internal:8001"))
    assert not origin_allowed(_scope("https://desk.example.com.evil", host="internal:8001"))
    assert not origin_allowed(_scope(None))


# --- A real daphne process, with the websockets client -------------------------------------


async def _handshake(server, cookie, origin):
    headers = {"Cookie": cookie.decode()}
    if origin is not None:
        headers["Origin"] = origin
    ws = await websockets.connect(server.ws_url + "/ws/chat/", additional_headers=headers, open_timeout=10)
    try:
        await ws.send(json.dumps({"action": "ping"}))
        while True:
            if 'data-event="pong"' in await asyncio.wait_for(ws.recv(), timeout=10):
                return True
    finally:
        await ws.close()


@pytest.fixture
def carol_cookie(world):
    return session_cookie(world["carol"].user)


@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
async def test_daphne_accepts_only_its_own_origin(daphne_servers, carol_cookie):
    """On daphne, with Carol's cookie: other port, other scheme, no scheme and no Origin are refused; her page's origin works."""
    server, cookie = daphne_servers(1)[0], carol_cookie
    for origin in [
        f"http://127.0.0.1:{server.port + 1}",
        "http://127.0.0.1:8399",
        "https://127.0.0.1",
        f"https://127.0.0.1:{server.port}",
        "http://127.0.0.1",
        f"127.0.0.1:{server.port}",
        "localhost:8398",
        None,
    ]:
        with pytest.raises((InvalidStatus, ConnectionClosed)):
            await _handshake(server, cookie, origin)
    assert await _handshake(server, cookie, f"http://127.0.0.1:{server.port}")
