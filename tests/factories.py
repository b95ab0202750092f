"""Small factory functions for test data; each returns a saved object."""

import itertools

from django.contrib.auth import get_user_model

from accounts.models import (
    Access,
    Company,
    CompanyPermission,
    Contact,
    ContactPermission,
    Engineer,
    GlobalFeature,
    GlobalPermissions,
)
from accounts.permissions import CHAT
from chat.models import ChatQueue
from tickets.models import Board, Ticket, TicketNote

PASSWORD = "test-pass-123"
_counter = itertools.count(1)


def make_user(*, username=None, first_name="Test", last_name="User", **extra):
    n = next(_counter)
    username = username or f"user{n}"
    user = get_user_model().objects.create_user(
        username=username,
        password=PASSWORD,
        first_name=first_name,
        last_name=last_name,
        email=f"{username}@example.com",
        **extra,
    )
    return user


def make_company(*, name=None, chat: str | None = None) -> Company:
    company = Company.objects.create(name=name or f"Company {next(_counter)}")
    if chat:
        CompanyPermission.objects.create(company=company, feature=CHAT, access=chat)
    return company


def make_contact(
    *, company=None, first_name="Carol", last_name="Client", chat: str | None = None, **user_kw
) -> Contact:
    company = company or make_company()
    user = make_user(first_name=first_name, last_name=last_name, **user_kw)
    contact = Contact.objects.create(user=user, company=company)
    if chat:
        ContactPermission.objects.create(contact=contact, feature=CHAT, access=chat)
    return contact


def make_engineer(*, display_name=None, availability=Engineer.Availability.AVAILABLE, queues=(), **kw) -> Engineer:
    n = next(_counter)
    user = make_user(first_name="Eng", last_name=str(n), is_staff=True, username=kw.pop("username", None))
    engineer = Engineer.objects.create(
        user=user, display_name=display_name or f"Engineer {n}", availability=availability, **kw
    )
    for queue in queues:
        queue.members.add(engineer)
    return engineer


def make_ticket(*, contact=None, company=None, summary="Printer is on fire", **kw) -> Ticket:
    contact = contact or make_contact(company=company)
    return Ticket.objects.create(company=contact.company, contact=contact, summary=summary, **kw)


def make_note(*, ticket, author=None, text="A note", internal=False) -> TicketNote:
    return TicketNote.objects.create(ticket=ticket, author=author or ticket.contact.user, text=text, internal=internal)


def make_board(name=None) -> Board:
    return Board.objects.create(name=name or f"Board {next(_counter)}")


def make_queue(*, name=None, members=(), is_default=False, **kw) -> ChatQueue:
    queue = ChatQueue.objects.create(name=name or f"Queue {next(_counter)}", is_default=is_default, **kw)
    queue.members.add(*members)
    return queue


def enable_chat_globally(enabled: bool = True, master_switch: bool = True) -> None:
    settings = GlobalPermissions.load()
    settings.master_switch = master_switch
    settings.save()
    GlobalFeature.objects.update_or_create(settings=settings, feature=CHAT, defaults={"enabled": enabled})


__all__ = [name for name in dir() if name.startswith("make_")] + ["enable_chat_globally", "PASSWORD", "Access"]
