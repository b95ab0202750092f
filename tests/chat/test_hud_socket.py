"""The HUD socket's queue: who took a request, and no change left undrawn.

These sit apart from test_consumers.py (the engine's protocol and refusals) because they cover
what the Staff HUD shows (issue 5); they use the same real ASGI stack and helpers.
"""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from chat import services
from chat.sockets import hud as hud_socket
from tests.chat.wsutil import client_socket, staff_socket

pytestmark = pytest.mark.django_db(transaction=True)


async def test_engineers_who_saw_a_request_are_told_which_colleague_answered_it(desk):
    """When a request leaves the queue because a colleague answered it, the others get a note naming them."""
    client = await client_socket(desk.contact.user)
    dana = await staff_socket(desk.dana.user)
    sam = await staff_socket(desk.sam.user)
    await client.send(action="request_chat", ticket_id=desk.ticket.pk)
    request_id = int((await client.wait_event("client_state", state="waiting")).attrs["data-request-id"])
    await sam.wait_event("queue", count=1)
    await dana.wait_event("queue", count=1)

    mark = len(sam.received)
    await dana.send(action="answer", request_id=request_id)
    await dana.wait_event("session")
    await sam.wait_event("queue", count=0, since=mark)
    note = await sam.wait_event("notice", since=mark, notice="taken")
    assert note.text.strip() == "Dana Reyes answered Carol Client's chat."
    await dana.drain()
    assert not [e for e in dana.received if e.attrs.get("data-notice") == "taken"]
    for s in (client, dana, sam):
        await s.close()


async def test_a_request_cancelled_by_the_client_leaves_without_a_note(desk):
    """A request the client withdraws just leaves the queue: nobody is told a colleague took it."""
    client = await client_socket(desk.contact.user)
    sam = await staff_socket(desk.sam.user)
    await client.send(action="request_chat", ticket_id=desk.ticket.pk)
    request_id = int((await client.wait_event("client_state", state="waiting")).attrs["data-request-id"])
    await sam.wait_event("queue", count=1)
    mark = len(sam.received)
    await client.send(action="cancel", request_id=request_id)
    await sam.wait_event("queue", count=0, since=mark)
    await sam.drain()
    assert not [e for e in sam.received if e.attrs.get("data-event") == "notice"]
    await client.close()
    await sam.close()


async def test_a_queue_change_that_arrives_during_a_redraw_is_drawn_too(desk, monkeypatch):
    """A request that joins while the queue is being drawn from a read that missed it is drawn next."""
    drawn = asyncio.Event()
    release = asyncio.Event()
    original = hud_socket.draw_queue
    calls = []

    async def slow_draw_queue(engineer, moment):
        drawing = await original(engineer, moment)
        calls.append(drawing)
        if len(calls) == 2:  # the first redraw after the one on connect: hold it after its read
            drawn.set()
            await release.wait()
        return drawing

    monkeypatch.setattr(hud_socket, "draw_queue", slow_draw_queue)
    dana = await staff_socket(desk.dana.user)
    await dana.wait_event("queue", count=0)
    await sync_to_async(services.request_chat)(contact=desk.contact, ticket=desk.ticket)
    await asyncio.wait_for(drawn.wait(), 5)
    await sync_to_async(services.request_chat)(contact=desk.colleague, ticket=desk.colleague_ticket)
    await asyncio.sleep(0.3)  # let the second queue.changed reach the consumer while the redraw is held
    release.set()
    await dana.wait_event("queue", count=2)
    await dana.close()


async def test_hud_sockets_of_one_process_share_one_queue_read_per_change(desk, f, monkeypatch):
    """A new request costs one read of the queue however many HUDs watch it, and each HUD still
    sees only what it may: an engineer outside the queue shares the read but is shown nothing."""
    from chat import selectors

    outsider = await sync_to_async(f.make_engineer)(display_name="Olga Outside")
    reads = []
    original = selectors.queue_snapshot

    def counting_snapshot(**kwargs):
        reads.append(set(kwargs["engineer_ids"]))
        return original(**kwargs)

    monkeypatch.setattr(selectors, "queue_snapshot", counting_snapshot)
    engineers = [desk.dana, desk.sam, outsider]
    huds = [await staff_socket(engineer.user) for engineer in engineers]
    for hud in huds:
        await hud.wait_event("queue", count=0)
    reads.clear()

    await sync_to_async(services.request_chat)(contact=desk.contact, ticket=desk.ticket)
    await huds[0].wait_event("queue", count=1)
    await huds[1].wait_event("queue", count=1)
    for hud in huds:
        await hud.drain()
    assert len(reads) == 1
    assert reads[0] >= {e.pk for e in engineers}
    assert [e.attrs["data-count"] for e in huds[2].received if e.attrs.get("data-event") == "queue"] == ["0"]
    for hud in huds:
        await hud.close()


async def test_clients_behind_a_request_that_leaves_move_up_from_one_shared_read(desk, f, monkeypatch):
    """When the first in the queue leaves, everyone behind is told their new place, at the cost of
    one queue read for all of them; the socket that asked is not redrawn twice for its own request."""
    from chat import selectors

    @sync_to_async
    def third_contact():
        zoe = f.make_contact(company=desk.contact.company, first_name="Zoe")
        return zoe, f.make_ticket(contact=zoe)

    zoe, zoes_ticket = await third_contact()
    sockets = [await client_socket(c.user) for c in (desk.contact, desk.colleague, zoe)]
    for socket, ticket in zip(sockets, (desk.ticket, desk.colleague_ticket, zoes_ticket)):
        await socket.send(action="request_chat", ticket_id=ticket.pk)
        await socket.wait_event("client_state", state="waiting")
    for socket in sockets:
        await socket.drain()
    states = [[e for e in s.received if e.attrs.get("data-event") == "client_state"] for s in sockets]
    assert [len(drawn) for drawn in states] == [2, 2, 2]  # on connect, and after asking: not again for the nudge
    assert [drawn[-1].attrs["data-position"] for drawn in states] == ["1", "2", "3"]

    reads = []
    original = selectors.queue_snapshot
    monkeypatch.setattr(selectors, "queue_snapshot", lambda **kw: reads.append(1) or original(**kw))
    carol_request = int(states[0][-1].attrs["data-request-id"])
    await sockets[0].send(action="cancel", request_id=carol_request)
    await sockets[1].wait_event("client_state", position=1)
    await sockets[2].wait_event("client_state", position=2)
    assert len(reads) == 1
    for socket in sockets:
        await socket.close()


async def test_each_socket_writes_message_times_in_its_viewers_time_zone(desk):
    """One message, two viewers: the engineer in New York and the client in Tokyo each read their own time."""
    from django.utils import timezone

    from chat.models import ChatMessage
    from deskchat.timefmt import format_when

    def written_in(zone, moment):
        with timezone.override(zone):
            return format_when(moment)

    client = await client_socket(desk.contact.user, time_zone="Asia/Tokyo")
    dana = await staff_socket(desk.dana.user, time_zone="America/New_York")
    await dana.wait_event("queue", count=0)
    await client.send(action="sync", rooms={})
    await dana.send(action="sync", rooms={})
    await client.send(action="request_chat", ticket_id=desk.ticket.pk)
    state = await client.wait_event("client_state", state="waiting")
    await dana.send(action="answer", request_id=int(state.attrs["data-request-id"]))
    room_id = int((await dana.wait_event("session")).attrs["data-room"])
    # The client's socket takes the room once it hears room.opened (over Redis, after Dana's answer).
    await client.wait_event("client_state", state="chatting", engineer_present=1)
    await client.send(action="send", room_id=room_id, body="Hello", client_msg_id="c-1")
    seen_by_dana = await dana.wait_message(room_id, 2)
    seen_by_client = await client.wait_message(room_id, 2)
    created = (await sync_to_async(ChatMessage.objects.get)(room_id=room_id, seq=2)).created
    for viewer, zone in ((seen_by_dana, "America/New_York"), (seen_by_client, "Asia/Tokyo")):
        assert written_in(zone, created) in viewer.text, (zone, viewer.text)
    assert written_in("America/New_York", created) not in seen_by_client.text
    await client.close()
    await dana.close()


async def test_one_users_sockets_in_two_time_zones_share_no_drawn_moments(desk):
    """Carol has the portal open in Tokyo and in New York: a read her sockets share is drawn in the
    zone of the socket that started it, so sockets in another zone must not be handed it."""
    from django.utils import timezone

    from chat.sockets.client import ClientSocket
    from deskchat.timefmt import format_when

    moment = timezone.now()

    async def draw():  # what a shared render of a moment does
        return format_when(moment)

    def window(zone):
        socket = ClientSocket()
        socket.user, socket.heard_at, socket.zone = desk.contact.user, None, zone
        return socket

    async def shared_in(socket):
        with timezone.override(socket.zone):
            return await socket.shared("panel", draw)

    tokyo, new_york = window("Asia/Tokyo"), window("America/New_York")
    drawn = await asyncio.gather(shared_in(tokyo), shared_in(new_york), shared_in(window("Asia/Tokyo")))
    expected = []
    for zone in ("Asia/Tokyo", "America/New_York", "Asia/Tokyo"):
        with timezone.override(zone):
            expected.append(format_when(moment))
    assert drawn == expected and expected[0] != expected[1]


# --- The supervisor view's socket -------------------------------------------------------------


async def test_only_supervisors_open_the_supervisor_socket(desk, f):
    """A contact and an engineer who is not a supervisor are refused with 4403."""
    from tests.chat.wsutil import connect

    for user in (desk.contact.user, desk.dana.user):
        _, connected, code = await connect(user, "/ws/hud/supervisor/")
        assert not connected and code == 4403
    _, connected, code = await connect(None, "/ws/hud/supervisor/")
    assert not connected and code == 4401


async def test_supervisor_boards_are_live_and_share_one_read_per_change(desk, f, monkeypatch):
    """A new request and an answer reach every supervisor's board at once, one read for all of them."""
    from chat import selectors
    from chat.sockets import supervisor

    monkeypatch.setattr(supervisor, "REFRESH_SECONDS", 3600)
    bosses = [await sync_to_async(f.make_engineer)(display_name=f"Boss {n}", is_supervisor=True) for n in range(3)]
    reads = []
    original = selectors.supervisor_overview

    def counting_overview():
        reads.append(1)
        return original()

    monkeypatch.setattr(selectors, "supervisor_overview", counting_overview)
    sockets = [await connect_supervisor(boss.user) for boss in bosses]
    for socket in sockets:
        await socket.wait_event("supervisor")
        await socket.drain()
    reads.clear()

    request = await sync_to_async(services.request_chat)(contact=desk.contact, ticket=desk.ticket)
    for socket in sockets:
        board = await socket.next_event("supervisor")
        assert waiting_total(socket.frames[-1]) == "1", board
    for socket in sockets:
        await socket.drain()
    assert len(reads) == 1

    reads.clear()
    await sync_to_async(services.answer_request)(engineer=desk.dana, request_id=request.pk)
    for socket in sockets:
        await socket.next_event("supervisor")
        assert waiting_total(socket.frames[-1]) == "0"
        assert 'data-col="sessions">1 / 3<' in socket.frames[-1].split(f'data-engineer-id="{desk.dana.pk}"')[1]
    for socket in sockets:
        await socket.drain()
    assert len(reads) == 1
    for socket in sockets:
        await socket.close()


async def connect_supervisor(user):
    from tests.chat.wsutil import connect

    socket, connected, code = await connect(user, "/ws/hud/supervisor/")
    assert connected, code
    return socket


def waiting_total(frame: str) -> str:
    totals = frame.split("<tfoot>")[1]
    return totals.split('data-col="waiting">')[1].split("<")[0]


async def test_a_read_that_crosses_the_engineers_own_leave_is_not_refused(desk):
    """The HUD marks "Dana Reyes left." read as it arrives; by then the socket has left the room.
    That read used to come back as a red "You are not in this chat." on the HUD."""
    client = await client_socket(desk.contact.user)
    dana = await staff_socket(desk.dana.user)
    await client.send(action="sync", rooms={})
    await dana.send(action="sync", rooms={})
    await client.send(action="request_chat", ticket_id=desk.ticket.pk)
    state = await client.wait_event("client_state", state="waiting")
    await dana.send(action="answer", request_id=int(state.attrs["data-request-id"]))
    room_id = int((await dana.wait_event("session")).attrs["data-room"])
    await dana.send(action="leave", room_id=room_id)
    await dana.wait_event("room_closed", room=room_id)
    mark = len(dana.received)
    await dana.send(action="read", room_id=room_id, seq=2)
    await dana.drain()
    assert not [e for e in dana.received[mark:] if e.attrs.get("data-event") == "error"]
    await client.close()
    await dana.close()


async def test_the_taken_note_is_taken_back_when_the_request_returns_to_the_queue(desk):
    """Once the engineer who answered leaves, the request is back and no note says a colleague has it."""
    client = await client_socket(desk.contact.user)
    dana = await staff_socket(desk.dana.user)
    sam = await staff_socket(desk.sam.user)
    await client.send(action="request_chat", ticket_id=desk.ticket.pk)
    request_id = int((await client.wait_event("client_state", state="waiting")).attrs["data-request-id"])
    await sam.wait_event("queue", count=1)
    await dana.send(action="answer", request_id=request_id)
    room_id = int((await dana.wait_event("session")).attrs["data-room"])
    await sam.wait_event("notice", notice="taken")

    mark = len(sam.received)
    await dana.send(action="leave", room_id=room_id)
    await sam.wait_event("queue", count=1, since=mark)
    cleared = await sam.wait_event("notice", since=mark)
    assert cleared.attrs.get("data-notice") == "" and "hidden" in cleared.attrs and not cleared.text.strip()
    for s in (client, dana, sam):
        await s.close()
