"""A process works on a bounded number of websocket handshakes at once (deskchat/admission.py)."""

import asyncio

import pytest
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.testing import WebsocketCommunicator
from django.db.backends import utils as db_utils

from deskchat.admission import CLOSE_TRY_LATER, SCOPE_KEY, TURN_OPTIMISM, ConnectGate, Connects, connects
from tests.chat.wsutil import connect, pin_session_cookie


class SlowToConnect(AsyncWebsocketConsumer):
    """A consumer whose connect's reads take until the test lets them finish."""

    reads_done: asyncio.Event
    started: list

    async def connect(self):
        self.started.append(self.scope["path"])
        await self.accept()
        await self.reads_done.wait()
        self.scope[SCOPE_KEY].release()


@pytest.fixture
def slow(settings):
    SlowToConnect.reads_done, SlowToConnect.started = asyncio.Event(), []
    return ConnectGate(SlowToConnect.as_asgi())


async def turned_away_after(communicator) -> int | None:
    """Return the milliseconds a 4503 close said to wait, or None if the socket stayed open."""
    if await communicator.receive_nothing(timeout=0.05):
        return None
    closed = await communicator.receive_output()
    assert closed["type"] == "websocket.close" and closed["code"] == CLOSE_TRY_LATER, closed
    return int(closed["reason"])


# Channels closes stale database connections around a consumer's handlers, even this one's.
@pytest.mark.django_db
async def test_past_the_limit_a_handshake_waits_in_line_and_gets_the_first_place_given_back(slow, settings):
    settings.CHAT_CONNECTS_IN_PROGRESS = 2
    first, second, third = (WebsocketCommunicator(slow, f"/{n}/") for n in ("first", "second", "third"))
    assert (await first.connect(timeout=1))[0] and (await second.connect(timeout=1))[0]
    waiting = asyncio.ensure_future(third.connect(timeout=2))
    await asyncio.sleep(0.1)
    assert not waiting.done() and SlowToConnect.started == ["/first/", "/second/"]
    assert len(connects().waiting) == 1

    SlowToConnect.reads_done.set()  # the first two finish their connects: the third takes a place
    assert (await waiting)[0]
    await asyncio.sleep(0.05)
    assert SlowToConnect.started == ["/first/", "/second/", "/third/"]
    assert connects().in_progress == 0 and not connects().waiting
    for communicator in (first, second, third):
        await communicator.disconnect()


@pytest.mark.django_db
async def test_past_what_the_line_can_take_a_handshake_is_turned_away_with_a_turn(slow, settings):
    """One place, and a line as long as the process takes in three seconds (three): the fifth is told when to come."""
    settings.CHAT_CONNECTS_IN_PROGRESS = 1
    sockets = [WebsocketCommunicator(slow, f"/{n}/") for n in range(5)]
    assert (await sockets[0].connect(timeout=1))[0]
    in_line = [asyncio.ensure_future(s.connect(timeout=5)) for s in sockets[1:4]]
    await asyncio.sleep(0.1)
    assert len(connects().waiting) == 3

    assert (await sockets[4].connect(timeout=1))[0]  # accepted, so the page gets the code and reason
    wait_ms = await turned_away_after(sockets[4])
    # after the three in line, at one a second, and its own turn, spaced TURN_OPTIMISM times closer
    assert wait_ms == round(1000 * (3 + 1 / TURN_OPTIMISM))
    assert SlowToConnect.started == ["/0/"]

    SlowToConnect.reads_done.set()
    assert all(connected for connected, _ in await asyncio.gather(*in_line))
    for communicator in sockets[:4]:
        await communicator.disconnect()
    assert connects().in_progress == 0


@pytest.mark.django_db
async def test_a_handshake_that_goes_away_while_in_line_leaves_no_place_held_by_nobody(slow, settings):
    """A handshake cancelled in line (its browser gave up) must not be handed the place given back next."""
    settings.CHAT_CONNECTS_IN_PROGRESS = 1
    count = connects()
    assert await count.enter()
    gone = asyncio.ensure_future(count.enter())
    await asyncio.sleep(0.05)
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    count.leave()
    assert count.in_progress == 0
    assert await count.enter()  # the next one gets straight in
    count.leave()

    assert await count.enter()
    handed = asyncio.ensure_future(count.enter())
    await asyncio.sleep(0.05)
    count.leave()  # the place passes to the one in line, which is cancelled before it runs on
    handed.cancel()
    (outcome,) = await asyncio.gather(handed, return_exceptions=True)
    if outcome is True:  # the cancel came too late: it holds its place, as any handshake let in, and gives it back
        count.leave()
    assert count.in_progress == 0


@pytest.mark.django_db
async def test_a_browser_that_gives_up_while_in_line_is_never_worked_on(slow, settings):
    """It closed its socket before its turn: the gate drops it, and the place goes to whoever is next."""
    settings.CHAT_CONNECTS_IN_PROGRESS = 1
    first, quitter, patient = (WebsocketCommunicator(slow, f"/{n}/") for n in ("first", "quitter", "patient"))
    assert (await first.connect(timeout=1))[0]
    in_line = asyncio.ensure_future(quitter.connect(timeout=3))
    await asyncio.sleep(0.05)
    waiting = asyncio.ensure_future(patient.connect(timeout=3))
    await asyncio.sleep(0.05)
    await quitter.send_input({"type": "websocket.disconnect", "code": 1006})
    await asyncio.gather(in_line, return_exceptions=True)
    assert connects().in_line == 1

    SlowToConnect.reads_done.set()
    assert (await waiting)[0]
    await asyncio.sleep(0.05)
    assert SlowToConnect.started == ["/first/", "/patient/"]
    for communicator in (first, patient):
        await communicator.disconnect()
    assert connects().in_progress == 0


@pytest.mark.django_db
async def test_a_handshake_closed_before_its_reads_are_done_gives_its_place_back(slow, settings):
    settings.CHAT_CONNECTS_IN_PROGRESS = 1
    first = WebsocketCommunicator(slow, "/first/")
    assert (await first.connect(timeout=1))[0]
    assert connects().in_progress == 1
    await first.disconnect()  # the application ends: its place is free whatever it did
    assert connects().in_progress == 0


@pytest.mark.django_db(transaction=True)
async def test_a_turned_away_handshake_costs_the_database_nothing_and_the_next_gets_in(desk, settings, monkeypatch):
    """Through the real stack: with every place and the line taken, no session is read; once there is room, the socket opens."""
    settings.CHAT_CONNECTS_IN_PROGRESS = 3
    statements = []
    original = db_utils.CursorWrapper._execute_with_wrappers
    monkeypatch.setattr(
        db_utils.CursorWrapper,
        "_execute_with_wrappers",
        lambda self, sql, *a, **k: statements.append(sql) or original(self, sql, *a, **k),
    )
    await pin_session_cookie(monkeypatch, desk.contact.user)
    count = connects()
    count.in_progress, count.in_line = 3, 9  # three handshakes of other browsers in progress, nine more in line
    statements.clear()
    turned_away, admitted, _ = await connect(desk.contact.user, "/ws/chat/")
    assert admitted and await turned_away_after(turned_away.communicator) > 0
    assert statements == []

    count.in_progress, count.in_line = 2, 0
    socket, admitted, _ = await connect(desk.contact.user, "/ws/chat/")
    assert admitted
    await socket.wait_event("client_state")
    assert count.in_progress == 2  # its own place given back once its connect's reads were done
    await socket.close()


def test_turns_are_spaced_by_the_rate_connects_finish(settings, monkeypatch):
    """32 places, each held 16 s lately: two connects a second, turns handed out at TURN_OPTIMISM times that."""
    settings.CHAT_CONNECTS_IN_PROGRESS = 32
    monkeypatch.setattr("deskchat.admission.TURN_OPTIMISM", 2.0)
    clock = [1000.0]
    monkeypatch.setattr("deskchat.admission.time.monotonic", lambda: clock[0])
    count = Connects()
    assert count.turn() == pytest.approx(1 / 64)  # nothing finished yet: a place's worth a second, twice over
    count.next_turn = 0.0
    count.in_progress = 10
    for _ in range(10):
        count.leave(held_s=16.0)
    assert [round(count.turn(), 2) for _ in range(3)] == [0.25, 0.5, 0.75]
    clock[0] += 0.5  # half a second later, the next turn is still after the last one handed out
    assert round(count.turn(), 2) == 0.5
