"""Fuzz both consumers' frame handling with hypothesis, through the real ASGI stack.

One socket per consumer stays open for thousands of generated frames: well-formed actions with
real and nonsense ids, wrong types, huge numbers, nested junk, hostile text and raw non-JSON.
After each frame a ping must still get its pong, and no frame may end in `server_error` (an
unhandled exception). At the end the database must still keep its promises: gapless sequence
numbers in every room and at most one waiting request per contact and kind.

Hypothesis drives a synchronous function, so the socket lives on an event loop in a helper thread
and each example runs its exchange there.
"""

import asyncio
import json
import threading
from collections import Counter

import pytest
from django.db.models import Count, Max, Min
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from chat.models import ChatMessage, ChatRequest, ChatRoom
from chat.sockets.client import ClientSocket
from chat.sockets.hud import HudSocket
from tests.chat.wsutil import client_socket, staff_socket

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = 3000
PING = json.dumps({"action": "ping"})
FIELDS = [
    "room_id",
    "ticket_id",
    "request_id",
    "engineer_id",
    "seq",
    "body",
    "client_msg_id",
    "kind",
    "typing",
    "transfer",
    "availability",
    "rooms",
]
PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "<svg onload=alert(1)>",
    "[x](javascript:alert(1))",
    "{client_first_name}",
    "%s%s%n",
    "' OR 1=1 --",
    "\u202e\u200b",
    "😀" * 5,
]


ACTION_FIELDS = {
    "sync": ["rooms"],
    "send": ["room_id", "body", "client_msg_id", "kind"],
    "typing": ["room_id", "typing"],
    "read": ["room_id", "seq"],
    "leave": ["room_id"],
    "request_chat": ["ticket_id"],
    "cancel": ["request_id"],
    "callback": ["request_id", "body"],
    "accept_invitation": ["request_id"],
    "reject_invitation": ["request_id"],
    "answer": ["request_id"],
    "join": ["room_id"],
    "end": ["room_id"],
    "invite_engineer": ["room_id", "engineer_id", "transfer"],
    "invite_contact": ["ticket_id"],
    "cancel_invitation": ["request_id"],
    "set_availability": ["availability"],
}


class LoopThread:
    """An event loop running in a daemon thread; `run` waits for a coroutine on it."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def loop_thread():
    runner = LoopThread()
    yield runner
    runner.stop()


@pytest.fixture
def unthrottled(settings):
    """Let every generated frame through the per-socket bucket (flooding has its own tests)."""
    settings.CHAT_RATE_BURST = 10**9
    settings.CHAT_RATE_PER_SECOND = 10**9
    settings.CHAT_REQUEST_RATE_PER_MINUTE = 10**9


def frames(actions: list[str], ids: list[int], room_id: int):
    """Frames as text: mostly JSON objects with an action and some fields, sometimes raw junk."""
    hostile_text = st.text(alphabet=st.characters(categories=["L", "N", "P", "S", "Z", "Cc", "Cs"]), max_size=40)
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**80), max_value=2**80)
        | st.floats(allow_nan=True, allow_infinity=True)
        | hostile_text
        | st.sampled_from(PAYLOADS)
    )
    junk = st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=8,
    )
    value = (
        st.sampled_from(ids)
        | st.sampled_from(ids).map(str)
        | st.sampled_from(["text", "greeting", "farewell", "available", "busy", "away"])
        | st.text(min_size=1, max_size=60)
        | st.sampled_from(PAYLOADS)
        | junk
    )
    rooms = st.dictionaries(
        st.sampled_from(ids).map(str) | st.text(max_size=5), st.integers(-5, 2**40) | junk, max_size=4
    )
    obj = st.fixed_dictionaries(
        {"action": st.sampled_from(actions) | hostile_text | junk},
        optional={**{name: value for name in FIELDS}, "rooms": rooms | junk},
    )
    # Plausible frames: the right fields for the action, mostly real ids, so writes really happen.
    real_id = st.sampled_from(ids) | st.sampled_from(ids).map(str)
    field_values = {
        "body": st.text(min_size=1, max_size=60) | st.sampled_from(PAYLOADS) | hostile_text,
        "client_msg_id": st.text(max_size=12),
        "kind": st.sampled_from(["text", "greeting", "farewell", "system", ""]),
        "availability": st.sampled_from(["available", "busy", "away", "offline"]),
        "typing": st.booleans(),
        "transfer": st.booleans(),
        "seq": st.integers(-3, 2**40),
        "rooms": rooms,
    }

    def plausible_for(action):
        fields = {name: field_values.get(name, real_id) | junk for name in ACTION_FIELDS.get(action, ())}
        return st.fixed_dictionaries({"action": st.just(action), **fields})

    # Leaving or ending the one live room would turn every later send into not_participant, so
    # plausible frames keep it open (random frames still try both, with ids that rarely match).
    plausible = st.sampled_from([a for a in actions if a not in ("leave", "end")]).flatmap(plausible_for)
    # Sends into the live room, so hostile text really reaches the database and the fragments.
    sends = st.fixed_dictionaries(
        {
            "action": st.just("send"),
            "room_id": st.just(room_id) | st.just(str(room_id)),
            "body": field_values["body"],
            "client_msg_id": st.text(max_size=12) | hostile_text,
        },
        optional={"kind": field_values["kind"]},
    ).map(lambda frame: json.dumps(frame))
    as_json = (obj | plausible | plausible).map(lambda frame: json.dumps(frame, allow_nan=True))
    raw = st.text(min_size=1, max_size=200) | st.sampled_from(["[]", "null", "1e999", "{", '{"action":', "[" * 500])
    return st.one_of(as_json, as_json, sends, raw).filter(lambda text: text != "")


async def exchange(socket, frame: str) -> list[str]:
    """Send a frame, then a ping; return everything that arrived up to the pong."""
    await socket.communicator.send_to(text_data=frame)
    await socket.communicator.send_to(text_data=PING)
    received = []
    while True:
        text = await socket.communicator.receive_from(timeout=20)
        text.encode("utf-8")  # what daphne does before sending: a lone surrogate would fail here
        received.append(text)
        if 'data-event="pong"' in text:
            return received


def assert_database_keeps_its_promises():
    """Every room's messages are numbered 1..last_seq without a gap (unique (room, seq) rules out twins).

    Read in one statement, so a system message the sweeper appends meanwhile cannot fall between
    a read of the rooms and a read of their messages.
    """
    rooms = ChatRoom.objects.annotate(count=Count("messages"), low=Min("messages__seq"), high=Max("messages__seq"))
    for room in rooms:
        numbered = (room.count, room.low or 0, room.high or 0)
        expected = (room.last_seq, 1 if room.last_seq else 0, room.last_seq)
        assert numbered == expected, (
            f"room {room.pk} has gaps: (count, lowest, highest) {numbered}, last_seq {room.last_seq}"
        )
    waiting = Counter(ChatRequest.objects.filter(state="waiting").values_list("contact_id", "kind"))
    assert all(count == 1 for count in waiting.values()), waiting


def _fuzz(world, loop_thread, opener, user, actions):
    ids = sorted(
        {
            0,
            1,
            2**31,
            world["room"].pk,
            world["ticket"].pk,
            world["request"].pk,
            world["waiting"].pk,
            world["invitation"].pk,
            world["their_ticket"].pk,
            world["ken_ticket"].pk,
            world["carl_ticket"].pk,
            world["dana"].pk,
            world["sam"].pk,
            world["eve"].pk,
        }
    )
    socket = loop_thread.run(opener(user))
    loop_thread.run(exchange(socket, json.dumps({"action": "sync", "rooms": {}})))
    seen = Counter()

    @hsettings(
        max_examples=EXAMPLES, deadline=None, database=None, derandomize=False, suppress_health_check=list(HealthCheck)
    )
    @given(frame=frames(actions, ids, world["room"].pk))
    def check(frame):
        received = loop_thread.run(exchange(socket, frame))
        for text in received:
            assert 'data-error="server_error"' not in text, f"frame {frame!r} broke the consumer: {text}"
            for code in ("bad_frame", "unknown_action", "not_participant", "not_found"):
                if f'data-error="{code}"' in text:
                    seen[code] += 1
        seen["examples"] += 1

    messages_before = ChatMessage.objects.count()
    check()
    # The same socket still serves, and a legitimate message still goes through after all that.
    assert any('data-event="pong"' in t for t in loop_thread.run(exchange(socket, PING)))
    loop_thread.run(socket.close())
    assert seen["examples"] >= EXAMPLES
    assert seen["bad_frame"] and seen["unknown_action"], seen  # the generator reached the refusals
    assert ChatMessage.objects.count() > messages_before, "no generated send was ever stored"
    assert_database_keeps_its_promises()
    return seen


def test_fuzz_the_client_consumer(world, loop_thread, unthrottled):
    """3,000 generated frames on Carol's socket: no crash, no server_error, constraints hold."""
    actions = sorted(ClientSocket.actions(ClientSocket()))
    _fuzz(world, loop_thread, client_socket, world["carol"].user, actions)


def test_fuzz_the_hud_consumer(world, loop_thread, unthrottled):
    """3,000 generated frames on Dana's HUD socket: no crash, no server_error, constraints hold."""
    actions = sorted(HudSocket.actions(HudSocket()))
    _fuzz(world, loop_thread, staff_socket, world["dana"].user, actions)
