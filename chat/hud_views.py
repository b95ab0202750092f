"""The Staff HUD's pages: the HUD, the supervisor view, and what a session needs over HTTP.

Live state (the queue, sessions, invitations) arrives over the HUD socket (chat/sockets/hud.py).
These views render the page around it, and serve what a socket is a poor fit for: the plain-text
chat log, the time-entry form, the ticket beside a session, inviting a ticket's contact from the
ticket page, and the supervisor view's first drawing (its socket is chat/sockets/supervisor.py).

Every view is for engineers only: anonymous visitors are sent to sign in, contacts get 403.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.middleware import HtmxDetails

from accounts.models import Engineer
from accounts.roles import who
from tickets import selectors as ticket_selectors
from tickets import services as ticket_services
from tickets.forms import TimeEntryForm
from tickets.services import rounded_hours

from . import screens, selectors, services
from .errors import ChatError

# A session the engineer left this recently, and entered no time for, comes back after a reload.
RECENT_SESSIONS_HOURS = 8
# Invitations to contacts stay listed on the HUD this long after they were answered.
RECENT_INVITATIONS_HOURS = 1


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _engineer(request) -> Engineer:
    engineer = who(request.user).engineer
    if engineer is None:
        raise PermissionDenied("The HUD is for engineers.")
    return engineer


# --- The HUD --------------------------------------------------------------------------------


@require_GET
@login_required
def hud(request: HtmxHttpRequest):
    """Render the HUD: the queue as it is now, and the sessions still waiting to be wrapped up.

    Active sessions are not rendered here: the socket's first sync sends each with its messages.
    """
    engineer = _engineer(request)
    now = timezone.now()
    active = set(selectors.rooms_for_socket(user=request.user))
    rooms = [
        room
        for room in selectors.rooms_left_since(engineer=engineer, since=now - timedelta(hours=RECENT_SESSIONS_HOURS))
        if room.pk not in active
    ]  # one rejoined since is sent live by the socket
    # Every closed session's participants, transcript and client's read in three queries, not three per session.
    present = selectors.participants_of_rooms([room.pk for room in rooms])
    messages = selectors.messages_of_rooms([room.pk for room in rooms])
    reads = selectors.client_reads([room.pk for room in rooms])
    closed_sessions = [
        {
            **screens.session(
                room.pk,
                viewer=request.user,
                room=room,
                engineer=engineer,
                present=present[room.pk],
                seen_seq=reads.get(room.pk, 0),
            ),
            "messages": messages[room.pk],
        }
        for room in rooms
    ]
    context = {
        **selectors.queue_summary(engineer=engineer),
        "availabilities": [
            (value, label) for value, label in Engineer.Availability.choices if value != Engineer.Availability.OFFLINE
        ],
        "room_invitations": selectors.pending_room_invitations(engineer=engineer),
        "sent_invitations": selectors.sent_invitations(
            engineer=engineer, since=now - timedelta(hours=RECENT_INVITATIONS_HOURS)
        ),
        "closed_sessions": closed_sessions,
        "viewer_id": request.user.pk,
    }
    return render(request, "hud/hud.html", context)


@require_GET
@login_required
def transcript(request: HtmxHttpRequest, room_id: int):
    """Return a chat's plain-text log (times and names), for the clipboard and the ticket panel."""
    engineer = _engineer(request)
    room = selectors.get_room_for_engineer(engineer=engineer, room_id=room_id)
    response = HttpResponse(selectors.transcript_text(room), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'inline; filename="chat-{room.pk}.txt"'
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@login_required
def invite_options(request: HtmxHttpRequest, room_id: int):
    """Return the Invite menu's engineers as they are now, available ones first.

    The session panel is drawn once, when the chat opens; availability changes after that, so the
    menu asks again each time it opens.
    """
    engineer = _engineer(request)
    try:
        selectors.get_room_for_participant(user=request.user, room_id=room_id)
    except ChatError:
        raise Http404("No such chat.") from None
    return render(request, "hud/ws.html#colleague_options", {"colleagues": screens.colleagues_for(engineer)})


TICKET_PANEL_CHATS = 10


@require_GET
@login_required
def ticket_panel(request: HtmxHttpRequest, ticket_id: int):
    """Render the ticket beside a session: its details, who is chatting, notes, time entries and past chats.

    `?room=` names the session the panel sits beside, whose client may be a colleague of the
    ticket's contact; a room the engineer is not in, or of another ticket, is ignored.
    """
    _engineer(request)
    ticket = ticket_selectors.get_ticket_for_user(user=request.user, ticket_id=ticket_id)
    if not request.htmx:
        return redirect("tickets:detail", ticket_id=ticket.pk)
    return render(
        request,
        "hud/ticket_panel.html",
        {
            "ticket": ticket,
            "client": _session_client(request, ticket),
            "notes": ticket_selectors.list_notes_for_user(user=request.user, ticket=ticket),
            "time_entries": ticket_selectors.list_time_entries_for_user(user=request.user, ticket=ticket),
            # The panel lists the latest chats with links to their logs; the ticket page has them all.
            "chat_history": selectors.chat_history(ticket=ticket, limit=TICKET_PANEL_CHATS, transcripts=False),
            "chat_count": selectors.chat_count(ticket=ticket),
        },
    )


def _session_client(request, ticket):
    """Return the client of the session named by ?room=, if it is the viewer's and on this ticket."""
    room_id = request.GET.get("room", "")
    if not room_id.isdigit() or len(room_id) > 16:
        return None
    try:
        room = selectors.get_room_for_participant(user=request.user, room_id=int(room_id))
    except ChatError:
        return None
    return room.client if room.ticket_id == ticket.pk else None


# --- Time entries ---------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@login_required
def time_entry(request: HtmxHttpRequest, room_id: int):
    """Show a time-entry form pre-filled from a chat the engineer was in, and save it on the ticket."""
    engineer = _engineer(request)
    try:
        room = selectors.get_room_for_participant(user=request.user, room_id=room_id)
    except ChatError:
        raise Http404("No such chat.") from None
    started, ended = selectors.session_times(room=room, user=request.user)
    saved = None
    auto_id = f"time-{room.pk}-%s"  # several sessions' forms can be open on one HUD page
    if request.method == "POST":
        form = TimeEntryForm(request.POST, auto_id=auto_id)
        if form.is_valid():
            try:
                saved = ticket_services.add_time_entry(
                    ticket=room.ticket,
                    engineer=engineer,
                    started=form.cleaned_data["started"],
                    ended=form.cleaned_data["ended"],
                    hours=form.cleaned_data["hours"],
                    notes=form.cleaned_data["notes"],
                    billable=form.cleaned_data["billable"],
                )
            except ValidationError as error:
                for field, problems in error.message_dict.items():
                    form.add_error(field if field in form.fields else None, problems)
        if saved and not request.htmx:
            messages.success(request, f"Time entry saved: {saved.hours} h on ticket #{room.ticket_id}.")
            return redirect("hud")
    else:
        form = TimeEntryForm(
            auto_id=auto_id,
            initial={
                "started": started,
                "ended": ended,
                "hours": rounded_hours(started, ended),
                "notes": selectors.transcript_text(room),
                "billable": True,
            },
        )
    context = {
        "room": room,
        "form": form,
        "saved": saved,
        "rounding": settings.TIME_ENTRY_ROUNDING_MINUTES,
        "time_zone": timezone.get_current_timezone_name(),
    }
    template = "hud/time_entry.html#form" if request.htmx else "hud/time_entry.html"
    response = render(request, template, context, status=422 if form.errors else 200)
    if saved:
        response["HX-Trigger"] = "time-entry-saved"  # the ticket panels beside the sessions list it
    return response


# --- Inviting a ticket's contact ------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@login_required
def ticket_chat(request: HtmxHttpRequest, ticket_id: int):
    """On a staff ticket page: invite the ticket's contact to chat, and show how that invitation stands.

    The status polls itself while the invitation waits, so the ticket page needs no socket.
    """
    engineer = _engineer(request)
    ticket = ticket_selectors.get_ticket_for_user(user=request.user, ticket_id=ticket_id)
    error = None
    if request.method == "POST":
        try:
            services.invite_contact(engineer=engineer, ticket=ticket)
        except ChatError as refusal:
            error = refusal.message
        if not request.htmx:
            if error:
                messages.error(request, error)
            else:
                messages.success(request, f"Chat invitation sent to {ticket.contact.name}.")
            return redirect("tickets:detail", ticket_id=ticket.pk)
    elif not request.htmx:
        return redirect("tickets:detail", ticket_id=ticket.pk)
    invitation = selectors.latest_invitation_for_ticket(engineer=engineer, ticket=ticket)
    return render(
        request,
        "hud/ticket_chat.html",
        {"ticket": ticket, "invitation": invitation, "error": error},
        status=422 if error else 200,
    )


# --- The supervisor view --------------------------------------------------------------------


@require_GET
@login_required
def supervisor(request: HtmxHttpRequest):
    """Show every queue's waiting count and today's figures, and every engineer's load.

    The page's socket (chat/sockets/supervisor.py) sends the board again whenever it changes.
    """
    _engineer(request)
    if not who(request.user).is_supervisor:
        raise PermissionDenied("The supervisor view is for supervisors.")
    template = "hud/supervisor.html#board" if request.htmx else "hud/supervisor.html"
    return render(request, template, selectors.supervisor_overview())
