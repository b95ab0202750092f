"""Every change of state of a chat, in one file.

Each public function validates, writes inside one transaction, and publishes its events with
`publish_on_commit`, so no socket hears of a change that was rolled back. Events are small
nudges (ids and a message's payload); receivers read anything they missed from the database.
Two hot paths are lighter: `notify_typing` stores nothing and publishes from the event loop,
and read positions (`mark_read`, `mark_reads`) are single statements that need no transaction.

A refusal the user should read is a `ChatError` (chat/errors.py) with a stable `code` and a plain message.
"""

from dataclasses import dataclass
from datetime import timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Exists, F, Value, When
from django.db.models.functions import Coalesce, Greatest
from django.http import Http404
from django.utils import timezone

from accounts.models import Contact, Engineer
from accounts.permissions import CHAT, resolve_feature
from accounts.roles import who
from deskchat import adb
from deskchat.events import call_service, publish_async, publish_on_commit, queue_group, room_group, user_group
from deskchat.sql import violates
from tickets.models import Ticket
from tickets.selectors import get_ticket_for_contact, get_ticket_for_user
from tickets.services import add_note, add_system_note

from . import selectors
from . import sql as chat_sql
from .errors import ChatError
from .models import DRAFT_MAX_LENGTH, ChatMessage, ChatParticipant, ChatQueue, ChatRequest, ChatRoom, RoomInvitation

Waiting = ChatRequest.State.WAITING


# --- Routing ---------------------------------------------------------------------------------


def route_queue(ticket: Ticket) -> ChatQueue | None:
    """Return the first queue whose rules all match the ticket, else the default queue.

    One query (a row per queue, company and board) rather than one per relation: this runs on
    every chat request.
    """
    queues: dict[int, ChatQueue] = {}  # in the queues' order
    rows = ChatQueue.objects.values_list("pk", "name", "is_default", "order", "priorities", "companies", "boards")
    for pk, name, is_default, order, priorities, company_id, board_id in rows:
        if pk not in queues:
            queues[pk] = ChatQueue.from_db(
                "default",
                ["id", "name", "is_default", "order", "priorities"],
                [pk, name, is_default, order, priorities],
            )
            queues[pk].company_ids, queues[pk].board_ids = set(), set()
        if company_id:
            queues[pk].company_ids.add(company_id)
        if board_id:
            queues[pk].board_ids.add(board_id)
    default = None
    for queue in queues.values():
        companies, boards = queue.company_ids, queue.board_ids
        if queue.is_default:
            default = default or queue
            continue
        if not (companies or boards or queue.priorities):
            continue  # a queue with no rules only takes requests as the default
        if companies and ticket.company_id not in companies:
            continue
        if boards and ticket.board_id not in boards:
            continue
        if queue.priorities and ticket.priority not in queue.priorities:
            continue
        return queue
    return default


def _first_offer_for(ticket: Ticket) -> Engineer | None:
    """Return the ticket's engineer if they should see the request alone for a moment."""
    engineer = ticket.assigned_engineer
    if engineer and selectors.is_alertable(engineer):
        return engineer
    return None


# --- Client requests ------------------------------------------------------------------------


def _check_may_chat(contact: Contact, ticket: Ticket, *, allowed: bool | None = None) -> None:
    """Refuse a ticket of another company, or a contact without chat (`allowed`, if already resolved)."""
    if ticket.company_id != contact.company_id:
        raise ChatError("not_found", "No such ticket.")
    if not (resolve_feature(contact, CHAT) if allowed is None else allowed):
        raise ChatError("not_allowed", "Chat is not enabled for your account.")


@dataclass(frozen=True)
class QueuedRequest:
    """A client's waiting request and its place in its queue (1 is next): what the dialog shows."""

    request: ChatRequest
    position: int


def join_chat(*, contact: Contact, ticket_id: int) -> QueuedRequest:
    """Put the contact in the queue for a chat about the ticket they name (Join Chat), and say their place.

    One trip to the database thread does it all: a burst of clients pressing Join Chat queues on
    that one thread, so the dialog is drawn from what this returns, with no read of its own.
    """
    try:
        ticket = get_ticket_for_contact(contact=contact, ticket_id=ticket_id)
    except Http404:  # never say whether another company's ticket exists
        raise ChatError("not_found", "No such ticket.") from None
    request = request_chat(contact=contact, ticket=ticket)
    return QueuedRequest(request=request, position=selectors.queue_position(request))


def request_chat(*, contact: Contact, ticket: Ticket) -> ChatRequest:
    """Put the contact in the queue for a chat about one of their company's tickets.

    Asking again for the same ticket returns the request already waiting. When nobody who could
    take it is online and available, the request is still made, flagged `nobody_available`: the
    client is told at once and offered a note or a callback, but may keep waiting, keeping their
    place for an engineer who comes back before the pickup timeout (and the supervisor's figures
    count it). The sweeper keeps the flag true as engineers come and go (flag_unstaffed_requests).
    """
    try:
        return _request_chat(contact=contact, ticket=ticket)
    except IntegrityError as error:  # a second tab asked at the same moment; its request has committed
        if not _waits_already(error, contact, ChatRequest.Kind.CLIENT):
            raise
        waiting = (
            ChatRequest.objects.select_related(*selectors.WAITING_DIALOG_RELATIONS)
            .filter(contact=contact, kind=ChatRequest.Kind.CLIENT, state=Waiting)
            .first()
        )
        if waiting and waiting.ticket_id == ticket.pk:
            return waiting
        raise ChatError("already_waiting", "You are already waiting for a chat.") from None


def _waits_already(error: IntegrityError, contact: Contact, kind: str) -> bool:
    """Return whether an insert was refused because the contact already has a waiting request of this kind."""
    return violates(error, ChatRequest, "one_waiting_request_per_contact", contact=contact, kind=kind, state=Waiting)


@transaction.atomic
def _request_chat(*, contact: Contact, ticket: Ticket) -> ChatRequest:
    """Check, route and insert the request; the unique waiting-request constraint may refuse the insert.

    No savepoint around the insert: a refused insert rolls this whole transaction back, and
    request_chat reads the request that won. A Join Chat burst queues on the one database thread,
    so each of its round trips counts (docs/benchmarks.md).
    """
    standing = selectors.request_standing(contact=contact, since=timezone.now() - timedelta(minutes=1))
    _check_may_chat(contact, ticket, allowed=standing["may_chat"])
    waiting = standing["waiting"]
    if waiting and waiting.expires_at <= timezone.now():
        # Past its deadline but not swept yet: it can never be answered, so it must not block
        # (or be handed back for) a new request.
        _finish_waiting(waiting.pk, ChatRequest.State.EXPIRED, due=True)
        waiting = None
    if waiting:
        if waiting.ticket_id == ticket.pk:
            return waiting
        raise ChatError("already_waiting", f"You are already waiting for a chat about ticket #{waiting.ticket_id}.")
    if standing["in_active_room"]:
        raise ChatError("already_chatting", "You are already in a chat. Leave it before starting another.")
    _check_request_rate(standing["recent_requests"])
    queue = route_queue(ticket)
    if queue is None:
        raise ChatError("no_queue", "Chat is not staffed right now. Please leave a note on the ticket instead.")
    now = timezone.now()
    offered_to = _first_offer_for(ticket)
    request = ChatRequest.objects.create(
        kind=ChatRequest.Kind.CLIENT,
        ticket=ticket,
        contact=contact,
        queue=queue,
        expires_at=now + timedelta(seconds=settings.CHAT_PICKUP_TIMEOUT_SECONDS),
        offered_to=offered_to,
        offer_until=now + timedelta(seconds=settings.CHAT_OFFER_WINDOW_SECONDS) if offered_to else None,
        nobody_available=offered_to is None and queue.pk not in selectors.queues_with_takers([queue.pk]),
    )
    _publish_queue_change(request)
    return request


def _check_request_rate(recent: int) -> None:
    """Refuse a new request once the contact made CHAT_REQUEST_RATE_PER_MINUTE in the last minute.

    Requests are rows, so counting them limits request/cancel cycles per contact across every
    socket, tab and daphne process, with no counter to keep elsewhere.
    """
    limit = settings.CHAT_REQUEST_RATE_PER_MINUTE
    if limit and recent >= limit:
        raise ChatError(
            "rate_limited",
            f"You have asked for a chat {limit} times in the last minute. Please wait a minute before asking again.",
        )


@transaction.atomic
def cancel_request(*, contact: Contact, request_id: int) -> None:
    """Take the contact's waiting request out of the queue (and end its room, if it was returning)."""
    request = _finish_waiting(request_id, ChatRequest.State.CANCELLED, contact=contact, kind=ChatRequest.Kind.CLIENT)
    if request is None:
        raise ChatError("not_waiting", "That chat request is no longer waiting.")


@transaction.atomic
def leave_note_instead(*, contact: Contact, request_id: int, text: str) -> ChatRequest:
    """Stop waiting and add what the client typed to the ticket as their own note, in one transaction.

    The same conditional UPDATE as cancel_request takes the request out of the queue once; a note
    that cannot be stored rolls the cancellation back with it.
    """
    text = _clean_note(text)
    request = _finish_waiting(request_id, ChatRequest.State.CANCELLED, contact=contact, kind=ChatRequest.Kind.CLIENT)
    if request is None:
        raise ChatError("not_waiting", "That chat request is no longer waiting.")
    add_note(ticket=request.ticket, author=contact.user, text=text)
    return request


def _clean_note(text) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ChatError("empty", "Write your note before adding it to the ticket.")
    text = text.strip()
    if len(text) > settings.NOTE_MAX_LENGTH:
        raise ChatError("too_long", f"Notes are limited to {settings.NOTE_MAX_LENGTH:,} characters.")
    return text


@transaction.atomic
def save_draft(*, contact: Contact, request_id: int, text) -> bool:
    """Store what the client is typing while waiting, for the HUD's queue item; return whether it changed.

    Only the contact's own waiting request takes it. Engineers' queues are nudged with
    `queue.draft` (the client's own dialog shows nothing new), only when the text changed: the
    supervisors' board shows no drafts, so unlike `queue.changed` it leaves them alone.
    """
    if not isinstance(text, str):
        raise ChatError("bad_frame", "A draft must be text.")
    text = " ".join(text.split())  # one line on the queue item
    if len(text) > DRAFT_MAX_LENGTH:
        raise ChatError("too_long", f"A draft is limited to {DRAFT_MAX_LENGTH} characters.")
    changed = (
        ChatRequest.objects.filter(pk=request_id, contact=contact, kind=ChatRequest.Kind.CLIENT, state=Waiting)
        .exclude(draft=text)
        .update(draft=text)
    )
    if changed:
        request = ChatRequest.objects.select_related("offered_to").get(pk=request_id)
        _publish_to_engineers(request, event_type="queue.draft")
    elif not ChatRequest.objects.filter(pk=request_id, contact=contact, state=Waiting).exists():
        raise ChatError("not_waiting", "That chat request is no longer waiting.")
    return bool(changed)


@transaction.atomic
def expire_request(*, request_id: int) -> bool:
    """Expire a request whose pickup time has passed; return whether this call expired it.

    A conditional UPDATE (state still waiting and expires_at passed) makes this exactly-once,
    however many processes sweep at the same moment.
    """
    return _finish_waiting(request_id, ChatRequest.State.EXPIRED, due=True) is not None


def expire_due_requests() -> list[int]:
    """Expire every request past its pickup time; return the ids this call expired."""
    due = ChatRequest.objects.filter(state=Waiting, expires_at__lte=timezone.now()).values_list("pk", flat=True)
    return [request_id for request_id in list(due) if expire_request(request_id=request_id)]


@transaction.atomic
def request_callback(*, contact: Contact, request_id: int, text: str = "") -> ChatRequest:
    """Turn a waiting or expired request into a callback request, noted on the ticket."""
    text = (text or "").strip()[: settings.NOTE_MAX_LENGTH - 200]
    _lock_returned_room(request_id)
    updated = ChatRequest.objects.filter(
        pk=request_id,
        contact=contact,
        kind=ChatRequest.Kind.CLIENT,
        state__in=[Waiting, ChatRequest.State.EXPIRED],
    ).update(state=ChatRequest.State.CALLBACK, ended_at=timezone.now())
    if not updated:
        raise ChatError("not_waiting", "That chat request can no longer be turned into a callback.")
    request = ChatRequest.objects.select_related("ticket", "contact__user", "queue").get(pk=request_id)
    add_system_note(ticket=request.ticket, author=contact.user, text=callback_note(contact, text), internal=False)
    _end_returned_room(request, note=f"{contact.name} asked for a callback instead.")
    _publish_queue_change(request)
    return request


def callback_note(contact: Contact, text: str) -> str:
    """Write the callback request as the client's own note (it is shown under their name)."""
    phone = f" on {contact.phone}" if contact.phone else ""
    note = f"Please call me back{phone} instead of chatting."
    if text:
        note += f"\n\nMy question:\n{text}"
    return note


def _finish_waiting(request_id: int, state: str, *, due: bool = False, **filters) -> ChatRequest | None:
    """Move a waiting request to a final state if it is still waiting; publish; return it.

    A returning request's room ends with it. Its row is locked first, in the order leave_room and
    answer_request lock (room, then request), so that concurrent changes queue instead of deadlocking.
    """
    now = timezone.now()
    _lock_returned_room(request_id)
    waiting = ChatRequest.objects.filter(pk=request_id, state=Waiting, **filters)
    if due:
        waiting = waiting.filter(expires_at__lte=now)
    if not waiting.update(state=state, ended_at=now):
        return None
    request = ChatRequest.objects.select_related("contact", "queue", "invited_by", "ticket").get(pk=request_id)
    if request.kind == ChatRequest.Kind.INVITATION:
        _publish_invitation_change(request)
    else:
        notes = {
            ChatRequest.State.EXPIRED: "No engineer was free to take the chat back in time.",
            ChatRequest.State.CANCELLED: "{name} stopped waiting.",
        }
        _end_returned_room(request, note=notes.get(state, "").format(name=request.contact.name))
        _publish_queue_change(request)
    return request


def _lock_returned_room(request_id: int) -> int | None:
    """Lock the active room of a request (one that was answered, then returned), if it has one."""
    return (
        ChatRoom.objects.select_for_update()
        .filter(request_id=request_id, state=ChatRoom.State.ACTIVE)
        .values_list("pk", flat=True)
        .first()
    )


def _end_returned_room(request: ChatRequest, *, note: str) -> None:
    """End the room a returning request left the queue without an answer from (expired, cancelled, callback)."""
    if request.returned_at is None:
        return
    room = ChatRoom.objects.filter(request=request, state=ChatRoom.State.ACTIVE).select_related("request").first()
    if room is None:
        return
    if note:
        _append_message(room, author=None, author_name="", kind=ChatMessage.Kind.SYSTEM, body=note)
    _end(room, ended_by=None)


def release_due_offers() -> list[int]:
    """Open requests whose first-offer window ended to the whole queue; return their ids."""
    due = ChatRequest.objects.filter(
        state=Waiting, offered_to__isnull=False, offer_released=False, offer_until__lte=timezone.now()
    ).values_list("pk", flat=True)
    released = []
    for request_id in list(due):
        with transaction.atomic():
            if ChatRequest.objects.filter(pk=request_id, offer_released=False).update(offer_released=True):
                released.append(request_id)
                _publish_queue_change(ChatRequest.objects.get(pk=request_id))
    return released


def _publish_queue_change(request: ChatRequest) -> None:
    """Tell the queue's engineers, the offered engineer, and the contact's own sockets."""
    _publish_to_engineers(request)
    publish_on_commit(
        user_group(request.contact.user_id),
        {"type": "request.changed", "request_id": request.pk, "state": request.state},
    )
    _publish_positions_behind(request)


def _publish_to_engineers(request: ChatRequest, *, event_type: str = "queue.changed") -> None:
    """Nudge the HUDs that list the request: its queue's, and the engineer it is offered to first."""
    event = {"type": event_type, "request_id": request.pk}
    if request.queue_id:
        publish_on_commit(queue_group(request.queue_id), event)
    if request.offered_to_id:
        # Already loaded where the request was just offered (Join Chat); one query otherwise.
        publish_on_commit(user_group(request.offered_to.user_id), event)


def flag_unstaffed_requests() -> list[int]:
    """Keep each waiting client request's `nobody_available` true to the desk; return the ids that flipped.

    Nobody can take a request when no member of its queue (nor the engineer it is offered to) is
    online per presence, available and under their chat limit. The sweeper calls this, so it
    notices the last engineer going offline (no process refreshed them), away or busy, or filling
    up, whichever process they were on; a conditional UPDATE on the old value makes each flip
    happen, and be told to the client, once however many processes sweep.
    """
    waiting = list(
        ChatRequest.objects.filter(
            state=Waiting, kind=ChatRequest.Kind.CLIENT, expires_at__gt=timezone.now()
        ).values_list("pk", "queue_id", "offered_to_id", "nobody_available", "contact__user_id")
    )
    if not waiting:
        return []
    staffed = selectors.queues_with_takers(queue_id for _, queue_id, _, _, _ in waiting)
    offered = {engineer_id for _, _, engineer_id, _, _ in waiting if engineer_id}
    taking = selectors.alertable_among(offered) if offered else set()
    flipped = []
    for request_id, queue_id, offered_to_id, was_flagged, user_id in waiting:
        nobody = queue_id not in staffed and offered_to_id not in taking
        if nobody == was_flagged:
            continue
        with transaction.atomic():
            if ChatRequest.objects.filter(pk=request_id, state=Waiting, nobody_available=was_flagged).update(
                nobody_available=nobody
            ):
                flipped.append(request_id)
                publish_on_commit(
                    user_group(user_id), {"type": "request.changed", "request_id": request_id, "state": "staffing"}
                )
    return flipped


def _publish_positions_behind(request: ChatRequest, *, returned: bool = False) -> None:
    """Tell the contacts queued behind a request that left the queue (or `returned` to it) that their place moved.

    Only a request leaving the queue, or coming back to its old place, moves anyone (a new one
    joins at the end), so nobody is nudged for a new request. Every caller hands over the request
    with the state this transaction wrote.
    """
    if request.queue_id is None or (request.state == Waiting and not returned):
        return
    behind = (
        ChatRequest.objects.filter(
            queue_id=request.queue_id,
            state=Waiting,
            kind=ChatRequest.Kind.CLIENT,
            requested_at__gte=request.requested_at,
        )
        .exclude(pk=request.pk)
        .values_list("contact__user_id", flat=True)
    )
    for user_id in set(behind):
        publish_on_commit(user_group(user_id), {"type": "queue.position", "queue_id": request.queue_id})


# --- Answering and invitations --------------------------------------------------------------


@transaction.atomic
def answer_request(*, engineer: Engineer, request_id: int) -> ChatRoom:
    """Answer a waiting client request and open its room.

    Exactly one engineer wins: a conditional UPDATE … WHERE state = 'waiting' lets one
    transaction through; every other gets ChatError("taken"). A returning request (its last
    engineer left, see return_to_queue) is answered the same way, and the winner joins its room,
    history and all; that room's row is locked first, in the order leave_room locks.
    """
    request = selectors.get_request_for_engineer(engineer=engineer, request_id=request_id)
    room = ChatRoom.objects.select_for_update().filter(request=request).first() if request.returned_at else None
    now = timezone.now()
    # expires_at is part of the condition, so a request past its deadline can't be answered in
    # the moment before a sweeper marks it expired. answered_at keeps the first answer's time.
    won = ChatRequest.objects.filter(
        pk=request.pk, state=Waiting, kind=ChatRequest.Kind.CLIENT, expires_at__gt=now
    ).update(state=ChatRequest.State.ANSWERED, answered_by=engineer, answered_at=Coalesce(F("answered_at"), now))
    if not won:
        request.refresh_from_db(fields=["state", "answered_by"])
        if request.state == ChatRequest.State.ANSWERED:
            raise ChatError("taken", "A colleague already answered this chat.")
        raise ChatError("not_waiting", f"This request is no longer waiting ({request.get_state_display().lower()}).")
    request.state, request.answered_by = ChatRequest.State.ANSWERED, engineer
    if room is not None:
        _add_participant(room, engineer.user, ChatParticipant.Role.ENGINEER, engineer.display_name)
        _publish_queue_change(request)
        publish_on_commit(user_group(engineer.user_id), {"type": "room.opened", "room_id": room.pk})
        return room
    request.answered_at = now
    room = ChatRoom.objects.create(ticket_id=request.ticket_id, request=request)
    _add_participant(
        room, request.contact.user, ChatParticipant.Role.CLIENT, request.contact.name, announce=False, new_room=True
    )
    _add_participant(room, engineer.user, ChatParticipant.Role.ENGINEER, engineer.display_name, new_room=True)
    _publish_queue_change(request)
    publish_on_commit(user_group(engineer.user_id), {"type": "room.opened", "room_id": room.pk})
    return room


def invite_ticket_contact(*, engineer: Engineer, ticket_id: int) -> ChatRequest:
    """Ask the contact of a ticket the engineer may see (named by id) to chat now."""
    try:
        ticket = get_ticket_for_user(user=engineer.user, ticket_id=ticket_id)
    except Http404:
        raise ChatError("not_found", "No such ticket.") from None
    return invite_contact(engineer=engineer, ticket=ticket)


@transaction.atomic
def invite_contact(*, engineer: Engineer, ticket: Ticket) -> ChatRequest:
    """Ask the ticket's contact to chat now; they accept or reject it."""
    contact = ticket.contact
    if not resolve_feature(contact, CHAT):
        raise ChatError("not_allowed", f"{contact.name} is not allowed to chat.")
    if ChatRequest.objects.filter(contact=contact, kind=ChatRequest.Kind.INVITATION, state=Waiting).exists():
        raise ChatError("already_invited", f"{contact.name} already has a chat invitation waiting.")
    if selectors.active_room_for_contact(contact=contact):
        raise ChatError("already_chatting", f"{contact.name} is already in a chat.")
    try:
        with transaction.atomic():
            invitation = ChatRequest.objects.create(
                kind=ChatRequest.Kind.INVITATION,
                ticket=ticket,
                contact=contact,
                invited_by=engineer,
                expires_at=timezone.now() + timedelta(seconds=settings.CHAT_PICKUP_TIMEOUT_SECONDS),
            )
    except IntegrityError as error:
        if not _waits_already(error, contact, ChatRequest.Kind.INVITATION):
            raise
        raise ChatError("already_invited", f"{contact.name} already has a chat invitation waiting.") from None
    _publish_invitation_change(invitation)
    return invitation


@transaction.atomic
def accept_invitation(*, contact: Contact, request_id: int) -> ChatRoom:
    """Accept an engineer's invitation: open the room with the engineer already in it."""
    invitation = (
        ChatRequest.objects.select_related("ticket", "invited_by__user")
        .filter(pk=request_id, contact=contact, kind=ChatRequest.Kind.INVITATION)
        .first()
    )
    if invitation is None:
        raise ChatError("not_found", "No such invitation.")
    _check_may_chat(contact, invitation.ticket)
    if selectors.active_room_for_contact(contact=contact):
        raise ChatError("already_chatting", "You are already in a chat. Leave it before starting another.")
    now = timezone.now()
    if not ChatRequest.objects.filter(pk=invitation.pk, state=Waiting, expires_at__gt=now).update(
        state=ChatRequest.State.ANSWERED, answered_by=invitation.invited_by, answered_at=now
    ):
        raise ChatError("not_waiting", "This invitation is no longer open.")
    engineer = invitation.invited_by
    room = ChatRoom.objects.create(ticket_id=invitation.ticket_id, request=invitation)
    _add_participant(
        room, engineer.user, ChatParticipant.Role.ENGINEER, engineer.display_name, announce=False, new_room=True
    )
    _add_participant(room, contact.user, ChatParticipant.Role.CLIENT, contact.name, new_room=True)
    invitation.refresh_from_db()
    _publish_invitation_change(invitation)
    publish_on_commit(user_group(engineer.user_id), {"type": "room.opened", "room_id": room.pk})
    return room


@transaction.atomic
def reject_invitation(*, contact: Contact, request_id: int) -> None:
    """Decline an engineer's invitation; the engineer is told."""
    if (
        _finish_waiting(request_id, ChatRequest.State.REJECTED, contact=contact, kind=ChatRequest.Kind.INVITATION)
        is None
    ):
        raise ChatError("not_waiting", "This invitation is no longer open.")


@transaction.atomic
def cancel_invitation(*, engineer: Engineer, request_id: int) -> None:
    """Withdraw an invitation the engineer sent."""
    if (
        _finish_waiting(request_id, ChatRequest.State.CANCELLED, invited_by=engineer, kind=ChatRequest.Kind.INVITATION)
        is None
    ):
        raise ChatError("not_waiting", "This invitation is no longer open.")


def _publish_invitation_change(invitation: ChatRequest) -> None:
    event = {"type": "invitation.changed", "request_id": invitation.pk}
    publish_on_commit(user_group(invitation.contact.user_id), event)
    if invitation.invited_by_id:
        publish_on_commit(user_group(invitation.invited_by.user_id), event)


# --- Rooms ----------------------------------------------------------------------------------


@transaction.atomic
def invite_engineer(*, room_id: int, by: Engineer, engineer: Engineer, transfer: bool = False) -> RoomInvitation:
    """Ask another engineer into a room; with transfer, the inviter leaves when they join."""
    room = _lock_active_room(room_id)
    _require_present(room, by.user)
    if engineer.pk == by.pk:
        raise ChatError("bad_invite", "You are already in this chat.")
    if room.participants.filter(user=engineer.user, left_at__isnull=True).exists():
        raise ChatError("bad_invite", f"{engineer.display_name} is already in this chat.")
    invitation, created = RoomInvitation.objects.get_or_create(
        room=room,
        engineer=engineer,
        state=RoomInvitation.State.PENDING,
        defaults={"invited_by": by, "transfer": transfer},
    )
    if created:
        verb = "asked {name} to take over the chat" if transfer else "invited {name}"
        _append_message(
            room,
            author=None,
            author_name="",
            kind=ChatMessage.Kind.SYSTEM,
            body=f"{by.display_name} {verb.format(name=engineer.display_name)}.",
        )
        publish_on_commit(user_group(engineer.user_id), {"type": "room.invited", "room_id": room.pk})
    return invitation


@transaction.atomic
def join_room(*, room_id: int, engineer: Engineer) -> ChatParticipant:
    """Join a room the engineer was invited to (or rejoin one they were in)."""
    room = _lock_active_room(room_id)
    invitation = room.invitations.filter(engineer=engineer, state=RoomInvitation.State.PENDING).first()
    was_in = room.participants.filter(user=engineer.user).exists()
    if invitation is None and not was_in:
        raise ChatError("not_allowed", "You were not invited to this chat.")
    participant = _add_participant(room, engineer.user, ChatParticipant.Role.ENGINEER, engineer.display_name)
    publish_on_commit(user_group(engineer.user_id), {"type": "room.opened", "room_id": room.pk})
    _take_back_from_queue(room, engineer)
    if invitation:
        invitation.state = RoomInvitation.State.ACCEPTED
        invitation.save(update_fields=["state"])
        # The inviter may have left while the invitation waited; leaving twice would announce it twice.
        if (
            invitation.transfer
            and room.participants.filter(user=invitation.invited_by.user, left_at__isnull=True).exists()
        ):
            _leave(room, invitation.invited_by.user)
    return participant


@transaction.atomic
def leave_room(*, room_id: int, user) -> ChatRoom:
    """Leave a room; the room ends once the client and every engineer have left."""
    room = _lock_active_room(room_id)
    _require_present(room, user)
    _leave(room, user)
    return room


@transaction.atomic
def end_room(*, room_id: int, engineer: Engineer) -> ChatRoom:
    """End a chat for everyone; only an engineer in the room may."""
    room = _lock_active_room(room_id)
    _require_present(room, engineer.user)
    _end(room, ended_by=engineer.display_name)
    return room


def _leave(room: ChatRoom, user) -> None:
    """Take the user out of the room; the last one out ends it, the last engineer out returns it to the queue."""
    participant = room.participants.get(user=user)
    participant.left_at = timezone.now()
    participant.save(update_fields=["left_at"])
    _append_message(
        room, author=None, author_name="", kind=ChatMessage.Kind.SYSTEM, body=f"{participant.display_name} left."
    )
    publish_on_commit(user_group(user.pk), {"type": "room.left", "room_id": room.pk})
    roles = set(room.participants.filter(left_at__isnull=True).values_list("role", flat=True))
    if not roles:
        _end(room, ended_by=None)
    elif participant.role == ChatParticipant.Role.ENGINEER and ChatParticipant.Role.ENGINEER not in roles:
        _return_to_queue(room, left_by=who(user).engineer)


def _return_to_queue(room: ChatRoom, *, left_by: Engineer | None) -> None:
    """Put the room's request back in its queue: the client, still in the room, waits for an engineer again.

    A professional desk does not leave a client talking to nobody. The request waits again with
    its original requested_at, so it keeps its place (usually first), and a new pickup timeout
    (expiry ends the room and offers the note and the callback, as for a new request). Any member
    of the queue may answer it, and joins this same room with its history (answer_request); an
    engineer still invited into the room may join it too (join_room). The client keeps the room
    open; the sockets of both sides hear it as for any request (queue.changed, request.changed).
    The room is locked (the caller holds it), so this runs once however many leave at once.

    An engineer's invitation has no queue to return to: its room ends, as an engineer ending it would.
    """
    request = room.request
    if request.kind != ChatRequest.Kind.CLIENT or request.queue_id is None:
        _end(room, ended_by=None)
        return
    now = timezone.now()
    ChatRequest.objects.filter(pk=request.pk, state=ChatRequest.State.ANSWERED).update(
        state=Waiting,
        returned_at=now,
        left_by=left_by,
        expires_at=now + timedelta(seconds=settings.CHAT_PICKUP_TIMEOUT_SECONDS),
        offered_to=None,
        offer_until=None,
        offer_released=False,
        nobody_available=request.queue_id not in selectors.queues_with_takers([request.queue_id]),
        draft="",
    )
    request.refresh_from_db()
    _publish_queue_change(request)
    _publish_positions_behind(request, returned=True)  # they have one more ahead of them now


def _take_back_from_queue(room: ChatRoom, engineer: Engineer) -> None:
    """An engineer came into a room whose request was returning: it leaves the queue (once, conditionally)."""
    if ChatRequest.objects.filter(pk=room.request_id, state=Waiting).update(
        state=ChatRequest.State.ANSWERED, answered_by=engineer
    ):
        _publish_queue_change(ChatRequest.objects.select_related("contact", "queue").get(pk=room.request_id))


def _end(room: ChatRoom, *, ended_by: str | None) -> None:
    """End the room, close every participation, and file the transcript on the ticket."""
    now = timezone.now()
    if ended_by:
        _append_message(
            room, author=None, author_name="", kind=ChatMessage.Kind.SYSTEM, body=f"{ended_by} ended the chat."
        )
    room.participants.filter(left_at__isnull=True).update(left_at=now)
    ChatRoom.objects.filter(pk=room.pk).update(state=ChatRoom.State.ENDED, ended_at=now)
    # The client left while waiting for an engineer to take the chat back: it leaves the queue too.
    if ChatRequest.objects.filter(pk=room.request_id, state=Waiting).update(state=ChatRequest.State.CANCELLED):
        _publish_queue_change(ChatRequest.objects.select_related("contact", "queue").get(pk=room.request_id))
    ChatRequest.objects.filter(pk=room.request_id).update(ended_at=now)
    room.refresh_from_db()
    RoomInvitation.objects.filter(room=room, state=RoomInvitation.State.PENDING).update(
        state=RoomInvitation.State.DECLINED
    )
    author = room.request.answered_by.user if room.request.answered_by_id else room.request.contact.user
    add_system_note(ticket=room.ticket, author=author, text=selectors.transcript_text(room), internal=True)
    publish_on_commit(room_group(room.pk), {"type": "room.ended", "room_id": room.pk})


def _add_participant(
    room: ChatRoom, user, role: str, name: str, *, announce: bool = True, new_room: bool = False
) -> ChatParticipant:
    """Put the user in the room (again, if they left), announcing it unless told not to.

    In a room created in this transaction nobody can be in it yet, so skip the lookup.
    """
    if new_room:
        participant = ChatParticipant.objects.create(room=room, user=user, role=role, display_name=name)
    else:
        participant, created = ChatParticipant.objects.get_or_create(
            room=room, user=user, defaults={"role": role, "display_name": name}
        )
        if not created:
            if participant.left_at is None:
                return participant
            participant.left_at = None
            participant.save(update_fields=["left_at"])
    if announce:
        _append_message(room, author=None, author_name="", kind=ChatMessage.Kind.SYSTEM, body=f"{name} joined.")
    return participant


def _lock_active_room(room_id: int) -> ChatRoom:
    """Return the room under a row lock (SELECT … FOR UPDATE), refusing ended rooms."""
    room = ChatRoom.objects.select_for_update().filter(pk=room_id).first()
    if room is None:
        raise ChatError("not_found", "No such chat.")
    if not room.is_active:
        raise ChatError("room_ended", "This chat has ended.")
    return room


def _require_present(room: ChatRoom, user) -> ChatParticipant:
    participant = room.participants.filter(user=user, left_at__isnull=True).first()
    if participant is None:
        raise ChatError("not_participant", "You are not in this chat.")
    return participant


# --- Messages -------------------------------------------------------------------------------


def _clean_body(body) -> str:
    if not isinstance(body, str):
        raise ChatError("bad_frame", "A message must be text.")
    body = body.strip()
    if not body:
        raise ChatError("empty", "Type a message before sending.")
    limit = settings.CHAT_MESSAGE_MAX_LENGTH
    if len(body) > limit:
        raise ChatError("too_long", f"Messages are limited to {limit:,} characters (this one has {len(body):,}).")
    return body


def send_message(
    *, room_id: int, user, body: str, client_msg_id: str = "", kind: str = ChatMessage.Kind.TEXT
) -> tuple[ChatMessage, bool]:
    """Store a message and publish it after commit; return it and whether it is new.

    A retried send with the same client_msg_id returns the stored message instead of a second
    one. The room's row lock makes the sequence number safe under concurrency. Retries are rare,
    so the unique constraint on (room, author, client_msg_id) detects one, rather than a query
    on every send: the refused insert rolls back with its sequence number.
    """
    body, client_msg_id = _checked_message(user, body=body, client_msg_id=client_msg_id, kind=kind)
    store = _store_in_one_statement if chat_sql.STORE_MESSAGE.supported() else _store_with_orm
    try:
        message = store(room_id=room_id, user=user, kind=kind, body=body, client_msg_id=client_msg_id)
    except IntegrityError as error:
        return _retried_message(error, room_id=room_id, user=user, client_msg_id=client_msg_id), False
    _publish_message(message)
    return message, True


async def send_message_async(
    *, room_id: int, user, body: str, client_msg_id: str = "", kind: str = ChatMessage.Kind.TEXT
) -> tuple[ChatMessage, bool]:
    """Do what send_message does, from the event loop: the sockets' path for every message.

    On PostgreSQL the message is stored on one of the event loop's own connections
    (deskchat.adb), beside other messages' commits rather than behind them in the database
    thread, and published once that statement has committed. Elsewhere (SQLite, or
    DB_ASYNC_POOL_MAX=0) send_message runs in the database thread. The rare refusals read the
    database there too.
    """
    fields = {"room_id": room_id, "user": user, "body": body, "client_msg_id": client_msg_id, "kind": kind}
    if not adb.available():
        return await call_service(send_message, **fields)
    body, client_msg_id = _checked_message(user, body=body, client_msg_id=client_msg_id, kind=kind)
    created = timezone.now()
    try:
        stored = await chat_sql.store_message_async(
            room_id=room_id, author_id=user.pk, kind=kind, body=body, client_msg_id=client_msg_id, created=created
        )
    except chat_sql.NotParticipant:
        raise ChatError("not_participant", "You are not in this chat.") from None
    except IntegrityError as error:
        retried = await database_sync_to_async(_retried_message)(
            error, room_id=room_id, user=user, client_msg_id=client_msg_id
        )
        return retried, False
    if stored is None:
        await database_sync_to_async(_refuse_inactive_room)(room_id)
    message = _stored(
        stored, room_id=room_id, user=user, kind=kind, body=body, client_msg_id=client_msg_id, created=created
    )
    await publish_async(room_group(room_id), _message_event(message))
    return message, True


def _checked_message(user, *, body: str, client_msg_id: str, kind: str) -> tuple[str, str]:
    """Return the message's cleaned body and client_msg_id; refuse a kind this user may not send."""
    if kind not in (ChatMessage.Kind.TEXT, ChatMessage.Kind.GREETING, ChatMessage.Kind.FAREWELL):
        raise ChatError("bad_frame", "Unknown message kind.")
    if kind != ChatMessage.Kind.TEXT and not who(user).is_engineer:
        raise ChatError("not_allowed", "Only engineers send greetings and farewells.")
    return _clean_body(body), str(client_msg_id or "")[:64]


def _retried_message(error: IntegrityError, *, room_id: int, user, client_msg_id: str) -> ChatMessage:
    """Return the message a retried send stored the first time; re-raise any other refusal."""
    if not violates(
        error, ChatMessage, "unique_client_msg_id", room_id=room_id, author=user, client_msg_id=client_msg_id
    ):
        raise error
    existing = ChatMessage.objects.filter(room_id=room_id, author=user, client_msg_id=client_msg_id).first()
    if existing is None:  # the stored one went with its room meanwhile
        raise error
    return existing


def _store_with_orm(*, room_id: int, user, kind: str, body: str, client_msg_id: str) -> ChatMessage:
    """Take the room's next seq, check the author is present and insert, in one transaction."""
    with transaction.atomic():
        # Taking the next seq locks the room's row first, so the presence check below sees any
        # leave that committed before it (leave_room takes the same lock).
        seq = _next_seq(room_id, active_only=True)
        if seq is None:
            _refuse_inactive_room(room_id)
        name = (
            ChatParticipant.objects.filter(room_id=room_id, user=user, left_at__isnull=True)
            .values_list("display_name", flat=True)
            .first()
        )
        if name is None:
            raise ChatError("not_participant", "You are not in this chat.")
        return ChatMessage.objects.create(
            room_id=room_id, seq=seq, author=user, author_name=name, kind=kind, body=body, client_msg_id=client_msg_id
        )


def _store_in_one_statement(*, room_id: int, user, kind: str, body: str, client_msg_id: str) -> ChatMessage:
    """Do what _store_with_orm does in one call of the chat_send_message function (PostgreSQL).

    Outside a transaction that is one round trip and one commit instead of five round trips,
    and a message is the write every socket's process makes most (see migration 0002).
    """
    created = timezone.now()
    try:
        stored = chat_sql.store_message(
            room_id=room_id, author_id=user.pk, kind=kind, body=body, client_msg_id=client_msg_id, created=created
        )
    except chat_sql.NotParticipant:
        raise ChatError("not_participant", "You are not in this chat.") from None
    if stored is None:
        _refuse_inactive_room(room_id)
    return _stored(
        stored, room_id=room_id, user=user, kind=kind, body=body, client_msg_id=client_msg_id, created=created
    )


def _stored(stored: chat_sql.StoredMessage, *, room_id: int, user, kind, body, client_msg_id, created) -> ChatMessage:
    """Build the message chat_send_message stored, without reading it back."""
    message = ChatMessage.from_db(
        connection.alias,
        STORED_MESSAGE_FIELDS,
        [
            stored.message_id,
            room_id,
            stored.message_seq,
            user.pk,
            stored.message_author_name,
            kind,
            body,
            client_msg_id,
            created,
        ],
    )
    message.author = user
    return message


STORED_MESSAGE_FIELDS = ["id", "room_id", "seq", "author_id", "author_name", "kind", "body", "client_msg_id", "created"]


def _refuse_inactive_room(room_id: int):
    """Raise why no message can go to this room: there is no such chat, or it has ended."""
    if ChatRoom.objects.filter(pk=room_id).exists():
        raise ChatError("room_ended", "This chat has ended.")
    raise ChatError("not_found", "No such chat.")


def _append_message(
    room: ChatRoom, *, author, author_name: str, kind: str, body: str, client_msg_id: str = ""
) -> ChatMessage:
    """Give the message the room's next sequence number and publish it after commit.

    Call inside a transaction. The UPDATE … SET last_seq = last_seq + 1 holds the room's row
    lock until commit, so sequence numbers are gapless and in commit order.
    """
    room.last_seq = _next_seq(room.pk)
    return _store_message(
        room.pk,
        room.last_seq,
        author=author,
        author_name=author_name,
        kind=kind,
        body=body,
        client_msg_id=client_msg_id,
    )


def _store_message(room_id: int, seq: int, **fields) -> ChatMessage:
    """Insert a message under the sequence number taken for it, and publish it after commit."""
    message = ChatMessage.objects.create(room_id=room_id, seq=seq, **fields)
    _publish_message(message)
    return message


def _publish_message(message: ChatMessage) -> None:
    """Send the message itself to its room after commit (receivers fill any gap from the database)."""
    publish_on_commit(room_group(message.room_id), _message_event(message))


def _message_event(message: ChatMessage) -> dict:
    return {"type": "chat.message", "room_id": message.room_id, "message": selectors.message_payload(message)}


def _next_seq(room_id: int, *, active_only: bool = False) -> int | None:
    """Increment the room's last_seq and return it (None if active_only and the room is not active).

    One statement where the database can (chat.sql.next_seq, UPDATE … RETURNING); it holds the
    room's row lock until commit. The ORM has no UPDATE … RETURNING, and this runs once per message.
    """
    if not connection.features.can_return_columns_from_insert:  # SQLite before 3.35
        rooms = ChatRoom.objects.filter(pk=room_id, **({"state": ChatRoom.State.ACTIVE} if active_only else {}))
        if not rooms.update(last_seq=F("last_seq") + 1):
            return None
        return ChatRoom.objects.values_list("last_seq", flat=True).get(pk=room_id)
    taken = chat_sql.next_seq(room_id=room_id, active_only=active_only)
    return taken.seq if taken else None


SEQ_COLUMN_MAX = 2**31 - 1  # the largest seq an integer column stores (PostgreSQL's integer)


def _clip_seq(seq) -> int:
    """Return a reported seq within what the integer column holds: a made-up one must cause no DataError."""
    return max(0, min(int(seq), SEQ_COLUMN_MAX))


@dataclass(frozen=True)
class ReadReport:
    """How far a participant has read a room, as their socket reported it (see mark_reads)."""

    room_id: int
    user: object
    seq: int
    role: str


def mark_reads(*, reports: list[ReadReport]) -> None:
    """Record many read positions in two statements, whatever their number; publish those that moved on.

    A process's sockets report a read about once a second per room each. Written one by one,
    each report was a round trip and a commit on the one database thread, and under load the
    reads took more of it than the messages (docs/benchmarks.md). Here one SELECT reads the
    reported participations with their rooms' last seq, and one UPDATE moves on those that
    read further, each to the reported seq clipped to the room's last message, as mark_read
    does. GREATEST keeps a position from going back if another process moved it meanwhile.
    A report of someone never in the room (or in another role) matches no row.
    """
    wanted = {(r.room_id, r.user.pk, r.role): r for r in reports}
    found = ChatParticipant.objects.filter(
        room_id__in={room_id for room_id, _, _ in wanted}, user_id__in={user_id for _, user_id, _ in wanted}
    ).values_list("pk", "room_id", "user_id", "role", "last_read_seq", "room__last_seq")
    moves = {}  # participation id -> (new position, report)
    for pk, room_id, user_id, role, stored, last in found:
        report = wanted.get((room_id, user_id, role))
        position = min(_clip_seq(report.seq), last) if report else 0
        if position > stored:
            moves[pk] = (position, report)
    if not moves:
        return
    new_positions = Case(*(When(pk=pk, then=Value(position)) for pk, (position, _) in moves.items()))
    ChatParticipant.objects.filter(pk__in=moves).update(last_read_seq=Greatest(F("last_read_seq"), new_positions))
    for position, report in moves.values():
        _publish_read(room_id=report.room_id, user=report.user, seq=position, role=report.role)


def mark_read(*, room_id: int, user, seq: int, role: str) -> int:
    """Record how far a participant has read; return the stored position (it never goes back).

    `role` is the participation the caller reads as (a client's socket, an engineer's HUD).
    Pages report a read about once a second per room, so the common path is one conditional
    UPDATE, outside any transaction: it moves the position forward, and only up to a message
    the room has. Only when it changes nothing does one more query tell a stale read (or one
    past the room's last message, then clipped) from someone never in the room (refused).

    A client's advance is published to the room, where the HUD's sockets show it ("Seen") and
    the client's own sockets drop it. An engineer's is stored for their unread counts only.
    """
    seq = _clip_seq(seq)
    mine = ChatParticipant.objects.filter(room_id=room_id, user=user, role=role)
    has_it = Exists(ChatRoom.objects.filter(pk=room_id, last_seq__gte=seq))
    if seq and mine.filter(has_it, last_read_seq__lt=seq).update(last_read_seq=seq):
        _publish_read(room_id=room_id, user=user, seq=seq, role=role)
        return seq
    return _mark_read_unchanged(room_id=room_id, user=user, seq=seq, role=role)


def _mark_read_unchanged(*, room_id: int, user, seq: int, role: str) -> int:
    """Return the stored position after a read mark_read's UPDATE did not store; refuse a stranger.

    A seq past the room's last message (a page cannot show one) is clipped to that message.
    """
    found = (
        ChatParticipant.objects.filter(room_id=room_id, user=user)
        .values_list("role", "last_read_seq", "room__last_seq")
        .first()
    )
    if found is None:
        raise ChatError("not_participant", "You are not in this chat.")
    stored_role, stored, last = found
    if stored_role != role or seq <= last or stored >= last:
        return stored
    ChatParticipant.objects.filter(room_id=room_id, user=user, last_read_seq__lt=last).update(last_read_seq=last)
    _publish_read(room_id=room_id, user=user, seq=last, role=role)
    return last


def _publish_read(*, room_id: int, user, seq: int, role: str) -> None:
    """Tell the room's screens that show it how far the client has read (only the HUD does)."""
    if role == ChatParticipant.Role.CLIENT:
        publish_on_commit(
            room_group(room_id), {"type": "room.read", "room_id": room_id, "user_id": user.pk, "seq": seq}
        )


async def notify_typing(*, room_id: int, user_id: int, name: str, typing: bool) -> None:
    """Tell the room someone started or stopped typing, from the event loop: nothing is stored or read.

    Call only for a room the caller knows the user is in: a socket's own rooms (it watches only
    rooms its user is in, and stops on room.left). Typing is the frame a page sends most, about
    twice per message, and an indicator is a hint nothing relies on: checking each one in the
    database took half of the database thread's time under load (docs/benchmarks.md).
    """
    event = {"type": "room.typing", "room_id": room_id, "user_id": user_id, "name": name, "typing": bool(typing)}
    await publish_async(room_group(room_id), event)


# --- Engineers ------------------------------------------------------------------------------


@transaction.atomic
def set_availability(*, engineer: Engineer, availability: str) -> Engineer:
    """Set whether the engineer takes chats now (available, busy or away)."""
    allowed = {Engineer.Availability.AVAILABLE, Engineer.Availability.BUSY, Engineer.Availability.AWAY}
    if availability not in allowed:
        raise ChatError("bad_frame", "Choose Available, Busy or Away.")
    Engineer.objects.filter(pk=engineer.pk).update(availability=availability)
    engineer.availability = availability
    publish_on_commit(user_group(engineer.user_id), {"type": "availability.changed"})
    # The waiting clients learn now, rather than at the next sweep, that nobody (or somebody) can take them.
    flag_unstaffed_requests()
    return engineer


def touch_presence(engineer_ids) -> None:
    """Mark engineers as seen now: they have a HUD socket open in this process."""
    if engineer_ids:
        Engineer.objects.filter(pk__in=list(engineer_ids)).update(last_seen_at=timezone.now())


def sweep() -> dict:
    """Do the time-driven changes that are due: expiries and first-offer windows."""
    return {
        "expired": expire_due_requests(),
        "released": release_due_offers(),
        "unstaffed": flag_unstaffed_requests(),
    }
