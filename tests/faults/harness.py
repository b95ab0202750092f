"""A chat participant that behaves like the browser does across drops, and the tallies it keeps.

A `Peer` is one person's tab in one room: it reconnects to any live server, sends `sync` with the
last seq it shows, re-sends every message not yet acknowledged with the same client_msg_id (an
ack is the message coming back through the room), and retries refused sends. It records each
message seq in arrival order, across connections, so the test can count lost, duplicated and
reordered messages against the database. A `Racer` is an engineer's HUD tab that answers
requests and asks again through restarts until it gets a clear reply.

Used by tests/faults and bench/soak.py (through tests/faults/churn.py); it talks to real daphne
processes over real sockets.
"""

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass

import websockets

from chat.wire import parse
from tests.conftest import origin_of


def percentile(values: list[float], pct: float) -> float:
    """Return the pct-th percentile (nearest rank) of values, 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class Tally:
    """What one peer saw, judged against the room's messages in the database."""

    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    unacked: int = 0


class Peer:
    def __init__(self, *, name: str, path: str, session: str, room_id: int, urls, origin: str | None = None):
        self.name = name
        self.path = path
        self.cookie = f"sessionid={session}"
        self.room_id = room_id
        self.urls = urls  # a callable returning the ws base URLs of the servers to try
        self.origin = origin
        self.ws = None
        self.reader: asyncio.Task | None = None
        self.arrivals: list[int] = []  # every message seq, in arrival order, across connections
        self.last_seq = 0
        self.pending: dict[str, tuple[str, float]] = {}  # client_msg_id -> (body, last sent at)
        self.sent: set[str] = set()
        self.sent_count = 0
        self.errors: Counter[str] = Counter()
        self.refusals: list[tuple[str, str, str]] = []  # (client_msg_id, code, message) of refused sends
        self.catch_up_times: list[float] = []
        self.connects = 0
        self.connect_failures = 0
        self._pong: asyncio.Event | None = None
        self.last_message_at = 0.0  # monotonic time of the last message that arrived
        self.lock = asyncio.Lock()  # one reconnect at a time

    # --- Connection ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.ws is not None

    async def connect(self, *, timeout: float = 30.0) -> float:
        """Connect to a live server (retrying), sync, resend what is unacked; return the catch-up time.

        The catch-up time runs from opening the socket to the pong that follows the sync: the
        consumer handles frames in order, so by then every missed message has been sent.
        """
        deadline = time.monotonic() + timeout
        while True:
            url = random.choice(self.urls())
            started = time.monotonic()
            try:
                ws = await websockets.connect(
                    url + self.path,
                    additional_headers={"Cookie": self.cookie, "Origin": self.origin or origin_of(url)},
                    open_timeout=10,
                    close_timeout=2,
                    max_size=None,
                    ping_interval=None,
                )
                self.ws = ws
                self._pong = asyncio.Event()
                self.reader = asyncio.create_task(self._read(ws))
                await ws.send(json.dumps({"action": "sync", "rooms": {str(self.room_id): self.last_seq}}))
                await ws.send(json.dumps({"action": "ping"}))
                await asyncio.wait_for(self._pong.wait(), timeout=max(1.0, deadline - time.monotonic()))
                elapsed = time.monotonic() - started
                self.catch_up_times.append(elapsed)
                self.connects += 1
                await self.resend(older_than=0)
                return elapsed
            except (TimeoutError, OSError, websockets.exceptions.WebSocketException):
                self.connect_failures += 1
                await self.drop(abort=True)
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(random.uniform(0.1, 0.3))

    async def ensure_connected(self, *, timeout: float = 30.0) -> float | None:
        """Reconnect unless connected (or someone else is reconnecting this peer right now)."""
        if self.connected or self.lock.locked():
            return None
        async with self.lock:
            return await self.connect(timeout=timeout)

    async def bounce(self, *, pause: float = 0.0, timeout: float = 30.0) -> float:
        """Drop the connection (abruptly or politely, at random), wait, reconnect; return catch-up time."""
        async with self.lock:
            await self.drop(abort=random.random() < 0.5)
            if pause:
                await asyncio.sleep(pause)
            return await self.connect(timeout=timeout)

    async def drop(self, *, abort: bool = False) -> None:
        """Lose the connection: abort the TCP stream (a dropped network) or close it politely."""
        ws, self.ws = self.ws, None
        if ws is None:
            return
        if abort and ws.transport is not None:
            ws.transport.abort()
        else:
            try:
                await asyncio.wait_for(ws.close(), 2)
            except Exception:  # noqa: BLE001 - the server may be gone already
                pass
        if self.reader:
            self.reader.cancel()
            try:
                await self.reader
            except BaseException:  # noqa: BLE001
                pass
            self.reader = None

    async def _read(self, ws) -> None:
        try:
            async for frame in ws:
                self._handle(frame)
        except (websockets.exceptions.WebSocketException, OSError):
            pass
        finally:
            if self.ws is ws:
                self.ws = None  # the server went away; the test's loop reconnects

    def _handle(self, frame: str) -> None:
        for element in parse(frame):
            attrs = element.attrs
            if element.tag == "li" and "data-seq" in attrs and attrs.get("data-room") == str(self.room_id):
                seq = int(attrs["data-seq"])
                self.arrivals.append(seq)
                self.last_seq = max(self.last_seq, seq)
                self.last_message_at = time.monotonic()
                self.pending.pop(attrs.get("data-client-msg-id", ""), None)
            elif attrs.get("data-event") == "pong" and self._pong is not None:
                self._pong.set()
            elif attrs.get("data-event") == "error":
                self.errors[attrs.get("data-error", "")] += 1
                refused = attrs.get("data-client-msg-id", "")
                if refused in self.pending:  # retry it on the next resend round, as the browser does
                    body, _ = self.pending[refused]
                    self.pending[refused] = (body, 0.0)
                    self.refusals.append((refused, attrs.get("data-error", ""), element.text.strip()))

    # --- Sending -------------------------------------------------------------------------------

    async def send(self, body: str) -> None:
        """Send a message; while disconnected it waits in `pending`, as htmx queues it."""
        self.sent_count += 1
        client_msg_id = f"{self.name}-{self.sent_count}"
        self.sent.add(client_msg_id)
        self.pending[client_msg_id] = (body, time.monotonic())
        await self._send_frame(client_msg_id, body)

    async def _send_frame(self, client_msg_id: str, body: str) -> None:
        ws = self.ws
        if ws is None:
            return
        self.pending[client_msg_id] = (body, time.monotonic())
        try:
            await ws.send(
                json.dumps({"action": "send", "room_id": self.room_id, "body": body, "client_msg_id": client_msg_id})
            )
        except (websockets.exceptions.WebSocketException, OSError):
            pass

    async def resend(self, *, older_than: float = 2.0) -> None:
        """Send again every unacknowledged message last sent more than `older_than` seconds ago."""
        now = time.monotonic()
        for client_msg_id, (body, sent_at) in list(self.pending.items()):
            if now - sent_at >= older_than:
                await self._send_frame(client_msg_id, body)

    async def ping(self, timeout: float = 10.0) -> None:
        """Return once the server has handled every frame sent before this one."""
        self._pong = asyncio.Event()
        await self.ws.send(json.dumps({"action": "ping"}))
        await asyncio.wait_for(self._pong.wait(), timeout)

    async def final_sync(self, *, timeout: float = 60.0) -> None:
        """Reconnect and sync, so anything still missing (a live nudge may have been lost) arrives.

        A fresh connection, as the browser makes: a `sync` on an open socket would also re-send
        messages the server had already sent and that were still on their way.
        """
        async with self.lock:
            await self.drop()
            await self.connect(timeout=timeout)

    # --- Judging -------------------------------------------------------------------------------

    def tally(self, stored_seqs: list[int]) -> Tally:
        """Count lost, duplicated and reordered messages against the room's stored seqs."""
        seen = Counter(self.arrivals)
        highest = 0
        reordered = 0
        for seq in self.arrivals:
            if seq < highest and seen[seq] == 1:
                reordered += 1
            highest = max(highest, seq)
        return Tally(
            lost=len(set(stored_seqs) - set(seen)),
            duplicated=sum(count - 1 for count in seen.values()),
            reordered=reordered,
            unacked=len(self.pending),
        )


async def chatter(peer: "Peer", stop: asyncio.Event, *, interval: float) -> None:
    """Send a message about every `interval` seconds until stopped, retrying stale unacked ones."""
    n = 0
    while not stop.is_set():
        await asyncio.sleep(random.uniform(0.5, 1.5) * interval)
        n += 1
        await peer.send(f"{peer.name} message {n}")
        await peer.resend(older_than=3.0)


async def keep_connected(peers: list["Peer"], stop: asyncio.Event) -> None:
    """Reconnect any peer whose server went away, as the browser's ws extension does."""
    tasks: set[asyncio.Task] = set()
    while not stop.is_set():
        for peer in peers:
            if not peer.connected and not peer.lock.locked():
                task = asyncio.create_task(peer.ensure_connected(timeout=60))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        await asyncio.sleep(0.1)
    await asyncio.gather(*tasks, return_exceptions=True)


async def settle(peers: list["Peer"], *, timeout: float = 60.0) -> None:
    """Reconnect everyone, resend until every message is acknowledged, then sync a last time."""
    deadline = time.monotonic() + timeout
    while True:
        for peer in peers:
            if not peer.connected:
                async with peer.lock:
                    if not peer.connected:
                        await peer.connect(timeout=max(5.0, deadline - time.monotonic()))
        if not any(peer.pending for peer in peers):
            break
        if time.monotonic() > deadline:
            raise AssertionError(
                f"unacknowledged after {timeout}s: "
                + ", ".join(f"{p.name}: {sorted(p.pending)[:3]}" for p in peers if p.pending)
            )
        for peer in peers:
            await peer.resend(older_than=2.0)
        await asyncio.sleep(0.5)
    await asyncio.gather(*(peer.final_sync() for peer in peers))


def judge(peers: list["Peer"], stored: dict[int, list[int]]) -> Tally:
    """Sum every peer's tally; `stored` maps room id to the seqs the database holds."""
    total = Tally()
    for peer in peers:
        one = peer.tally(stored.get(peer.room_id, []))
        total.lost += one.lost
        total.duplicated += one.duplicated
        total.reordered += one.reordered
        total.unacked += one.unacked
    return total


class Racer:
    """An engineer's HUD tab that answers requests and keeps asking until it gets a clear reply.

    A reply is the session panel of the new room (this engineer won) or an error frame (`taken`,
    `not_waiting` …). When the socket dies first, the tab reconnects to any live server and asks
    again, as an engineer clicking Answer again after the HUD reconnects would.
    """

    def __init__(self, *, name: str, engineer_id: int, session: str, urls, origin: str | None = None):
        self.name = name
        self.engineer_id = engineer_id
        self.cookie = f"sessionid={session}"
        self.urls = urls
        self.origin = origin
        self.ws = None
        self.rooms_seen: set[int] = set()  # every session panel this engineer was shown, any connection
        self.outcomes: dict[int, list[str]] = {}  # request id -> replies, in order ("won" or an error code)
        self.retries = 0
        self.lock = asyncio.Lock()  # one frame exchange at a time, so a reply belongs to its frame

    async def _connect(self, deadline: float) -> None:
        while True:
            try:
                url = random.choice(self.urls())
                ws = await websockets.connect(
                    url + "/ws/hud/",
                    additional_headers={"Cookie": self.cookie, "Origin": self.origin or origin_of(url)},
                    open_timeout=5,
                    close_timeout=1,
                    max_size=None,
                    ping_interval=None,
                )
                self.ws = ws
                # Like the browser: the first frame after (re)connecting is sync; it names no room,
                # so the server shows every room this engineer is in.
                await self._exchange({"action": "sync", "rooms": {}}, timeout=10)
                return
            except (TimeoutError, OSError, websockets.exceptions.WebSocketException):
                await self._abort()
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(random.uniform(0.1, 0.3))

    async def _abort(self) -> None:
        ws, self.ws = self.ws, None
        if ws is not None and ws.transport is not None:
            ws.transport.abort()

    async def _exchange(self, frame: dict, *, timeout: float) -> list:
        """Send a frame and a ping; return every element that arrived until the pong."""
        ws = self.ws
        await ws.send(json.dumps(frame))
        await ws.send(json.dumps({"action": "ping"}))
        elements = []
        async with asyncio.timeout(timeout):
            while True:
                for element in parse(await ws.recv()):
                    if element.attrs.get("data-event") == "pong":
                        return elements
                    if element.attrs.get("data-event") == "session" and element.attrs.get("data-room"):
                        self.rooms_seen.add(int(element.attrs["data-room"]))
                    elements.append(element)

    async def answer(self, request_id: int, *, timeout: float = 60.0) -> str:
        """Answer until a clear reply comes; return "won" or the error code."""
        deadline = time.monotonic() + timeout
        async with self.lock:
            while True:
                try:
                    if self.ws is None:
                        await self._connect(deadline)
                    before = set(self.rooms_seen)
                    elements = await self._exchange({"action": "answer", "request_id": request_id}, timeout=10)
                except (TimeoutError, OSError, websockets.exceptions.WebSocketException):
                    await self._abort()
                    if time.monotonic() > deadline:
                        raise
                    self.retries += 1
                    continue
                errors = [e.attrs.get("data-error", "") for e in elements if e.attrs.get("data-event") == "error"]
                outcome = errors[0] if errors else ("won" if self.rooms_seen - before else "no reply")
                self.outcomes.setdefault(request_id, []).append(outcome)
                return outcome

    async def refresh(self, *, timeout: float = 60.0) -> None:
        """Reconnect and sync, so rooms won just before a crash are seen too."""
        async with self.lock:
            await self._abort()
            await self._connect(time.monotonic() + timeout)

    async def close(self) -> None:
        async with self.lock:
            await self._abort()


def machine_is_busy() -> str:
    """Return why latency figures from this machine mean little right now, or "" if they do.

    A latency bound is judged only when the machine is not saturated by work other than the
    test's own (two daphne processes, PostgreSQL, Redis and the test itself keep about three
    runnable processes busy): on a 2-core box shared with browser tests a reconnect waits for
    the CPU, not for DeskChat. The figures are printed either way.
    """
    import os

    load = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    return f"load average {load:.1f} on {cores} cores" if load > 3 * cores else ""
