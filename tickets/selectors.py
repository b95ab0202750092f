"""Read tickets, always through the question "may this user see it?"."""

from django.db.models import Count, Q, QuerySet
from django.http import Http404

from accounts.roles import who

from .models import Ticket, TicketNote, TimeEntry


def visible_tickets(*, user) -> QuerySet[Ticket]:
    """Return the tickets this user may see: engineers see all, a contact their company's."""
    tickets = Ticket.objects.select_related("company", "contact__user", "board", "assigned_engineer")
    found = who(user)
    if found.is_engineer:
        return tickets
    if found.contact is None:
        return tickets.none()
    return tickets.filter(company_id=found.contact.company_id)


def list_tickets_for_user(*, user, query: str = "", status: str = "") -> QuerySet[Ticket]:
    """Return the ticket list a user sees, optionally searched and filtered by status."""
    tickets = visible_tickets(user=user)
    if query:
        search = Q(summary__icontains=query) | Q(company__name__icontains=query)
        if query.lstrip("#").isdigit():
            search |= Q(pk=int(query.lstrip("#")))
        tickets = tickets.filter(search)
    if status == "open":
        tickets = tickets.exclude(status__in=[Ticket.Status.RESOLVED, Ticket.Status.CLOSED])
    elif status in Ticket.Status.values:
        tickets = tickets.filter(status=status)
    # Django leaves Meta.ordering out of GROUP BY queries, so the annotated list must say its order.
    return tickets.annotate(note_count=Count("notes", filter=_note_visibility(user))).order_by("-created", "-pk")


def get_ticket_for_user(*, user, ticket_id: int) -> Ticket:
    """Return one ticket if the user may see it; raise Http404 otherwise, so nothing leaks."""
    try:
        return visible_tickets(user=user).get(pk=ticket_id)
    except (Ticket.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404("No such ticket.") from None


def get_ticket_for_contact(*, contact, ticket_id: int) -> Ticket:
    """Return one of the contact's company's tickets with its assigned engineer; raise Http404 otherwise.

    For Join Chat, on the busy database thread: it reads the ticket's own columns, and the
    assigned engineer for a first offer, and none of the other related rows.
    """
    try:
        return Ticket.objects.select_related("assigned_engineer").get(pk=ticket_id, company_id=contact.company_id)
    except (Ticket.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404("No such ticket.") from None


def _note_visibility(user) -> Q:
    return Q() if who(user).is_engineer else Q(notes__internal=False)


def list_notes_for_user(*, user, ticket: Ticket) -> QuerySet[TicketNote]:
    """Return a ticket's notes this user may read: clients never see internal ones."""
    notes = ticket.notes.select_related("author__engineer", "author__contact")
    if not who(user).is_engineer:
        notes = notes.filter(internal=False)
    return notes


def list_time_entries_for_user(*, user, ticket: Ticket) -> list[TimeEntry]:
    """Return a ticket's time entries, newest first, each marked `editable` by this user; none to clients.

    Time entries are the desk's own records (billing, workload), so clients never see them.
    """
    if not who(user).is_engineer:
        return []
    entries = list(ticket.time_entries.select_related("engineer").order_by("-started", "-pk"))
    for entry in entries:
        entry.editable = entry.engineer.user_id == user.pk
    return entries


def get_time_entry_for_user(*, user, ticket_id: int, entry_id: int) -> TimeEntry:
    """Return one time entry of a ticket to an engineer; raise Http404 to anyone else.

    Whether they may change it is the service's decision (update_time_entry).
    """
    if not who(user).is_engineer:
        raise Http404("No such time entry.")
    try:
        entry = TimeEntry.objects.select_related("engineer", "ticket").get(pk=entry_id, ticket_id=ticket_id)
    except (TimeEntry.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404("No such time entry.") from None
    entry.editable = entry.engineer.user_id == user.pk
    return entry
