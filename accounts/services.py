"""Account writes: the sign-in lockout.

After LOGIN_FAILURE_LIMIT failed sign-ins for one username from one address within
LOGIN_LOCKOUT_SECONDS, that username is locked out from that address until the oldest of those
failures is older than the window; a successful sign-in clears them. Keying on username and
address together means a guesser elsewhere cannot lock a real user out of their own office.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import LoginFailure


def _key(username: str) -> str:
    return (username or "").strip().lower()[:150]


def _window_start():
    return timezone.now() - timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)


def lockout_remaining(*, username: str, address: str) -> int:
    """Return how many seconds this username stays locked out from this address (0: not locked)."""
    limit = settings.LOGIN_FAILURE_LIMIT
    if limit <= 0:
        return 0
    recent = list(
        LoginFailure.objects.filter(username=_key(username), address=address, created__gt=_window_start())
        .order_by("-created")
        .values_list("created", flat=True)[:limit]
    )
    if len(recent) < limit:
        return 0
    # Locked until the limit-th most recent failure leaves the window.
    until = recent[-1] + timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)
    return max(1, int((until - timezone.now()).total_seconds() + 0.999))


@transaction.atomic
def record_login_failure(*, username: str, address: str) -> None:
    """Count one failed sign-in, and forget failures that no longer count for anyone."""
    LoginFailure.objects.filter(created__lte=_window_start()).delete()
    LoginFailure.objects.create(username=_key(username), address=address)


def clear_login_failures(*, username: str, address: str) -> None:
    """Forget this username's failures from this address after it signed in."""
    LoginFailure.objects.filter(username=_key(username), address=address).delete()
