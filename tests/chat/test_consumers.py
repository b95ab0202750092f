"""The chat sockets through the real ASGI stack: origin check, session, router, consumers.

Every test talks to deskchat.asgi's application as a browser would, asserts on the fragments
that arrive, and disconnects its sockets. The refusals follow issue 3's list: each one gets a
clear error frame, the socket stays open, and nothing is stored.
"""

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone

from accounts.models import Contact, ContactPermission, Engineer
from accounts.permissions import CHAT
from chat import presence, selectors, services
from chat.models import ChatMessage, ChatParticipant, ChatRequest, ChatRoom
from deskchat import events
from deskchat.events import queue_group, supervisor_group
from tests.chat.wsutil import client_socket, connect, staff_socket
from tests.queries import rows_written
from tickets.models import Ticket

pytestmark = pytest.mark.django_db(transaction=True)

STAFF_EVENTS = {"queue", "session", "room_invitation", "sent_invitation"}


async def test_a_whole_chat_flows_between_client_and_engineer(desk):
    """Join Chat, Answer, messages both ways in order, and the client leaving ends nothing early."""
    client = await client_socket(desk.contact.user)
    dana = await staff_socket(desk.dana.user)
    await dana.wait_event("queue", count=0)
    await client.send(action="sync", rooms={})
    await dana.send(action="sync", rooms={})

    await client.send(action="request_chat", ticket_id=desk.ticket.pk)
    state = await client.wait_event("client_state", state="waiting")
    request_id = int(state.attrs["data-request-id"])
    queue = await dana.wait_event("queue", count=1)
    assert "Carol" in queue.text

    await dana.send(action="answer", request_id=request_id)
    session = await dana.wait_event("session")
    room_id = int(session.attrs["data-room"])
    await client.wait_event("client_state", state="chatting", engineer_present=1)
    joined = await client.wait_message(room_id, 1)
    assert "Dana Reyes joined" in joined.text

    await client.send(action="send", room_id=room_id, body="Hello <b>there</b>", client_msg_id="c-1")
    await dana.wait_message(room_id, 2)
    await dana.send(action="send", room_id=room_id, body="Hi Carol", client_msg_id="d-1")
    reply = await client.wait_message(room_id, 3)
    assert "Hi Carol" in reply.text
    assert [e.attrs["data-seq"] for e in client.messages(room_id)] == ["1", "2", "3"]
    await client.close()
    await dana.close()


async def test_a_retried_send_is_stored_once(desk):
    """The same client_msg_id sent twice (a retry after a drop) makes one message."""
    client = await client_socket(desk.contact.user)
    dana = await staff_socket(desk.dana.user)
    await client.send(action="sync", rooms={})
    await client.send(action="request_chat", ticket_id=desk.ticket.pk)
    state = await client.wait_event("client_state", state="waiting")
    await dana.send(action="answer", request_id=int(state.attrs["data-request-id"]))
    room_id = int((await dana.wait_event("session")).attrs["data-room"])
    await client.wait_message(room_id, 1)  # the client's dialog unlocks once its socket has the room
    for _ in range(2):
        await client.send(action="send", room_id=room_id, body="only once", client_msg_id="same-id")
    await client.wait_message(room_id, 2)
    await client.drain()
    count = await sync_to_async(ChatMessage.objects.filter(room_id=room_id, body="only once").count)()
    assert count == 1
    assert not [e for e in client.received if e.attrs.get("data-event") == "error"]
    assert len([e for e in client.messages(room_id) if e.attrs["data-seq"] == "2"]) == 1
    await client.close()
    await dana.close()


async def test_a_socket_catches_up_after_reconnecting(desk):
    """A reconnecting socket gets exactly what followed the last seq it had, in order."""
    client = await client_socket(desk.contact.user)
    dana = await staff_socket(desk.dana.user)
    await client.send(action="sync", rooms={})
    await client.send(action="request_chat", ticket_id=desk.ticket.pk)
    state = await client.wait_event("client_state", state="waiting")
    await dana.send(action="answer", request_id=int(state.attrs["data-request-id"]))
    room_id = int((await dana.wait_event("session")).attrs["data-room"])
    await client.wait_message(room_id, 1)
    await client.close()
    for n in range(3):
        await dana.send(action="send", room_id=room_id, body=f"missed {n}", client_msg_id=f"m{n}")
    await dana.wait_message(room_id, 4)

    again = await client_socket(desk.contact.user)
    await again.send(action="sync", rooms={str(room_id): 1})
    await again.wait_message(room_id, 4)
    await again.drain()
    assert [e.attrs["data-seq"] for e in again.messages(room_id)] == ["2", "3", "4"]
    await again.close()
    await dana.close()


async def test_a_live_message_reaches_a_socket_while_the_database_thread_is_busy(desk):
    """Delivering a message that arrives over the channel layer needs no trip to the database thread.

    Every ORM call of a process runs in that one thread, so a delivery that queued behind other
    sockets' queries would be as slow as the slowest of them (Channels' own dispatch makes such
    a trip before every handler; ChatSocket.dispatch does not).
    """
    import time

    from channels.db import database_sync_to_async

    client, dana, room_id = await open_chat(desk)
    busy = asyncio.ensure_future(database_sync_to_async(time.sleep)(4))
    await asyncio.sleep(0.1)  # the database thread is now asleep for 4 s
    store = sync_to_async(services.send_message, thread_sensitive=False)  # another thread stores it
    await store(room_id=room_id, user=desk.dana.user, body="while busy", client_msg_id="busy")
    await client.wait_message(room_id, 2)
    assert not busy.done(), "the message waited for the database thread"
    await busy
    await client.close()
    await dana.close()


async def test_second_answer_to_a_taken_request_is_refused(desk):
    """When two engineers answer, the second is told a colleague took it."""
    client = await client_socket(desk.contact.user)
    dana = await staff_socket(desk.dana.user)
    sam = await staff_socket(desk.sam.user)
    await client.send(action="request_chat", ticket_id=desk.ticket.pk)
    request_id = int((await client.wait_event("client_state", state="waiting")).attrs["data-request-id"])
    await dana.send(action="answer", request_id=request_id)
    await dana.wait_event("session")
    await sam.send(action="answer", request_id=request_id)
    error = await sam.wait_event("error")
    assert error.attrs["data-error"] == "taken"
    assert "colleague" in error.text
    request = await sync_to_async(ChatRequest.objects.get)(pk=request_id)
    assert request.state == "answered"
    for s in (client, dana, sam):
        await s.close()


async def test_anonymous_and_cross_origin_sockets_are_refused(desk):
    """No session means no socket, and another origin is refused before the consumer runs."""
    _, connected, code = await connect(None, "/ws/chat/", cookie=False)
    assert not connected and code == 4401
    _, connected, _ = await connect(desk.contact.user, "/ws/chat/", origin=b"http://evil.example")
    assert not connected
    _, connected, code = await connect(desk.contact.user, "/ws/hud/")
    assert not connected and code == 4403


# --- Helpers ------------------------------------------------------------------------------------


async def open_chat(desk):
    """Carol asks to chat and Dana answers, through the sockets; both have seq 1 ("Dana joined")."""
    client = await client_socket(desk.contact.user)
    dana = await staff_socket(desk.dana.user)
    await client.send(action="sync", rooms={})
    await dana.send(action="sync", rooms={})
    await client.send(action="request_chat", ticket_id=desk.ticket.pk)
    request_id = int((await client.wait_event("client_state", state="waiting")).attrs["data-request-id"])
    await dana.send(action="answer", request_id=request_id)
    room_id = int((await dana.wait_event("session")).attrs["data-room"])
    await client.wait_message(room_id, 1)
    await dana.wait_message(room_id, 1)
    return client, dana, room_id


def seqs(socket, room_id) -> list[int]:
    return [int(e.attrs["data-seq"]) for e in socket.messages(room_id)]


@sync_to_async
def stored(room_id) -> list[tuple[int, str]]:
    return list(ChatMessage.objects.filter(room_id=room_id).order_by("seq").values_list("seq", "body"))


@sync_to_async
def refresh(obj):
    obj.refresh_from_db()
    return obj


async def close_all(*sockets):
    for socket in sockets:
        await socket.close()


# --- Authorization ------------------------------------------------------------------------------


async def test_a_contact_cannot_ask_to_chat_about_another_companys_ticket(desk, f):
    """Another company's ticket is refused as not_found, exactly like a ticket that does not exist."""
    other = await sync_to_async(f.make_ticket)(contact=await sync_to_async(f.make_contact)(chat="allow"))
    client = await client_socket(desk.contact.user)
    dana = await staff_socket(desk.dana.user)
    await dana.wait_event("queue", count=0)

    foreign = await client.refused(action="request_chat", ticket_id=other.pk)
    missing = await client.refused(action="request_chat", ticket_id=other.pk + 1000)

    assert foreign.attrs["data-error"] == missing.attrs["data-error"] == "not_found"
    assert foreign.text == missing.text
    assert not await sync_to_async(ChatRequest.objects.exists)()
    await client.assert_open()
    await dana.drain()
    assert [e.attrs["data-count"] for e in dana.received if e.attrs.get("data-event") == "queue"] == ["0"]
    await close_all(client, dana)


async def test_join_chat_leaves_a_pending_invitation_on_screen(desk, f):
    """Asking for a chat redraws the dialog without touching the invitation box beside it."""
    second = await sync_to_async(f.make_ticket)(contact=desk.contact, summary="Second ticket")
    invitation = await sync_to_async(services.invite_contact)(engineer=desk.dana, ticket=second)
    client = await client_socket(desk.contact.user)
    await client.wait_event("invitation", request_id=invitation.pk)

    mark = len(client.received)
    await client.send(action="request_chat", ticket_id=desk.ticket.pk)
    await client.wait_event("client_state", state="waiting", since=mark)
    await client.drain()

    boxes = [e for e in client.received if e.attrs.get("data-event") == "invitation"]
    assert boxes[-1].attrs["data-request-id"] == str(invitation.pk)
    await close_all(client)


async def test_join_chat_again_from_another_tab_shows_the_request_already_waiting(desk):
    """A second Join Chat on the same ticket (another tab, a retry) is answered with the request
    already waiting, its dialog drawn from what the service read: no error, no second request."""
    first, second = await client_socket(desk.contact.user), await client_socket(desk.contact.user)
    await first.send(action="request_chat", ticket_id=desk.ticket.pk)
    waiting = await first.wait_event("client_state", state="waiting")
    mark = len(second.received)
    await second.send(action="request_chat", ticket_id=desk.ticket.pk)
    again = await second.wait_event("client_state", state="waiting", since=mark)
    assert again.attrs["data-request-id"] == waiting.attrs["data-request-id"]
    assert "Carol" in again.text or desk.ticket.summary in again.text
    await second.drain()
    assert not [e for e in second.received[mark:] if e.attrs.get("data-event") == "error"]
    assert await sync_to_async(ChatRequest.objects.filter(contact=desk.contact).count)() == 1
    await close_all(first, second)


def join_chat_statements(desk, ticket) -> tuple[str, list[str]]:
    """Make a Join Chat's trip to the database thread as the client socket does; return the dialog and the SQL."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from chat import fragments

    with CaptureQueriesContext(connection) as queries:
        queued, _, error = events._run_holding_events(
            services.join_chat, (), {"contact": desk.contact, "ticket_id": ticket.pk}
        )
        assert error is None, error
        # Drawn as the socket draws it, inside the capture: the dialog must cost no query of its own.
        html = fragments.client_state(fragments.waiting_dialog(desk.contact, queued))
    statements = [
        q["sql"]
        for q in queries.captured_queries
        if not q["sql"].startswith(("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE SAVEPOINT"))
    ]
    return html, statements


def test_a_join_chat_costs_the_database_thread_six_queries(desk, f):
    """The ticket, the contact's standing, the route, whether anyone could take it, the insert and the
    place in the queue; no more.

    Join Chat is one trip to each process's one database thread, where a burst of them queues
    (docs/benchmarks.md). A pending invitation and past requests add nothing.
    """
    services.invite_contact(engineer=desk.dana, ticket=f.make_ticket(contact=desk.contact))
    services.cancel_request(
        contact=desk.contact, request_id=services.request_chat(contact=desk.contact, ticket=desk.ticket).pk
    )

    html, statements = join_chat_statements(desk, desk.ticket)

    assert 'data-state="waiting"' in html
    assert len(statements) == 6, "\n".join(s[:100] for s in statements)


def test_a_first_offer_to_the_tickets_engineer_costs_no_query_more(desk, f):
    """The ticket comes with its engineer; their open chats are counted, to see if they may be offered it,
    and an engineer offered it first makes asking the queue for a taker needless."""
    Engineer.objects.filter(pk=desk.dana.pk).update(last_seen_at=timezone.now())
    ticket = f.make_ticket(contact=desk.contact, assigned_engineer=desk.dana)

    html, statements = join_chat_statements(desk, ticket)

    assert ChatRequest.objects.get(ticket=ticket).offered_to_id == desk.dana.pk
    assert 'data-state="waiting"' in html
    assert len(statements) == 6, "\n".join(s[:100] for s in statements)


async def test_a_contact_cannot_accept_an_invitation_sent_to_someone_else(desk, f):
    """An invitation to another company's contact is not_found to Carol, and stays waiting for its contact."""
    other = await sync_to_async(f.make_ticket)(contact=await sync_to_async(f.make_contact)(chat="allow"))
    invitation = await sync_to_async(services.invite_contact)(engineer=desk.dana, ticket=other)
    client = await client_socket(desk.contact.user)

    error = await client.refused(action="accept_invitation", request_id=invitation.pk)
    assert error.attrs["data-error"] == "not_found"
    error = await client.refused(action="reject_invitation", request_id=invitation.pk)
    assert error.attrs["data-error"] == "not_waiting"

    assert (await refresh(invitation)).state == ChatRequest.State.WAITING
    assert not await sync_to_async(ChatRoom.objects.exists)()
    await client.assert_open()
    await client.close()


async def test_an_invitation_on_a_ticket_moved_to_another_company_cannot_be_accepted(desk, f):
    """The company check runs when the invitation is accepted, not only when it was sent."""
    invitation = await sync_to_async(services.invite_contact)(engineer=desk.dana, ticket=desk.ticket)
    elsewhere = await sync_to_async(f.make_company)()
    await sync_to_async(Ticket.objects.filter(pk=desk.ticket.pk).update)(company=elsewhere)
    client = await client_socket(desk.contact.user)

    error = await client.refused(action="accept_invitation", request_id=invitation.pk)

    assert error.attrs["data-error"] == "not_found"
    assert (await refresh(invitation)).state == ChatRequest.State.WAITING
    assert not await sync_to_async(ChatRoom.objects.exists)()
    await client.close()


async def test_a_forged_chat_frame_from_a_contact_without_chat_permission_is_refused(desk, f):
    """A contact denied chat never sees Join Chat; sending the frame anyway is refused and stores nothing."""
    ken = await sync_to_async(f.make_contact)(company=desk.ticket.company, first_name="Ken", chat="deny")
    ticket = await sync_to_async(f.make_ticket)(contact=ken)
    client = await client_socket(ken.user)

    error = await client.refused(action="request_chat", ticket_id=ticket.pk)

    assert error.attrs["data-error"] == "not_allowed"
    assert not await sync_to_async(ChatRequest.objects.exists)()
    await client.assert_open()
    await client.close()


async def test_an_invitation_cannot_be_accepted_once_chat_permission_is_withdrawn(desk):
    """The permission is checked when the contact accepts: a forged accept after a deny is refused."""
    invitation = await sync_to_async(services.invite_contact)(engineer=desk.dana, ticket=desk.ticket)
    await sync_to_async(ContactPermission.objects.create)(contact=desk.contact, feature=CHAT, access="deny")
    client = await client_socket(desk.contact.user)

    error = await client.refused(action="accept_invitation", request_id=invitation.pk)

    assert error.attrs["data-error"] == "not_allowed"
    assert (await refresh(invitation)).state == ChatRequest.State.WAITING
    assert not await sync_to_async(ChatRoom.objects.exists)()
    await client.close()


@pytest.mark.parametrize("action", ["send", "typing", "read", "leave"])
async def test_a_contact_outside_a_room_cannot_post_type_read_or_leave_in_it(desk, f, action):
    """A contact of the same company who is not in the room is refused, and the room hears nothing."""
    client, dana, room_id = await open_chat(desk)
    eve = await sync_to_async(f.make_contact)(company=desk.ticket.company, first_name="Eve")
    stranger = await client_socket(eve.user)
    before = await stored(room_id)

    error = await stranger.refused(action=action, room_id=room_id, body="psst", client_msg_id="e-1", typing=True, seq=1)

    assert error.attrs["data-error"] == "not_participant"
    assert await stored(room_id) == before
    assert await sync_to_async(ChatParticipant.objects.filter(room_id=room_id, left_at__isnull=True).count)() == 2
    await stranger.assert_open()
    await client.drain()
    await dana.drain()
    assert not [e for e in client.received + dana.received if e.attrs.get("data-event") in ("typing", "read")]
    assert seqs(client, room_id) == [1]
    await close_all(client, dana, stranger)


@pytest.mark.parametrize("action", ["send", "typing", "read", "leave", "end", "invite_engineer"])
async def test_an_engineer_outside_a_room_cannot_act_in_it(desk, action):
    """Sam, a colleague not in the room, cannot post, type, read, leave, end it or invite into it."""
    client, dana, room_id = await open_chat(desk)
    sam = await staff_socket(desk.sam.user)
    before = await stored(room_id)

    error = await sam.refused(
        action=action, room_id=room_id, body="psst", client_msg_id="s-1", typing=True, seq=1, engineer_id=desk.sam.pk
    )

    assert error.attrs["data-error"] == "not_participant"
    assert await stored(room_id) == before
    assert (await sync_to_async(ChatRoom.objects.get)(pk=room_id)).state == ChatRoom.State.ACTIVE
    await sam.assert_open()
    await close_all(client, dana, sam)


async def test_a_socket_outside_a_room_never_reads_its_messages(desk, f):
    """Neither a live message nor a sync naming the room shows a stranger anything of it."""
    client, dana, room_id = await open_chat(desk)
    eve = await sync_to_async(f.make_contact)(company=desk.ticket.company, first_name="Eve")
    stranger = await client_socket(eve.user)
    sam = await staff_socket(desk.sam.user)
    for socket in (stranger, sam):
        await socket.send(action="sync", rooms={str(room_id): 0})

    await dana.send(action="send", room_id=room_id, body="private", client_msg_id="d-1")
    await client.wait_message(room_id, 2)

    for socket in (stranger, sam):
        await socket.drain()
        assert socket.messages(room_id) == []
        assert not [e for e in socket.received if e.attrs.get("data-room") == str(room_id)]
    await close_all(client, dana, stranger, sam)


async def test_an_engineer_outside_the_routed_queue_neither_sees_nor_answers_its_requests(desk, f):
    """Only members of the queue a request was routed to see it on their HUD and may answer it."""
    network = await sync_to_async(f.make_queue)(name="Network", order=5)
    nick = await sync_to_async(f.make_engineer)(display_name="Nick", queues=[network])
    client = await client_socket(desk.contact.user)
    nick_hud = await staff_socket(nick.user)
    dana = await staff_socket(desk.dana.user)
    await nick_hud.wait_event("queue", count=0)
    await dana.wait_event("queue", count=0)

    await client.send(action="request_chat", ticket_id=desk.ticket.pk)
    request_id = int((await client.wait_event("client_state", state="waiting")).attrs["data-request-id"])
    await dana.wait_event("queue", count=1)
    error = await nick_hud.refused(action="answer", request_id=request_id)

    assert error.attrs["data-error"] == "not_found"
    request = await sync_to_async(ChatRequest.objects.get)(pk=request_id)
    assert request.state == ChatRequest.State.WAITING and request.queue_id == desk.queue.pk
    assert [e.attrs["data-count"] for e in nick_hud.received if e.attrs.get("data-event") == "queue"] == ["0"]
    await dana.send(action="answer", request_id=request_id)
    await dana.wait_event("session")
    await close_all(client, nick_hud, dana)


async def test_an_engineer_who_was_not_invited_cannot_join_a_room(desk):
    """Joining a room takes an invitation (or having been in it)."""
    client, dana, room_id = await open_chat(desk)
    sam = await staff_socket(desk.sam.user)

    error = await sam.refused(action="join", room_id=room_id)

    assert error.attrs["data-error"] == "not_allowed"
    assert not await sync_to_async(ChatParticipant.objects.filter(room_id=room_id, user=desk.sam.user).exists)()
    await close_all(client, dana, sam)


async def test_staff_events_and_actions_never_reach_a_contact(desk):
    """A contact's socket gets no queue or HUD fragments in a whole chat, and staff actions are unknown to it."""
    client, dana, room_id = await open_chat(desk)
    await dana.send(action="send", room_id=room_id, body="hello", client_msg_id="d-1")
    await client.wait_message(room_id, 2)

    for action in ("answer", "end", "join", "invite_contact", "set_availability"):
        error = await client.refused(
            action=action, request_id=1, room_id=room_id, ticket_id=desk.ticket.pk, availability="away"
        )
        assert error.attrs["data-error"] == "unknown_action"
    await client.drain()

    assert not [e for e in client.received if e.attrs.get("data-event") in STAFF_EVENTS]
    assert (await sync_to_async(ChatRoom.objects.get)(pk=room_id)).state == ChatRoom.State.ACTIVE
    await close_all(client, dana)


async def test_each_socket_admits_only_its_own_kind_of_user(desk):
    """A contact is refused the staff socket and an engineer the client socket, with 4403."""
    _, connected, code = await connect(desk.contact.user, "/ws/hud/")
    assert not connected and code == 4403
    _, connected, code = await connect(desk.dana.user, "/ws/chat/")
    assert not connected and code == 4403


async def test_an_engineer_with_a_contact_profile_too_gets_only_the_hud_socket(desk):
    """Staff who also have a client login are engineers: the client socket refuses them with 4403."""
    await sync_to_async(Contact.objects.create)(user=desk.dana.user, company=desk.contact.company)
    _, connected, code = await connect(desk.dana.user, "/ws/chat/")
    assert not connected and code == 4403
    hud = await staff_socket(desk.dana.user)
    await hud.wait_event("queue", count=0)
    await hud.close()


@pytest.mark.parametrize("path", ["/ws/chat/", "/ws/hud/"])
async def test_handshakes_without_a_session_or_from_another_origin_are_refused(desk, path):
    """No session closes with 4401; a foreign or missing Origin is refused before any consumer runs."""
    user = desk.contact.user if path == "/ws/chat/" else desk.dana.user
    _, connected, code = await connect(None, path, cookie=False)
    assert not connected and code == 4401
    for origin in (b"http://evil.example", b"null", None):
        _, connected, _ = await connect(user, path, origin=origin)
        assert not connected, origin
    socket, connected, _ = await connect(user, path)
    assert connected
    await socket.close()


# --- Bad input ----------------------------------------------------------------------------------


NOT_JSON_OBJECTS = [
    "{",
    "not json",
    " ",
    "[1, 2]",
    '"send"',
    "42",
    "null",
    "true",
    "[" * 5000,
    b"\xff\xfe",
    b'{"action": "ping"',
]
UNKNOWN_ACTIONS = [
    {},
    {"action": "drop_tables"},
    {"action": 5},
    {"action": ["send"]},
    {"action": None},
    {"action": "x" * 10_000},
]
BAD_SEND_FIELDS = [
    {"room_id": "seven"},
    {"room_id": None},
    {"room_id": [1]},
    {"room_id": {"id": 1}},
    {"room_id": True},
    {"room_id": 1.5},
    {"room_id": -1},
    {"room_id": 2**53},
    {"room_id": 10**40},
    {"room_id": 1e308},
    {"room_id": "9" * 5000},
    {"room_id": "²"},
    {"body": 42},
    {"body": ["hi"]},
    {"body": None},
    {"client_msg_id": 5},
    {"client_msg_id": "x" * 65},
]
BAD_STAFF_FRAMES = [
    {"action": "answer", "request_id": "9" * 5000},
    {"action": "answer", "request_id": 2**64},
    {"action": "read", "room_id": "ROOM", "seq": 1e400},
    {"action": "set_availability", "availability": ["away"]},
    {"action": "set_availability", "availability": "offline"},
    {"action": "send", "room_id": "ROOM", "body": "x", "kind": "system"},
    {"action": "sync", "rooms": [1, 2]},
]


async def test_a_frame_that_is_not_a_json_object_gets_bad_frame(desk, settings):
    """Malformed or non-object JSON (text or binary) gets bad_frame each time, and the socket stays open."""
    settings.CHAT_RATE_BURST = 100  # a series of refusals, not a flood
    client = await client_socket(desk.contact.user)
    for frame in NOT_JSON_OBJECTS:
        mark = len(client.received)
        if isinstance(frame, bytes):
            await client.communicator.send_to(bytes_data=frame)
        else:
            await client.send_raw(frame)
        error = await client.wait_event("error", since=mark)
        assert error.attrs["data-error"] == "bad_frame", frame[:20]
    await client.assert_open()
    await client.close()


async def test_an_unknown_or_missing_action_gets_unknown_action(desk, settings):
    """A frame naming no known action is refused as unknown_action, quoting the action cut short."""
    settings.CHAT_RATE_BURST = 100  # a series of refusals, not a flood
    client = await client_socket(desk.contact.user)
    for payload in UNKNOWN_ACTIONS:
        error = await client.refused(**payload)
        assert error.attrs["data-error"] == "unknown_action", payload
        assert len(error.text) < 200
    await client.assert_open()
    await client.close()


async def test_a_send_with_fields_of_the_wrong_type_or_size_gets_bad_frame(desk, settings):
    """Wrong types, and numbers or ids too large for any row, are refused as bad_frame (never
    server_error); nothing is stored and the socket stays open for the next frame."""
    settings.CHAT_RATE_BURST = 100  # a series of refusals, not a flood
    client, dana, room_id = await open_chat(desk)
    for fields in BAD_SEND_FIELDS:
        payload = {"action": "send", "room_id": room_id, "body": "hello", "client_msg_id": "c-1", **fields}
        error = await client.refused(**payload)
        assert error.attrs["data-error"] == "bad_frame", repr(fields)[:60]
    assert await stored(room_id) == [(1, "Dana Reyes joined.")]
    await client.assert_open()
    await close_all(client, dana)


async def test_staff_frames_with_bad_fields_get_bad_frame(desk, settings):
    """The HUD socket checks its fields the same way: bad_frame, socket open, nothing changed."""
    settings.CHAT_RATE_BURST = 100  # a series of refusals, not a flood
    client, dana, room_id = await open_chat(desk)
    for payload in BAD_STAFF_FRAMES:
        payload = {key: room_id if value == "ROOM" else value for key, value in payload.items()}
        error = await dana.refused(**payload)
        assert error.attrs["data-error"] == "bad_frame", repr(payload)[:60]
    assert await stored(room_id) == [(1, "Dana Reyes joined.")]
    assert (await sync_to_async(Engineer.objects.get)(pk=desk.dana.pk)).availability == "available"
    await dana.assert_open()
    await close_all(client, dana)


async def test_a_sync_with_junk_entries_ignores_them(desk):
    """Room ids that are not numbers and seqs that are not whole numbers are skipped, not fatal."""
    client, dana, room_id = await open_chat(desk)
    again = await client_socket(desk.contact.user)
    mark = len(again.received)

    await again.send(action="sync", rooms={"²": 1, "9" * 5000: 1, "x": 1, "-3": 1, str(room_id): 0, "7": "many"})
    await again.wait_message(room_id, 1)
    await again.assert_open()

    assert not [e for e in again.received[mark:] if e.attrs.get("data-event") == "error"]
    assert seqs(again, room_id) == [1]
    await close_all(client, dana, again)


@pytest.mark.parametrize("body, code", [("", "empty"), ("   \n\t ", "empty"), ("x" * 51, "too_long")])
async def test_empty_and_oversized_messages_are_refused_and_the_text_is_kept(desk, settings, body, code):
    """An empty or too long message gets its error code, naming the client_msg_id so the browser keeps the
    text; nothing is stored, nobody else hears anything, and the next message takes the next seq."""
    settings.CHAT_MESSAGE_MAX_LENGTH = 50
    client, dana, room_id = await open_chat(desk)

    error = await client.refused(action="send", room_id=room_id, body=body, client_msg_id="c-bad")

    assert error.attrs["data-error"] == code
    assert error.attrs["data-client-msg-id"] == "c-bad"
    if code == "too_long":
        assert "50" in error.text and "51" in error.text
    assert await stored(room_id) == [(1, "Dana Reyes joined.")]
    await client.send(action="send", room_id=room_id, body="x" * 50, client_msg_id="c-ok")
    await dana.wait_message(room_id, 2)
    await dana.drain()
    assert seqs(dana, room_id) == [1, 2]
    assert not [e for e in dana.received if e.attrs.get("data-event") == "error"]
    await close_all(client, dana)


async def test_a_flooding_sender_is_rate_limited_without_losing_or_affecting_anything(desk, settings):
    """Past the burst, sends get rate_limited naming their client_msg_id; every send is either stored
    once or refused by id, the flooder's socket stays open and the other participant chats on."""
    settings.CHAT_RATE_BURST = 5
    settings.CHAT_RATE_PER_SECOND = 2
    client, dana, room_id = await open_chat(desk)
    ids = [f"flood-{n}" for n in range(15)]

    for client_msg_id in ids:
        await client.send(action="send", room_id=room_id, body=client_msg_id, client_msg_id=client_msg_id)
    await client.assert_open()
    await client.drain()

    limited = [
        e.attrs["data-client-msg-id"]
        for e in client.received
        if e.attrs.get("data-event") == "error" and e.attrs["data-error"] == "rate_limited"
    ]
    bodies = [body for _, body in await stored(room_id)][1:]
    assert len(limited) >= 5
    assert sorted(limited + bodies) == sorted(ids)  # each send stored or refused by its id, never both
    assert len(set(bodies)) == len(bodies)

    # Dana's own allowance is untouched, and the flooder may send again once the bucket refills.
    await dana.send(action="send", room_id=room_id, body="still here", client_msg_id="d-1")
    reply = await client.wait_for(lambda e: e.attrs.get("data-client-msg-id") == "d-1" and "data-seq" in e.attrs)
    assert "still here" in reply.text
    await asyncio.sleep(0.6)
    await client.send(action="send", room_id=room_id, body="after the pause", client_msg_id="c-late")
    await dana.wait_for(lambda e: e.attrs.get("data-client-msg-id") == "c-late" and "data-seq" in e.attrs)
    await close_all(client, dana)


async def test_a_change_that_fails_halfway_saves_and_announces_nothing(desk, monkeypatch):
    """If ending a room fails after its first writes, the transaction rolls back: the room stays
    active, no "ended" message exists, nobody is told, and the engineer gets server_error."""
    client, dana, room_id = await open_chat(desk)

    def broken(**kwargs):
        raise RuntimeError("note storage is down")

    monkeypatch.setattr("chat.services.add_system_note", broken)
    error = await dana.refused(action="end", room_id=room_id)

    assert error.attrs["data-error"] == "server_error"
    room = await sync_to_async(ChatRoom.objects.get)(pk=room_id)
    assert room.state == ChatRoom.State.ACTIVE and room.last_seq == 1
    assert await stored(room_id) == [(1, "Dana Reyes joined.")]
    await client.drain()
    assert seqs(client, room_id) == [1]
    assert not [e for e in client.received if e.attrs.get("data-event") == "room_closed"]

    monkeypatch.undo()
    await dana.send(action="end", room_id=room_id)
    ended = await client.wait_message(room_id, 2)
    assert "Dana Reyes ended the chat." in ended.text
    await client.wait_event("room_closed", room=room_id)
    await close_all(client, dana)


async def test_a_message_is_stored_as_sent_and_escaped_in_every_fragment(desk):
    """Markup in a body is kept verbatim in the database and reaches both sides only escaped."""
    client, dana, room_id = await open_chat(desk)
    body = '<script>alert("x")</script> <b>bold</b> & <img src=x onerror=alert(1)>'

    await client.send(action="send", room_id=room_id, body=body, client_msg_id="c-1")
    for socket in (client, dana):
        await socket.wait_message(room_id, 2)

    assert (await stored(room_id))[-1] == (2, body)
    for socket in (client, dana):
        frame = next(f for f in socket.frames if 'data-seq="2"' in f)
        assert "<script>" not in frame and "<b>" not in frame and "<img" not in frame
        assert "&lt;script&gt;" in frame and "&amp;" in frame
    await close_all(client, dana)


# --- Delivery: catch-up, duplicates, retries ----------------------------------------------------


async def test_a_message_whose_group_event_was_lost_is_filled_from_the_database(desk, monkeypatch):
    """The channel layer drops seq 2's event; seq 3's event reveals the gap and both arrive, in order."""
    client, dana, room_id = await open_chat(desk)
    deliver = events.publish

    def lossy(group, event):
        if not (event["type"] == "chat.message" and event["message"]["seq"] == 2):
            deliver(group, event)

    monkeypatch.setattr("deskchat.events.publish", lossy)
    await dana.send(action="send", room_id=room_id, body="lost in transit", client_msg_id="d-1")
    await dana.send(action="send", room_id=room_id, body="arrives", client_msg_id="d-2")

    for socket in (client, dana):
        await socket.wait_message(room_id, 3)
        await socket.drain()
        assert seqs(socket, room_id) == [1, 2, 3]
    assert "lost in transit" in client.messages(room_id)[1].text
    await close_all(client, dana)


async def test_a_message_event_delivered_twice_is_shown_once(desk, monkeypatch):
    """A duplicated group event (a retried publish) is dropped by its seq."""
    client, dana, room_id = await open_chat(desk)
    deliver = events.publish

    def twice(group, event):
        deliver(group, event)
        if event["type"] == "chat.message":
            deliver(group, event)

    monkeypatch.setattr("deskchat.events.publish", twice)
    await dana.send(action="send", room_id=room_id, body="once", client_msg_id="d-1")
    await client.wait_message(room_id, 2)
    await client.drain()
    assert seqs(client, room_id) == [1, 2]
    await close_all(client, dana)


async def test_live_messages_wait_for_the_sync_so_nothing_arrives_twice(desk):
    """A reconnected socket holds a room's live messages until its sync, which reads them from the
    database: each message arrives exactly once, in order."""
    client, dana, room_id = await open_chat(desk)
    again = await client_socket(desk.contact.user)
    await again.drain(timeout=0.2)

    await dana.send(action="send", room_id=room_id, body="while you were connecting", client_msg_id="d-1")
    await client.wait_message(room_id, 2)
    await again.drain(timeout=0.3)
    assert again.messages(room_id) == []  # held back: the browser has not said what it shows

    await again.send(action="sync", rooms={str(room_id): 1})
    await again.wait_message(room_id, 2)
    await dana.send(action="send", room_id=room_id, body="and after", client_msg_id="d-2")
    await again.wait_message(room_id, 3)
    await again.drain()
    assert seqs(again, room_id) == [2, 3]
    await close_all(client, dana, again)


async def test_a_send_retried_after_a_reconnect_is_not_stored_twice(desk):
    """The browser resends an unacknowledged message on its new socket; the stored one is kept and
    comes back through the sync, with no second copy."""
    client, dana, room_id = await open_chat(desk)
    await client.send(action="send", room_id=room_id, body="did this arrive?", client_msg_id="c-retry")
    await dana.wait_message(room_id, 2)
    await client.close()  # the ack was lost with the connection

    again = await client_socket(desk.contact.user)
    await again.send(action="sync", rooms={str(room_id): 1})
    await again.send(action="send", room_id=room_id, body="did this arrive?", client_msg_id="c-retry")
    await again.wait_message(room_id, 2)
    await again.drain()
    await dana.drain()

    assert await stored(room_id) == [(1, "Dana Reyes joined."), (2, "did this arrive?")]
    assert seqs(again, room_id) == [2]
    assert not [e for e in again.received if e.attrs.get("data-event") == "error"]  # a quiet success
    assert seqs(dana, room_id) == [1, 2]
    await close_all(again, dana)


# --- Typing and read position -----------------------------------------------------------------


async def test_typing_arrives_live_for_the_others_in_the_room(desk):
    """Carol typing shows "Carol … is typing" on Dana's HUD and stops when she stops; her own socket
    is not told about herself."""
    client, dana, room_id = await open_chat(desk)
    carol = desk.contact.user

    await client.send(action="typing", room_id=room_id, typing=True)
    typing = await dana.next_event("typing", room=room_id, user=carol.pk)
    assert typing.attrs["data-typing"] == "1" and "Carol Client is typing" in typing.text
    await client.send(action="typing", room_id=room_id, typing=False)
    stopped = await dana.next_event("typing", room=room_id, user=carol.pk)
    assert stopped.attrs["data-typing"] == "0" and "typing" not in stopped.text

    await client.drain()
    assert not [e for e in client.received if e.attrs.get("data-event") == "typing"]
    await close_all(client, dana)


async def test_the_read_position_arrives_live_and_is_stored(desk):
    """Carol reading up to seq 2 tells the room at once and is stored; reading back tells nobody."""
    client, dana, room_id = await open_chat(desk)
    await dana.send(action="send", room_id=room_id, body="hi", client_msg_id="d-1")
    await client.wait_message(room_id, 2)

    await client.send(action="read", room_id=room_id, seq=2)
    read = await dana.next_event("read", room=room_id, user=desk.contact.user_id)
    assert read.attrs["data-seq"] == "2"
    participant = await sync_to_async(ChatParticipant.objects.get)(room_id=room_id, user=desk.contact.user)
    assert participant.last_read_seq == 2

    await client.send(action="read", room_id=room_id, seq=1)
    await dana.drain()
    assert [e.attrs["data-seq"] for e in dana.received if e.attrs.get("data-event") == "read"] == ["2"]
    assert (await refresh(participant)).last_read_seq == 2
    await close_all(client, dana)


def watch_reads(monkeypatch) -> tuple[list[int], list[int]]:
    """Record the rows each write of read positions (a process's batch, or one mark_read) writes,
    and the seq of each `room.read` event published."""
    written, published = [], []
    mark_read, mark_reads, publish_async = services.mark_read, services.mark_reads, events.publish_async

    def counting(write):
        def counted(**kwargs):
            with rows_written() as rows:
                try:
                    return write(**kwargs)
                finally:
                    written.append(sum(rows))

        return counted

    async def spied(group, event):
        if event["type"] == "room.read":
            published.append(event["seq"])
        await publish_async(group, event)

    monkeypatch.setattr(services, "mark_read", counting(mark_read))
    monkeypatch.setattr(services, "mark_reads", counting(mark_reads))
    monkeypatch.setattr(events, "publish_async", spied)
    return written, published


def reads(socket) -> list[tuple[str, str]]:
    return [(e.attrs["data-user"], e.attrs["data-seq"]) for e in socket.received if e.attrs.get("data-event") == "read"]


async def test_a_burst_of_reads_not_ahead_writes_nothing_and_publishes_nothing(desk, monkeypatch):
    """Only the read that moves Carol's position on is written and told to the HUD; the same seq
    again, an older one or 0, however many, change no row and publish nothing."""
    client, dana, room_id = await open_chat(desk)
    await dana.send(action="send", room_id=room_id, body="hi", client_msg_id="d-1")
    await client.wait_message(room_id, 2)
    written, published = watch_reads(monkeypatch)

    await client.send(action="read", room_id=room_id, seq=2)
    await dana.next_event("read", room=room_id)
    for seq in (2, 1, 2, 0, 2, 2):
        await client.send(action="read", room_id=room_id, seq=seq)
    await client.assert_open()  # the frames before the ping are handled
    await dana.drain(settings.CHAT_READ_FLUSH_SECONDS + 0.5)  # and the process's batch of reads written

    assert written[0] == 1 and sum(written) == 1  # the later six merge into one report, which writes nothing
    assert published == [2]
    assert reads(dana) == [(str(desk.contact.user_id), "2")]
    participant = await sync_to_async(ChatParticipant.objects.get)(room_id=room_id, user=desk.contact.user)
    assert participant.last_read_seq == 2
    await close_all(client, dana)


async def test_an_engineers_read_is_told_to_nobody_and_a_clients_only_to_the_hud(desk, monkeypatch):
    """Dana's read is stored for her unread counts and sent to no socket; Carol's reaches Dana's
    HUD and none of Carol's own sockets: the portal shows no read positions."""
    client, dana, room_id = await open_chat(desk)
    other_tab = await client_socket(desk.contact.user)
    await other_tab.send(action="sync", rooms={})
    await dana.send(action="send", room_id=room_id, body="hi", client_msg_id="d-1")
    await client.wait_message(room_id, 2)
    await other_tab.wait_message(room_id, 2)
    _, published = watch_reads(monkeypatch)

    await dana.send(action="read", room_id=room_id, seq=2)
    await dana.assert_open()
    await client.send(action="read", room_id=room_id, seq=2)
    await dana.next_event("read", room=room_id, user=desk.contact.user_id)
    for socket in (client, other_tab, dana):
        await socket.drain()

    assert published == [2]
    assert reads(dana) == [(str(desk.contact.user_id), "2")]
    assert reads(client) == [] and reads(other_tab) == []
    engineer = await sync_to_async(ChatParticipant.objects.get)(room_id=room_id, user=desk.dana.user)
    assert engineer.last_read_seq == 2
    await close_all(client, other_tab, dana)


# --- Queue state, presence and the chat limit -------------------------------------------------


async def test_a_reconnecting_hud_rebuilds_its_queue_from_the_database(desk, f):
    """Requests that arrived while the HUD was away, and one that left, show correctly on reconnect."""
    dana = await staff_socket(desk.dana.user)
    await dana.wait_event("queue", count=0)
    await dana.close()

    first = await sync_to_async(services.request_chat)(contact=desk.contact, ticket=desk.ticket)
    ticket = await sync_to_async(f.make_ticket)(contact=await sync_to_async(f.make_contact)(chat="allow"))
    second = await sync_to_async(services.request_chat)(contact=ticket.contact, ticket=ticket)
    gone = await sync_to_async(f.make_ticket)(contact=await sync_to_async(f.make_contact)(chat="allow"))
    cancelled = await sync_to_async(services.request_chat)(contact=gone.contact, ticket=gone)
    await sync_to_async(services.cancel_request)(contact=gone.contact, request_id=cancelled.pk)

    again = await staff_socket(desk.dana.user)
    queue = await again.wait_event("queue")

    assert queue.attrs["data-count"] == "2"
    assert f"#{first.ticket_id} " in queue.text and f"#{second.ticket_id} " in queue.text
    assert f"#{cancelled.ticket_id} " not in queue.text
    await again.close()


async def test_a_missed_queue_nudge_is_healed_by_the_next_one(desk, f, monkeypatch):
    """The queue is redrawn from the database on every nudge, so one lost nudge costs nothing."""
    dana = await staff_socket(desk.dana.user)
    await dana.wait_event("queue", count=0)
    deliver = events.publish
    monkeypatch.setattr(
        "deskchat.events.publish",
        lambda group, event: None if event["type"] == "queue.changed" else deliver(group, event),
    )
    await sync_to_async(services.request_chat)(contact=desk.contact, ticket=desk.ticket)
    monkeypatch.undo()
    await dana.drain()
    assert [e.attrs["data-count"] for e in dana.received if e.attrs.get("data-event") == "queue"] == ["0"]

    ticket = await sync_to_async(f.make_ticket)(contact=await sync_to_async(f.make_contact)(chat="allow"))
    await sync_to_async(services.request_chat)(contact=ticket.contact, ticket=ticket)
    await dana.wait_event("queue", count=2)
    await dana.close()


async def test_an_open_hud_makes_its_engineer_alertable(desk):
    """Connecting the HUD marks the engineer seen now, so the queue says to alert them (data-notify=1)."""
    assert not selectors.is_online(desk.dana)
    dana = await staff_socket(desk.dana.user)
    queue = await dana.wait_event("queue")
    assert queue.attrs["data-notify"] == "1"
    assert selectors.is_online(await refresh(desk.dana))
    await dana.close()


async def test_an_engineer_with_no_hud_for_the_presence_timeout_is_offline_for_offers(desk, f, settings):
    """The ticket's engineer is offered a request first only while some HUD socket has refreshed them
    within CHAT_PRESENCE_TIMEOUT_SECONDS, whatever availability they set."""
    settings.CHAT_PRESENCE_TIMEOUT_SECONDS = 90
    lee = await sync_to_async(f.make_engineer)(display_name="Lee", queues=[desk.queue])
    await sync_to_async(Ticket.objects.filter(pk=desk.ticket.pk).update)(assigned_engineer=lee)
    hud = await staff_socket(lee.user)
    await hud.wait_event("queue", notify=1)
    await hud.close()
    # 91 s later, no process has refreshed Lee: still "available", but offline.
    await sync_to_async(Engineer.objects.filter(pk=lee.pk).update)(last_seen_at=timezone.now() - timedelta(seconds=91))
    dana = await staff_socket(desk.dana.user)
    await dana.wait_event("queue", count=0)

    client = await client_socket(desk.contact.user)
    await client.send(action="request_chat", ticket_id=desk.ticket.pk)
    request_id = int((await client.wait_event("client_state", state="waiting")).attrs["data-request-id"])

    request = await sync_to_async(ChatRequest.objects.get)(pk=request_id)
    assert request.offered_to_id is None  # straight to the whole queue
    await dana.wait_event("queue", count=1)
    assert (await refresh(lee)).availability == "available" and not selectors.is_online(lee)
    await close_all(client, dana)


async def test_an_engineer_with_an_open_hud_is_offered_their_tickets_request_first(desk, f):
    """While Lee's HUD is open he gets the request alone; the queue does not see it yet."""
    lee = await sync_to_async(f.make_engineer)(display_name="Lee", queues=[desk.queue])
    await sync_to_async(Ticket.objects.filter(pk=desk.ticket.pk).update)(assigned_engineer=lee)
    hud = await staff_socket(lee.user)
    dana = await staff_socket(desk.dana.user)
    await hud.wait_event("queue", count=0)
    await dana.wait_event("queue", count=0)

    client = await client_socket(desk.contact.user)
    await client.send(action="request_chat", ticket_id=desk.ticket.pk)
    offered = await hud.wait_event("queue", count=1)
    assert "Offered to you first" in offered.text
    await dana.drain()
    assert {e.attrs["data-count"] for e in dana.received if e.attrs.get("data-event") == "queue"} == {"0"}
    await close_all(client, hud, dana)


async def test_the_sweeper_keeps_engineers_with_an_open_hud_online(desk):
    """Each process refreshes last_seen_at for the engineers it holds HUD sockets for; one whose
    socket closed is not refreshed and drops offline after the timeout."""
    dana = await staff_socket(desk.dana.user)
    sam = await staff_socket(desk.sam.user)
    await sam.close()
    long_ago = timezone.now() - timedelta(hours=1)
    await sync_to_async(Engineer.objects.update)(last_seen_at=long_ago)

    sweeper = asyncio.create_task(presence.run_sweeper())
    try:
        for _ in range(100):
            if selectors.is_online(await refresh(desk.dana)):
                break
            await asyncio.sleep(0.05)
    finally:
        sweeper.cancel()
    assert selectors.is_online(await refresh(desk.dana))
    assert (await refresh(desk.sam)).last_seen_at == long_ago
    await dana.close()


async def test_an_engineer_at_their_chat_limit_is_not_alerted(desk, f):
    """At the concurrent-chat limit, the HUD still lists a new request but says not to alert
    (data-notify=0), while a colleague under the limit is alerted; freeing up alerts again."""
    await sync_to_async(Engineer.objects.filter(pk=desk.dana.pk).update)(max_concurrent_chats=1)
    client, dana, room_id = await open_chat(desk)
    sam = await staff_socket(desk.sam.user)
    await sam.wait_event("queue", count=0)

    await dana.wait_event("queue", count=0)  # Carol's request left the queue when Dana answered it
    await dana.drain()
    ticket = await sync_to_async(f.make_ticket)(contact=await sync_to_async(f.make_contact)(chat="allow"))
    await sync_to_async(services.request_chat)(contact=ticket.contact, ticket=ticket)

    assert (await dana.next_event("queue", count=1)).attrs["data-notify"] == "0"
    assert (await sam.next_event("queue", count=1)).attrs["data-notify"] == "1"
    await dana.send(action="end", room_id=room_id)
    await dana.wait_event("room_closed", room=room_id)
    await dana.send(action="set_availability", availability="available")  # any redraw re-reads the load
    await dana.next_event("queue", count=1, notify=1)
    await close_all(client, dana, sam)


# --- Queue flows (issue 13) ----------------------------------------------------------------------


async def test_the_client_is_told_when_the_last_engineer_leaves_and_another_answers_in_the_same_room(desk):
    """Dana leaves: Carol's dialog says so, with her place and the note and callback choices, her
    participants say "Waiting for an engineer", Sam's queue lists "returning: Carol (left by Dana)", and
    Sam's answer puts him in the same room, history and all."""
    client = await client_socket(desk.contact.user)
    dana = await staff_socket(desk.dana.user)
    sam = await staff_socket(desk.sam.user)
    for socket in (client, dana, sam):
        await socket.send(action="sync", rooms={})
    await sam.wait_event("queue", count=0)
    await client.send(action="request_chat", ticket_id=desk.ticket.pk)
    request_id = int((await client.wait_event("client_state", state="waiting")).attrs["data-request-id"])
    await dana.wait_event("queue", count=1)
    await dana.send(action="answer", request_id=request_id)
    room_id = int((await dana.wait_event("session")).attrs["data-room"])
    await client.wait_event("client_state", state="chatting")
    await client.send(action="send", room_id=room_id, body="My printer is smoking", client_msg_id="c-1")
    await client.wait_message(room_id, 2)

    mark, frames = len(client.received), len(client.frames)
    await dana.send(action="leave", room_id=room_id)
    state = await client.wait_event("client_state", state="waiting", returning=1, since=mark)
    assert state.attrs["data-room-id"] == str(room_id) and state.attrs["data-position"] == "1"
    assert "Dana Reyes left the chat" in state.text and "You're back in the queue, position 1." in state.text
    assert "Waiting for an engineer" in state.text  # the participants box, with Carol alone
    offer = next(f for f in client.frames[frames:] if 'id="chat-offer"' in f)
    assert "Leave a note" in offer and "Ask for a callback" in offer and "Keep waiting" in offer
    # Sam's socket holds unread frames of the first wait and the answer: wait for the queue that lists it again.
    queue = await sam.wait_for(lambda e: e.attrs.get("data-event") == "queue" and "returning:" in e.text)
    assert queue.attrs["data-count"] == "1"
    assert "returning: Carol Client (left by Dana Reyes)" in " ".join(queue.text.split())

    await sam.send(action="answer", request_id=request_id)
    session = await sam.wait_event("session")
    assert session.attrs["data-room"] == str(room_id)  # the same room
    await sam.wait_for(lambda e: "My printer is smoking" in e.text)  # with its history
    await client.wait_event("client_state", state="chatting", engineer_present=1, since=mark)
    assert (
        "Sam Okafor joined." in (await client.wait_message(room_id, 4)).text
    )  # in the same room, after "Dana Reyes left."
    await close_all(client, dana, sam)


async def test_join_chat_with_nobody_available_says_so_at_once_with_the_offers(desk):
    """No engineer has a HUD open: Join Chat answers "Nobody is available right now" with Leave a note,
    Ask for a callback and Keep waiting, not "You are next in the queue"; a note then ends the wait."""
    client = await client_socket(desk.contact.user)
    await client.send(action="request_chat", ticket_id=desk.ticket.pk)
    state = await client.wait_event("client_state", state="waiting", available=0)
    assert "Nobody is available right now" in state.text and "You are next" not in state.text
    offer = next(f for f in client.frames if 'data-state="waiting"' in f).split('id="chat-offer"')[1]
    assert "Leave a note" in offer and "Ask for a callback" in offer and "Keep waiting" in offer
    assert "In this chat: 1" in state.text and "Carol Client" in state.text and "Waiting for an engineer" in state.text

    mark = len(client.received)
    await client.send(action="note", request_id=int(state.attrs["data-request-id"]), body="VPN drops every hour")
    notice = await client.wait_event("notice", notice="note_added", since=mark)
    assert f"ticket #{desk.ticket.pk}" in notice.text
    await client.wait_event("client_state", state="idle", since=mark)
    note = await sync_to_async(lambda: desk.ticket.notes.get())()
    assert note.text == "VPN drops every hour" and not note.internal
    await client.close()


async def test_a_waiting_client_learns_when_the_last_engineer_goes_away(desk):
    """Dana is the only one online; she goes away: the server (set_availability, and every sweep) flags
    the waiting request and the client's dialog turns to the offers. Coming back turns it back."""
    dana = await staff_socket(desk.dana.user)
    await dana.wait_event("queue", count=0)
    client = await client_socket(desk.contact.user)
    await client.send(action="request_chat", ticket_id=desk.ticket.pk)
    state = await client.wait_event("client_state", state="waiting", available=1)
    assert "You are next in the queue." in state.text

    mark = len(client.received)
    await dana.send(action="set_availability", availability="away")
    state = await client.wait_event("client_state", state="waiting", available=0, since=mark)
    assert "Nobody is available right now" in state.text
    mark = len(client.received)
    await dana.send(action="set_availability", availability="available")
    await client.wait_event("client_state", state="waiting", available=1, since=mark)
    await close_all(client, dana)


async def test_the_question_typed_while_waiting_reaches_the_hud_queue_escaped(desk):
    """The client's draft is stored on the request and Dana's queue item shows it, escaped and truncated;
    a draft for a request that is not theirs is refused."""
    dana = await staff_socket(desk.dana.user)
    await dana.wait_event("queue", count=0)
    client = await client_socket(desk.contact.user)
    await client.send(action="request_chat", ticket_id=desk.ticket.pk)
    request_id = int((await client.wait_event("client_state", state="waiting")).attrs["data-request-id"])
    await dana.wait_event("queue", count=1)

    mark = len(dana.frames)
    draft = "<b>Outlook</b> asks for my password " + "again " * 40
    await client.send(action="draft", request_id=request_id, body=draft)
    await dana.wait_for(lambda e: e.attrs.get("data-event") == "queue" and "asks for my password again" in e.text)
    frame = next(f for f in dana.frames[mark:] if "queue-draft" in f)
    shown = frame.split('class="queue-draft"')[1].split("</p>")[0].split(">", 1)[1]
    assert "“&lt;b&gt;Outlook&lt;/b&gt; asks for my password again" in shown and "<b>" not in shown
    assert shown.endswith("…”") and len(shown) < 250  # truncated
    assert (await sync_to_async(ChatRequest.objects.get)(pk=request_id)).draft == " ".join(draft.split())

    await close_all(client, dana)


async def test_drafts_are_coalesced_never_answered_with_an_error_and_leave_supervisors_alone(desk, f):
    """A burst of drafts costs a write or two and ends with the latest; refused ones get no alert;
    the supervisors' board (which shows no drafts) is not nudged by them."""
    boss = await sync_to_async(f.make_engineer)(display_name="Bea", is_supervisor=True)
    dana = await staff_socket(desk.dana.user)
    await dana.wait_event("queue", count=0)
    client = await client_socket(desk.contact.user)
    await client.send(action="request_chat", ticket_id=desk.ticket.pk)
    request_id = int((await client.wait_event("client_state", state="waiting")).attrs["data-request-id"])
    await dana.wait_event("queue", count=1)
    board, connected, _ = await connect(boss.user, "/ws/hud/supervisor/")
    assert connected
    await board.communicator.receive_from(timeout=3)  # the board as it connects
    layer = get_channel_layer()
    supervisors = await layer.new_channel()
    await layer.group_add(supervisor_group(), supervisors)

    mark = len(client.received)
    writes = []
    listen = await layer.new_channel()
    await layer.group_add(queue_group(desk.queue.pk), listen)
    for n in range(20):
        await client.send(action="draft", request_id=request_id, body=f"Outlook asks again {n}")
    await client.send(action="draft", request_id=request_id + 1000, body="not mine")  # refused, silently
    await client.send(action="draft", request_id=request_id, body="y" * 600)  # longer than shown: cut
    await dana.wait_for(lambda e: e.attrs.get("data-event") == "queue" and "yyyy" in e.text, timeout=5)
    while True:
        try:
            writes.append(await asyncio.wait_for(layer.receive(listen), 0.5))
        except TimeoutError:
            break
    assert 1 <= len(writes) <= 3 and {w["type"] for w in writes} == {"queue.draft"}
    assert (await sync_to_async(ChatRequest.objects.get)(pk=request_id)).draft == "y" * 500
    await client.send(action="ping")
    await client.wait_event("pong", since=mark)
    assert not [e for e in client.received[mark:] if e.attrs.get("data-event") == "error"]
    with pytest.raises(asyncio.TimeoutError):  # no supervisor nudge came of any draft
        await asyncio.wait_for(layer.receive(supervisors), 0.3)
    await board.communicator.disconnect()
    await close_all(client, dana)


async def test_a_chat_back_in_the_queue_moves_those_who_asked_later_back_a_place(desk, f):
    """Nina asked after Carol's chat was answered, so she is next; Dana leaves Carol's chat, which takes
    its old place ahead of Nina: Nina's dialog says she is number 2 now."""
    nina = await sync_to_async(f.make_contact)(company=desk.contact.company, first_name="Nina")
    carol = await client_socket(desk.contact.user)
    behind = await client_socket(nina.user)
    dana = await staff_socket(desk.dana.user)
    await dana.wait_event("queue", count=0)
    await carol.send(action="request_chat", ticket_id=desk.ticket.pk)
    request_id = int((await carol.wait_event("client_state", state="waiting")).attrs["data-request-id"])
    await dana.send(action="answer", request_id=request_id)
    room_id = int((await dana.wait_event("session")).attrs["data-room"])
    await carol.wait_event("client_state", state="chatting")
    await behind.send(action="request_chat", ticket_id=desk.ticket.pk)
    assert (await behind.wait_event("client_state", state="waiting")).attrs["data-position"] == "1"

    mark = len(behind.received)
    await dana.send(action="leave", room_id=room_id)
    await carol.wait_event("client_state", state="waiting", returning=1, position=1)
    moved = await behind.wait_event("client_state", state="waiting", position=2, since=mark)
    assert "You are number 2 in the queue." in moved.text
    await close_all(carol, behind, dana)
