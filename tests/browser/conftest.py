"""What every browser story shares: the desk with passwords the daphne process can check, and quiet seeding."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password

from tests.desk import Desk
from tests.factories import PASSWORD


@pytest.fixture
def desk(desk, browser_passwords) -> Desk:
    """The shared desk (tests/desk.py), whose people sign in through the real login form.

    The desk's users were hashed with the suite's fast hasher, which the server process does not
    accept; they get one hash of PASSWORD with the default one (browser_passwords), and whoever a
    test adds later is hashed with it already.
    """
    hashed = make_password(PASSWORD)
    for user in desk.users:
        user.password = hashed  # the objects too: a session's auth hash is derived from it
    get_user_model().objects.filter(pk__in=[user.pk for user in desk.users]).update(password=hashed)
    return desk


@pytest.fixture(autouse=True)
def seed_quietly(monkeypatch):
    """Data the test writes itself publishes nothing: the daphne process reads it from the database.

    (Publishing from this process would fail anyway: Playwright's loop runs in this thread.)
    """
    monkeypatch.setattr("deskchat.events.publish", lambda group, event: None)
