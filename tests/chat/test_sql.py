"""Twins of chat/sql.py: each statement gives what a plain ORM reference gives (tests/twins.py)."""

import re
from datetime import timedelta

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from accounts.models import CompanyPermission, Contact, ContactPermission, GlobalFeature, GlobalPermissions
from accounts.permissions import CHAT
from chat import fragments, screens
from chat import sql as chat_sql
from chat.models import ChatMessage, ChatParticipant, ChatRequest, ChatRoom
from deskchat.sql import sqlstate, violates
from tests import factories
from tests.accounts.test_sql import ACCESS, FLAG, feature_levels_by_orm
from tests.twins import BASE_TIME, Refused, assert_twins, offsets, rolled_back, twin_settings

pytestmark = pytest.mark.django_db

Kind, State = ChatRequest.Kind, ChatRequest.State
PRESENCE = st.sampled_from(["present", "left", "absent"])  # a user's place in a room


# --- The standing of a new request ------------------------------------------------------------


def standing_by_orm(*, contact_id: int, since) -> chat_sql.Standing | None:
    """Read a contact's standing for a new request with the ORM, one question at a time."""
    contact = Contact.objects.filter(pk=contact_id).first()
    if contact is None:
        return None
    levels = feature_levels_by_orm(contact_id=contact_id, feature=CHAT)
    client_requests = ChatRequest.objects.filter(contact=contact, kind=Kind.CLIENT)
    return chat_sql.Standing(
        *levels,
        in_active_room=ChatParticipant.objects.filter(
            user_id=contact.user_id, left_at__isnull=True, room__state=ChatRoom.State.ACTIVE
        ).exists(),
        recent_requests=client_requests.filter(requested_at__gt=since).count(),
        waiting_id=client_requests.filter(state=State.WAITING).values_list("pk", flat=True).first(),
    )


requests = st.tuples(st.sampled_from(Kind.values), st.sampled_from(State.values), offsets)
rooms = st.tuples(st.sampled_from(ChatRoom.State.values), PRESENCE, PRESENCE)  # state, the contact, the other


@st.composite
def standing_worlds(draw):
    """Draw permissions for chat, the asked contact's and a neighbour's requests, and rooms both may be in."""
    return {
        "master": draw(FLAG),
        "global": draw(FLAG),
        "company": draw(ACCESS),
        "contact": draw(ACCESS),
        "requests": draw(st.lists(requests, max_size=5)),
        "neighbour_requests": draw(st.lists(requests, max_size=2)),
        "rooms": draw(st.lists(rooms, max_size=3)),
    }


def build_standing(world) -> tuple[Contact, Contact]:
    """Write a drawn world; return the asked contact and their neighbour (same company)."""
    GlobalPermissions.objects.all().delete()
    if world["master"] is not None:
        settings = GlobalPermissions.objects.create(pk=1, master_switch=world["master"])
        if world["global"] is not None:
            GlobalFeature.objects.create(settings=settings, feature=CHAT, enabled=world["global"])
    contact = factories.make_contact()
    neighbour = factories.make_contact(company=contact.company)
    if world["company"]:
        CompanyPermission.objects.create(company=contact.company, feature=CHAT, access=world["company"])
    if world["contact"]:
        ContactPermission.objects.create(contact=contact, feature=CHAT, access=world["contact"])
    ticket = factories.make_ticket(contact=contact)
    for who, drawn in ((contact, world["requests"]), (neighbour, world["neighbour_requests"])):
        for kind, state, offset in drawn:
            add_request(who, ticket, kind=kind, state=state, requested_at=BASE_TIME + offset)
    for state, contact_presence, neighbour_presence in world["rooms"]:
        add_room(ticket, state, {contact.user: contact_presence, neighbour.user: neighbour_presence})
    return contact, neighbour


def add_request(contact, ticket, *, kind, state, requested_at) -> ChatRequest:
    """Add a request; a second waiting one of a kind is made cancelled, as the database insists."""
    if state == State.WAITING and ChatRequest.objects.filter(contact=contact, kind=kind, state=state).exists():
        state = State.CANCELLED
    request = ChatRequest.objects.create(
        contact=contact, ticket=ticket, kind=kind, state=state, expires_at=requested_at + timedelta(minutes=2)
    )
    ChatRequest.objects.filter(pk=request.pk).update(requested_at=requested_at)  # auto_now_add ignores a value
    return request


def add_room(ticket, state, presence: dict) -> ChatRoom:
    """Add a room on an answered request made long before BASE_TIME, with each user present, gone or never there."""
    request = add_request(
        ticket.contact, ticket, kind=Kind.INVITATION, state=State.ANSWERED, requested_at=BASE_TIME - timedelta(days=1)
    )
    room = ChatRoom.objects.create(ticket=ticket, request=request, state=state)
    for user, where in presence.items():
        if where != "absent":
            ChatParticipant.objects.create(
                room=room,
                user=user,
                role=ChatParticipant.Role.CLIENT,
                display_name=user.get_full_name(),
                left_at=timezone.now() if where == "left" else None,
            )
    return room


@twin_settings
@given(world=standing_worlds(), asked=st.sampled_from(["contact", "neighbour", "nobody"]))
def test_standing_equals_the_orm_reference(world, asked):
    """STANDING reads the levels, the active room, the recent requests and the waiting one as the ORM does."""
    with rolled_back():
        contact, neighbour = build_standing(world)
        contact_id = {"contact": contact.pk, "neighbour": neighbour.pk, "nobody": neighbour.pk + 1}[asked]
        assert_twins(
            lambda: chat_sql.request_standing(contact_id=contact_id, since=BASE_TIME),
            lambda: standing_by_orm(contact_id=contact_id, since=BASE_TIME),
        )


# --- A portal socket's start ------------------------------------------------------------------


def portal_start_by_orm(contact) -> chat_sql.PortalStart:
    """Read what a portal socket's connect needs first with the ORM, one question at a time."""
    latest = ChatRequest.objects.filter(contact=contact, kind=Kind.CLIENT).order_by("-requested_at", "-pk").first()
    return chat_sql.PortalStart(
        in_active_room=ChatParticipant.objects.filter(
            user_id=contact.user_id, left_at__isnull=True, room__state=ChatRoom.State.ACTIVE
        ).exists(),
        invited=ChatRequest.objects.filter(contact=contact, kind=Kind.INVITATION, state=State.WAITING).exists(),
        latest_id=latest.pk if latest else None,
        latest_state=latest.state if latest else None,
        latest_ticket_id=latest.ticket_id if latest else None,
        latest_requested_at=latest.requested_at if latest else None,
    )


@twin_settings
@given(world=standing_worlds(), asked=st.sampled_from(["contact", "neighbour"]))
def test_portal_start_equals_the_orm_reference(world, asked):
    """PORTAL_START reads the active room, a waiting invitation and the latest client request as the ORM does."""
    with rolled_back():
        contact, neighbour = build_standing(world)
        asked_contact = contact if asked == "contact" else neighbour
        assert_twins(lambda: chat_sql.portal_start(contact=asked_contact), lambda: portal_start_by_orm(asked_contact))


def drawn_dialog(context) -> str:
    """Render a client dialog without its clock, which moves between two renders."""
    return re.sub(r'data-now="[^"]*"', "", fragments.client_state(context))


@twin_settings
@given(world=standing_worlds())
def test_the_idle_dialog_from_the_start_is_the_dialog_the_full_read_draws(world):
    """Where the start read says idle, its dialog renders as client_dialog's; it says so whenever that one is idle."""
    with rolled_back():
        contact, _neighbour = build_standing(world)
        contact = Contact.objects.select_related("user", "company").get(pk=contact.pk)
        idle = screens.idle_dialog(chat_sql.portal_start(contact=contact), contact=contact)
        full = screens.client_dialog(contact)
        plainly_idle = full["state"] == "idle" and full["room"] is None and full["invitation"] is None
        assert (idle is not None) == plainly_idle
        if idle is not None:
            assert drawn_dialog(idle) == drawn_dialog(full)


# --- The next sequence number -----------------------------------------------------------------


def next_seq_by_orm(*, room_id: int, active_only: bool) -> chat_sql.NextSeq | None:
    """Take the room's next seq with the ORM: an UPDATE, then a read of the new value."""
    rooms = ChatRoom.objects.filter(pk=room_id)
    if active_only:
        rooms = rooms.filter(state=ChatRoom.State.ACTIVE)
    if not rooms.update(last_seq=F("last_seq") + 1):
        return None
    return chat_sql.NextSeq(ChatRoom.objects.values_list("last_seq", flat=True).get(pk=room_id))


def with_rooms_after(take):
    """Return what `take` returns and every room's last_seq after it, so a stray write shows too."""
    return take(), list(ChatRoom.objects.order_by("pk").values_list("pk", "last_seq"))


@twin_settings
@given(
    drawn=st.lists(st.tuples(st.sampled_from(ChatRoom.State.values), st.integers(0, 5)), min_size=1, max_size=3),
    asked=st.integers(0, 3),  # past the last room: a room that does not exist
    active_only=st.booleans(),
)
def test_next_seq_equals_the_orm_reference(drawn, asked, active_only):
    """NEXT_SEQ and NEXT_SEQ_IF_ACTIVE take the number the ORM's UPDATE takes, from that room alone."""
    with rolled_back():
        ticket = factories.make_ticket()
        rooms = []
        for state, last_seq in drawn:
            room = add_room(ticket, state, {})
            ChatRoom.objects.filter(pk=room.pk).update(last_seq=last_seq)
            rooms.append(room)
        room_id = rooms[asked].pk if asked < len(rooms) else rooms[-1].pk + 1
        assert_twins(
            lambda: with_rooms_after(lambda: chat_sql.next_seq(room_id=room_id, active_only=active_only)),
            lambda: with_rooms_after(lambda: next_seq_by_orm(room_id=room_id, active_only=active_only)),
        )


# --- Storing a message (PostgreSQL) -----------------------------------------------------------


def store_by_orm(*, room_id, author_id, kind, body, client_msg_id, created) -> chat_sql.StoredMessage | None:
    """Store a message with the ORM, step by step as chat_send_message does: seq, presence, insert."""
    with transaction.atomic():
        if not ChatRoom.objects.filter(pk=room_id, state=ChatRoom.State.ACTIVE).update(last_seq=F("last_seq") + 1):
            return None
        seq = ChatRoom.objects.values_list("last_seq", flat=True).get(pk=room_id)
        name = (
            ChatParticipant.objects.filter(room_id=room_id, user_id=author_id, left_at__isnull=True)
            .values_list("display_name", flat=True)
            .first()
        )
        if name is None:
            raise chat_sql.NotParticipant
        message = ChatMessage.objects.create(
            room_id=room_id,
            seq=seq,
            author_id=author_id,
            author_name=name,
            kind=kind,
            body=body,
            client_msg_id=client_msg_id,
        )
        ChatMessage.objects.filter(pk=message.pk).update(created=created)  # auto_now_add ignores a value
        return chat_sql.StoredMessage(message.pk, seq, name)


def as_stored(stored: chat_sql.StoredMessage | None):
    """Return the stored row and the room's last_seq, without the id (each side's insert draws its own)."""
    if stored is None:
        return None
    row = ChatMessage.objects.filter(pk=stored.message_id).values(
        "room_id", "seq", "author_id", "author_name", "kind", "body", "client_msg_id", "created", "room__last_seq"
    )
    return stored._replace(message_id=None), row.get()


def refusal_of_store(room_id, author_id, client_msg_id):
    """Name a store's refusal: the author is not in the room, or the client_msg_id was used (by constraint name)."""

    def refused(error):
        if isinstance(error, chat_sql.NotParticipant):
            return Refused("not_participant")
        if isinstance(error, IntegrityError) and violates(
            error,
            ChatMessage,
            "unique_client_msg_id",
            room_id=room_id,
            author_id=author_id,
            client_msg_id=client_msg_id,
        ):
            return Refused("unique_client_msg_id")
        raise error

    return refused


@pytest.mark.postgres
@twin_settings
@given(
    room_state=st.sampled_from([*ChatRoom.State.values, "missing"]),
    client=PRESENCE,
    engineer=PRESENCE,
    author=st.sampled_from(["client", "engineer"]),
    kind=st.sampled_from(ChatMessage.Kind.values),
    body=st.text(min_size=1, max_size=20).filter(lambda text: "\x00" not in text),
    client_msg_id=st.sampled_from(["", "m1", "m2"]),
)
def test_store_message_equals_the_orm_reference(room_state, client, engineer, author, kind, body, client_msg_id):
    """STORE_MESSAGE (chat_send_message) stores what the ORM's three steps store, and refuses what they refuse.

    PostgreSQL only: the function is PostgreSQL's; SQLite stores through the ORM (services._store_with_orm).
    """
    with rolled_back():
        ticket = factories.make_ticket()
        engineer_user = factories.make_engineer().user
        room = add_room(ticket, ChatRoom.State.ACTIVE, {ticket.contact.user: client, engineer_user: engineer})
        author_id = ticket.contact.user_id if author == "client" else engineer_user.pk
        # A message already sent as "m1" by the author, so a retried "m1" meets the unique constraint.
        ChatMessage.objects.create(room=room, seq=1, author_id=author_id, body="earlier", client_msg_id="m1")
        ChatRoom.objects.filter(pk=room.pk).update(last_seq=1)
        if room_state == ChatRoom.State.ENDED:
            ChatRoom.objects.filter(pk=room.pk).update(state=room_state)
        room_id = room.pk + 1 if room_state == "missing" else room.pk
        store = {"room_id": room_id, "author_id": author_id, "kind": kind, "body": body}
        store.update(client_msg_id=client_msg_id, created=BASE_TIME)
        assert_twins(
            lambda: as_stored(chat_sql.store_message(**store)),
            lambda: as_stored(store_by_orm(**store)),
            refusal_of_store(room_id, author_id, client_msg_id),
        )


@pytest.mark.postgres
def test_chat_send_message_refuses_an_absent_author_with_its_own_sqlstate(f):
    """The function's refusal carries SQLSTATE DC001 (migration 0005); that, not its text, is what is recognised."""
    ticket = f.make_ticket()
    room = add_room(ticket, ChatRoom.State.ACTIVE, {})
    params = {"room": room.pk, "author": ticket.contact.user_id, "kind": "text", "body": "hi"}
    with pytest.raises(DatabaseError) as refused, transaction.atomic():
        chat_sql.STORE_MESSAGE.fetch_one({**params, "client_msg_id": "", "created": BASE_TIME})
    assert sqlstate(refused.value) == chat_sql.NOT_PARTICIPANT
    with pytest.raises(chat_sql.NotParticipant):
        chat_sql.store_message(
            room_id=room.pk,
            author_id=ticket.contact.user_id,
            kind="text",
            body="hi",
            client_msg_id="",
            created=BASE_TIME,
        )
    room.refresh_from_db()
    assert room.last_seq == 0  # the seq it took went back with the refusal


def test_the_one_statement_store_exists_on_postgresql_only():
    """SQLite has no stored functions: send_message takes the ORM path there (and chat_sql says so)."""
    assert chat_sql.STORE_MESSAGE.supported() is (connection.vendor == "postgresql")
