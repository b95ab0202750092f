"""Every write to tickets, notes and time entries."""

import math
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from accounts.models import Contact, Engineer
from accounts.permissions import CREATE_TICKET, resolve_feature
from accounts.roles import who

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
    if internal and not who(author).is_engineer:
        raise PermissionDenied("Only engineers can write internal notes.")
    note = TicketNote.objects.create(ticket=ticket, author=author, text=text, internal=internal)
    Ticket.objects.filter(pk=ticket.pk).update(updated=note.created)
    return note


def add_system_note(*, ticket: Ticket, author, text: str, internal: bool) -> TicketNote:
    """Add a note the product writes itself (a chat transcript, a callback request), unclipped."""
    return TicketNote.objects.create(ticket=ticket, author=author, text=text, internal=internal)


def rounded_hours(started: datetime, ended: datetime, *, step_minutes: int | None = None) -> Decimal:
    """Return the time between two moments in hours, rounded up to whole steps (at least one).

    Service desks bill in increments (TIME_ENTRY_ROUNDING_MINUTES, default 15): a 4-minute chat
    is a quarter of an hour, a 16-minute one half an hour. A step of 0 keeps the exact time.
    """
    step = settings.TIME_ENTRY_ROUNDING_MINUTES if step_minutes is None else step_minutes
    seconds = max(0.0, (ended - started).total_seconds())
    if step <= 0:
        minutes = Decimal(seconds) / 60
    else:
        # Shave float noise so exactly 15:00 is one step, not two.
        minutes = Decimal(max(1, math.ceil(round(seconds / 60 / step, 6))) * step)
    return (minutes / 60).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _check_time_entry(*, started: datetime, ended: datetime, hours: Decimal) -> None:
    if ended < started:
        raise ValidationError({"ended": "The end can't be before the start."})
    if hours < 0 or hours > 24:
        raise ValidationError({"hours": "Hours must be between 0 and 24."})


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
    _check_time_entry(started=started, ended=ended, hours=hours)
    return TimeEntry.objects.create(
        ticket=ticket, engineer=engineer, started=started, ended=ended, hours=hours, notes=notes, billable=billable
    )


@transaction.atomic
def update_time_entry(
    *,
    entry: TimeEntry,
    engineer: Engineer,
    started: datetime,
    ended: datetime,
    hours: Decimal,
    notes: str = "",
    billable: bool = True,
) -> TimeEntry:
    """Correct a time entry; only the engineer who entered it may (the time is theirs to answer for).

    The row is locked while it is checked and written, so two corrections apply one after the other.
    """
    locked = TimeEntry.objects.select_for_update().filter(pk=entry.pk).first()
    if locked is None:
        raise ValidationError("This time entry no longer exists.")
    if locked.engineer_id != engineer.pk:
        raise PermissionDenied("Only the engineer who entered this time may correct it.")
    _check_time_entry(started=started, ended=ended, hours=hours)
    locked.started, locked.ended, locked.hours, locked.notes, locked.billable = started, ended, hours, notes, billable
    locked.save(update_fields=["started", "ended", "hours", "notes", "billable"])
    return locked
