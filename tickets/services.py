"""Every write to tickets, notes and time entries."""

from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from accounts.models import Contact, Engineer
from accounts.permissions import CREATE_TICKET, resolve_feature

from .models import Ticket, TicketNote, TimeEntry


def _clean_text(text: str, *, field: str, max_length: int) -> str:
    text = (text or "").strip()
    if not text:
        raise ValidationError({field: "This can't be empty."})
    if len(text) > max_length:
        raise ValidationError({field: f"Keep it under {max_length:,} characters (this has {len(text):,})."})
    return text


@transaction.atomic
def create_ticket(
    *, contact: Contact, summary: str, description: str = "", priority: str = Ticket.Priority.MEDIUM
) -> Ticket:
    """Open a ticket for the contact's own company, if the contact may create tickets."""
    if not resolve_feature(contact, CREATE_TICKET):
        raise PermissionDenied("You are not allowed to create tickets.")
    summary = _clean_text(summary, field="summary", max_length=200)
    if priority not in Ticket.Priority.values:
        raise ValidationError({"priority": "Choose a priority from the list."})
    return Ticket.objects.create(
        company_id=contact.company_id,
        contact=contact,
        summary=summary,
        description=(description or "").strip(),
        priority=priority,
    )


@transaction.atomic
def add_note(*, ticket: Ticket, author, text: str, internal: bool = False) -> TicketNote:
    """Add a note to a ticket; only engineers may write internal notes."""
    text = _clean_text(text, field="text", max_length=settings.NOTE_MAX_LENGTH)
    if internal and not hasattr(author, "engineer"):
        raise PermissionDenied("Only engineers can write internal notes.")
    note = TicketNote.objects.create(ticket=ticket, author=author, text=text, internal=internal)
    Ticket.objects.filter(pk=ticket.pk).update(updated=note.created)
    return note


def add_system_note(*, ticket: Ticket, author, text: str, internal: bool) -> TicketNote:
    """Add a note the product writes itself (a chat transcript, a callback request), unclipped."""
    return TicketNote.objects.create(ticket=ticket, author=author, text=text, internal=internal)


@transaction.atomic
def add_time_entry(
    *,
    ticket: Ticket,
    engineer: Engineer,
    started: datetime,
    ended: datetime,
    hours: Decimal,
    notes: str = "",
    billable: bool = True,
) -> TimeEntry:
    """Record time an engineer spent on a ticket."""
    if ended < started:
        raise ValidationError({"ended": "The end can't be before the start."})
    if hours < 0 or hours > 24:
        raise ValidationError({"hours": "Hours must be between 0 and 24."})
    return TimeEntry.objects.create(
        ticket=ticket, engineer=engineer, started=started, ended=ended, hours=hours, notes=notes, billable=billable
    )
