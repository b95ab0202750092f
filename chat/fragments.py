"""Render the HTML fragments the chat sockets send; htmx swaps them in by id (hx-swap-oob).

Shared and client fragments are partials of templates/chat/ws.html; the HUD's are partials of
templates/hud/ws.html. Functions that read the database are async and run the read in a thread.
"""

import time

from channels.db import database_sync_to_async
from django.conf import settings
from django.template.defaultfilters import linebreaksbr
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from accounts.roles import who
from deskchat.timefmt import format_when

from . import selectors, shared_queue
from .models import ChatParticipant, ChatRoom

CLIENT = "chat/ws.html"
STAFF = "hud/ws.html"


def _render(template: str, partial: str, context: dict) -> str:
    return render_to_string(f"{template}#{partial}", context)


def frame_budget() -> int:
    """Return the most a fragment may weigh: daphne refuses to send more than its message limit."""
    return settings.WEBSOCKET_MAX_MESSAGE_SIZE // 4


def message_frames(payloads: list[dict], *, viewer) -> list[str]:
    """Render messages (payload dicts, of one room) as frames that append them to the room's list.

    A long catch-up becomes several frames. Each message is counted at its largest (every
    character escaped as an entity), so no frame can exceed the budget whatever the text.
    """
    frames, batch, weight = [], [], 0
    for payload in payloads:
        cost = 6 * (len(payload["body"]) + len(payload["author_name"])) + 2048
        if batch and weight + cost > frame_budget():
            frames.append(_messages_frame(batch, viewer))
            batch, weight = [], 0
        batch.append(payload)
        weight += cost
    if batch:
        frames.append(_messages_frame(batch, viewer))
    return frames


def _messages_frame(payloads: list[dict], viewer) -> str:
    return format_html(
        '<ol id="room-{}-messages" hx-swap-oob="beforeend" data-event="messages" data-room="{}">{}</ol>',
        payloads[0]["room_id"],
        payloads[0]["room_id"],
        messages_html(payloads, viewer_id=viewer.pk),
    )


KIND_LABELS = {"greeting": "Greeting", "farewell": "Farewell"}


def message_html(m: dict, *, viewer_id: int | None = None, history: bool = False, labels: bool = False) -> SafeString:
    """Render one message (a payload of selectors.message_payload) as the <li> every chat view lists.

    The one markup of a message, for the live chat (frames, the client's dialog, the HUD's
    sessions) and, with `history`, the ticket's Chat history (no ids; with `labels`, its kind
    labelled, which only staff read: a client reads people's words, not "Greeting"). It is
    built here rather than in a template because it is the markup rendered most: for every
    message delivered to every socket, and for every line of every transcript on a page, where
    a template include per message was the largest part of the HUD page's time. format_html
    escapes every value; linebreaksbr escapes the body before adding its line breaks.
    """
    when = format_html('<time datetime="{}" data-when>{}</time>', m["created"], format_when(m["created"]))
    if m["kind"] == "system":
        content = format_html('<span class="msg-system">{}</span> {}', m["body"], when)
    else:
        label = (
            format_html(' <span class="msg-kind">{}</span>', KIND_LABELS[m["kind"]])
            if history and labels and m["kind"] in KIND_LABELS
            else ""
        )
        content = format_html(
            '<div class="msg-meta"><span class="msg-author">{}</span> {}{}</div><div class="msg-body">{}</div>',
            m["author_name"],
            when,
            label,
            linebreaksbr(m["body"], autoescape=True),
        )
    if history:
        return format_html('<li class="msg msg-{}">{}</li>', m["kind"], content)
    mine = " mine" if viewer_id is not None and m["author_id"] == viewer_id else ""
    return format_html(
        '<li id="msg-{}-{}" class="msg msg-{}{}" data-seq="{}" data-room="{}" data-kind="{}" '
        'data-client-msg-id="{}">{}</li>',
        m["room_id"],
        m["seq"],
        m["kind"],
        mine,
        m["seq"],
        m["room_id"],
        m["kind"],
        m["client_msg_id"],
        content,
    )


def messages_html(
    payloads: list[dict], *, viewer_id: int | None = None, history: bool = False, labels: bool = False
) -> SafeString:
    """Render messages one after another."""
    return format_html_join(
        "", "{}", ((message_html(m, viewer_id=viewer_id, history=history, labels=labels),) for m in payloads)
    )


def typing(event: dict) -> str:
    return _render(CLIENT, "typing", event)


def read_position(event: dict) -> str:
    """Move the HUD's "Seen" to how far the client has read (a `room.read` event)."""
    return _render(STAFF, "seen", event)


def error(code: str, message: str, payload: dict | None = None) -> str:
    """An error frame; it names the frame's client_msg_id so the browser can keep the text."""
    client_msg_id = payload.get("client_msg_id") if isinstance(payload, dict) else None
    return _render(
        CLIENT,
        "error",
        {"code": code, "message": message, "client_msg_id": client_msg_id if isinstance(client_msg_id, str) else ""},
    )


def notice(code: str, message: str) -> str:
    return _render(CLIENT, "notice", {"code": code, "message": message})


def pong() -> str:
    return '<div id="chat-pong" hx-swap-oob="true" data-event="pong" hidden></div>'


@database_sync_to_async
def participants(room_id: int, *, css_class: str = "") -> str:
    """Redraw a room's participant list; css_class keeps the box's class, which the swap replaces."""
    return _render(
        CLIENT,
        "participants",
        {"room_id": room_id, "participants": selectors.participants(room_id), "css_class": css_class},
    )


def client_state_context(contact, *, waiting=None) -> dict:
    """Return what the client's dialog shows now (also used to render it into pages).

    `waiting` is a request the caller has just made or found waiting (Join Chat). It spares the
    reads of the contact's chat and of their invitations: asking for a chat leaves invitations as
    they were, so the dialog keeps the invitation box it shows.
    """
    if waiting is not None:
        chat = {
            "request": waiting,
            "room": None,
            "state": "waiting",
            "position": selectors.queue_position(waiting),
            "invitation_unchanged": True,
        }
    else:
        chat = selectors.current_chat_for_contact(contact=contact)
        chat["invitation"] = selectors.pending_invitation_for(contact=contact)
    room = chat["room"]
    participants = selectors.participants(room.pk) if room else []
    return {
        **chat,
        "contact": contact,
        "participants": participants,
        "engineer_present": any(p.role == "engineer" for p in participants),
    }


def render_client_state(contact, *, waiting=None) -> tuple[str, dict]:
    """Render the client's dialog; return it and its context, which `client_position` reuses."""
    context = client_state_context(contact, waiting=waiting)
    return _render(CLIENT, "client_state", context), context


client_state = database_sync_to_async(render_client_state)


def client_position(context: dict, position: int) -> str:
    """Redraw only the status line of a waiting client's dialog, with their new place in the queue."""
    return _render(CLIENT, "status", {**context, "position": position})


@database_sync_to_async
def client_room(room_id: int, *, viewer) -> str:
    room = selectors.get_room_for_participant(user=viewer, room_id=room_id)
    return _render(CLIENT, "client_room", {"room": room, "participants": selectors.participants(room_id)})


@database_sync_to_async
def room_closed(room_id: int, *, viewer) -> str:
    room = ChatRoom.objects.select_related("ticket").get(pk=room_id)
    return _render(CLIENT, "room_closed", {"room": room})


async def staff_queue(engineer, *, shown: set | None = None, changed_at: float | None = None) -> str:
    """Draw the engineer's queue from a shared read that began after `changed_at` (default: now).

    `shown`, if given, is refilled with the ids of the requests listed.
    """
    moment = time.monotonic() if changed_at is None else changed_at
    snapshot = await shared_queue.shared_read().since(moment, engineer.pk)
    summary = selectors.queue_summary(engineer=engineer, snapshot=snapshot)
    # Everything the queue partial shows that differs between engineers seeing the same requests.
    engineer = summary["engineer"]
    offered_to_me = tuple(r.pk for r in summary["requests"] if r.offered_to_id == engineer.pk and not r.offer_released)
    key = (
        tuple(r.pk for r in summary["requests"]),
        offered_to_me,
        engineer.availability,
        summary["notify"],
        timezone.get_current_timezone_name(),  # the items write when each request came in
    )
    if key not in snapshot["rendered"]:
        snapshot["rendered"][key] = _fitting_queue(summary)
    html, listed = snapshot["rendered"][key]
    if shown is not None:
        shown.clear()
        shown.update(listed)
    return html


def _fitting_queue(summary: dict) -> tuple[str, set[int]]:
    """Render the queue, listing fewer of the newest requests until it fits in one frame.

    A hundred waiting requests weigh about 80 KB; only a desk far beyond that is cut.
    Return the HTML and the ids it lists.
    """
    listed = summary["requests"]
    html = _render(STAFF, "queue", summary)
    while len(html.encode()) > frame_budget() and listed:
        listed = listed[: len(listed) // 2]
        html = _render(STAFF, "queue", {**summary, "listed": listed})
    return html, {request.pk for request in listed}


@database_sync_to_async
def taken_notice(*, engineer, request_ids) -> str:
    """Say which colleague answered requests that just left this engineer's queue (empty if none did)."""
    taken = selectors.answered_by_colleagues(engineer=engineer, request_ids=request_ids)
    if not taken:
        return ""
    text = " ".join(f"{r.answered_by.display_name} answered {r.contact.name}'s chat." for r in taken)
    return notice("taken", text)


def colleagues_for(engineer) -> list:
    """Return the engineers the Invite menu offers, available and online ones first, marked online."""
    colleagues = selectors.engineers_for_invite(exclude=engineer)
    for colleague in colleagues:
        colleague.online = selectors.is_online(colleague)
    return colleagues


def session_context(
    room_id: int, *, viewer, room=None, engineer=None, present=None, seen_seq: int | None = None
) -> dict:
    """Return what an engineer's session panel shows (the HUD page renders it for reloads too).

    The HUD page passes the room (one of the viewer's own, read with what the panel shows), the
    engineer, the room's participants and how far its client has read (selectors.client_reads),
    which it reads for all its sessions at once.
    """
    room = room or selectors.get_room_for_participant(user=viewer, room_id=room_id)
    engineer = engineer or who(viewer).engineer
    present = selectors.participants(room_id) if present is None else present
    me = next((p for p in present if p.user_id == viewer.pk), None)
    if seen_seq is None:  # how far the client has read: the HUD shows "Seen" there
        client = next((p for p in present if p.role == ChatParticipant.Role.CLIENT), None)
        seen_seq = client.last_read_seq if client else selectors.client_reads([room_id]).get(room_id, 0)
    closed = me is None or not room.is_active
    # A closed session hides the Invite menu and the templates (a rejoin sends a fresh panel).
    return {
        "room": room,
        "participants": present,
        "templates": []
        if closed
        else [
            {"template": t, "text": selectors.render_template(t, room=room, engineer=engineer)}
            for t in selectors.templates_for(engineer=engineer)
        ],
        "colleagues": [] if closed else colleagues_for(engineer),
        "viewer_id": viewer.pk,
        "read_seq": me.last_read_seq if me else room.last_seq,
        "seen_seq": seen_seq,
        "closed": closed,
    }


@database_sync_to_async
def session(room_id: int, *, viewer) -> str:
    return _render(STAFF, "session", session_context(room_id, viewer=viewer))


@database_sync_to_async
def room_invitation(room_id: int) -> str:
    room = ChatRoom.objects.select_related("ticket__company", "request__contact__user").get(pk=room_id)
    return _render(STAFF, "room_invitation", {"room": room})


@database_sync_to_async
def sent_invitation(request_id: int) -> str:
    from .models import ChatRequest

    invitation = ChatRequest.objects.select_related("ticket", "contact__user").get(pk=request_id)
    return _render(STAFF, "sent_invitation", {"invitation": invitation})
