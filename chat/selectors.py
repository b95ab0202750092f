"""Read chat data, always through the question "may this user see it?".

Selectors own their select_related/prefetch_related so query counts stay flat as data grows.
They raise ChatError (chat/errors.py) or Http404 when the user may not see the thing.
"""

import statistics
from datetime import timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils import timezone

from accounts.models import Contact, Engineer
from accounts.permissions import CHAT, contact_may, decision_from_levels
from deskchat import adb
from deskchat.timefmt import format_when
from tickets.models import TimeEntry

from . import sql as chat_sql
from .errors import ChatError
from .models import ChatMessage, ChatParticipant, ChatQueue, ChatRequest, ChatRoom, MessageTemplate, RoomInvitation

Waiting = ChatRequest.State.WAITING


# --- Engineers ------------------------------------------------------------------------------


def is_online(engineer: Engineer) -> bool:
    """Return whether the engineer had a HUD socket open recently."""
    if engineer.last_seen_at is None:
        return False
    return engineer.last_seen_at >= timezone.now() - timedelta(seconds=settings.CHAT_PRESENCE_TIMEOUT_SECONDS)


def _present_in_active_rooms(**who) -> QuerySet:
    """Return the participations, of the user `who` names, in rooms that are active and not left."""
    return ChatParticipant.objects.filter(left_at__isnull=True, room__state=ChatRoom.State.ACTIVE, **who)


def open_session_count(engineer: Engineer) -> int:
    """Return how many active chats the engineer is in."""
    return _present_in_active_rooms(user_id=engineer.user_id).count()


def is_alertable(engineer: Engineer, *, open_sessions: int | None = None) -> bool:
    """Return whether to alert this engineer of new requests: available, online, under their limit.

    Pass open_sessions when it is already known (the shared queue read counts it for everyone).
    """
    if open_sessions is None:
        open_sessions = open_session_count(engineer)
    return (
        engineer.availability == Engineer.Availability.AVAILABLE
        and is_online(engineer)
        and open_sessions < engineer.chat_limit
    )


def queues_with_takers(queue_ids) -> set[int]:
    """Return those of the queues that have a member who could take a chat now (is_alertable).

    One query for any number of queues: the members, with their open chats counted in a subquery.
    """
    queue_ids = {queue_id for queue_id in queue_ids if queue_id is not None}
    if not queue_ids:
        return set()
    cutoff = timezone.now() - timedelta(seconds=settings.CHAT_PRESENCE_TIMEOUT_SECONDS)
    members = (
        ChatQueue.members.through.objects.filter(
            chatqueue_id__in=queue_ids,
            engineer__availability=Engineer.Availability.AVAILABLE,
            engineer__last_seen_at__gte=cutoff,
        )
        .annotate(open_sessions=_open_session_count("engineer__user_id"))
        .values_list("chatqueue_id", "open_sessions", "engineer__max_concurrent_chats")
    )
    default_limit = settings.CHAT_DEFAULT_MAX_CONCURRENT
    return {
        queue_id
        for queue_id, open_sessions, limit in members
        if open_sessions < (default_limit if limit is None else limit)
    }


def alertable_among(engineer_ids) -> set[int]:
    """Return the ids of those engineers who could take a chat now (is_alertable), in one query."""
    engineers = Engineer.objects.filter(pk__in=list(engineer_ids)).annotate(open_sessions=_open_session_count())
    return {e.pk for e in engineers if is_alertable(e, open_sessions=e.open_sessions)}


def engineers_for_invite(*, exclude: Engineer) -> list[Engineer]:
    """Return engineers to invite into a room, available and online ones first."""
    engineers = list(Engineer.objects.exclude(pk=exclude.pk).select_related("user"))
    engineers.sort(
        key=lambda e: (not (e.availability == Engineer.Availability.AVAILABLE and is_online(e)), e.display_name)
    )
    return engineers


# --- Requests and the queue -----------------------------------------------------------------


def _sees(engineer: Engineer, request: ChatRequest, member_of: set[int], now) -> bool:
    """Return whether a request is visible to an engineer who is a member of the queues `member_of`.

    Its queue's members see it once the first offer is over; the engineer it is offered to sees
    it from the start. The one rule for the HUD's list and for answering: the shared queue read
    filters one list of requests for every HUD of a process with it.
    """
    if request.offered_to_id == engineer.pk:
        return True
    offer_open = request.offered_to_id is not None and not request.offer_released and request.offer_until > now
    return request.queue_id in member_of and not offer_open


def get_request_for_engineer(*, engineer: Engineer, request_id: int) -> ChatRequest:
    """Return a client request the engineer may answer (any state), or refuse."""
    request = (
        ChatRequest.objects.filter(pk=request_id, kind=ChatRequest.Kind.CLIENT)
        .select_related("ticket", "contact__user", "queue")
        .first()
    )
    if request is None:
        raise ChatError("not_found", "No such chat request in your queues.")
    member_of = set(engineer.chat_queues.values_list("pk", flat=True))
    if not _sees(engineer, request, member_of, timezone.now()):
        if request.state == ChatRequest.State.ANSWERED:
            raise ChatError("taken", "A colleague already answered this chat.")
        if request.state != Waiting:
            raise ChatError("not_waiting", "This request is no longer waiting.")
        raise ChatError("not_found", "No such chat request in your queues.")
    return request


def answered_by_colleagues(*, engineer: Engineer, request_ids) -> list[ChatRequest]:
    """Return those of the given client requests that another engineer answered, oldest first."""
    return list(
        ChatRequest.objects.filter(
            pk__in=list(request_ids), kind=ChatRequest.Kind.CLIENT, state=ChatRequest.State.ANSWERED
        )
        .exclude(answered_by=engineer)
        .select_related("answered_by", "contact__user")
        .order_by("requested_at", "pk")
    )


def queue_position(request: ChatRequest) -> int:
    """Return the request's place in its queue (1 is next)."""
    if request.state != Waiting or request.queue_id is None:
        return 0
    ahead = ChatRequest.objects.filter(
        queue_id=request.queue_id, state=Waiting, kind=ChatRequest.Kind.CLIENT, expires_at__gt=timezone.now()
    ).filter(Q(requested_at__lt=request.requested_at) | Q(requested_at=request.requested_at, pk__lt=request.pk))
    return ahead.count() + 1


def queue_snapshot(*, engineer_ids) -> dict:
    """Read the waiting client requests and the given engineers, in three queries for any number.

    Every HUD socket of a process draws its queue from one such read, and every waiting client
    its place in the queue (see chat.sockets.shared).
    """
    now = timezone.now()
    threshold = settings.CHAT_QUEUE_ALERT_SECONDS
    requests = list(
        ChatRequest.objects.filter(state=Waiting, kind=ChatRequest.Kind.CLIENT, expires_at__gt=now)
        .select_related("ticket", "contact__user", "contact__company", "queue", "left_by")
        .order_by("requested_at", "pk")
    )
    for request in requests:
        # A returning request keeps its place (requested_at) but its wait starts again.
        request.waiting_since = request.returned_at or request.requested_at
        request.waited_seconds = max(0, int((now - request.waiting_since).total_seconds()))
        request.overdue = request.waited_seconds >= threshold
    engineers = (
        Engineer.objects.filter(pk__in=list(engineer_ids))
        .select_related("user")
        .annotate(open_sessions=_open_session_count())
    )
    member_of: dict[int, set[int]] = {engineer_id: set() for engineer_id in engineer_ids}
    for engineer_id, queue_id in ChatQueue.members.through.objects.filter(
        engineer_id__in=list(engineer_ids)
    ).values_list("engineer_id", "chatqueue_id"):
        member_of[engineer_id].add(queue_id)
    places: dict[int | None, int] = {}
    positions = {}  # request id -> place in its queue, as queue_position counts it
    for request in requests:
        places[request.queue_id] = positions[request.pk] = places.get(request.queue_id, 0) + 1
    return {
        "now": now,
        "requests": requests,
        "engineers": {e.pk: e for e in engineers},
        "member_of": member_of,
        "positions": positions,
    }


def _open_session_count(user_field: str = "user_id"):
    """Count an engineer's active chats in a subquery on the (user, left_at) index.

    A COUNT over a join of all their participations grew with every chat they ever had.
    """
    active = (
        _present_in_active_rooms(user_id=OuterRef(user_field))
        .order_by()
        .values("user_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(active), 0)


def queue_summary(*, engineer: Engineer, snapshot: dict | None = None) -> dict:
    """Return the engineer's waiting requests, oldest first, with what the HUD and its alert need.

    From a shared `queue_snapshot` if given (it must include this engineer), else from a new read.
    """
    snapshot = snapshot or queue_snapshot(engineer_ids=[engineer.pk])
    engineer = snapshot["engineers"][engineer.pk]
    member_of = snapshot["member_of"][engineer.pk]
    requests = [r for r in snapshot["requests"] if _sees(engineer, r, member_of, snapshot["now"])]
    return {
        "engineer": engineer,
        "notify": is_alertable(engineer, open_sessions=engineer.open_sessions),
        "requests": requests,
        "listed": requests,  # what the HUD lists: fragments.staff_queue lists fewer if they would not fit a frame
        "count": len(requests),
        "longest_wait": max((r.waited_seconds for r in requests), default=0),
        "overdue": any(r.overdue for r in requests),
        "alert_seconds": settings.CHAT_QUEUE_ALERT_SECONDS,
    }


# --- Contacts -------------------------------------------------------------------------------


def active_room_for_contact(*, contact: Contact) -> ChatRoom | None:
    """Return the active room the contact is in, if any.

    Most contacts are in none whenever a page or socket draws their dialog, so a light read of
    their participations comes first: building the joined read cost the database thread more
    than running it (docs/benchmarks.md), and only a contact in a chat needs it.
    """
    room_id = (
        _present_in_active_rooms(user_id=contact.user_id)
        .order_by("-room__started_at")
        .values_list("room_id", flat=True)
        .first()
    )
    if room_id is None:
        return None
    return (
        ChatRoom.objects.filter(pk=room_id, state=ChatRoom.State.ACTIVE)
        .select_related("ticket", "request__left_by", "request__contact__user")
        .first()
    )


# What the client's dialog shows of a waiting request (templates/chat/ws.html, partial status).
WAITING_DIALOG_RELATIONS = ("ticket", "queue", "contact__user", "left_by")


def request_standing(*, contact: Contact, since) -> dict:
    """Return what a new chat request must check of the contact, in one hand-written query (chat.sql.STANDING).

    Whether they may chat (every permission level), whether they are in an active room, how many
    client requests they made since `since` (the rate limit), and their waiting request, if any.
    """
    standing = chat_sql.request_standing(contact_id=contact.pk, since=since)
    if standing is None:
        return {"may_chat": False, "in_active_room": False, "recent_requests": 0, "waiting": None}
    waiting_id = standing.waiting_id
    return {
        "may_chat": decision_from_levels(standing.levels).allowed,
        "in_active_room": standing.in_active_room,
        "recent_requests": standing.recent_requests,
        # Only a second tab or a retry finds one waiting: read it whole then, unless it has just left the queue.
        # With everything the dialog shows: Join Chat draws it on the event loop, where nothing may query.
        "waiting": ChatRequest.objects.select_related(*WAITING_DIALOG_RELATIONS)
        .filter(pk=waiting_id, state=Waiting)
        .first()
        if waiting_id
        else None,
    }


def current_chat_for_contact(*, contact: Contact, in_no_room: bool = False) -> dict:
    """Return what the client's chat dialog shows: a waiting or recently ended request, its room.

    Pass in_no_room=True when the caller has just read that the contact is in no active room.
    """
    room = None if in_no_room else active_room_for_contact(contact=contact)
    if room is not None and room.request.is_returning:
        # The last engineer left: the client waits in the queue again, in the room with its history.
        return {"request": room.request, "room": room, "state": "waiting", "position": queue_position(room.request)}
    if room is not None:
        return {"request": room.request, "room": room, "state": "chatting"}
    request = (
        ChatRequest.objects.filter(contact=contact, kind=ChatRequest.Kind.CLIENT)
        .select_related("ticket", "queue", "contact__user")
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


async def portal_start(*, contact: Contact) -> chat_sql.PortalStart:
    """Return what the contact's portal socket reads as it connects, in one statement (chat/sql.py).

    On PostgreSQL it runs on the event loop's own connections (deskchat.adb): a restarted
    process takes its portal tabs back as fast as it runs their connects, and this read then
    neither waits behind other sockets' ORM calls in the database thread nor holds them up.
    """
    if adb.available():
        return await chat_sql.portal_start_async(contact=contact)
    return await database_sync_to_async(chat_sql.portal_start)(contact=contact)


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
    return list(_present_in_active_rooms(user=user).values_list("room_id", flat=True))


def _room_or_refuse(refusal: ChatError, **where) -> ChatRoom:
    """Return the room `where` finds, with what its panels and cards name; raise `refusal` if none."""
    room = ChatRoom.objects.filter(**where).select_related("ticket__company", "request__contact__user").first()
    if room is None:
        raise refusal
    return room


def get_room_for_participant(*, user, room_id: int) -> ChatRoom:
    """Return a room the user is (or was) a participant of; refuse anyone else."""
    return _room_or_refuse(
        ChatError("not_participant", "You are not in this chat."), pk=room_id, participants__user=user
    )


def left_at(*, room: ChatRoom, user):
    """Return when the user last left the room, or None if they never left it."""
    return (
        ChatParticipant.objects.filter(room=room, user=user, left_at__isnull=False)
        .order_by("-left_at")
        .values_list("left_at", flat=True)
        .first()
    )


def rooms_participated(*, user, room_ids) -> list[int]:
    """Return which of these rooms the user is or was a participant of, newest first, in one query."""
    return list(
        ChatParticipant.objects.filter(user=user, room_id__in=list(room_ids))
        .order_by("-room_id")
        .values_list("room_id", flat=True)
        .distinct()
    )


def participants(room_id: int) -> list[ChatParticipant]:
    """Return who is in the room right now, engineers first."""
    return participants_of_rooms([room_id])[room_id]


def participants_of_rooms(room_ids) -> dict[int, list[ChatParticipant]]:
    """Return who is in each of the rooms right now, engineers first, in one query."""
    present: dict[int, list[ChatParticipant]] = {room_id: [] for room_id in room_ids}
    for participant in ChatParticipant.objects.filter(room_id__in=list(present), left_at__isnull=True).order_by(
        "-role", "joined_at"
    ):
        present[participant.room_id].append(participant)
    return present


def client_reads(room_ids) -> dict[int, int]:
    """Return how far each room's client has read (their last_read_seq), left or not, in one query."""
    rows = ChatParticipant.objects.filter(room_id__in=list(room_ids), role=ChatParticipant.Role.CLIENT)
    return dict(rows.values_list("room_id", "last_read_seq"))


def message_payload(message: ChatMessage) -> dict:
    """Return the small JSON-safe form of a message that events carry and fragments render."""
    return {
        "room_id": message.room_id,
        "seq": message.seq,
        "author_id": message.author_id,
        "author_name": message.author_name,
        "kind": message.kind,
        "body": message.body,
        "client_msg_id": message.client_msg_id,
        # Each viewer's socket writes it in their own time zone (fragments.message_html).
        "created": message.created.isoformat(),
    }


MESSAGES_PAGE = 1000  # the most messages_after returns at once; a catch-up asks again for more


def messages_after(*, room_id: int, seq: int, limit: int = MESSAGES_PAGE) -> list[dict]:
    """Return the room's messages after a sequence number, in order, as payloads (at most `limit`)."""
    messages = ChatMessage.objects.filter(room_id=room_id, seq__gt=seq).order_by("seq")[:limit]
    return [message_payload(message) for message in messages]


def messages_of_rooms(room_ids) -> dict[int, list[dict]]:
    """Return every message of each of the rooms, in order, as payloads, in one query (for closed rooms)."""
    messages: dict[int, list[dict]] = {room_id: [] for room_id in room_ids}
    for message in ChatMessage.objects.filter(room_id__in=list(messages)).order_by("room_id", "seq"):
        messages[message.room_id].append(message_payload(message))
    return messages


def transcript_text(room: ChatRoom) -> str:
    """Return a plain-text transcript with times and names, for notes and the copied log.

    Times are in the active (the viewer's) time zone, which the first line names: a transcript
    filed on the ticket is read later by people in other zones.
    """
    lines = [
        f"Chat #{room.pk} on ticket #{room.ticket_id} with {room.client.name}, started "
        f"{format_when(room.started_at)} ({timezone.get_current_timezone_name()})"
    ]
    for message in room.messages.order_by("seq"):
        stamp = format_when(message.created)
        if message.kind == ChatMessage.Kind.SYSTEM:
            lines.append(f"[{stamp}] * {message.body}")
        else:
            lines.append(f"[{stamp}] {message.author_name}: {message.body}")
    return "\n".join(lines)


def _ended_chats(ticket) -> QuerySet:
    """Return a ticket's ended chats: its history. One still going is a session, not history yet."""
    return ticket.chat_rooms.filter(state=ChatRoom.State.ENDED)


def chat_history(*, ticket, limit: int | None = None, transcripts: bool = True) -> list[ChatRoom]:
    """Return a ticket's ended chats, newest first, with participants, counts, durations and (unless
    `transcripts` is false) each transcript, in three queries however many chats there are.

    `room.transcript` holds the messages as payloads (`message_payload`, in seq order), the form
    the live chat renders: their times are formatted once here, not by a template filter per
    message, which was a tenth of the history tab's time.
    """
    related = ["participants"]
    if transcripts:
        related.append(Prefetch("messages", queryset=ChatMessage.objects.order_by("seq"), to_attr="transcript"))
    rooms = (
        _ended_chats(ticket)
        .prefetch_related(*related)
        .annotate(
            message_count=Count("messages", filter=~Q(messages__kind=ChatMessage.Kind.SYSTEM)),
            duration=F("ended_at") - F("started_at"),
        )
        .order_by("-started_at")
    )
    rooms = list(rooms[:limit] if limit else rooms)
    for room in rooms if transcripts else ():
        room.transcript = [message_payload(message) for message in room.transcript]
    return rooms


def chat_count(*, ticket) -> int:
    """Return how many ended chats the ticket has had (what chat_history lists)."""
    return _ended_chats(ticket).count()


def chat_context_for_ticket(*, user, ticket, with_history: bool) -> dict:
    """Return what a ticket page needs about chat: the Join Chat button, how many past chats, and
    (only `with_history`, for the Chat history tab) the chats with their transcripts.

    The Notes tab shows only the count, so it reads no transcript.
    """
    history = chat_history(ticket=ticket) if with_history else []
    return {
        "may_chat": contact_may(user, CHAT).allowed,
        "chat_count": len(history) if with_history else chat_count(ticket=ticket),
        "chat_history": history,
    }


# --- Templates ------------------------------------------------------------------------------


def templates_for(*, engineer: Engineer) -> list[MessageTemplate]:
    """Return greetings before farewells (the order a chat uses them), each the engineer's own first."""
    return list(
        MessageTemplate.objects.filter(Q(owner=engineer) | Q(owner__isnull=True)).order_by(
            "-kind",
            F("owner").asc(nulls_last=True),
            "name",  # NULLS LAST: PostgreSQL sorts NULL first otherwise
        )
    )


def render_template(template: MessageTemplate, *, room: ChatRoom, engineer: Engineer) -> str:
    """Fill a template's placeholders for this room; unknown placeholders stay as written."""
    values = {
        "client_first_name": room.client.first_name,
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


# --- The Staff HUD and the supervisor view ----------------------------------------------------


def pending_room_invitations(*, engineer: Engineer) -> QuerySet:
    """Return the invitations into active rooms that wait for this engineer to join."""
    return (
        RoomInvitation.objects.filter(
            engineer=engineer, state=RoomInvitation.State.PENDING, room__state=ChatRoom.State.ACTIVE
        )
        .select_related("room__ticket__company", "room__request__contact__user", "invited_by")
        .order_by("created", "pk")
    )


def get_room_for_invitee(*, engineer: Engineer, room_id: int) -> ChatRoom:
    """Return a room this engineer was invited into, with what its invitation card names; refuse anyone else."""
    return _room_or_refuse(ChatError("not_found", "No such invitation."), pk=room_id, invitations__engineer=engineer)


def get_sent_invitation(*, engineer: Engineer, request_id: int) -> ChatRequest:
    """Return a chat invitation this engineer sent a contact; refuse anyone else's."""
    invitation = (
        ChatRequest.objects.filter(pk=request_id, kind=ChatRequest.Kind.INVITATION, invited_by=engineer)
        .select_related("ticket", "contact__user")
        .first()
    )
    if invitation is None:
        raise ChatError("not_found", "No such invitation.")
    return invitation


def sent_invitations(*, engineer: Engineer, since) -> list[ChatRequest]:
    """Return the engineer's chat invitations to contacts that still wait or were sent since `since`."""
    return list(
        ChatRequest.objects.filter(
            Q(state=Waiting) | Q(requested_at__gte=since), kind=ChatRequest.Kind.INVITATION, invited_by=engineer
        )
        .select_related("ticket", "contact__user")
        .order_by("-requested_at", "-pk")[:10]
    )


def latest_invitation_for_ticket(*, engineer: Engineer, ticket) -> ChatRequest | None:
    """Return the last chat invitation this engineer sent on a ticket, with its room if accepted."""
    return (
        ChatRequest.objects.filter(kind=ChatRequest.Kind.INVITATION, invited_by=engineer, ticket=ticket)
        .select_related("contact__user", "room")
        .order_by("-requested_at", "-pk")
        .first()
    )


def rooms_left_since(*, engineer: Engineer, since, limit: int = 5) -> list[ChatRoom]:
    """Return the rooms the engineer left since a moment and has entered no time for since, newest first.

    These are the sessions still waiting to be wrapped up (chat log, time entry), which the HUD
    shows again after a reload.
    """

    wrapped_up = TimeEntry.objects.filter(
        engineer=engineer, ticket_id=OuterRef("room__ticket_id"), created__gte=OuterRef("left_at")
    )
    participations = (
        ChatParticipant.objects.filter(user_id=engineer.user_id, left_at__gte=since)
        .exclude(Exists(wrapped_up))
        .select_related("room__ticket__company", "room__request__contact__user")
        .order_by("-left_at")[:limit]
    )
    rooms = []
    for participation in participations:
        participation.room.viewer_left_at = participation.left_at  # the session's words: left, or ended
        rooms.append(participation.room)
    return rooms


def get_room_for_engineer(*, engineer: Engineer, room_id: int) -> ChatRoom:
    """Return any chat room to an engineer (engineers see every ticket, so every chat log)."""
    room = ChatRoom.objects.filter(pk=room_id).select_related("ticket", "request__contact__user").first()
    if engineer is None or room is None:
        raise Http404("No such chat.")
    return room


def session_times(*, room: ChatRoom, user) -> tuple:
    """Return when the user's part in a chat started and ended (now, if they are still in it)."""
    participant = ChatParticipant.objects.filter(room=room, user=user).first()
    started = participant.joined_at if participant else room.started_at
    ended = (participant.left_at if participant else None) or room.ended_at or timezone.now()
    return started, max(started, ended)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def supervisor_overview() -> dict:
    """Return every queue's live and today's figures, and every engineer's availability and load.

    A fixed handful of queries whatever the volume: waiting requests, today's finished requests,
    and engineers annotated with their open sessions.
    """
    now = timezone.now()
    today = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    queues = {
        queue.pk: {
            "queue": queue,
            "waiting": 0,
            "longest_wait": 0,
            "answered": 0,
            "abandoned": 0,
            "expired": 0,
            "callback": 0,
            "waits": [],
        }
        for queue in ChatQueue.objects.all()
    }
    total = {
        "queue": None,
        "waiting": 0,
        "longest_wait": 0,
        "answered": 0,
        "abandoned": 0,
        "expired": 0,
        "callback": 0,
        "waits": [],
    }
    # A request back in the queue (its engineer left) keeps its place, but its wait starts again,
    # as the HUD's queue shows it (queue_snapshot): a wait never includes the chat before it.
    client = ChatRequest.objects.filter(kind=ChatRequest.Kind.CLIENT, queue__isnull=False).annotate(
        waiting_since=Coalesce("returned_at", "requested_at")
    )
    for queue_id, waiting_since in client.filter(state=Waiting).values_list("queue_id", "waiting_since"):
        waited = max(0, int((now - waiting_since).total_seconds()))
        for row in (queues[queue_id], total):
            row["waiting"] += 1
            row["longest_wait"] = max(row["longest_wait"], waited)
    counted = {
        ChatRequest.State.ANSWERED: "answered",
        ChatRequest.State.CANCELLED: "abandoned",
        ChatRequest.State.EXPIRED: "expired",
        ChatRequest.State.CALLBACK: "callback",
    }
    finished = client.filter(requested_at__gte=today, state__in=list(counted)).values_list(
        "queue_id", "state", "waiting_since", "answered_at"
    )
    for queue_id, state, waiting_since, answered_at in finished:
        for row in (queues[queue_id], total):
            row[counted[state]] += 1
            if answered_at:
                row["waits"].append((answered_at - waiting_since).total_seconds())
    rows = list(queues.values())
    for row in [*rows, total]:
        median = _median(row.pop("waits"))
        row["median_wait"] = None if median is None else int(round(median))
    engineers = list(
        Engineer.objects.select_related("user").annotate(open_sessions=_open_session_count()).order_by("display_name")
    )
    chatting_with = _clients_of_open_sessions()
    for engineer in engineers:
        engineer.online = is_online(engineer)
        engineer.sessions = chatting_with.get(engineer.user_id, [])
    return {"queues": rows, "total": total, "engineers": engineers, "today": today, "now": now}


def _clients_of_open_sessions() -> dict[int, list[ChatRoom]]:
    """Return each engineer's (by user id) active chats, oldest first, with the client of each, in one query."""
    sessions: dict[int, list[ChatRoom]] = {}
    for participation in (
        _present_in_active_rooms(role=ChatParticipant.Role.ENGINEER)
        .select_related("room__request__contact__user")
        .order_by("room__started_at", "room_id")
    ):
        sessions.setdefault(participation.user_id, []).append(participation.room)
    return sessions
