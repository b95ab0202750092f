"""Ticket pages for clients (their company's tickets) and engineers (all tickets)."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.permissions import CREATE_TICKET, contact_may
from accounts.roles import who
from chat.selectors import chat_context_for_ticket  # a page shows what every app it draws on reads

from . import selectors, services
from .forms import NoteForm, TicketForm, TimeEntryForm

TICKETS_PER_PAGE = 50


@require_GET
@login_required
def ticket_list(request):
    query = request.GET.get("q", "").strip()[:100]
    status = request.GET.get("status", "")
    tickets = selectors.list_tickets_for_user(user=request.user, query=query, status=status)
    page = Paginator(tickets, TICKETS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "query": query,
        "status": status,
        "may_create": contact_may(request.user, CREATE_TICKET).allowed,
    }
    template = "tickets/list.html#rows" if request.htmx else "tickets/list.html"
    return render(request, template, context)


@require_http_methods(["GET", "POST"])
@login_required
def ticket_create(request):
    contact = who(request.user).contact
    if contact is None or not contact_may(request.user, CREATE_TICKET):
        raise PermissionDenied("You are not allowed to create tickets.")
    # Not `request.POST or None`: a POST with no fields at all must be validated (and refused), too.
    form = TicketForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        forged = request.POST.get("company")
        if forged not in (None, "", str(contact.company_id)):
            form.add_error(None, "You can only open tickets for your own company.")
        elif form.is_valid():
            try:
                ticket = services.create_ticket(contact=contact, **form.cleaned_data)
            except ValidationError as error:
                form.add_error(None, error)
            else:
                messages.success(request, f"Ticket #{ticket.number} opened.")
                return redirect("tickets:detail", ticket_id=ticket.pk)
    status = 422 if form.errors else 200
    return render(request, "tickets/create.html", {"form": form}, status=status)


@require_GET
@login_required
def ticket_detail(request, ticket_id: int):
    ticket = selectors.get_ticket_for_user(user=request.user, ticket_id=ticket_id)
    context = _detail_context(request, ticket, NoteForm(), tab=request.GET.get("tab", "notes"))
    template = "tickets/detail.html#tabs" if request.htmx else "tickets/detail.html"
    return render(request, template, context)


def _detail_context(request, ticket, form, *, tab: str = "notes") -> dict:
    """Return the ticket page's context, on the Chat history tab only if asked and there is a chat."""
    chat = chat_context_for_ticket(user=request.user, ticket=ticket, with_history=tab == "history")
    return {
        "ticket": ticket,
        "notes": selectors.list_notes_for_user(user=request.user, ticket=ticket),
        "note_form": form,
        "time_entries": selectors.list_time_entries_for_user(user=request.user, ticket=ticket),
        **chat,
        "tab": "history" if tab == "history" and chat["chat_count"] else "notes",
    }


@require_POST
@login_required
def note_add(request, ticket_id: int):
    ticket = selectors.get_ticket_for_user(user=request.user, ticket_id=ticket_id)
    form = NoteForm(request.POST)
    if form.is_valid():
        try:
            services.add_note(
                ticket=ticket,
                author=request.user,
                text=form.cleaned_data["text"],
                internal=form.cleaned_data["internal"] and who(request.user).is_engineer,
            )
        except ValidationError as error:
            form.add_error("text", error.message_dict.get("text", error.messages))
        else:
            if not request.htmx:
                messages.success(request, "Note added.")
                return redirect("tickets:detail", ticket_id=ticket.pk)
            form = NoteForm()
    if not request.htmx and form.errors:
        return render(request, "tickets/detail.html", _detail_context(request, ticket, form), status=422)
    context = {**_detail_context(request, ticket, form), "notes_changed": True}
    return render(request, "tickets/detail.html#notes", context, status=422 if form.errors else 200)


@require_GET
@login_required
def time_entry(request, ticket_id: int, entry_id: int):
    """Return one time entry's card (htmx: after Cancel on its correction); else go to the ticket."""
    entry = selectors.get_time_entry_for_user(user=request.user, ticket_id=ticket_id, entry_id=entry_id)
    if not request.htmx:
        return redirect("tickets:detail", ticket_id=entry.ticket_id)
    return render(request, "tickets/_time_entries.html#entry", {"entry": entry})


@require_http_methods(["GET", "POST"])
@login_required
def time_entry_edit(request, ticket_id: int, entry_id: int):
    """Let the engineer who entered a time entry correct it; anyone else is refused (403)."""
    entry = selectors.get_time_entry_for_user(user=request.user, ticket_id=ticket_id, entry_id=entry_id)
    if not entry.editable:
        raise PermissionDenied("Only the engineer who entered this time may correct it.")
    auto_id = f"time-entry-{entry.pk}-%s"  # the ticket page may hold several entries' forms
    if request.method == "POST":
        form = TimeEntryForm(request.POST, auto_id=auto_id)
        if form.is_valid():
            try:
                entry = services.update_time_entry(
                    entry=entry, engineer=who(request.user).engineer, **form.cleaned_data
                )
            except ValidationError as error:
                # A refusal with no field (the entry was deleted meanwhile) has no message_dict.
                problems = error.message_dict.items() if hasattr(error, "error_dict") else [(None, error.messages)]
                for field, messages_ in problems:
                    form.add_error(field if field in form.fields else None, messages_)
            else:
                if not request.htmx:
                    messages.success(request, f"Time entry corrected: {entry.hours} h.")
                    return redirect("tickets:detail", ticket_id=entry.ticket_id)
                entry.editable = True
                return render(request, "tickets/_time_entries.html#entry", {"entry": entry})
    else:
        form = TimeEntryForm(
            auto_id=auto_id,
            initial={
                "started": entry.started,
                "ended": entry.ended,
                "hours": entry.hours,
                "notes": entry.notes,
                "billable": entry.billable,
            },
        )
    context = {
        "entry": entry,
        "form": form,
        "rounding": settings.TIME_ENTRY_ROUNDING_MINUTES,
        "time_zone": timezone.get_current_timezone_name(),
    }
    template = "tickets/time_entry_edit.html#form" if request.htmx else "tickets/time_entry_edit.html"
    return render(request, template, context, status=422 if form.errors else 200)
