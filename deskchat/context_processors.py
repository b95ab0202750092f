"""Template context shared by every page."""

from django.conf import settings
from django.utils.functional import SimpleLazyObject


def deskchat(request):
    """Expose the viewer's role so the base template can pick its navigation."""
    user = getattr(request, "user", None)
    return {
        "is_engineer": bool(user and user.is_authenticated and hasattr(user, "engineer")),
        "is_contact": bool(user and user.is_authenticated and hasattr(user, "contact")),
        "CHAT_QUEUE_ALERT_SECONDS": settings.CHAT_QUEUE_ALERT_SECONDS,
        "show_admin_link": SimpleLazyObject(lambda: _has_admin_pages(user)),
    }


def _has_admin_pages(user) -> bool:
    """Return whether the admin would show this user anything: a link to an empty admin is a dead end.

    The admin lists a model to a staff user with any permission on it (engineers: their templates).
    """
    if not (user and user.is_active and user.is_staff):
        return False
    return user.is_superuser or bool(user.get_all_permissions())
