"""Read chat data, always through the question "may this user see it?".

Selectors own their select_related/prefetch_related so query counts stay flat as data grows.
They raise ChatError (from services) or Http404 when the user may not see the thing.
"""

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from accounts.models import Contact, Engineer
from accounts.permissions import CHAT, contact_may

from .models import ChatMessage, ChatParticipant, ChatRequest, ChatRoom, MessageTemplate

Waiting = ChatRequest.State.WAITING


def _error(code: str, message: str):
    from .services import ChatError  # services import selectors; import lazily the other way

    return ChatError(code, message)


# --- Engineers ------------------------------------------------------------------------------


def is_online(engineer: Engineer) -> bool:
    """Return whether the engineer had a HUD socket open recently."""
    if engineer.last_seen_at is None:
        return False
    return engineer.last_seen_at >= timezone.now() - timedelta(seconds=settings.CHAT_PRESENCE_TIMEOUT_SECONDS)


def open_session_count(engineer: Engineer) -> int:
    """Return how many active chats the engineer is in."""
    return ChatParticipant.objects.filter(
        user_id=engineer.user_id, left_at__isnull=True, room__state=ChatRoom.State.ACTIVE
    ).count()


def is_alertable(engineer: Engineer) -> bool:
    """Return whether to alert this engineer of new requests: available, online, under their limit."""
    return (
        engineer.availability == Engineer.Availability.AVAILABLE
        and is_online(engineer)
        and open_session_count(engineer) < engineer.chat_limit
    )


def engineers_for_invite(*, exclude: Engineer) -> list[Engineer]:
    """Return engineers to invite into a room, available and online ones first."""
    engineers = list(Engineer.objects.exclude(pk=exclude.pk).select_related("user"))
    engineers.sort(key=lambda e: (not (e.availability == Engineer.Availability.AVAILABLE and is_online(e)),
                                  e.display_name))
    return engineers


# --- Requests and the queue -----------------------------------------------------------------


def _visible_to(engineer: Engineer) -> Q:
    """A waiting request is visible to its queue's members once the first offer is over, and
    to the engineer it is offered to from the start."""
    now = timezone.now()
    open_offer = Q(offered_to__isnull=False) & Q(offer_until__gt=now) & Q(offer_released=False)
    return Q(offered_to=engineer) | (Q(queue__members=engineer) & ~open_offer)


def waiting_requests_for(*, engineer: Engineer) -> QuerySet[ChatRequest]:
    """Return the waiting client requests this engineer may answer, oldest first."""
    return (
        ChatRequest.objects.filter(
            _visible_to(engineer), state=Waiting, kind=ChatRequest.Kind.CLIENT, expires_at__gt=timezone.now()
        )
        .select_related("ticket", "contact__user", "contact__company", "queue")
        .distinct()
        .order_by("requested_at", "pk")
    )


def get_request_for_engineer(*, engineer: Engineer, request_id: int) -> ChatRequest:
    """Return a client request the engineer may answer (any state), or refuse."""
    request = (
        ChatRequest.objects.filter(_visible_to(engineer), pk=request_id, kind=ChatRequest.Kind.CLIENT)
        .select_related("ticket", "contact__user", "queue")
        .first()
    )
    if request is None:
        existing = ChatRequest.objects.filter(pk=request_id, kind=ChatRequest.Kind.CLIENT).first()
        if existing is not None and existing.state != Waiting:
            raise _error("taken" if existing.state == ChatRequest.State.ANSWERED else "not_waiting",
                         "A colleague already answered this chat." if existing.state == ChatRequest.State.ANSWERED
                         else "This request is no longer waiting.")
        raise _error("not_found", "No such chat request in your queues.")
    return request


def queue_position(request: ChatRequest) -> int:
    """Return the request's place in its queue (1 is next)."""
    if request.state != Waiting or request.queue_id is None:
        return 0
    ahead = ChatRequest.objects.filter(
        queue_id=request.queue_id, state=Waiting, kind=ChatRequest.Kind.CLIENT, expires_at__gt=timezone.now()
    ).filter(Q(requested_at__lt=request.requested_at) | Q(requested_at=request.requested_at, pk__lt=request.pk))
    return ahead.count() + 1


def queue_summary(*, engineer: Engineer) -> dict:
    """Return the engineer's waiting requests with what the HUD and its alert need."""
    requests = list(waiting_requests_for(engineer=engineer))
    now = timezone.now()
    threshold = settings.CHAT_QUEUE_ALERT_SECONDS
    for request in requests:
        request.waited_seconds = max(0, int((now - request.requested_at).total_seconds()))
        request.overdue = request.waited_seconds >= threshold
    return {
        "requests": requests,
        "count": len(requests),
        "longest_wait": max((r.waited_seconds for r in requests), default=0),
        "overdue": any(r.overdue for r in requests),
        "alert_seconds": threshold,
    }


# --- Contacts -------------------------------------------------------------------------------


def contact_for(user) -> Contact | None:
    """Return the user's contact profile, or None for anyone who is not a client."""
    if not user or not user.is_authenticated:
        return None
    return Contact.objects.select_related("user", "company").filter(user=user).first()


def engineer_for(user) -> Engineer | None:
    """Return the user's engineer profile, or None for anyone who is not an engineer."""
    if not user or not user.is_authenticated:
        return None
    return Engineer.objects.select_related("user").filter(user=user).first()


def active_room_for_contact(*, contact: Contact) -> ChatRoom | None:
    """Return the active room the contact is in, if any."""
    return (
        ChatRoom.objects.filter(
            state=ChatRoom.State.ACTIVE, participants__user_id=contact.user_id, participants__left_at__isnull=True
        )
        .select_related("ticket")
        .order_by("-started_at")
        .first()
    )


def current_chat_for_contact(*, contact: Contact) -> dict:
    """Return what the client's chat dialog shows: a waiting or recently ended request, its room."""
    room = active_room_for_contact(contact=contact)
    if room is not None:
        return {"request": room.request, "room": room, "state": "chatting"}
    request = (
        ChatRequest.objects.filter(contact=contact, kind=ChatRequest.Kind.CLIENT)
        .select_related("ticket", "queue")
        .order_by("-requested_at", "-pk")
        .first()
    )
    if request is None:
        return {"request": None, "room": None, "state": "idle"}
    if request.state == Waiting and request.expires_at > timezone.now():
        return {"request": request, "room": None, "state": "waiting", "position": queue_position(request)}
    if request.state in (Waiting, ChatRequest.State.EXPIRED):  # past its deadline, swept or not yet
        return {"request": request, "room": None, "state": "expired"}
    return {"request": request, "room": None, "state": "idle"}


def pending_invitation_for(*, contact: Contact) -> ChatRequest | None:
    """Return an engineer's invitation waiting for the contact's answer."""
    return (
        ChatRequest.objects.filter(contact=contact, kind=ChatRequest.Kind.INVITATION, state=Waiting)
        .select_related("ticket", "invited_by")
        .first()
    )


# --- Rooms and messages ---------------------------------------------------------------------


def rooms_for_socket(*, user) -> list[int]:
    """Return the ids of the active rooms the user is in now: the rooms a socket subscribes to."""
    return list(
        ChatParticipant.objects.filter(user=user, left_at__isnull=True, room__state=ChatRoom.State.ACTIVE)
        .values_list("room_id", flat=True)
    )


def get_room_for_participant(*, user, room_id: int) -> ChatRoom:
    """Return a room the user is (or was) a participant of; refuse anyone else."""
    room = (
        ChatRoom.objects.filter(pk=room_id, participants__user=user)
        .select_related("ticket__company", "ticket__contact__user", "request")
        .first()
    )
    if room is None:
        raise _error("not_participant", "You are not in this chat.")
    return room


def participants(room_id: int) -> list[ChatParticipant]:
    """Return who is in the room right now, engineers first."""
    present = ChatParticipant.objects.filter(room_id=room_id, left_at__isnull=True).order_by("-role", "joined_at")
    return list(present)


def message_payload(message: ChatMessage) -> dict:
    """Return the small JSON-safe form of a message that events carry and fragments render."""
    created = timezone.localtime(message.created)
    return {
        "room_id": message.room_id,
        "seq": message.seq,
        "author_id": message.author_id,
        "author_name": message.author_name,
        "kind": message.kind,
        "body": message.body,
        "client_msg_id": message.client_msg_id,
        "created": created.isoformat(),
        "time": created.strftime("%H:%M"),
    }


def messages_after(*, room_id: int, seq: int, limit: int = 1000) -> list[dict]:
    """Return the room's messages after a sequence number, in order, as payloads."""
    messages = ChatMessage.objects.filter(room_id=room_id, seq__gt=seq).order_by("seq")[:limit]
    return [message_payload(message) for message in messages]


def transcript_text(room: ChatRoom) -> str:
    """Return a plain-text transcript with times and names, for notes and the copied log."""
    lines = [f"Chat #{room.pk} on ticket #{room.ticket_id}, started {timezone.localtime(room.started_at):%Y-%m-%d %H:%M}"]
    for message in room.messages.order_by("seq"):
        stamp = timezone.localtime(message.created).strftime("%H:%M:%S")
        if message.kind == ChatMessage.Kind.SYSTEM:
            lines.append(f"[{stamp}] * {message.body}")
        else:
            lines.append(f"[{stamp}] {message.author_name}: {message.body}")
    return "\n".join(lines)


def chat_history(*, ticket) -> QuerySet[ChatRoom]:
    """Return a ticket's chats, newest first, with participants and counts in few queries."""
    return (
        ticket.chat_rooms.prefetch_related("participants")
        .annotate(message_count=Count("messages", filter=~Q(messages__kind=ChatMessage.Kind.SYSTEM)))
        .order_by("-started_at")
    )


def chat_context_for_ticket(*, user, ticket) -> dict:
    """Return what a ticket page needs about chat: the Join Chat button and the history."""
    return {
        "may_chat": contact_may(user, CHAT).allowed,
        "chat_history": chat_history(ticket=ticket),
    }


# --- Templates ------------------------------------------------------------------------------


def templates_for(*, engineer: Engineer) -> list[MessageTemplate]:
    """Return the engineer's own greeting/farewell templates, then the global ones."""
    return list(
        MessageTemplate.objects.filter(Q(owner=engineer) | Q(owner__isnull=True)).order_by("kind", "-owner", "name")
    )


def render_template(template: MessageTemplate, *, room: ChatRoom, engineer: Engineer) -> str:
    """Fill a template's placeholders for this room; unknown placeholders stay as written."""
    contact = room.ticket.contact
    values = {
        "client_first_name": contact.first_name,
        "engineer_name": engineer.display_name,
        "ticket_number": room.ticket.number,
    }
    body = template.body
    for key, value in values.items():
        body = body.replace("{" + key + "}", str(value))
    return body


def queue_ids_for(*, engineer: Engineer) -> list[int]:
    """Return the ids of the queues the engineer is a member of."""
    return list(engineer.chat_queues.values_list("pk", flat=True))


def engineer_by_id(engineer_id: int) -> Engineer | None:
    """Return an engineer by id, or None."""
    return Engineer.objects.select_related("user").filter(pk=engineer_id).first()
