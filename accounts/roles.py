"""Answer "who is this user?" once: a contact, an engineer, someone else, or nobody signed in.

Every view, selector, service, socket, admin class and template asks `who(user)` instead of
looking for a profile itself. A user with both an engineer and a contact profile is an engineer
and nothing else: staff must never get a client's view (the dock, Join Chat, one company's
tickets) by accident, and an engineer already sees every ticket.

The profiles are read in one query and kept in Django's own relation cache on the user object
(`user.engineer`, `user.contact`), so a request or a socket asks the database once, and a profile
made for that same user object later (`Engineer.objects.create(user=user)`) is seen, as Django
keeps that cache itself.
"""

import enum
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model

from .models import Contact, Engineer


class Role(enum.StrEnum):
    ANONYMOUS = "anonymous"
    CONTACT = "contact"
    ENGINEER = "engineer"
    OTHER = "other"  # signed in with neither profile: an administrator without a desk profile, say


@dataclass(frozen=True)
class Who:
    """A user's role on the desk, with the profile that gives it."""

    role: Role
    engineer: Engineer | None = None
    contact: Contact | None = None
    is_admin: bool = False  # a superuser: every admin page, every template
    user: Any = field(default=None, repr=False, compare=False)

    @property
    def is_engineer(self) -> bool:
        return self.role == Role.ENGINEER

    @property
    def is_contact(self) -> bool:
        return self.role == Role.CONTACT

    @property
    def is_supervisor(self) -> bool:
        return self.engineer is not None and self.engineer.is_supervisor

    @property
    def name(self) -> str:
        """Return the name the desk shows for this user: the engineer's display name, the contact's name."""
        if self.engineer is not None:
            return self.engineer.display_name
        if self.contact is not None:
            return self.contact.name
        return self.user.get_username() if self.user is not None else ""

    def has_admin_pages(self) -> bool:
        """Return whether the admin would show this user anything: a link to an empty admin is a dead end.

        The admin lists a model to a staff user with any permission on it (engineers: their templates).
        """
        user = self.user
        if user is None or not (user.is_active and user.is_staff):
            return False
        return self.is_admin or bool(user.get_all_permissions())


ANONYMOUS = Who(Role.ANONYMOUS)


def who(user) -> Who:
    """Return who this user is: the engineer wins over a contact profile of the same user."""
    if user is None or not user.is_authenticated:
        return ANONYMOUS
    engineer, contact = _profiles(user)
    is_admin = bool(user.is_superuser)
    if engineer is not None:
        return Who(Role.ENGINEER, engineer=engineer, is_admin=is_admin, user=user)
    if contact is not None:
        return Who(Role.CONTACT, contact=contact, is_admin=is_admin, user=user)
    return Who(Role.OTHER, is_admin=is_admin, user=user)


# The reverse one-to-one relations (user.engineer, user.contact): their cache lives on the user object.
_ENGINEER = Engineer._meta.get_field("user").remote_field
_CONTACT = Contact._meta.get_field("user").remote_field


def _profiles(user) -> tuple[Engineer | None, Contact | None]:
    """Return the user's engineer profile, or else their contact profile, reading them if not cached."""
    engineer_known = _cached(user, _ENGINEER) is not None  # then the contact profile does not matter
    if not engineer_known and not (_ENGINEER.is_cached(user) and _CONTACT.is_cached(user)):
        _read_profiles(user)
    engineer = _cached(user, _ENGINEER)
    return engineer, None if engineer is not None else _cached(user, _CONTACT)


def _read_profiles(user) -> None:
    """Read both profiles (and the contact's company) in one query into the user's relation cache."""
    row = get_user_model().objects.select_related("engineer", "contact__company").filter(pk=user.pk).first()
    for relation in (_ENGINEER, _CONTACT):
        profile = _cached(row, relation) if row is not None else None
        if profile is not None:
            relation.field.set_cached_value(profile, user)  # profile.user is this very user object
        relation.set_cached_value(user, profile)


def _cached(user, relation):
    return relation.get_cached_value(user, default=None)
