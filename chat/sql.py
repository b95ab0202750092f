"""Every hand-written statement of the chat app (the toolkit: deskchat/sql.py).

Each is here because the ORM either cannot say it (UPDATE … RETURNING, a PL/pgSQL call) or costs
more to compile than the database takes to run it on a hot path (docs/benchmarks.md). Each has a
twin test against a plain ORM reference: tests/chat/test_sql.py.
"""

from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from typing import NamedTuple

from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from accounts.permissions import CHAT
from accounts.sql import FEATURE_LEVELS_MODELS, FEATURE_LEVELS_SELECT, FeatureLevels
from deskchat.sql import Statement, raised

from .models import ChatParticipant, ChatRequest, ChatRoom

# chat_send_message's SQLSTATE for "the author is not in this chat" (migration 0005). Class DC is
# DeskChat's own: neither PostgreSQL nor any SQL standard so far uses it (the standard keeps the
# classes starting A to H for itself, so a future one could; PostgreSQL's P0001 is every RAISE's).
NOT_PARTICIPANT = "DC001"


class NotParticipant(Exception):
    """chat_send_message refused: the author is not present in the room."""


# --- A request's standing ---------------------------------------------------------------------


class Standing(NamedTuple):
    """What a new chat request must check of the contact: may they chat, are they busy, how often did they ask."""

    master_switch: bool | None
    global_enabled: bool | None
    contact_access: str | None
    company_access: str | None
    in_active_room: bool
    recent_requests: int
    waiting_id: int | None

    @property
    def levels(self) -> FeatureLevels:
        """Return the chat feature's setting at every level."""
        return FeatureLevels(self.master_switch, self.global_enabled, self.contact_access, self.company_access)


# The room test is selectors._present_in_active_rooms, spelled in SQL.
STANDING = Statement(
    Standing,
    (*FEATURE_LEVELS_MODELS, ChatParticipant, ChatRoom, ChatRequest),
    any="SELECT "
    + FEATURE_LEVELS_SELECT
    + """,
    EXISTS (SELECT 1 FROM {ChatParticipant} p JOIN {ChatRoom} r ON r.{ChatRoom.id} = p.{ChatParticipant.room}
             WHERE p.{ChatParticipant.user} = c.{Contact.user} AND p.{ChatParticipant.left_at} IS NULL
               AND r.{ChatRoom.state} = %(active)s) AS in_active_room,
    (SELECT COUNT(*) FROM {ChatRequest} q
      WHERE q.{ChatRequest.contact} = c.{Contact.id} AND q.{ChatRequest.kind} = %(client)s
        AND q.{ChatRequest.requested_at} > %(since)s) AS recent_requests,
    (SELECT w.{ChatRequest.id} FROM {ChatRequest} w
      WHERE w.{ChatRequest.contact} = c.{Contact.id} AND w.{ChatRequest.kind} = %(client)s
        AND w.{ChatRequest.state} = %(waiting)s) AS waiting_id
  FROM {Contact} c
 WHERE c.{Contact.id} = %(contact)s""",
)


def request_standing(*, contact_id: int, since: datetime) -> Standing | None:
    """Return the contact's standing for a new request, counting the client requests since `since`.

    None when there is no such contact. One query: Join Chat asks it on the process's one
    database thread, where a burst of requests queues, and the ORM spelling cost more to compile
    than PostgreSQL took to run it.
    """
    return STANDING.fetch_one(
        {
            "feature": CHAT,
            "active": ChatRoom.State.ACTIVE,
            "client": ChatRequest.Kind.CLIENT,
            "since": connection.ops.adapt_datetimefield_value(since),
            "waiting": ChatRequest.State.WAITING,
            "contact": contact_id,
        }
    )


# --- A portal socket's start -----------------------------------------------------------------


class PortalStart(NamedTuple):
    """What a portal socket's connect reads first: is the contact in a chat, invited, and their latest request."""

    in_active_room: bool
    invited: bool
    latest_id: int | None
    latest_state: str | None
    latest_ticket_id: int | None
    latest_requested_at: datetime | None


# The room test is selectors._present_in_active_rooms, the invitation selectors.pending_invitation_for,
# the latest request the one selectors.current_chat_for_contact reads, in SQL.
PORTAL_START = Statement(
    PortalStart,
    (ChatParticipant, ChatRoom, ChatRequest),
    any="""SELECT
    EXISTS (SELECT 1 FROM {ChatParticipant} p JOIN {ChatRoom} r ON r.{ChatRoom.id} = p.{ChatParticipant.room}
             WHERE p.{ChatParticipant.user} = %(user)s AND p.{ChatParticipant.left_at} IS NULL
               AND r.{ChatRoom.state} = %(active)s) AS in_active_room,
    EXISTS (SELECT 1 FROM {ChatRequest} i
             WHERE i.{ChatRequest.contact} = %(contact)s AND i.{ChatRequest.kind} = %(invitation)s
               AND i.{ChatRequest.state} = %(waiting)s) AS invited,
    l.{ChatRequest.id} AS latest_id, l.{ChatRequest.state} AS latest_state,
    l.{ChatRequest.ticket} AS latest_ticket_id, l.{ChatRequest.requested_at} AS latest_requested_at
  FROM (SELECT 1 AS one) o
  LEFT JOIN (SELECT q.{ChatRequest.id}, q.{ChatRequest.state}, q.{ChatRequest.ticket}, q.{ChatRequest.requested_at}
               FROM {ChatRequest} q
              WHERE q.{ChatRequest.contact} = %(contact)s AND q.{ChatRequest.kind} = %(client)s
              ORDER BY q.{ChatRequest.requested_at} DESC, q.{ChatRequest.id} DESC
              LIMIT 1) l ON 1 = 1""",
)


def _portal_start_params(contact) -> dict:
    return {
        "user": contact.user_id,
        "contact": contact.pk,
        "active": ChatRoom.State.ACTIVE,
        "invitation": ChatRequest.Kind.INVITATION,
        "client": ChatRequest.Kind.CLIENT,
        "waiting": ChatRequest.State.WAITING,
    }


def portal_start(*, contact) -> PortalStart:
    """Return what a portal socket's connect reads first, in one statement (the database thread)."""
    return _with_datetimes(PORTAL_START.fetch_one(_portal_start_params(contact)))


async def portal_start_async(*, contact) -> PortalStart:
    """Return what portal_start does, on one of the event loop's own connections (deskchat.adb)."""
    return _with_datetimes(await PORTAL_START.fetch_one_async(_portal_start_params(contact)))


def _with_datetimes(start: PortalStart) -> PortalStart:
    """Read the request's time as the ORM would: SQLite hands back UTC without its zone."""
    requested_at = start.latest_requested_at
    if requested_at is not None and timezone.is_naive(requested_at):
        requested_at = timezone.make_aware(requested_at, UTC)
    return start._replace(latest_requested_at=requested_at)


# --- Sequence numbers and messages ------------------------------------------------------------


class NextSeq(NamedTuple):
    """The sequence number a room just handed out."""

    seq: int


NEXT_SEQ = Statement(
    NextSeq,
    (ChatRoom,),
    any="UPDATE {ChatRoom} SET {ChatRoom.last_seq} = {ChatRoom.last_seq} + 1"
    " WHERE {ChatRoom.id} = %(room)s RETURNING {ChatRoom.last_seq} AS seq",
)
NEXT_SEQ_IF_ACTIVE = Statement(
    NextSeq,
    (ChatRoom,),
    any="UPDATE {ChatRoom} SET {ChatRoom.last_seq} = {ChatRoom.last_seq} + 1"
    " WHERE {ChatRoom.id} = %(room)s AND {ChatRoom.state} = %(active)s RETURNING {ChatRoom.last_seq} AS seq",
)


def next_seq(*, room_id: int, active_only: bool = False) -> NextSeq | None:
    """Increment the room's last_seq and return it (None: no such room, or not active when active_only).

    Call inside a transaction: the UPDATE holds the room's row lock until commit, so sequence
    numbers are gapless and in commit order. Needs UPDATE … RETURNING (PostgreSQL, SQLite 3.35+).
    """
    if active_only:
        return NEXT_SEQ_IF_ACTIVE.fetch_one({"room": room_id, "active": ChatRoom.State.ACTIVE})
    return NEXT_SEQ.fetch_one({"room": room_id})


class StoredMessage(NamedTuple):
    """What chat_send_message made of a message: its id, its seq and the author's name in the room.

    The names are the function's own columns (prefixed so they don't clash with the tables' in its body).
    """

    message_id: int
    message_seq: int
    message_author_name: str


STORE_MESSAGE = Statement(
    StoredMessage,
    (),
    postgresql="SELECT * FROM chat_send_message("
    "%(room)s, %(author)s, %(kind)s, %(body)s, %(client_msg_id)s, %(created)s)",
)


def store_message(
    *, room_id: int, author_id: int, kind: str, body: str, client_msg_id: str, created: datetime
) -> StoredMessage | None:
    """Store a message in one call of chat_send_message (PostgreSQL only; migrations 0002, 0005).

    Return None when there is no such room or it has ended; raise NotParticipant when the author
    is not present, and IntegrityError (unique_client_msg_id) for a retried client_msg_id. Either
    refusal rolls back the seq the function took. Outside a transaction this is one round trip
    and one commit; inside one (tests, or a caller's atomic block), a savepoint keeps a refusal
    from aborting it.
    """
    scope = transaction.atomic() if connection.in_atomic_block else nullcontext()
    params = _store_params(room_id, author_id, kind, body, client_msg_id, created)
    with _not_participant_refusal(), scope:
        return STORE_MESSAGE.fetch_one(params)


async def store_message_async(
    *, room_id: int, author_id: int, kind: str, body: str, client_msg_id: str, created: datetime
) -> StoredMessage | None:
    """Do what store_message does, on one of the event loop's own connections (deskchat.adb).

    One round trip and one commit, in flight beside other messages' commits instead of queued
    behind them in the database thread.
    """
    params = _store_params(room_id, author_id, kind, body, client_msg_id, created)
    with _not_participant_refusal():
        return await STORE_MESSAGE.fetch_one_async(params)


def _store_params(room_id, author_id, kind, body, client_msg_id, created) -> dict:
    return {
        "room": room_id,
        "author": author_id,
        "kind": kind,
        "body": body,
        "client_msg_id": client_msg_id,
        "created": created,
    }


@contextmanager
def _not_participant_refusal():
    """Raise NotParticipant for the function's own refusal; let every other error through as it is."""
    try:
        yield
    except DatabaseError as error:
        if raised(error, NOT_PARTICIPANT):
            raise NotParticipant from None
        raise
