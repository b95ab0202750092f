"""Template context shared by every page."""

from django.conf import settings


def deskchat(request):
    """Expose the viewer's role so the base template can pick its navigation."""
    user = getattr(request, "user", None)
    return {
        "is_engineer": bool(user and user.is_authenticated and hasattr(user, "engineer")),
        "is_contact": bool(user and user.is_authenticated and hasattr(user, "contact")),
        "CHAT_QUEUE_ALERT_SECONDS": settings.CHAT_QUEUE_ALERT_SECONDS,
    }
