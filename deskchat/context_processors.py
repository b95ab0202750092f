"""Template context shared by every page."""

from django.conf import settings

from accounts.roles import who


def deskchat(request):
    """Expose who the viewer is (`who`), so the base template can pick its navigation."""
    return {
        "who": who(getattr(request, "user", None)),
        "CHAT_QUEUE_ALERT_SECONDS": settings.CHAT_QUEUE_ALERT_SECONDS,
    }
