"""Ticket writes: validated first, so bad input saves nothing."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from accounts.models import Access, ContactPermission
from accounts.permissions import CREATE_TICKET
from tickets import services
from tickets.models import Ticket, TicketNote, TimeEntry

pytestmark = pytest.mark.django_db


def allow_create_ticket(contact, access=Access.ALLOW):
    ContactPermission.objects.create(contact=contact, feature=CREATE_TICKET, access=access)
    return contact


def test_create_ticket_opens_a_ticket_for_the_contact_company(f):
    """The new ticket belongs to the contact and the contact's company, with text trimmed."""
    contact = allow_create_ticket(f.make_contact())

    ticket = services.create_ticket(
        contact=contact, summary="  Laptop won't boot  ", description=" Since Monday. ", priority=Ticket.Priority.HIGH
    )

    ticket.refresh_from_db()
    assert (ticket.company, ticket.contact) == (contact.company, contact)
    assert (ticket.summary, ticket.description, ticket.priority) == ("Laptop won't boot", "Since Monday.", "high")
    assert ticket.status == Ticket.Status.NEW


def test_create_ticket_is_refused_without_the_permission(f):
    """A contact who may not create tickets gets PermissionDenied and no ticket."""
    contact = allow_create_ticket(f.make_contact(), access=Access.DENY)

    with pytest.raises(PermissionDenied):
        services.create_ticket(contact=contact, summary="Let me in")

    assert not Ticket.objects.exists()


@pytest.mark.parametrize("summary", ["", "   ", None], ids=["empty", "blank", "none"])
def test_create_ticket_without_summary_saves_nothing(f, summary):
    """A ticket needs a summary; without one the error names the field."""
    contact = allow_create_ticket(f.make_contact())

    with pytest.raises(ValidationError) as error:
        services.create_ticket(contact=contact, summary=summary)

    assert "summary" in error.value.message_dict
    assert not Ticket.objects.exists()


def test_create_ticket_refuses_an_overlong_summary(f):
    """The summary column holds 200 characters; longer text is refused with its length."""
    contact = allow_create_ticket(f.make_contact())

    with pytest.raises(ValidationError, match="201"):
        services.create_ticket(contact=contact, summary="x" * 201)

    assert not Ticket.objects.exists()


def test_create_ticket_refuses_an_unknown_priority(f):
    """Priority must be one of the listed choices."""
    contact = allow_create_ticket(f.make_contact())

    with pytest.raises(ValidationError) as error:
        services.create_ticket(contact=contact, summary="Fine", priority="urgent!!")

    assert "priority" in error.value.message_dict
    assert not Ticket.objects.exists()


def test_add_note_saves_trimmed_text_and_touches_the_ticket(f):
    """A note is stored trimmed, and the ticket's updated time moves to the note's time."""
    ticket = f.make_ticket()
    Ticket.objects.filter(pk=ticket.pk).update(updated=timezone.now() - timedelta(days=3))

    note = services.add_note(ticket=ticket, author=ticket.contact.user, text="  Still broken.  ")

    ticket.refresh_from_db()
    assert note.text == "Still broken."
    assert note.internal is False
    assert ticket.updated == note.created


@pytest.mark.parametrize("text", ["", "  \n\t ", None], ids=["empty", "whitespace", "none"])
def test_add_note_refuses_empty_text(f, text):
    """An empty note is refused with a message on the text field, and nothing is saved."""
    ticket = f.make_ticket()

    with pytest.raises(ValidationError) as error:
        services.add_note(ticket=ticket, author=ticket.contact.user, text=text)

    assert error.value.message_dict["text"] == ["This can't be empty."]
    assert not TicketNote.objects.exists()


def test_add_note_refuses_text_over_the_limit(f, settings):
    """A note one character over NOTE_MAX_LENGTH is refused with both numbers in the message."""
    settings.NOTE_MAX_LENGTH = 50
    ticket = f.make_ticket()

    services.add_note(ticket=ticket, author=ticket.contact.user, text="x" * 50)
    with pytest.raises(ValidationError) as error:
        services.add_note(ticket=ticket, author=ticket.contact.user, text="x" * 51)

    assert error.value.message_dict["text"] == ["Keep it under 50 characters (this has 51)."]
    assert TicketNote.objects.count() == 1


def test_only_engineers_may_write_internal_notes(f):
    """A contact's internal note is refused outright; an engineer's is saved as internal."""
    ticket = f.make_ticket()
    engineer = f.make_engineer()

    with pytest.raises(PermissionDenied):
        services.add_note(ticket=ticket, author=ticket.contact.user, text="Psst", internal=True)
    assert not TicketNote.objects.exists()

    note = services.add_note(ticket=ticket, author=engineer.user, text="Staff only", internal=True)
    assert note.internal is True


def test_add_time_entry_records_time(f):
    """An engineer's time entry is saved with its hours and billable flag."""
    ticket = f.make_ticket()
    engineer = f.make_engineer()
    start = timezone.now() - timedelta(hours=1)

    entry = services.add_time_entry(
        ticket=ticket,
        engineer=engineer,
        started=start,
        ended=start + timedelta(hours=1),
        hours=Decimal("1.00"),
        notes="Fixed it",
        billable=False,
    )

    entry.refresh_from_db()
    assert (entry.hours, entry.billable, entry.notes) == (Decimal("1.00"), False, "Fixed it")


@pytest.mark.parametrize(
    "offset, hours, field",
    [
        (timedelta(hours=-1), Decimal("1"), "ended"),
        (timedelta(hours=1), Decimal("-1"), "hours"),
        (timedelta(hours=1), Decimal("25"), "hours"),
    ],
    ids=["ends-before-start", "negative-hours", "over-a-day"],
)
def test_add_time_entry_refuses_impossible_times(f, offset, hours, field):
    """An end before the start, or hours outside 0–24, are refused and nothing is saved."""
    ticket = f.make_ticket()
    start = timezone.now()

    with pytest.raises(ValidationError) as error:
        services.add_time_entry(
            ticket=ticket, engineer=f.make_engineer(), started=start, ended=start + offset, hours=hours
        )

    assert field in error.value.message_dict
    assert not TimeEntry.objects.exists()


def _entry(f, engineer):
    start = timezone.now() - timedelta(hours=1)
    return services.add_time_entry(
        ticket=f.make_ticket(), engineer=engineer, started=start, ended=start + timedelta(minutes=10),
        hours=Decimal("0.25"), notes="First go",
    )  # fmt: skip


def test_the_author_corrects_their_time_entry(f):
    dana = f.make_engineer()
    entry = _entry(f, dana)
    services.update_time_entry(
        entry=entry, engineer=dana, started=entry.started, ended=entry.started + timedelta(minutes=40),
        hours=Decimal("0.75"), notes="Took longer", billable=False,
    )  # fmt: skip
    entry.refresh_from_db()
    assert (entry.hours, entry.notes, entry.billable) == (Decimal("0.75"), "Took longer", False)
    assert entry.ended - entry.started == timedelta(minutes=40)


def test_another_engineer_may_not_correct_a_time_entry(f):
    """Refused, and the entry stays as it was."""
    entry = _entry(f, f.make_engineer())
    with pytest.raises(PermissionDenied):
        services.update_time_entry(
            entry=entry, engineer=f.make_engineer(), started=entry.started, ended=entry.ended,
            hours=Decimal("9"), notes="Mine now",
        )  # fmt: skip
    entry.refresh_from_db()
    assert (entry.hours, entry.notes) == (Decimal("0.25"), "First go")


def test_a_correction_with_impossible_times_saves_nothing(f):
    dana = f.make_engineer()
    entry = _entry(f, dana)
    with pytest.raises(ValidationError) as error:
        services.update_time_entry(
            entry=entry, engineer=dana, started=entry.started, ended=entry.started - timedelta(minutes=1),
            hours=Decimal("0.25"), notes="Backwards",
        )  # fmt: skip
    assert "ended" in error.value.message_dict
    entry.refresh_from_db()
    assert entry.notes == "First go"
