"""CSRF: every URL refuses a POST without the token, so no state-changing endpoint can be forgotten.

The URLconf is walked (the admin included) and each route is posted to, signed in as a role that
may use it, by a client that enforces CSRF checks as a browser's cross-site form would meet them.
"""

import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from chat.models import ChatRequest
from tickets.models import Ticket, TicketNote, TimeEntry

pytestmark = pytest.mark.django_db


def _routes(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern)


def _concrete(route: str, world) -> str | None:
    """Fill a route's parameters with ids from the world; None for routes we cannot fill."""
    if route.startswith("^") or "(?P" in route:
        return None  # the admin's regex routes (static helpers); its views are covered by name below
    values = {"ticket_id": world["ticket"].pk, "room_id": world["room"].pk}

    def fill(match):
        name = match.group(2)
        return str(values.get(name, 1))

    return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", fill, route)


def all_urls(world) -> list[str]:
    urls = {_concrete(route, world) for route in _routes(get_resolver().url_patterns)}
    urls.discard(None)
    # A few admin views that change state, named, since the admin's own routes use converters we
    # cannot fill generically (app_label, object ids of every model).
    urls |= {
        reverse("admin:tickets_ticket_change", args=[world["ticket"].pk]),
        reverse("admin:tickets_ticket_delete", args=[world["ticket"].pk]),
        reverse("admin:accounts_contact_add"),
        reverse("admin:chat_chatroom_changelist"),
        reverse("admin:logout"),
        reverse("admin:login"),
    }
    return sorted(urls)


def _user_for(url: str, world):
    if url.startswith("/admin/"):
        return world["root"]
    if url.startswith("/hud/"):
        return world["dana"].user
    return world["carol"].user


@pytest.fixture
def csrf_world(world, f):
    world["root"] = f.make_user(username="root", is_staff=True, is_superuser=True)
    return world


def test_the_url_list_is_not_empty(csrf_world):
    """The walk finds the portal, HUD and admin URLs (a broken walk would make the next test vacuous)."""
    urls = all_urls(csrf_world)
    assert len(urls) >= 15
    assert any(u.startswith("/hud/rooms/") for u in urls) and any(u.startswith("/tickets/") for u in urls)


def test_every_post_without_the_token_is_refused(csrf_world):
    """Each URL answers a token-less POST with 403 "CSRF verification failed", and nothing is written."""

    def counts():
        return (
            Ticket.objects.count(),
            TicketNote.objects.count(),
            TimeEntry.objects.count(),
            ChatRequest.objects.count(),
        )

    before = counts()
    failures = []
    for url in all_urls(csrf_world):
        client = Client(enforce_csrf_checks=True)
        client.force_login(_user_for(url, csrf_world))
        data = {
            "text": "csrf",
            "summary": "csrf",
            "priority": "medium",
            "username": "carol",
            "password": "x",
            "started": "2026-01-01T10:00",
            "ended": "2026-01-01T10:10",
            "post": "yes",
        }
        for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
            response = client.post(url, data, **headers)
            if response.status_code != 403 or b"CSRF" not in response.content:
                failures.append((url, bool(headers), response.status_code))
    assert not failures, f"accepted without a CSRF token: {failures}"
    assert counts() == before


def test_a_post_with_the_token_gets_through(world):
    """The same client with the token (as htmx sends it in X-CSRFToken) succeeds: the check is real."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["carol"].user)
    page = client.get(reverse("tickets:detail", args=[world["ticket"].pk]))
    token = page.cookies["csrftoken"].value if "csrftoken" in page.cookies else client.cookies["csrftoken"].value
    response = client.post(
        reverse("tickets:note_add", args=[world["ticket"].pk]), {"text": "with token"}, HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 302
    assert TicketNote.objects.filter(text="with token").exists()


def test_login_itself_needs_the_token(world):
    """Login CSRF (signing a victim into the attacker's account) is refused too."""
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("login"), {"username": "carol", "password": "test-pass-123"})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session
