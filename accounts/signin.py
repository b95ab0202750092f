"""How django-axes sees a sign-in: who is asking (the account, the address) and what a lockout says.

Axes hooks `django.contrib.auth.authenticate`, so every sign-in form (the portal's, the admin's and
any later one) is counted and refused alike. These callables are named in settings (AXES_*).
"""

import ipaddress
import unicodedata
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Case, Value, When
from django.shortcuts import render
from django.utils import timezone

USERNAME_MAX_LENGTH = 150


def failure_limit(request, credentials=None) -> int:
    """Return LOGIN_FAILURE_LIMIT, read on every call so the setting stays the one source."""
    return settings.LOGIN_FAILURE_LIMIT


def lockout_window(request=None) -> timedelta:
    """Return how long failures count after the latest one (LOGIN_LOCKOUT_SECONDS)."""
    return timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)


def canonical_username(request, credentials=None) -> str | None:
    """Return the account a sign-in names, so that every spelling of it shares one lockout.

    The sign-in form normalises what was typed as Django's UsernameField does (NFKC, so fullwidth
    "ｎｉｎａ" is "nina"; surrounding spaces dropped); then an account whose name matches it without
    regard to case stands for it. A name no account has is keyed in lower case, so guessing at
    made-up names is counted too.
    """
    typed = (credentials or {}).get("username") if credentials else None
    if typed is None and request is not None:
        typed = getattr(request, "POST", {}).get("username")
    if not isinstance(typed, str):
        return None
    name = unicodedata.normalize("NFKC", typed).strip()[:USERNAME_MAX_LENGTH]
    if not name:
        return None
    # Axes asks several times per sign-in; one lookup per spelling and request is enough.
    seen = getattr(request, "_deskchat_accounts", None) if request is not None else None
    if seen is None:
        seen = {}
        if request is not None:
            request._deskchat_accounts = seen
    if name not in seen:
        seen[name] = _account_name(name)
    return seen[name]


def _account_name(name: str) -> str:
    user_model = get_user_model()
    field = user_model.USERNAME_FIELD
    # The exact spelling first, so that among several accounts differing only in case the one
    # named is found however many there are; one other match stands for the name, two are ambiguous.
    matches = list(
        user_model.objects.filter(**{f"{field}__iexact": name})
        .annotate(spelled_otherwise=Case(When(**{field: name}, then=Value(0)), default=Value(1)))
        .order_by("spelled_otherwise", field)
        .values_list(field, flat=True)[:2]
    )
    if matches and (matches[0] == name or len(matches) == 1):
        return matches[0]
    return name.lower()


def client_address(request) -> str | None:
    """Return the address a sign-in comes from.

    That is the peer's address (REMOTE_ADDR), unless TRUSTED_PROXY_HEADER names a header the
    deployment's own proxy sets; then its last entry, the one that proxy added. A header the
    deployment did not name is never read, since any client can send X-Forwarded-For.
    """
    header = settings.TRUSTED_PROXY_HEADER
    if header:
        value = request.META.get("HTTP_" + header.upper().replace("-", "_"), "")
        address = _ip(value.split(",")[-1])
        if address:
            return address
    return _ip(request.META.get("REMOTE_ADDR", ""))


def _ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def lockout_seconds_left(request) -> int:
    """Return how many seconds this request's account stays locked out from its address."""
    from axes.models import AccessAttempt

    latest = (
        AccessAttempt.objects.filter(
            username=canonical_username(request, getattr(request, "axes_credentials", None)),
            ip_address=getattr(request, "axes_ip_address", None) or client_address(request),
        )
        .order_by("-attempt_time")
        .values_list("attempt_time", flat=True)
        .first()
    )
    if latest is None:
        return settings.LOGIN_LOCKOUT_SECONDS
    until = latest + lockout_window()
    return max(1, int((until - timezone.now()).total_seconds() + 0.999))


def lockout_response(request, original_response=None, credentials=None):
    """Answer a locked-out sign-in with the sign-in page, HTTP 429 and the minutes to wait.

    Axes calls this for any sign-in it refuses, the portal's or the admin's.
    """
    from django.contrib.auth.forms import AuthenticationForm

    seconds = lockout_seconds_left(request)
    minutes = max(1, -(-seconds // 60))
    message = (
        f"Too many failed sign-in attempts for this username. For your security, sign-in is "
        f"paused; try again in {minutes} minute{'s' if minutes != 1 else ''}."
    )
    typed = request.POST.get("username", "")[:USERNAME_MAX_LENGTH] if request.method == "POST" else ""
    form = AuthenticationForm(request, initial={"username": typed})
    context = {"form": form, "lockout": message, "next": request.POST.get("next", "")}
    response = render(request, "accounts/login.html", context, status=429)
    response["Retry-After"] = str(seconds)
    return response
