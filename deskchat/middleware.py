"""Project-wide HTTP middleware."""

from .timefmt import activate_viewer_time_zone

# No inline script or style anywhere, the admin included: Django 5.2's admin ships none (its
# scripts are files configured through data- attributes, and its widgets set styles through the
# CSSOM, which style-src does not govern), so it runs under the same policy as the portal and HUD.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)


class ContentSecurityPolicyMiddleware:
    """Send the Content-Security-Policy on every response that has none of its own."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response


class TimeZoneMiddleware:
    """Show every moment in the viewer's own time zone, which their browser put in a cookie."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        activate_viewer_time_zone(request.COOKIES)
        return self.get_response(request)
