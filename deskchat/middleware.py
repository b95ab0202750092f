"""Project-wide HTTP middleware."""

from .timefmt import activate_viewer_time_zone

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)


class ContentSecurityPolicyMiddleware:
    """Forbid inline script everywhere but the admin, which ships its own inline styles."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not request.path.startswith("/admin/"):
            response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response


class TimeZoneMiddleware:
    """Show every moment in the viewer's own time zone, which their browser put in a cookie."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        activate_viewer_time_zone(request.COOKIES)
        return self.get_response(request)
