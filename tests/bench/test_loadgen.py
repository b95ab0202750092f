"""bench/loadgen.py's tabs send what the pages' scripts send, when the scripts send it.

No server here: a tab's socket is a stand-in that keeps what is sent, and frames "arrive" as
the server writes them. tests/browser/test_loadgen_frames.py holds the whole generator against
two real browsers.
"""

import asyncio
import json

import pytest

from bench import loadgen


class StandIn:
    """A socket that keeps the frames sent over it."""

    def __init__(self):
        self.sent: list[dict] = []

    async def send(self, text: str) -> None:
        self.sent.append(json.loads(text))

    async def close(self) -> None:
        pass


def message(room: int, seq: int, client_msg_id: str = "") -> str:
    return (
        f'<ol id="room-{room}-messages" hx-swap-oob="beforeend" data-event="messages" data-room="{room}">'
        f'<li id="msg-{room}-{seq}" class="msg msg-text" data-seq="{seq}" data-room="{room}" data-kind="text" '
        f'data-client-msg-id="{client_msg_id}"><div class="msg-body">hi</div></li></ol>'
    )


def tab(role: str = "client", rooms=(7,), profile=loadgen.BROWSER) -> loadgen.Tab:
    made = loadgen.Tab(f"ws://localhost/ws/{'hud' if role == 'engineer' else 'chat'}/", profile=profile, rooms=rooms)
    made.ws = StandIn()
    return made


def actions(made: loadgen.Tab) -> list[str]:
    return [frame["action"] for frame in made.ws.sent]


@pytest.fixture
def quick(monkeypatch):
    """The scripts' seconds, shortened tenfold, so the tests wait a little."""
    monkeypatch.setattr(loadgen, "READ_EVERY_S", 0.1)
    monkeypatch.setattr(loadgen, "DRAFT_AFTER_S", 0.05)
    monkeypatch.setattr(loadgen, "RETRY_FIRST_S", 0.05)


async def arrive(made: loadgen.Tab, *frames: str) -> None:
    for frame in frames:
        made.heard(frame, asyncio.get_running_loop().time())
    await asyncio.sleep(0.01)  # the report due now goes


async def test_read_reports_are_coalesced_to_one_per_room_a_second(quick):
    """A burst of messages is reported once at once and once more a second later, with the highest seq;
    nothing goes when the seq has not advanced."""
    client = tab()
    await arrive(client, message(7, 1))
    await arrive(client, message(7, 2), message(7, 3))
    await asyncio.sleep(0.15)
    await arrive(client, message(7, 3))  # nothing new
    await asyncio.sleep(0.15)
    assert [f for f in client.ws.sent if f["action"] == "read"] == [
        {"action": "read", "room_id": 7, "seq": 1},
        {"action": "read", "room_id": 7, "seq": 3},
    ]


async def test_an_engineer_reports_only_the_session_in_front(quick):
    """Messages in a session behind another tab are reported once the engineer brings it to the front."""
    engineer = tab("engineer", rooms=(7, 8))
    await arrive(engineer, message(8, 4))
    assert "read" not in actions(engineer)
    await engineer.write(8)
    await asyncio.sleep(0.01)
    assert [f for f in engineer.ws.sent if f["action"] == "read"] == [{"action": "read", "room_id": 8, "seq": 4}]


async def test_a_closed_room_is_neither_reported_read_nor_typed_in(quick):
    client = tab()
    await arrive(client, '<div id="room-7-closed" data-event="room_closed" data-room="7" data-state="active"></div>')
    await arrive(client, message(7, 5))
    await client.write(7)
    assert actions(client) == []


async def test_typing_goes_at_most_every_three_seconds_and_the_message_itself_ends_it():
    """As socket.js: typing: true once for a message written within 3 s, and no typing: false on
    sending (the message's arrival ends the notice on the other side)."""
    client = tab()
    await client.write(7)
    await client.write(7)
    await client.post(7, "hello", "m-1")
    assert client.ws.sent == [
        {"action": "typing", "room_id": 7, "typing": True},
        {"action": "send", "room_id": 7, "body": "hello", "client_msg_id": "m-1"},
    ]


async def test_a_reconnect_syncs_with_the_seqs_it_has_then_sends_the_unacknowledged_again(monkeypatch):
    client = tab()
    sockets = [client.ws, StandIn()]

    async def reopen():
        client.ws = sockets[1]
        client.connects += 1

    async def pong():
        pass

    monkeypatch.setattr(client, "open", reopen)
    monkeypatch.setattr(client, "ping", pong)
    await client.post(7, "acknowledged", "m-1")
    await client.post(7, "lost with the connection", "m-2")
    await arrive(client, message(7, 3, "m-1"))
    await client.reconnect()
    assert sockets[1].sent[:2] == [
        {"action": "sync", "rooms": {"7": 3}},
        {"action": "send", "room_id": 7, "body": "lost with the connection", "client_msg_id": "m-2"},
    ]


async def test_a_waiting_client_sends_its_question_as_a_draft_once(quick):
    client = tab(rooms=())
    waiting = '<div id="chat-status" data-event="client_state" data-state="waiting" data-request-id="3" data-room-id=""></div>'
    await arrive(client, waiting, waiting)
    await asyncio.sleep(0.1)
    assert actions(client) == ["draft"] and client.ws.sent[0]["request_id"] == 3


async def test_a_not_now_refusal_is_sent_again_with_the_same_id_and_any_other_is_dropped(quick):
    client = tab()
    await client.post(7, "retry me", "m-1")
    await client.post(7, "too long", "m-2")
    await arrive(
        client, '<div id="chat-errors" data-event="error" data-error="unavailable" data-client-msg-id="m-1"></div>'
    )
    await arrive(
        client, '<div id="chat-errors" data-event="error" data-error="too_long" data-client-msg-id="m-2"></div>'
    )
    await asyncio.sleep(0.15)
    assert [f["client_msg_id"] for f in client.ws.sent if f["action"] == "send"] == ["m-1", "m-2", "m-1"]
    assert list(client.pending) == ["m-1"]


async def test_the_legacy_profile_sends_messages_only(quick):
    """For comparing with results from before: no typing, read reports, drafts or re-sends of refusals."""
    client = tab(profile=loadgen.LEGACY)
    await client.write(7)
    await client.post(7, "hello", "m-1")
    await arrive(
        client,
        message(7, 1, "m-1"),
        '<div id="chat-status" data-event="client_state" data-state="waiting" data-request-id="3"></div>',
    )
    await asyncio.sleep(0.15)
    assert actions(client) == ["send"]


async def test_a_refused_handshake_is_tried_again_after_a_growing_random_wait_as_htmx_does(monkeypatch):
    """A process past CHAT_CONNECTS_IN_PROGRESS answers 403: the tab waits up to 1 s, 2 s, 4 s … and tries again."""
    client = tab()
    waits: list[float] = []
    tries = []

    async def refused_twice(*, timeout: float = 30.0):
        tries.append(client.url)
        if len(tries) <= 2:
            raise OSError("HTTP 403")
        client.ws = StandIn()

    async def pong():
        pass

    async def sleep(seconds):
        waits.append(seconds)

    monkeypatch.setattr(client, "open", refused_twice)
    monkeypatch.setattr(client, "ping", pong)
    monkeypatch.setattr(loadgen.random, "uniform", lambda low, high: high)  # the longest wait each time
    monkeypatch.setattr(loadgen.asyncio, "sleep", sleep)
    await client.come_back("ws://other/ws/chat/")
    assert tries == ["ws://other/ws/chat/"] * 3
    assert waits == [1.0, 2.0, 4.0]
    assert client.ws.sent[0] == {"action": "sync", "rooms": {"7": 0}}


async def test_a_socket_closed_with_4503_comes_back_at_the_turn_the_server_gave(monkeypatch):
    """Past CHAT_CONNECTS_IN_PROGRESS the server accepts, then closes with 4503 and a wait in ms, as socket.js reads it."""
    client = tab()
    waits: list[float] = []
    opened = []

    async def open_then_turned_away(*, timeout: float = 30.0):
        client.ws = StandIn()
        client.ws.close_code, client.ws.close_reason = (4503, "1500") if not opened else (None, "")
        opened.append(True)

    async def pong():
        if client.ws.close_code == 4503:
            raise ConnectionError("closed before the pong")

    async def sleep(seconds):
        waits.append(seconds)

    monkeypatch.setattr(client, "open", open_then_turned_away)
    monkeypatch.setattr(client, "ping", pong)
    monkeypatch.setattr(loadgen.random, "uniform", lambda low, high: high)
    monkeypatch.setattr(loadgen.asyncio, "sleep", sleep)
    await client.come_back("ws://other/ws/chat/")
    assert waits == [1.0, pytest.approx(1.65)]  # the first try within 1 s; then 1.5 s, +10% at most
    assert client.tries == 2
