"""Limits per user and per socket: how many sockets one user holds, what a user event costs, and floods.

One contact with hundreds of sockets made every event for them a read per socket on the process's
one database thread; a flood of costly frames queued without limit, since the rate limit was only
applied when Channels handed a frame over, after the frames before it were done.
"""

import asyncio
import contextlib
import json

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from chat import services
from chat.models import ChatMessage
from chat.sockets.shared import CLOSE_TOO_MANY_SOCKETS, process_backlog
from deskchat.events import user_group
from tests.chat.wsutil import client_socket, connect, staff_socket

pytestmark = pytest.mark.django_db(transaction=True)


@contextlib.asynccontextmanager
async def database_thread_statements():
    """Collect every SQL statement the process's database thread (where consumers read) runs meanwhile."""
    from django.db import connection

    seen: list[str] = []

    def wrapper(execute, sql, *rest):
        seen.append(sql)
        return execute(sql, *rest)

    # `connection` is per thread: reach it from inside the database thread.
    await sync_to_async(lambda: connection.execute_wrappers.append(wrapper))()
    try:
        yield seen
    finally:
        await sync_to_async(lambda: connection.execute_wrappers.remove(wrapper))()


def reads(statements: list[str]) -> list[str]:
    return [s for s in statements if not s.startswith(("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "ROLLBACK"))]


# --- Sockets per user ------------------------------------------------------------------------


async def test_a_user_past_the_cap_gets_a_clear_close_code(world, settings):
    """The CHAT_MAX_SOCKETS_PER_USER+1-th socket of one user closes with 4429 and a reason; others are untouched."""
    settings.CHAT_MAX_SOCKETS_PER_USER = 3
    held = [await client_socket(world["carol"].user) for _ in range(3)]
    extra, connected, _ = await connect(world["carol"].user, "/ws/chat/")
    assert connected  # accepted, so that the close code and reason reach the browser
    closing = await extra.communicator.receive_output(timeout=2)
    assert closing == {
        "type": "websocket.close",
        "code": CLOSE_TOO_MANY_SOCKETS,
        "reason": "Too many open chat windows for this user: close one, then reload this page.",
    }
    await extra.communicator.wait()
    # Other users, and Carol's own sockets, carry on.
    dana = await staff_socket(world["dana"].user)
    for socket in [*held, dana]:
        await socket.assert_open()
    # Closing one of hers frees a place.
    await held.pop().close()
    again = await client_socket(world["carol"].user)
    await again.assert_open()
    for socket in [*held, again, dana]:
        await socket.close()


async def test_refused_sockets_do_not_count_towards_the_cap(world, settings):
    """A contact knocking at the HUD socket (4403) many times still opens their own chat socket."""
    settings.CHAT_MAX_SOCKETS_PER_USER = 2
    for _ in range(5):
        _, connected, code = await connect(world["carol"].user, "/ws/hud/")
        assert not connected and code == 4403
    sockets = [await client_socket(world["carol"].user) for _ in range(2)]
    for socket in sockets:
        await socket.close()


async def test_supervisor_view_sockets_count_towards_the_cap(world, settings):
    """The supervisor view's socket is a socket like any other: past the cap it closes with 4429."""
    settings.CHAT_MAX_SOCKETS_PER_USER = 2
    sue = world["sue"].user
    held = [await staff_socket(sue)]
    board, connected, _ = await connect(sue, "/ws/hud/supervisor/")
    assert connected
    held.append(board)
    extra, connected, _ = await connect(sue, "/ws/hud/supervisor/")
    assert connected
    frames = []
    while (frame := await extra.communicator.receive_output(timeout=2))["type"] != "websocket.close":
        frames.append(frame)
    assert frame["code"] == CLOSE_TOO_MANY_SOCKETS and not frames  # no board is sent past the cap
    await held.pop().close()  # a closed supervisor socket frees its place
    again, connected, _ = await connect(sue, "/ws/hud/supervisor/")
    assert connected
    assert 'id="supervisor-board"' in await again.communicator.receive_from(timeout=3)  # the board arrives
    for socket in [*held, again]:
        await socket.close()


async def test_refused_supervisor_sockets_do_not_count_towards_the_cap(world, settings):
    """An engineer who is not a supervisor knocking at the supervisor socket (4403) keeps their HUD."""
    settings.CHAT_MAX_SOCKETS_PER_USER = 1
    for _ in range(3):
        _, connected, code = await connect(world["dana"].user, "/ws/hud/supervisor/")
        assert not connected and code == 4403
    hud = await staff_socket(world["dana"].user)
    await hud.assert_open()
    await hud.close()


async def test_a_cap_of_zero_means_no_cap(world, settings):
    settings.CHAT_MAX_SOCKETS_PER_USER = 0
    sockets = [await client_socket(world["carol"].user) for _ in range(25)]
    await sockets[-1].assert_open()
    for socket in sockets:
        await socket.close()


# --- One read per user, not per socket --------------------------------------------------------


async def _statements_for_an_event(user, open_socket, event, answer: str, count: int) -> list[str]:
    sockets = [await open_socket(user) for _ in range(count)]
    for socket in sockets:
        await socket.drain(0.2)
    marks = [len(socket.received) for socket in sockets]
    async with database_thread_statements() as seen:
        await get_channel_layer().group_send(user_group(user.pk), event)
        for socket, mark in zip(sockets, marks, strict=True):
            await socket.wait_event(answer, since=mark)
        await asyncio.sleep(0.1)
    for socket in sockets:
        await socket.close()
    return reads(seen)


@pytest.mark.parametrize(
    "role, event, answer",
    [
        ("carol", {"type": "request.changed", "request_id": 0, "state": "answered"}, "client_state"),
        ("cleo", {"type": "invitation.changed", "request_id": 0}, "client_state"),
        ("sam", {"type": "room.invited", "room_id": None}, "room_invitation"),
        ("dana", {"type": "invitation.changed", "request_id": None}, "sent_invitation"),
    ],
)
async def test_an_event_for_a_user_costs_the_same_reads_for_five_sockets_as_for_one(world, role, event, answer):
    """request.changed, invitation.changed, room.invited …: K sockets of one user share each read."""
    if event.get("room_id", 0) is None:
        event = {**event, "room_id": world["room"].pk}
    if event.get("request_id", 0) is None:
        event = {**event, "request_id": world["invitation"].pk}
    staff = role in ("dana", "sam")
    if event["type"] == "room.invited":  # the card shows only a room the engineer is invited into
        await sync_to_async(services.invite_engineer)(room_id=world["room"].pk, by=world["dana"], engineer=world["sam"])
    user = world[role].user
    open_socket = staff_socket if staff else client_socket
    one = await _statements_for_an_event(user, open_socket, event, answer, 1)
    five = await _statements_for_an_event(user, open_socket, event, answer, 5)
    assert len(one) >= 1
    assert len(five) == len(one), "\n".join(s[:120] for s in five)


# --- Frames: checked on arrival, bounded work -------------------------------------------------


async def test_a_sync_naming_fifty_made_up_rooms_costs_one_read(world):
    """Rooms the user was never in are found out with one query for all of them, and nothing is said about them."""
    eve = await staff_socket(world["eve"].user)
    await eve.drain(0.2)
    mark = len(eve.received)
    async with database_thread_statements() as seen:
        await eve.send(action="sync", rooms={str(10**6 + n): 3 for n in range(50)} | {str(world["room"].pk): 0})
        await eve.send(action="ping")
        await eve.wait_event("pong", since=mark)
    assert len(reads(seen)) == 1, "\n".join(s[:120] for s in seen)
    assert [e.attrs.get("data-event") for e in eve.received[mark:]] == ["pong"]
    await eve.close()


async def test_over_limit_frames_are_refused_on_arrival(world, settings, monkeypatch):
    """Past the backlog, sends are refused at once with rate_limited: before the accepted ones are even stored."""
    settings.CHAT_RATE_BURST = 1000
    settings.CHAT_FRAME_BACKLOG = 3
    room_id = world["room"].pk
    carol = await client_socket(world["carol"].user)
    await carol.send(action="sync", rooms={})
    await carol.drain(0.3)
    # The first send takes half a second while the burst arrives, as on a busy process:
    # how many frames a quick thread finishes meanwhile is the machine's, not the limit's.
    send_message, calls = services.send_message_async, []

    async def first_one_slow(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            await asyncio.sleep(0.5)
        return await send_message(**kwargs)

    monkeypatch.setattr(services, "send_message_async", first_one_slow)
    mark = len(carol.received)
    for n in range(30):
        await carol.send(action="send", room_id=room_id, body=f"burst {n}", client_msg_id=f"b{n}")
    await carol.drain(1.0)
    got = carol.received[mark:]
    refused = [e.attrs["data-client-msg-id"] for e in got if e.attrs.get("data-error") == "rate_limited"]
    stored = [e.attrs["data-client-msg-id"] for e in got if e.attrs.get("data-seq")]
    assert len(refused) >= 30 - 5 and set(refused).isdisjoint(stored)
    assert sorted(refused + stored, key=lambda c: int(c[1:])) == [f"b{n}" for n in range(30)]
    # Refusals went out as the frames arrived, ahead of the acks of the frames accepted before them.
    first_refusal = next(i for i, e in enumerate(got) if e.attrs.get("data-error") == "rate_limited")
    last_ack = max(i for i, e in enumerate(got) if e.attrs.get("data-seq"))
    assert first_refusal < last_ack
    await carol.assert_open()
    await carol.close()


async def test_past_the_process_backlog_sends_are_refused_as_busy_and_go_in_once_when_sent_again(
    world, settings, monkeypatch
):
    """Every socket's frames count together: past the cap a send is refused as busy, nothing stored.

    The same client_msg_id sent again once the load is gone is stored once; the sockets stay open.
    """
    settings.CHAT_RATE_BURST = 1000
    settings.CHAT_PROCESS_BACKLOG = 2
    room_id = world["room"].pk
    carol = await client_socket(world["carol"].user)
    dana = await staff_socket(world["dana"].user)
    for socket in (carol, dana):
        await socket.send(action="sync", rooms={})
        await socket.drain(0.3)
    send_message, release = services.send_message_async, asyncio.Event()

    async def held(**kwargs):  # a store that takes as long as an overloaded database
        await release.wait()
        return await send_message(**kwargs)

    monkeypatch.setattr(services, "send_message_async", held)
    await carol.send(action="send", room_id=room_id, body="one", client_msg_id="c1")
    await carol.send(action="send", room_id=room_id, body="two", client_msg_id="c2")
    for _ in range(100):  # until the process has taken both (one held in the store, one queued)
        if process_backlog().waiting == 2:
            break
        await asyncio.sleep(0.02)
    refusal = await dana.refused(action="send", room_id=room_id, body="On it", client_msg_id="d1")
    assert (refusal.attrs["data-error"], refusal.attrs["data-client-msg-id"]) == ("busy", "d1")
    assert "sent again" in refusal.text
    release.set()
    await carol.wait_for(lambda e: e.attrs.get("data-client-msg-id") == "c2" and e.attrs.get("data-seq"))
    assert not await ChatMessage.objects.filter(room_id=room_id, client_msg_id="d1").aexists()

    await dana.send(action="send", room_id=room_id, body="On it", client_msg_id="d1")
    await dana.send(action="send", room_id=room_id, body="On it", client_msg_id="d1")  # a second retry
    await carol.wait_for(lambda e: e.attrs.get("data-client-msg-id") == "d1" and e.attrs.get("data-seq"))
    for _ in range(250):  # the second retry is answered with nothing: wait until it is handled
        if process_backlog().waiting == 0:
            break
        await asyncio.sleep(0.02)
    assert process_backlog().waiting == 0
    assert await ChatMessage.objects.filter(room_id=room_id, client_msg_id="d1").acount() == 1
    await carol.assert_open()
    await dana.assert_open()
    await carol.close()
    await dana.close()


async def pong_within_retries(socket, attempts: int = 20) -> None:
    for _ in range(attempts):
        mark = len(socket.received)
        await socket.send(action="ping")
        with contextlib.suppress(AssertionError, TimeoutError):
            await socket.wait_for(lambda e: e.attrs.get("data-event") == "pong", timeout=0.5, since=mark)
            return
    raise AssertionError("no pong")


async def test_a_flood_of_costly_syncs_does_not_starve_other_sockets(world, settings):
    """20 sockets each send 60 syncs naming 50 made-up rooms: another socket's ping is answered, the flood's
    own pings too, and the whole flood costs the database thread a bounded number of reads."""
    settings.CHAT_MAX_SOCKETS_PER_USER = 0
    flooders = [await client_socket(world["carol"].user) for _ in range(20)]
    quiet = await staff_socket(world["dana"].user)
    for socket in [*flooders, quiet]:
        await socket.drain(0.1)
    costly = json.dumps({"action": "sync", "rooms": {str(10**6 + n): 1 for n in range(50)}})
    async with database_thread_statements() as seen:
        for _ in range(60):
            for socket in flooders:
                await socket.send_raw(costly)
        mark = len(quiet.received)
        await quiet.send(action="ping")
        await quiet.wait_event("pong", since=mark)
        at_pong = len(reads(seen))
        # The flooders' own pings: dropped while their backlog is full, answered once it drains,
        # as a browser's heartbeat would find.
        for socket in flooders:
            await pong_within_retries(socket)
    # Each flooder's frames past its backlog were dropped on arrival; what was accepted costs two
    # reads a sync (her room's catch-up, and one for all the made-up rooms), not fifty.
    bound = 20 * (settings.CHAT_FRAME_BACKLOG + 2) * 2
    assert at_pong <= bound and len(reads(seen)) <= bound, len(reads(seen))
    for socket in [*flooders, quiet]:
        await socket.close()
