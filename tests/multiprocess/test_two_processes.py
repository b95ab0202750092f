"""Two real daphne processes sharing PostgreSQL and Redis, driven over real websockets.

A client on one process and engineers on both: queue updates reach every engineer, the chat
flows both ways, an answer on one process is refused as taken on the other, and requests past
their pickup timeout expire exactly once while both processes sweep. Nothing here is in-memory:
the processes share only the database and Redis, as in production.
"""

import asyncio
import json
from datetime import timedelta

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.utils import timezone

from chat.models import ChatMessage, ChatRequest
from chat.wire import parse
from tests import factories
from tests.chat.wsutil import session_cookie
from tests.conftest import origin_of

pytestmark = [pytest.mark.multiprocess, pytest.mark.postgres, pytest.mark.redis]


def describe(element) -> str:
    attrs = element.attrs
    detail = attrs.get("data-state") or attrs.get("data-count") or attrs.get("data-seq") or ""
    return f"{attrs.get('data-event') or 'msg'}:{detail}"


class Live:
    """One browser tab's socket on a real server: every element that arrives, parsed as htmx would."""

    def __init__(self, ws):
        self.ws = ws
        self.received = []
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, server, path: str, user) -> "Live":
        cookie = (await sync_to_async(session_cookie)(user)).decode()
        ws = await websockets.connect(
            server.ws_url + path,
            additional_headers={"Cookie": cookie, "Origin": origin_of(server.ws_url)},
            open_timeout=10,
            ping_interval=None,
        )
        return cls(ws)

    async def _read(self):
        try:
            async for frame in self.ws:
                self.received.extend(parse(frame))
        except websockets.exceptions.WebSocketException:
            pass

    async def send(self, **payload):
        await self.ws.send(json.dumps(payload))

    async def wait_for(self, predicate, timeout: float = 10.0, *, since: int = 0):
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for element in self.received[since:]:
                if predicate(element):
                    return element
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("timed out; received: " + ", ".join(map(describe, self.received)))
            await asyncio.sleep(0.02)

    async def wait_event(self, event, *, timeout: float = 10.0, since: int = 0, **attrs):
        def match(e):
            return e.attrs.get("data-event") == event and all(
                e.attrs.get(f"data-{k.replace('_', '-')}") == str(v) for k, v in attrs.items()
            )

        return await self.wait_for(match, timeout, since=since)

    async def wait_message(self, room_id, seq):
        return await self.wait_for(
            lambda e: e.attrs.get("data-room") == str(room_id) and e.attrs.get("data-seq") == str(seq)
        )

    def events(self, event, **attrs):
        return [
            e
            for e in self.received
            if e.attrs.get("data-event") == event
            and all(e.attrs.get(f"data-{k.replace('_', '-')}") == str(v) for k, v in attrs.items())
        ]

    def messages(self, room_id):
        return [e for e in self.received if "data-seq" in e.attrs and e.attrs.get("data-room") == str(room_id)]

    async def close(self):
        await self.ws.close()
        self.reader.cancel()


def clients_in_their_own_queues(desk) -> list[tuple]:
    """Add six contacts with a ticket each, every one of a company with its own queue of Dana and Sam
    (so no request waits behind another, and one's expiry moves nobody's place)."""
    clients = []
    for n, name in enumerate(("Chris", "Cleo", "Cody", "Cora", "Cyd", "Cal")):
        company = factories.make_company(chat="allow")
        factories.make_queue(name=f"Desk {name}", members=[desk.dana, desk.sam], order=n + 1).companies.add(company)
        clients.append(desk.add_contact(name, company=company))
    return clients


async def close_all(*sockets):
    for socket in sockets:
        await socket.close()


async def until_no_longer_waiting(request, timeout: float = 10.0) -> None:
    """Re-read the request until some process's sweeper has moved it on (or the time is up)."""
    for _ in range(int(timeout / 0.05)):
        await sync_to_async(request.refresh_from_db)()
        if request.state != ChatRequest.State.WAITING:
            return
        await asyncio.sleep(0.05)


async def test_a_client_on_one_process_chats_with_an_engineer_on_the_other(daphne_servers, desk):
    """The queue update reaches engineers on both processes, Sam on B answers Carol on A, Dana on A sees
    the request leave her queue and is told it was taken, and messages flow both ways in order."""
    a, b = daphne_servers(2)
    carol = desk.contact
    client = await Live.open(a, "/ws/chat/", carol.user)
    dana = await Live.open(a, "/ws/hud/", desk.dana.user)
    sam = await Live.open(b, "/ws/hud/", desk.sam.user)
    for socket in (client, dana, sam):
        await socket.send(action="sync", rooms={})
    await dana.wait_event("queue", count=0)
    await sam.wait_event("queue", count=0)

    await client.send(action="request_chat", ticket_id=desk.ticket.pk)
    request_id = int((await client.wait_event("client_state", state="waiting")).attrs["data-request-id"])
    await dana.wait_event("queue", count=1)  # same process as the client
    await sam.wait_event("queue", count=1)  # the other process, through Redis
    offered = len(dana.received)

    await sam.send(action="answer", request_id=request_id)
    room_id = int((await sam.wait_event("session")).attrs["data-room"])
    await client.wait_event("client_state", state="chatting", engineer_present=1)
    assert "Sam Okafor joined" in (await client.wait_message(room_id, 1)).text
    await dana.wait_event("queue", count=0, since=offered)  # taken, so gone from the other process's HUD
    mark = len(dana.received)
    await dana.send(action="answer", request_id=request_id)
    taken = await dana.wait_event("error", since=mark)
    assert taken.attrs["data-error"] == "taken"

    await client.send(action="send", room_id=room_id, body="Hello from process A", client_msg_id="c-1")
    assert "Hello from process A" in (await sam.wait_message(room_id, 2)).text
    await sam.send(action="send", room_id=room_id, body="Hi from process B", client_msg_id="s-1")
    assert "Hi from process B" in (await client.wait_message(room_id, 3)).text
    await client.send(action="send", room_id=room_id, body="Thanks", client_msg_id="c-2")
    await sam.wait_message(room_id, 4)

    await asyncio.sleep(0.3)
    assert [e.attrs["data-seq"] for e in client.messages(room_id)] == ["1", "2", "3", "4"]
    assert [e.attrs["data-seq"] for e in sam.messages(room_id)] == ["1", "2", "3", "4"]
    stored = await sync_to_async(
        lambda: list(ChatMessage.objects.filter(room_id=room_id).values_list("seq", flat=True).order_by("seq"))
    )()
    assert stored == [1, 2, 3, 4]
    await close_all(client, dana, sam)


async def test_requests_expire_exactly_once_with_both_processes_sweeping(daphne_servers, desk):
    """With a 5 s pickup timeout and both processes sweeping every 10 ms, each of six waiting requests
    expires once: one state change, one redraw for its contact, and both HUDs see the queue empty.

    5 s leaves room to queue all six before the first expires, even on a busy machine."""
    waiting = await sync_to_async(clients_in_their_own_queues)(desk)  # before the HUDs join their queues
    a, b = daphne_servers(2, CHAT_PICKUP_TIMEOUT_SECONDS=5, CHAT_SWEEP_INTERVAL_SECONDS=0.01)
    dana = await Live.open(a, "/ws/hud/", desk.dana.user)  # a socket on each process starts its sweeper
    sam = await Live.open(b, "/ws/hud/", desk.sam.user)
    clients = [await Live.open((a, b)[n % 2], "/ws/chat/", contact.user) for n, (contact, _) in enumerate(waiting)]
    for client, (_, ticket) in zip(clients, waiting):  # all at once, so they fall due together
        await client.send(action="request_chat", ticket_id=ticket.pk)
    for client in clients:
        await client.wait_event("client_state", state="waiting")
    await dana.wait_event("queue", count=6)
    await sam.wait_event("queue", count=6)
    full = {dana: len(dana.received), sam: len(sam.received)}

    for client in clients:
        await client.wait_event("client_state", state="expired", timeout=15)
    for hud, since in full.items():
        await hud.wait_event("queue", count=0, since=since)
    await asyncio.sleep(1.0)  # room for a second expiry to show up, if there were one

    requests = await sync_to_async(lambda: list(ChatRequest.objects.all()))()
    assert [r.state for r in requests] == [ChatRequest.State.EXPIRED] * 6
    assert all(r.ended_at >= r.expires_at for r in requests)
    for client in clients:
        # One "waiting" redraw for the request itself, then exactly one for its expiry.
        assert [e.attrs["data-state"] for e in client.events("client_state")][-2:] == ["waiting", "expired"]
        assert len(client.events("client_state", state="expired")) == 1
    await close_all(dana, sam, *clients)


async def test_a_request_that_fell_due_while_no_process_ran_expires_on_the_first_sweep(daphne_servers, desk):
    """Deadlines are columns, not timers: a request past its pickup time before any server started is
    expired by the first process to sweep, and a second process changes nothing."""
    carol = desk.contact
    request = await sync_to_async(ChatRequest.objects.create)(
        kind=ChatRequest.Kind.CLIENT,
        ticket=desk.ticket,
        contact=carol,
        queue=desk.queue,
        expires_at=timezone.now() - timedelta(seconds=5),
    )
    a, b = daphne_servers(2, CHAT_SWEEP_INTERVAL_SECONDS=0.05)
    client = await Live.open(a, "/ws/chat/", carol.user)
    sam = await Live.open(b, "/ws/hud/", desk.sam.user)

    await until_no_longer_waiting(request)
    assert request.state == ChatRequest.State.EXPIRED
    ended_at = request.ended_at
    await asyncio.sleep(0.5)
    await sync_to_async(request.refresh_from_db)()
    assert request.ended_at == ended_at  # not expired a second time
    await sam.wait_event("queue", count=0)
    await close_all(client, sam)


async def test_a_process_sweeps_from_its_start_before_any_socket_opens(daphne_servers, desk):
    """A freshly started process expires due requests even while nobody has connected to it yet:
    its sweeper starts with daphne's reactor, not with the first websocket."""
    request = await sync_to_async(ChatRequest.objects.create)(
        kind=ChatRequest.Kind.CLIENT,
        ticket=desk.ticket,
        contact=desk.contact,
        queue=desk.queue,
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    daphne_servers(1, CHAT_SWEEP_INTERVAL_SECONDS=0.05)  # no socket, no page: nothing but the process

    await until_no_longer_waiting(request)
    assert request.state == ChatRequest.State.EXPIRED


async def test_a_chat_left_on_one_process_returns_to_the_queue_and_is_answered_on_the_other(daphne_servers, desk):
    """Dana (process A) answers Carol (process B), then leaves: Carol is told on B that she is back in the
    queue, first; Sam's HUD on B lists "returning: … (left by Dana)"; Sam answers into the same room."""
    a, b = daphne_servers(2)
    carol = desk.contact
    client = await Live.open(b, "/ws/chat/", carol.user)
    dana = await Live.open(a, "/ws/hud/", desk.dana.user)
    sam = await Live.open(b, "/ws/hud/", desk.sam.user)
    for socket in (client, dana, sam):
        await socket.send(action="sync", rooms={})
    await dana.wait_event("queue", count=0)
    await sam.wait_event("queue", count=0)
    await client.send(action="request_chat", ticket_id=desk.ticket.pk)
    request_id = int((await client.wait_event("client_state", state="waiting")).attrs["data-request-id"])
    await dana.wait_event("queue", count=1)
    await dana.send(action="answer", request_id=request_id)
    room_id = int((await dana.wait_event("session")).attrs["data-room"])
    await client.wait_event("client_state", state="chatting", engineer_present=1)
    await client.send(action="send", room_id=room_id, body="The VPN drops", client_msg_id="c-1")
    await dana.wait_message(room_id, 2)

    mark, sam_mark = len(client.received), len(sam.received)
    await dana.send(action="leave", room_id=room_id)
    told = await client.wait_event("client_state", state="waiting", returning=1, since=mark)
    assert told.attrs["data-room-id"] == str(room_id)
    assert "Dana Reyes left the chat" in told.text and "You're back in the queue, position 1." in told.text
    queue = await sam.wait_for(
        lambda e: e.attrs.get("data-event") == "queue" and "returning:" in e.text, since=sam_mark
    )
    assert "returning: Carol Client (left by Dana Reyes)" in " ".join(queue.text.split())

    await sam.send(action="answer", request_id=request_id)
    assert (await sam.wait_event("session")).attrs["data-room"] == str(room_id)
    await client.wait_event("client_state", state="chatting", engineer_present=1, since=mark)
    assert "Sam Okafor joined." in (await client.wait_message(room_id, 4)).text
    await sam.send(action="send", room_id=room_id, body="Sam here, I have your history", client_msg_id="s-1")
    assert "Sam here" in (await client.wait_message(room_id, 5)).text
    request = await sync_to_async(ChatRequest.objects.get)(pk=request_id)
    assert request.state == ChatRequest.State.ANSWERED and request.answered_by_id == desk.sam.pk
    await close_all(client, dana, sam)


async def test_the_last_engineer_going_offline_on_one_process_is_told_to_a_client_on_the_other(daphne_servers, desk):
    """Dana's only HUD is on A; it closes. No process refreshes her any more, and once the presence timeout
    passes a sweeper (either process) flags Carol's request: her dialog on B says nobody is available."""
    a, b = daphne_servers(2, CHAT_PRESENCE_TIMEOUT_SECONDS=6, CHAT_SWEEP_INTERVAL_SECONDS=0.2)
    carol = desk.contact
    dana = await Live.open(a, "/ws/hud/", desk.dana.user)
    await dana.wait_event("queue", count=0)
    client = await Live.open(b, "/ws/chat/", carol.user)
    await client.send(action="request_chat", ticket_id=desk.ticket.pk)
    state = await client.wait_event("client_state", state="waiting")
    assert state.attrs["data-available"] == "1", "Dana is online: asked within the presence timeout"
    mark = len(client.received)
    await dana.close()

    told = await client.wait_event("client_state", state="waiting", available=0, since=mark, timeout=30)
    assert "Nobody is available right now" in told.text
    assert (await sync_to_async(ChatRequest.objects.get)(pk=int(state.attrs["data-request-id"]))).nobody_available
    await client.close()
