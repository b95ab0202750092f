"""Render the HTML fragments the chat sockets send; htmx swaps them in by id (hx-swap-oob).

Shared and client fragments are partials of templates/chat/ws.html; the HUD's are partials of
templates/hud/ws.html. Every function only renders what it is given (chat.screens reads it), so
it runs on any thread and never queries.
"""

from django.conf import settings
from django.template.defaultfilters import linebreaksbr
from django.template.loader import render_to_string
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from deskchat.timefmt import format_when

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


def participants(context: dict, *, css_class: str = "") -> str:
    """Redraw a room's participant list (screens.participants); css_class keeps the box's class, which the swap replaces."""
    return _render(CLIENT, "participants", {**context, "css_class": css_class})


def waiting_dialog(contact, waiting) -> dict:
    """Return the client's dialog for a request they have just made or found waiting (Join Chat).

    It needs no read: a service returned the request with its place in the queue, and asking for
    a chat leaves invitations as they were, so the dialog keeps the invitation box it shows.
    """
    return {
        "request": waiting.request,
        "room": None,
        "state": "waiting",
        "position": waiting.position,
        "invitation_unchanged": True,
        "contact": contact,
        "participants": [],
        "engineer_present": False,
    }


def client_state(context: dict) -> str:
    """Render the client's dialog (screens.client_dialog, or waiting_dialog)."""
    return _render(CLIENT, "client_state", context)


def client_position(context: dict, position: int) -> str:
    """Redraw only the status line of a waiting client's dialog, with their new place in the queue."""
    return _render(CLIENT, "status", {**context, "position": position})


def client_room(context: dict) -> str:
    """Render the client's chat panel of a room (screens.client_room)."""
    return _render(CLIENT, "client_room", context)


def room_closed(context: dict) -> str:
    """Say that a room is over for its viewer: it ended, or they left it (screens.closed_room)."""
    return _render(CLIENT, "room_closed", context)


def staff_queue(summary: dict) -> tuple[str, set[int]]:
    """Render the engineer's queue (selectors.queue_summary); return it and the ids of the requests it lists.

    It lists fewer of the newest requests until it fits in one frame: a hundred waiting requests
    weigh about 80 KB, so only a desk far beyond that is cut.
    """
    listed = summary["requests"]
    html = _render(STAFF, "queue", summary)
    while len(html.encode()) > frame_budget() and listed:
        listed = listed[: len(listed) // 2]
        html = _render(STAFF, "queue", {**summary, "listed": listed})
    return html, {request.pk for request in listed}


def taken_notice(taken) -> str:
    """Say which colleague answered requests that just left this engineer's queue (screens.taken; empty if none)."""
    if not taken:
        return ""
    text = " ".join(f"{r.answered_by.display_name} answered {r.contact.name}'s chat." for r in taken)
    return notice("taken", text)


def session(context: dict) -> str:
    """Render an engineer's session panel (screens.session), appended to the HUD's sessions."""
    return _render(STAFF, "session", context)


def room_invitation(context: dict) -> str:
    """Render the card of an invitation into a room (screens.room_invitation)."""
    return _render(STAFF, "room_invitation", context)


def sent_invitation(context: dict) -> str:
    """Render the card of an invitation the engineer sent a contact (screens.sent_invitation)."""
    return _render(STAFF, "sent_invitation", context)


def supervisor_board(overview: dict) -> str:
    """Render the supervisor board (selectors.supervisor_overview) as the frame that replaces it on the page."""
    return render_to_string("hud/supervisor.html#board", {**overview, "oob": True})
