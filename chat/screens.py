"""Read, in one place, what each chat screen shows: the client's dialog, a room, an HUD session.

Each function runs in the database thread (a page's view, or a socket through
database_sync_to_async) and returns a context that chat.fragments renders without reading
anything more: every relation a template touches is read here, so drawing on the event loop
never queries. Access is checked by the selectors these call, as it is everywhere.
"""

from accounts.roles import who

from . import selectors
from .models import ChatParticipant, ChatRequest, ChatRoom


def client_dialog(contact, *, in_no_room: bool = False) -> dict:
    """Return what the client's chat dialog shows now (the portal's pages render it too).

    A socket that has just read the contact's rooms and found none says so (in_no_room), which
    spares a read of them.
    """
    chat = selectors.current_chat_for_contact(contact=contact, in_no_room=in_no_room)
    chat["invitation"] = selectors.pending_invitation_for(contact=contact)
    room = chat["room"]
    present = selectors.participants(room.pk) if room else []
    return {
        **chat,
        "contact": contact,
        "participants": present,
        "engineer_present": any(p.role == ChatParticipant.Role.ENGINEER for p in present),
    }


def idle_dialog(start, *, contact) -> dict | None:
    """Return client_dialog's answer for a contact whose socket's start read (selectors.portal_start) shows them idle.

    Idle is in no chat, invited to none, and with no request waiting or just expired: most portal
    sockets connect so, and their dialog needs nothing more than that read. Return None otherwise,
    for client_dialog to read the rest.
    """
    if (
        start.in_active_room
        or start.invited
        or start.latest_state in (ChatRequest.State.WAITING, ChatRequest.State.EXPIRED)
    ):
        return None
    request = None
    if start.latest_id is not None:
        # All the idle dialog names of it (its id, ticket and time); nothing on it is read later.
        request = ChatRequest(
            pk=start.latest_id,
            kind=ChatRequest.Kind.CLIENT,
            state=start.latest_state,
            contact=contact,
            ticket_id=start.latest_ticket_id,
            requested_at=start.latest_requested_at,
        )
    return {
        "request": request,
        "room": None,
        "state": "idle",
        "invitation": None,
        "contact": contact,
        "participants": [],
        "engineer_present": False,
    }


def client_room(*, user, room_id: int) -> dict:
    """Return a room the user is in, for the client's chat panel, with who is in it."""
    room = selectors.get_room_for_participant(user=user, room_id=room_id)
    return {"room": room, "participants": selectors.participants(room_id)}


def closed_room(*, user, room_id: int) -> dict:
    """Return a room the user was in and whether they left it before it ended: the words of its closed state."""
    room = selectors.get_room_for_participant(user=user, room_id=room_id)
    return {"room": room, "left": left_before_end(room, selectors.left_at(room=room, user=user))}


def left_before_end(room: ChatRoom, left_at) -> bool:
    """Return whether someone who left the room at `left_at` left it before it ended (or it goes on).

    Whoever is still in a room when it ends leaves it at that very moment: they saw it end.
    """
    if room.state != ChatRoom.State.ENDED:
        return True
    return left_at is not None and room.ended_at is not None and left_at < room.ended_at


def participants(room_id: int) -> dict:
    """Return who is in a room now, for its participant box."""
    return {"room_id": room_id, "participants": selectors.participants(room_id)}


def colleagues_for(engineer) -> list:
    """Return the engineers the Invite menu offers, available and online ones first, marked online."""
    colleagues = selectors.engineers_for_invite(exclude=engineer)
    for colleague in colleagues:
        colleague.online = selectors.is_online(colleague)
    return colleagues


def session(room_id: int, *, viewer, room=None, engineer=None, present=None, seen_seq: int | None = None) -> dict:
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
        "templates": [] if closed else _templates(room, engineer),
        "colleagues": [] if closed else colleagues_for(engineer),
        "viewer_id": viewer.pk,
        "read_seq": me.last_read_seq if me else room.last_seq,
        "seen_seq": seen_seq,
        "closed": closed,
        "left": closed and left_before_end(room, _left_at(room, viewer)),
    }


def _left_at(room: ChatRoom, viewer):
    if hasattr(room, "viewer_left_at"):  # read with the room (selectors.rooms_left_since)
        return room.viewer_left_at
    return selectors.left_at(room=room, user=viewer)


def _templates(room: ChatRoom, engineer) -> list[dict]:
    return [
        {"template": t, "text": selectors.render_template(t, room=room, engineer=engineer)}
        for t in selectors.templates_for(engineer=engineer)
    ]


def room_invitation(*, engineer, room_id: int) -> dict:
    """Return the room this engineer is invited into, with what the invitation card names."""
    return {"room": selectors.get_room_for_invitee(engineer=engineer, room_id=room_id)}


def sent_invitation(*, engineer, request_id: int) -> dict:
    """Return an invitation this engineer sent a contact, with what its card names."""
    return {"invitation": selectors.get_sent_invitation(engineer=engineer, request_id=request_id)}


def taken(*, engineer, request_ids) -> list[ChatRequest]:
    """Return which of these requests a colleague answered, with their names, for the HUD's notice."""
    return selectors.answered_by_colleagues(engineer=engineer, request_ids=request_ids)
