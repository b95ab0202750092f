"""The websocket Origin check: only this site's own pages may open a socket with its cookies.

channels' AllowedHostsOriginValidator compares only the host name with ALLOWED_HOSTS, so a page on
`http://127.0.0.1:8399` (another port: another origin, maybe another program) or on
`https://127.0.0.1` passed it. SameOriginValidator compares scheme, host and port exactly, as
Django's CSRF check does for forms: the origin of the handshake's own Host header (with the scheme
a page on this site has: ws -> http, wss -> https, or https behind a proxy trusted by
SECURE_PROXY_SSL_HEADER), or one of CSRF_TRUSTED_ORIGINS (which may start `https://*.` for
subdomains, as there).
"""

from collections import defaultdict
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import is_same_domain


class SameOriginValidator:
    """ASGI middleware that refuses a websocket handshake whose Origin is not this site's own."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


def origin_allowed(scope) -> bool:
    """Return whether the handshake's Origin is the site's own origin or a trusted one."""
    headers = {}
    for name, value in scope.get("headers", []):
        headers.setdefault(name.lower(), value.decode("latin1"))
    origin, host = headers.get(b"origin"), headers.get(b"host")
    if not origin or not host:
        return False
    if origin == f"{page_scheme(scope, headers)}://{host}":
        return True
    trusted = settings.CSRF_TRUSTED_ORIGINS
    if origin in {entry for entry in trusted if "*" not in entry}:
        return True
    subdomains = defaultdict(list)
    for entry in trusted:
        if "*" in entry:
            parts = urlsplit(entry)
            subdomains[parts.scheme].append(parts.netloc.lstrip("*"))
    parts = urlsplit(origin)
    return any(is_same_domain(parts.netloc, pattern) for pattern in subdomains.get(parts.scheme, ()))


def page_scheme(scope, headers: dict) -> str:
    """Return the scheme of this site's pages as the browser sees them (Django's request.is_secure)."""
    if settings.SECURE_PROXY_SSL_HEADER:
        header, secure_value = settings.SECURE_PROXY_SSL_HEADER
        name = header.removeprefix("HTTP_").replace("_", "-").lower().encode("latin1")
        value = headers.get(name)
        if value is not None:
            return "https" if value.split(",", 1)[0].strip() == secure_value else "http"
    return "https" if scope.get("scheme") in ("wss", "https") else "http"
