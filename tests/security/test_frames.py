"""Hostile frames and hijacked handshakes.

Through the in-process ASGI stack: malformed JSON, wrong types, unknown actions, huge numbers and
text PostgreSQL cannot store each get an error frame, and the socket keeps serving (a ping still
gets a pong). Against a real daphne process: a frame over --websocket-max-message-size closes the
socket with 1009, and cross-origin or session-less handshakes are refused.
"""

import asyncio
import json

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chat.models import ChatMessage
from chat.wire import parse
from tests.chat.wsutil import client_socket, connect, session_cookie, staff_socket

pytestmark = pytest.mark.django_db(transaction=True)

MAX_MESSAGE_SIZE = settings.WEBSOCKET_MAX_MESSAGE_SIZE  # what tests/conftest.py's daphne_server passes to daphne


def _room(world):
    return world["room"].pk


HOSTILE = [
    # (label, raw frame or frame builder, expected error codes)
    ("not json", "{nope", {"bad_frame"}),
    ("blank", " ", {"bad_frame"}),
    ("json array", "[1, 2, 3]", {"bad_frame"}),
    ("json string", '"send"', {"bad_frame"}),
    ("json null", "null", {"bad_frame"}),
    ("deep nesting", "[" * 100_000 + "]" * 100_000, {"bad_frame"}),
    ("no action", "{}", {"unknown_action"}),
    ("unknown action", '{"action": "drop_tables"}', {"unknown_action"}),
    ("action is a list", '{"action": ["send"]}', {"unknown_action"}),
    ("action is a number", '{"action": 7}', {"unknown_action"}),
    ("dunder action", '{"action": "__class__"}', {"unknown_action"}),
    ("room id is text", lambda w: {"action": "send", "room_id": "seven", "body": "x"}, {"bad_frame"}),
    ("room id is a float", lambda w: {"action": "send", "room_id": 1.5, "body": "x"}, {"bad_frame"}),
    ("room id is true", lambda w: {"action": "send", "room_id": True, "body": "x"}, {"bad_frame"}),
    ("room id is negative", lambda w: {"action": "send", "room_id": -1, "body": "x"}, {"bad_frame"}),
    ("room id is huge", lambda w: {"action": "send", "room_id": 10**30, "body": "x"}, {"bad_frame"}),
    ("room id has 5000 digits", '{"action": "send", "room_id": ' + "9" * 5000 + ', "body": "x"}', {"bad_frame"}),
    ("room id is 1e999", '{"action": "send", "room_id": 1e999, "body": "x"}', {"bad_frame"}),
    ("room id is NaN", '{"action": "send", "room_id": NaN, "body": "x"}', {"bad_frame"}),
    ("room id as a huge digit string", lambda w: {"action": "send", "room_id": "9" * 400, "body": "x"}, {"bad_frame"}),
    (
        "body is a dict",
        lambda w: {"action": "send", "room_id": _room(w), "body": {"a": 1}, "client_msg_id": "q"},
        {"bad_frame"},
    ),
    (
        "body is too long",
        lambda w: {"action": "send", "room_id": _room(w), "body": "x" * 40_000, "client_msg_id": "q"},
        {"too_long"},
    ),
    (
        "body is blank",
        lambda w: {"action": "send", "room_id": _room(w), "body": " \n\t ", "client_msg_id": "q"},
        {"empty"},
    ),
    (
        "body with a NUL",
        lambda w: {"action": "send", "room_id": _room(w), "body": "a\x00b", "client_msg_id": "q"},
        {"bad_frame"},
    ),
    (
        "body with a lone surrogate",
        lambda w: '{"action": "send", "room_id": ' + str(_room(w)) + ', "body": "a\\ud800b", "client_msg_id": "q"}',
        {"bad_frame"},
    ),
    (
        "client_msg_id with a NUL",
        lambda w: {"action": "send", "room_id": _room(w), "body": "b", "client_msg_id": "\x00"},
        {"bad_frame"},
    ),
    (
        "client_msg_id is a list",
        lambda w: {"action": "send", "room_id": _room(w), "body": "b", "client_msg_id": [1]},
        {"bad_frame"},
    ),
    ("action with a lone surrogate", '{"action": "\\udfff"}', {"bad_frame", "unknown_action"}),
    ("read seq is huge", lambda w: {"action": "read", "room_id": _room(w), "seq": 2**63}, {"bad_frame"}),
    ("sync rooms is a list", lambda w: {"action": "sync", "rooms": [1, 2]}, {"bad_frame"}),
    ("callback body is a number", lambda w: {"action": "callback", "request_id": 1, "body": 5}, {"bad_frame"}),
    (
        "callback body with a NUL",
        lambda w: {"action": "callback", "request_id": w["request"].pk, "body": "\x00"},
        {"bad_frame", "not_waiting"},
    ),
    ("request ticket id is huge", lambda w: {"action": "request_chat", "ticket_id": 2**64}, {"bad_frame"}),
    ("request ticket id is an object", lambda w: {"action": "request_chat", "ticket_id": {"$gt": 0}}, {"bad_frame"}),
]
STAFF_HOSTILE = [
    (
        "bad kind",
        lambda w: {"action": "send", "room_id": _room(w), "body": "b", "kind": "system", "client_msg_id": "k"},
        {"bad_frame"},
    ),
    (
        "kind is a dict",
        lambda w: {"action": "send", "room_id": _room(w), "body": "b", "kind": {"a": 1}, "client_msg_id": "k"},
        {"bad_frame"},
    ),
    ("availability is a list", lambda w: {"action": "set_availability", "availability": ["away"]}, {"bad_frame"}),
    ("availability is offline", lambda w: {"action": "set_availability", "availability": "offline"}, {"bad_frame"}),
    ("availability with a NUL", lambda w: {"action": "set_availability", "availability": "away\x00"}, {"bad_frame"}),
    (
        "engineer id is huge",
        lambda w: {"action": "invite_engineer", "room_id": _room(w), "engineer_id": 2**60},
        {"bad_frame"},
    ),
    ("answer id is a string of zeros", lambda w: {"action": "answer", "request_id": "0000"}, {"not_found"}),
]


def _frame(world, spec) -> str:
    frame = spec(world) if callable(spec) else spec
    return frame if isinstance(frame, str) else json.dumps(frame)


async def _refusals(socket, world, cases) -> list:
    """Send each hostile frame on one socket; return the cases that did not get the expected error."""
    wrong = []
    for label, spec, codes in cases:
        socket.received.clear()
        await socket.send_raw(_frame(world, spec))
        await socket.send(action="ping")
        await socket.wait_event("pong")  # the socket still serves after every hostile frame
        errors = [e for e in socket.received if e.attrs.get("data-event") == "error"]
        if not errors or errors[0].attrs["data-error"] not in codes or not errors[0].text.strip():
            wrong.append((label, [(e.attrs.get("data-error"), e.text) for e in errors]))
    return wrong


async def test_hostile_client_frames_get_an_error_frame(world, settings):
    """Each hostile frame on the client socket gets its error frame (with a message a person can
    read), and the socket keeps serving: a ping after each still gets its pong."""
    settings.CHAT_RATE_BURST = 1000  # flooding has its own tests; here every frame must be answered
    socket = await client_socket(world["carol"].user)
    await socket.send(action="sync", rooms={})
    await socket.drain(0.2)
    wrong = await _refusals(socket, world, HOSTILE)
    await socket.close()
    assert not wrong, wrong


async def test_hostile_hud_frames_get_an_error_frame(world, settings):
    """The same on the HUD socket, with the HUD's own hostile frames."""
    settings.CHAT_RATE_BURST = 1000
    socket = await staff_socket(world["dana"].user)
    await socket.send(action="sync", rooms={})
    await socket.drain(0.2)
    # Client-only actions (request_chat, callback) are unknown on the HUD socket.
    client_only = [(label, spec, codes | {"unknown_action"}) for label, spec, codes in HOSTILE]
    wrong = await _refusals(socket, world, STAFF_HOSTILE + client_only)
    await socket.close()
    assert not wrong, wrong


async def test_binary_frames_are_refused_cleanly(world):
    """A binary frame (invalid UTF-8 or not) gets bad_frame, not a crash."""
    socket = await client_socket(world["carol"].user)
    for data in (b"\xff\xfe\x00", json.dumps({"action": "ping"}).encode() + b"\xff"):
        await socket.communicator.send_to(bytes_data=data)
        error = await socket.wait_event("error")
        assert error.attrs["data-error"] == "bad_frame"
        socket.received.clear()
    await socket.send(action="ping")
    await socket.wait_event("pong")
    await socket.close()


async def test_no_hostile_frame_stored_anything(world):
    """After every hostile send, the room holds only its original messages, gapless."""
    socket = await client_socket(world["carol"].user)
    for _, spec, _ in HOSTILE:
        await socket.send_raw(_frame(world, spec))
    await socket.send(action="ping")
    await socket.wait_event("pong")
    await socket.close()
    seqs = await sync_to_async(
        lambda: list(ChatMessage.objects.filter(room=world["room"]).values_list("seq", flat=True).order_by("seq"))
    )()
    assert seqs == [1, 2]


async def test_error_frames_escape_what_the_frame_said(world):
    """The unknown action and client_msg_id echoed in an error frame are escaped, not markup."""
    socket = await client_socket(world["carol"].user)
    await socket.communicator.receive_from()  # the client state sent on connect
    frames = []
    await socket.send(action="<img src=x onerror=alert(1)>")
    frames.append(await socket.communicator.receive_from())
    await socket.send(action="send", room_id=10**6, body="x", client_msg_id='"><script>alert(1)</script>')
    frames.append(await socket.communicator.receive_from())
    await socket.close()
    for frame in frames:
        assert 'data-event="error"' in frame
        assert "<img" not in frame and "<script" not in frame, frame
        assert "&lt;" in frame or "&quot;" in frame


# --- Handshakes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin", [b"http://evil.example", b"https://localhost.evil.example", b"null", b"http://127.0.0.1.nip.io"]
)
@pytest.mark.parametrize("path", ["/ws/chat/", "/ws/hud/"])
async def test_cross_origin_handshakes_are_refused(world, origin, path):
    """A page on another origin cannot open a socket with the victim's session cookie."""
    user = world["carol"].user if path == "/ws/chat/" else world["dana"].user
    _, connected, _ = await connect(user, path, origin=origin)
    assert not connected


async def test_a_handshake_without_origin_is_refused(world):
    """No Origin header at all (a non-browser client replaying a cookie) is refused as well."""
    from channels.testing import WebsocketCommunicator

    from deskchat.asgi import application

    cookie = await sync_to_async(session_cookie)(world["carol"].user)
    communicator = WebsocketCommunicator(
        application, "/ws/chat/", headers=[(b"host", b"localhost"), (b"cookie", cookie)]
    )
    connected, _ = await communicator.connect(timeout=5)
    assert not connected


async def test_a_forged_or_stale_session_is_refused(world):
    """A made-up session id, and the id of a session that was logged out, both get 4401."""
    from channels.testing import WebsocketCommunicator
    from django.contrib.sessions.models import Session

    from deskchat.asgi import application

    for cookie in (b"sessionid=forged0000000000000000000000000", None):
        if cookie is None:
            cookie = await sync_to_async(session_cookie)(world["carol"].user)
            await sync_to_async(Session.objects.all().delete)()
        communicator = WebsocketCommunicator(
            application,
            "/ws/chat/",
            headers=[(b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", cookie)],
        )
        connected, code = await communicator.connect(timeout=5)
        assert not connected and code == 4401


# --- A real daphne process ------------------------------------------------------------------


@pytest.fixture
def daphne_socket(world, daphne_servers):
    """A running daphne and what a browser of Carol's would present to it."""
    server = daphne_servers(1)[0]
    return server, session_cookie(world["carol"].user), f"http://127.0.0.1:{server.port}"


async def _open(server, cookie, origin, path="/ws/chat/"):
    headers = {"Origin": origin}
    if cookie:
        headers["Cookie"] = cookie.decode() if isinstance(cookie, bytes) else cookie
    return await websockets.connect(
        server.ws_url + path,
        additional_headers=headers,
        open_timeout=10,
        max_size=None,
        ping_interval=None,
        close_timeout=2,
    )


async def _until(ws, event: str, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        frame = await asyncio.wait_for(ws.recv(), timeout=max(0.1, deadline - asyncio.get_running_loop().time()))
        for element in parse(frame):
            if element.attrs.get("data-event") == event:
                return element


@pytest.mark.multiprocess
async def test_an_oversized_frame_closes_with_1009(daphne_socket):
    """A frame over daphne's --websocket-max-message-size closes that socket with 1009 (message too big)."""
    server, cookie, origin = daphne_socket
    ws = await _open(server, cookie, origin)
    await ws.send(json.dumps({"action": "ping"}))
    await _until(ws, "pong")
    await ws.send(json.dumps({"action": "send", "room_id": 1, "body": "x" * (MAX_MESSAGE_SIZE + 10)}))
    with pytest.raises(ConnectionClosed) as closed:
        for _ in range(20):
            await asyncio.wait_for(ws.recv(), timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009, closed.value
    # The server itself keeps serving: a new socket still gets its pong.
    again = await _open(server, cookie, origin)
    await again.send(json.dumps({"action": "ping"}))
    await _until(again, "pong")
    await again.close()


@pytest.mark.multiprocess
async def test_a_frame_just_under_the_limit_gets_an_error_not_a_close(daphne_socket):
    """60 KB of body is under daphne's limit but over the message limit: a too_long error frame."""
    server, cookie, origin = daphne_socket
    ws = await _open(server, cookie, origin)
    await ws.send(json.dumps({"action": "sync", "rooms": {}}))
    await ws.send(json.dumps({"action": "send", "room_id": 0, "body": "x" * 60_000, "client_msg_id": "big"}))
    error = await _until(ws, "error")
    assert error.attrs["data-error"] in {"too_long", "not_participant"}
    await ws.send(json.dumps({"action": "ping"}))
    await _until(ws, "pong")
    await ws.close()


@pytest.mark.multiprocess
async def test_daphne_refuses_cross_origin_and_sessionless_handshakes(daphne_socket):
    """On the real server both are rejected at the handshake: another origin, and no session."""
    server, cookie, origin = daphne_socket
    with pytest.raises((InvalidStatus, ConnectionClosed)):
        ws = await _open(server, cookie, "http://evil.example")
        await asyncio.wait_for(ws.recv(), timeout=5)
    # A consumer that closes before accepting makes daphne reject the handshake with HTTP 403.
    with pytest.raises(InvalidStatus) as rejected:
        await _open(server, None, origin)
    assert rejected.value.response.status_code == 403
