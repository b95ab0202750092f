"""An asyncio load generator that speaks DeskChat's real websocket protocol, as the browsers do.

It opens real websockets (the `websockets` library) with the session cookie a browser would
send. Each socket is a `Tab`: a portal page (static/chat/client.js) or a Staff HUD
(static/hud/hud.js), and it sends what that page's script sends, when the script sends it:
`sync` with the seqs it has on every (re)connect, then what was never acknowledged again with
the same client_msg_id; `typing` while a message is written; `send`; coalesced `read` reports;
the client's `draft` while it waits and its 30 s `ping`; `request_chat`, `answer`, `leave`. The
`legacy` profile sends only sync, send, request_chat, answer and ping, as the generator did
before, so a run can be compared with earlier results (`--generator legacy`).

Frames from the server are read with chat.wire, the parser the tests use; a tab parses only
the frame types it acts on (wire.may_carry), and a large frame that many sockets get alike (the
HUD queue) is parsed once.

- Open loop: every send has a time on a clock fixed before the run starts. A slow server cannot
  slow the load down; latency is measured from the *scheduled* time, so a send that the
  generator itself could only make late is charged in full (no coordinated omission).
- Both ends of every conversation live in this process, so one monotonic clock times them.
- Every socket's arrivals are checked per room by sequence number: a seq seen twice is
  duplicated, a seq lower than one already seen is reordered, a hole below the room's highest
  seq is lost. Sends that never reach the other side are counted as undelivered.
- It reports its own CPU time (process_time over wall time), so a run where the generator was the
  bottleneck shows it.

The same generator drives the baselines (bench/relay_*.py), which speak the same frames.
Standalone: `python -m bench.loadgen --plan plan.json --duration 60 --interval 5`, where
plan.json is `{"clients": [{"url": ..., "cookie": ..., "rooms": [..]}], "engineers": [...]}`.
"""

import argparse
import asyncio
import json
import math
import random
import secrets
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import websockets
import websockets.exceptions  # named below; the package imports it lazily

from chat import wire


def origin_of(url: str) -> str:
    """Return the origin a browser on this server's pages sends (the socket's scheme, host and port)."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}"


def percentile(values, pct: float) -> float:
    """Return the pct-th percentile (nearest rank) of values, 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary_ms(values: list[float]) -> dict:
    return {
        "n": len(values),
        "p50": round(percentile(values, 50) * 1000, 2),
        "p95": round(percentile(values, 95) * 1000, 2),
        "p99": round(percentile(values, 99) * 1000, 2),
        "max": round(max(values, default=0) * 1000, 2),
    }


# --- What a tab sends ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """What the tabs send besides the frames a scenario schedules (messages, Join Chat, Answer)."""

    name: str
    typing: bool  # typing: true as a message is written (again every 3 s); false only after 4 s idle
    reads: (
        bool  # read reports: one per room a second at most, while shown, when someone else's message advanced its seq
    )
    drafts: bool  # the client's question, sent as `draft` while it waits
    keepalive: bool  # portal tabs ping every 30 s (the HUD sends no ping)
    retries: bool  # a send refused as unavailable, rate_limited or busy goes again later, with the same id
    idle_sync: bool  # an idle tab sends its sync too, as every page does when its socket opens


BROWSER = Profile("browser", typing=True, reads=True, drafts=True, keepalive=True, retries=True, idle_sync=True)
LEGACY = Profile("legacy", typing=False, reads=False, drafts=False, keepalive=False, retries=False, idle_sync=False)
PROFILES = {profile.name: profile for profile in (BROWSER, LEGACY)}

# The scripts' timings (static/chat/client.js, static/hud/hud.js).
TYPING_EVERY_S = 3.0  # typing: true again at most this often while a message is written
READ_EVERY_S = 1.0  # one read report per room and socket at most this often
PING_EVERY_S = 30.0  # client.js's keepalive
DRAFT_AFTER_S = 1.0  # client.js sends what is typed while waiting this long after the last keystroke
JITTER = 0.5  # each send comes this share of its period early or late, at random (±50%)
RETRY_FIRST_S, RETRY_MAX_S = 2.0, 15.0  # a refused "not now" send: about 2 s, 4 s, 8 s, then every 15 s
RETRY_JITTER = 0.25  # each wait is that ±25%, so refused tabs do not all come back at once
RETRYABLE = {"unavailable", "rate_limited", "busy"}
TRY_LATER = 4503  # deskchat.admission.CLOSE_TRY_LATER: come back at the turn the close's reason gives (ms)
# The generator's own model of a person: how long before a message they start typing it.
WRITING_S = 1.5

# Frames the tabs act on; the rest (typing, read, participants, notices …) are not parsed.
WANTED = ("messages", "pong", "error", "client_state", "room_closed", "session", "queue")
# A frame this long is parsed once however many sockets get it (the HUD queue, a session panel).
SHARED_FRAME = 4096


@lru_cache(maxsize=256)
def _parse_shared(frame: str) -> tuple[wire.Element, ...]:
    return tuple(wire.parse(frame))


def read_frame(frame: str) -> list | tuple:
    """Parse a frame; the elements of a large one are shared between sockets, so nobody may change them."""
    return _parse_shared(frame) if len(frame) >= SHARED_FRAME else wire.parse(frame)


def role_of(url: str) -> str:
    return "engineer" if "/ws/hud/" in url else "client"


class Tab:
    """One browser tab's socket: it sends what the page's script sends, and records what arrives.

    `role` is "client" (a portal page's chat dock) or "engineer" (the Staff HUD). A client shows its
    one live room; an engineer shows the session tab in front (`active`), the one they last answered
    or wrote in. Only a shown room is reported read, as the scripts do on a visible page.
    `record=True` keeps every frame sent, with the number of the connection it went on (1, 2 …).
    """

    def __init__(
        self,
        url: str,
        *,
        role: str | None = None,
        profile: Profile = BROWSER,
        cookie: str = "",
        rooms=(),
        name: str = "",
        on_frame=None,
        on_message=None,
        record: bool = False,
    ):
        self.url = url
        self.role = role or role_of(url)
        self.profile = profile
        self.cookie = cookie
        self.rooms = list(rooms)
        self.name = name
        self.on_frame = on_frame  # (tab, element, now) for every element but message items
        self.on_message = on_message  # (tab, room, seq, client_msg_id, now)
        self.ws = None
        self.reader = None
        self.pong = asyncio.Event()
        self.errors: Counter[str] = Counter()
        self.first_frame = asyncio.Event()
        self.closed = False
        self.known: dict[int, int] = {room: 0 for room in self.rooms}  # room -> highest seq arrived
        self.others: dict[int, int] = {}  # room -> highest seq of a message someone else wrote: what a read reports
        self.mine: set[str] = set()  # the client_msg_ids this tab sent
        self.ended: set[int] = set()  # rooms shown as closed: nothing is sent for them any more
        self.active = self.rooms[0] if self.rooms else None
        self.pending: dict[str, dict] = {}  # client_msg_id -> its send frame, until it comes back
        self.retry_delay: dict[str, float] = {}
        self.retrying: set[str] = set()  # refused "not now": in the next retry round
        self.retry_planned = False
        self.read_sent: dict[int, int] = {}
        self.read_at: dict[int, float] = {}
        self.read_due: dict[int, asyncio.TimerHandle] = {}
        self.typing_at: dict[int, float] = {}  # room -> when typing: true went; absent while not typing
        self.state = ""  # a client's dialog: idle, waiting, chatting …
        self.request_id: int | None = None
        self.drafted: set[int] = set()
        self.sent_actions: Counter[str] = Counter()
        self.log: list[tuple[int, dict]] | None = [] if record else None
        self.connects = 0
        self.tries = 0  # come_back's tries to reconnect
        self.turns: list[float] = []  # the waits 4503 closes gave this tab
        self.lost_opens = 0  # tries lost otherwise (refused, timed out)
        self.tasks: set[asyncio.Task] = set()
        self.keepalive: asyncio.Task | None = None

    # --- The socket ---------------------------------------------------------------------------

    async def open(self, *, timeout: float = 30.0) -> None:
        headers = {"Origin": origin_of(self.url)}
        if self.cookie:
            headers["Cookie"] = f"sessionid={self.cookie}"
        self.ws = await websockets.connect(
            self.url,
            additional_headers=headers,
            open_timeout=timeout,
            close_timeout=2,
            max_size=None,
            ping_interval=None,
        )
        self.connects += 1
        self.closed = False
        self.reader = asyncio.create_task(self._read(self.ws))
        if self.profile.keepalive and self.role == "client" and self.keepalive is None:
            self.keepalive = asyncio.create_task(self._keep_alive())

    async def _read(self, ws) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for frame in ws:
                self.first_frame.set()
                self.heard(frame, loop.time())
        except (websockets.exceptions.WebSocketException, OSError):
            pass
        finally:
            if ws is self.ws:
                self.closed = True

    async def send(self, payload: dict) -> None:
        await self.ws.send(json.dumps(payload))
        self.sent_actions[payload["action"]] += 1
        if self.log is not None:
            self.log.append((self.connects, payload))

    async def send_live(self, payload: dict) -> None:
        """Send a frame that only matters now (typing, read, ping, draft): dropped while offline, as the scripts do."""
        if self.ws is None or self.closed:
            return
        try:
            await self.send(payload)
        except (websockets.exceptions.WebSocketException, OSError):
            pass

    def later(self, delay: float, coroutine_function, *args) -> None:
        """Run coroutine_function(*args) in `delay` seconds, as a script's timer would; close() cancels it."""

        async def run():
            await asyncio.sleep(delay)
            await coroutine_function(*args)

        task = asyncio.create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def ping(self, timeout: float = 30.0) -> float:
        """Return the round trip of a ping frame (the consumer answers frames in order)."""
        self.pong.clear()
        started = time.perf_counter()
        await self.send({"action": "ping"})
        pong = asyncio.ensure_future(self.pong.wait())
        await asyncio.wait({pong, self.reader}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if not pong.done():
            pong.cancel()
            # The socket closed first (a server gone or refusing), or the time ran out.
            raise ConnectionError("closed before the pong") if self.reader.done() else TimeoutError()
        return time.perf_counter() - started

    async def _keep_alive(self) -> None:
        # Pages load at different times, so a fleet's pings are spread over the interval.
        await asyncio.sleep(random.uniform(0, PING_EVERY_S))
        while True:
            await self.send_live({"action": "ping"})
            await asyncio.sleep(PING_EVERY_S)

    async def sync(self, *, barrier: bool = True) -> None:
        """Send what a page sends first on every open, then wait (barrier) until the server has handled it.

        The sync names every room the tab shows with the highest seq it has; then what was sent
        but never came back goes again with the same client_msg_id. Read positions are reported
        afresh after every open. The barrier is a ping, the generator's own: it makes sure the
        server holds no live message back any more before the clock starts.
        """
        await self.send({"action": "sync", "rooms": {str(room): seq for room, seq in self.known.items()}})
        for payload in list(self.pending.values()):
            await self.send(payload)
        self.read_sent.clear()
        for room in self.known:
            self.read_soon(room)
        if barrier:
            await self.ping()

    async def reconnect(self) -> None:
        """Drop the socket and open it again, as a reload or a lost network does, then sync."""
        old = self.ws
        await old.close()
        if self.reader is not None:
            await asyncio.gather(self.reader, return_exceptions=True)
        await self.open()
        await self.sync()

    async def come_back(self, url: str, *, spread_s: float = 1.0, give_up_s: float = 300.0) -> float:
        """After the server went away, reconnect to `url` as the page does; return when caught up (loop time).

        The htmx websocket extension retries a lost socket (1006) after a random wait of up to
        1 s, then up to 2, 4 … 64 s, until one opens (full jitter); a proxy in front sends the
        page to a process that is still up. Caught up means the sync's barrier came back: the
        server has sent everything committed for the tab's rooms, and what was never acknowledged
        went again with the same client_msg_id.
        """
        if self.reader is not None:
            await asyncio.gather(self.reader, return_exceptions=True)
        self.url, self.tries = url, 0
        return await self.open_and_sync(spread_s=spread_s, give_up_s=give_up_s, wait_first=True)

    async def open_and_sync(self, *, spread_s: float = 1.0, give_up_s: float = 120.0, wait_first: bool = False):
        """Open and sync, and if the socket is turned away or lost, try again as the page does; return when synced.

        A socket lost before it opened is tried again by htmx after a random wait of up to 1 s,
        2 s, 4 s … 64 s. One the server closed with 4503 (past CHAT_CONNECTS_IN_PROGRESS) comes
        back at the turn its reason gives in milliseconds, ±10%, as socket.js does.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + give_up_s
        lost = 0  # htmx's retry count: it starts again at 0 whenever a socket opens
        wait = random.uniform(0, spread_s) if wait_first else 0.0
        while loop.time() < deadline:
            await asyncio.sleep(wait)
            self.tries += 1
            opened = False
            try:
                await self.open(timeout=10)
                opened, lost = True, 0
                await self.sync()
                return loop.time()
            except (TimeoutError, OSError, websockets.exceptions.WebSocketException):
                if self.reader is not None:
                    self.reader.cancel()
                if opened and getattr(self.ws, "close_code", None) == TRY_LATER:
                    wait = int(self.ws.close_reason or 2000) / 1000 * random.uniform(0.9, 1.1)
                    self.turns.append(wait)
                else:
                    self.lost_opens += 1
                    lost += 1
                    wait = random.uniform(0, spread_s * 2 ** min(lost, 6))
        raise RuntimeError(f"{self.name} was not connected after {give_up_s:.0f} s")

    async def close(self) -> None:
        for handle in self.read_due.values():
            handle.cancel()
        for task in [*self.tasks, self.keepalive]:
            if task is not None:
                task.cancel()
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 2)
            except Exception:  # noqa: BLE001
                pass
        if self.reader is not None:
            self.reader.cancel()

    # --- What the person does -------------------------------------------------------------------

    async def request_chat(self, ticket_id: int) -> None:
        """Press Join Chat on a ticket."""
        await self.send({"action": "request_chat", "ticket_id": ticket_id})

    async def answer(self, request_id: int) -> None:
        """Press Answer on a queue item."""
        await self.send({"action": "answer", "request_id": request_id})

    async def leave(self, room: int) -> None:
        """Press Leave in a chat."""
        await self.send({"action": "leave", "room_id": room})

    def show(self, room: int) -> None:
        """Bring a session tab to the front (an engineer's; a client shows its one chat anyway)."""
        if self.role == "engineer" and self.active != room:
            self.active = room
            self.read_soon(room)  # hud.js reports a tab read as soon as it is shown

    async def write(self, room: int) -> None:
        """Type in a room's message box: `typing` goes at most every 3 s while writing."""
        self.show(room)
        if not self.profile.typing or room in self.ended:
            return
        now = asyncio.get_running_loop().time()
        if now - self.typing_at.get(room, -TYPING_EVERY_S - 1) > TYPING_EVERY_S:
            self.typing_at[room] = now
            await self.send_live({"action": "typing", "room_id": room, "typing": True})

    async def post(self, room: int, body: str, client_msg_id: str) -> None:
        """Send a message, pending until it comes back: its arrival ends the typing notice, so no `typing: false` goes."""
        self.show(room)
        self.typing_at.pop(room, None)
        payload = {"action": "send", "room_id": room, "body": body, "client_msg_id": client_msg_id}
        if self.role == "engineer":
            payload["kind"] = "text"  # the HUD's compose form has a kind (templates insert greetings)
        self.pending[client_msg_id] = payload
        self.mine.add(client_msg_id)
        await self.send(payload)

    # --- What the page does with what arrives -------------------------------------------------

    def heard(self, frame: str, now: float) -> None:
        """Read one frame, if it may hold a type this tab acts on."""
        if not wire.may_carry(frame, *WANTED):
            return
        for element in read_frame(frame):
            if wire.is_message(element):
                self.arrived(element, now)
                continue
            event = element.event
            if event == "pong":
                self.pong.set()
            elif event == "error":
                self.refused(element)
            elif event == "client_state" and self.role == "client":
                self.dialog(element)
            elif event == "room_closed" or (event == "session" and element.data("state") == "closed"):
                self.ended.add(element.number("room"))
            elif event == "session":
                self.opened(element.number("room"))
            if self.on_frame is not None:
                self.on_frame(self, element, now)

    def arrived(self, item: wire.Element, now: float) -> None:
        room, seq, client_msg_id = item.number("room"), item.number("seq"), item.data("client-msg-id")
        self.add_room(room)
        self.known[room] = max(self.known[room], seq)
        self.pending.pop(client_msg_id, None)
        if client_msg_id not in self.mine:  # the scripts count their own messages read, and report none
            self.others[room] = max(self.others.get(room, 0), seq)
        if self.on_message is not None:
            self.on_message(self, room, seq, client_msg_id, now)
        self.read_soon(room)

    def add_room(self, room: int) -> bool:
        """Start showing a room; say whether it is new to this tab."""
        if room in self.known:
            return False
        self.known[room] = 0
        self.others[room] = 0
        self.rooms.append(room)
        return True

    def opened(self, room: int) -> None:
        """A session panel arrived: a new one comes to the front (hud.js follows an Answer to its tab)."""
        self.ended.discard(room)  # a panel sent again for a room rejoined
        if self.add_room(room):
            self.show(room)

    def dialog(self, status: wire.Element) -> None:
        """Follow the client's dialog: the room it chats in, and the question it types while waiting."""
        self.state = status.data("state")
        self.request_id = status.number("request-id")
        room = status.number("room-id")
        if self.state == "chatting" and room is not None:
            self.add_room(room)
        if self.state == "waiting" and self.profile.drafts and self.request_id not in self.drafted:
            self.drafted.add(self.request_id)
            self.later(DRAFT_AFTER_S, self._draft, self.request_id)

    async def _draft(self, request_id: int) -> None:
        if self.state == "waiting" and self.request_id == request_id:
            body = f"The question {self.name} is typing while it waits"
            await self.send_live({"action": "draft", "request_id": request_id, "body": body})

    def refused(self, error: wire.Element) -> None:
        """Count a refusal; a "not now" for a pending message sends it again later with the same id."""
        code, client_msg_id = error.data("error"), error.data("client-msg-id")
        self.errors[code] += 1
        if client_msg_id not in self.pending:
            return
        if self.profile.retries and code in RETRYABLE:
            delay = min(self.retry_delay.get(client_msg_id, RETRY_FIRST_S / 2) * 2, RETRY_MAX_S)
            self.retry_delay[client_msg_id] = delay
            self.retrying.add(client_msg_id)
            if not self.retry_planned:  # one round per tab, as socket.js: the round planned takes it along
                self.retry_planned = True
                self.later(delay * random.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER), self._resend_round)
        else:
            self.pending.pop(client_msg_id)  # the page puts the text back in the box

    async def _resend_round(self) -> None:
        """Send again every message refused since the last round, in the order they were first sent."""
        due, self.retrying, self.retry_planned = self.retrying, set(), False
        for client_msg_id in [c for c in self.pending if c in due]:
            await self.send_live(self.pending[client_msg_id])

    def shows(self, room: int) -> bool:
        if room in self.ended:
            return False
        return room == self.active if self.role == "engineer" else room in self.known

    def read_soon(self, room: int) -> None:
        """Report the room read, at most once a second, while it is shown (the scripts' coalesced read)."""
        if not self.profile.reads or not self.shows(room) or room in self.read_due:
            return
        loop = asyncio.get_running_loop()
        wait = max(0.0, self.read_at.get(room, -READ_EVERY_S) + READ_EVERY_S - loop.time())
        self.read_due[room] = loop.call_later(wait, self._report_read, room)

    def _report_read(self, room: int) -> None:
        del self.read_due[room]
        seq = self.others.get(room, 0)
        # Offline, nothing is reported (nor counted as reported): the next open reports afresh.
        if self.shows(room) and seq > self.read_sent.get(room, 0) and not self.closed:
            self.read_sent[room] = seq
            self.read_at[room] = asyncio.get_running_loop().time()
            self.later(0, self.send_live, {"action": "read", "room_id": room, "seq": seq})


def count_frames(tabs: list[Tab]) -> Counter:
    """Count the frames the tabs have sent so far, by action."""
    total = Counter()
    for tab in tabs:
        total.update(tab.sent_actions)
    return total


async def open_all(tabs: list[Tab], *, concurrency: int = 50, sync: bool = True) -> float:
    """Open (and sync) every tab, a few at a time; return the seconds it took."""
    gate = asyncio.Semaphore(concurrency)
    started = time.perf_counter()

    async def one(tab: Tab):
        async with gate:
            if sync:
                await tab.open_and_sync()  # refused past CHAT_CONNECTS_IN_PROGRESS: tried again, as a page does
            else:
                await tab.open()

    await asyncio.gather(*(one(t) for t in tabs))
    return time.perf_counter() - started


def io_stalled_us() -> int | None:
    """Return the kernel's running total of microseconds in which every busy task waited for the disk.

    PSI's io "full" line: over a window, how long the machine did nothing but wait for the disk
    (every acknowledged message waits for its commit's WAL flush); None without PSI.
    """
    try:
        full = Path("/proc/pressure/io").read_text().splitlines()[1].split()
    except (OSError, IndexError):
        return None
    return int(full[4].removeprefix("total="))


class CpuMeter:
    """CPU seconds of this process and of the servers under test, over one window."""

    def __init__(self, servers=()):
        self.servers = list(servers)

    def __enter__(self):
        self.wall = time.perf_counter()
        self.own = time.process_time()
        self.server = [s.cpu() for s in self.servers]
        self.waited = [s.runqueue_wait() for s in self.servers]
        self.io_stalled = io_stalled_us()
        self.log_sizes = [s.log_size() for s in self.servers]
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.own = time.process_time() - self.own
        self.server = [s.cpu() - before for s, before in zip(self.servers, self.server)]
        self.waited = [s.runqueue_wait() - before for s, before in zip(self.servers, self.waited)]
        now_stalled = io_stalled_us()
        self.io_stalled = None if None in (now_stalled, self.io_stalled) else now_stalled - self.io_stalled
        self.gc_pauses = [s.gc_pauses_since(size) for s, size in zip(self.servers, self.log_sizes)]

    def report(self) -> dict:
        return {
            "generator_cpu_pct": round(100 * self.own / self.wall, 1),
            "server_cpu_pct": [round(100 * c / self.wall, 1) for c in self.server],
            # Time the server's threads spent runnable but waiting for a CPU (starved).
            "server_runqueue_wait_pct": [round(100 * w / self.wall, 1) for w in self.waited],
            # Time in which every busy task of the machine waited for the disk (PSI io full),
            # our own commits' WAL flushes included: 0 for a server that writes nothing.
            "disk_stalled_pct": None if self.io_stalled is None else round(self.io_stalled / 1e4 / self.wall, 1),
            # The collector's pauses of 5 ms or more in the window, in which all of a server's sockets wait.
            "gc_pause_max_ms": [max(p, default=0.0) for p in self.gc_pauses],
            "gc_pauses": [len(p) for p in self.gc_pauses],
        }


class Chat:
    """The steady-chat and knee workloads: rooms with one client tab and one engineer tab each.

    Every room appears in exactly one client's and one engineer's list of rooms.
    """

    def __init__(self, clients: list[Tab], engineers: list[Tab]):
        self.clients = clients
        self.engineers = engineers
        for tab in self.conns:
            tab.on_message = self._arrived
        self.room_ends: dict[int, tuple[Tab, Tab]] = {}
        by_room_engineer = {r: e for e in self.engineers for r in e.rooms}
        for client in self.clients:
            for room in client.rooms:
                self.room_ends[room] = (client, by_room_engineer[room])
        self.sent: dict[str, tuple[float, Tab]] = {}  # client_msg_id -> (scheduled time, receiver)
        self.latency: dict[str, float] = {}  # client_msg_id -> delivery latency to the other side
        self.seen: dict[tuple[str, int], list[int]] = defaultdict(list)  # (socket, room) -> seqs in order
        self.counter = 0
        # The pages' ids are random (socket.js newId); a run's own prefix keeps a later run on the
        # same database from sending an id the server already stored, which it would take for a retry.
        self.run_id = secrets.token_hex(4)

    @classmethod
    def from_plan(cls, plan: dict, *, profile: Profile = BROWSER) -> "Chat":
        """Build the tabs of a plan: {"clients": [{url, cookie, rooms}], "engineers": [{url, cookie, rooms}]}."""

        def tabs(specs: list[dict], role: str, prefix: str) -> list[Tab]:
            return [
                Tab(
                    s["url"],
                    role=role,
                    profile=profile,
                    cookie=s.get("cookie", ""),
                    rooms=s["rooms"],
                    name=f"{prefix}{n}",
                )
                for n, s in enumerate(specs)
            ]

        return cls(tabs(plan["clients"], "client", "c"), tabs(plan["engineers"], "engineer", "e"))

    @property
    def conns(self) -> list[Tab]:
        return self.clients + self.engineers

    def _arrived(self, conn: Tab, room: int, seq: int, cmid: str, now: float) -> None:
        self.seen[(conn.name, room)].append(seq)
        record = self.sent.get(cmid)
        if record is not None and record[1] is conn and cmid not in self.latency:
            self.latency[cmid] = now - record[0]

    async def connect(self, concurrency: int = 50) -> float:
        return await open_all(self.conns, concurrency=concurrency)

    async def run_rate(self, *, rate: float, duration: float, drain: float = 3.0, jitter: float = JITTER) -> dict:
        """Send `rate` messages/s in total (both sides of every room alike) for `duration` seconds.

        Each side of each room sends about every 2·rooms/rate seconds from a random phase, each
        gap that ±`jitter` at random, so the sends are spread over the clock and bunch up now and
        then as people's do. With the browser profile its author starts
        typing it WRITING_S before (at most half the interval), which sends `typing` as the
        scripts do; latency counts from the scheduled send, not from the typing.
        """
        loop = asyncio.get_running_loop()
        interval = 2 * len(self.room_ends) / rate
        writing = min(WRITING_S, interval / 2)
        start = loop.time() + 0.2
        end = start + duration
        mine: list[str] = []
        late: list[float] = []

        async def side(sender: Tab, receiver: Tab, room: int):
            at = start + random.uniform(0, interval)
            while at < end:
                try:
                    if sender.profile.typing:
                        await asyncio.sleep(max(0.0, at - writing - loop.time()))
                        await sender.write(room)
                    delay = at - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    else:
                        late.append(-delay)
                    self.counter += 1
                    cmid = f"{sender.name}-{self.run_id}-{self.counter}"
                    self.sent[cmid] = (at, receiver)
                    mine.append(cmid)
                    await sender.post(room, f"bench message {self.counter}", cmid)
                except (websockets.exceptions.WebSocketException, OSError):
                    pass
                at += interval * random.uniform(1 - jitter, 1 + jitter)

        tasks = []
        for room, (client, engineer) in self.room_ends.items():
            tasks.append(side(client, engineer, room))
            tasks.append(side(engineer, client, room))
        frames_before = count_frames(self.conns)
        with CpuMeter(getattr(self, "servers", ())) as meter:
            await asyncio.gather(*tasks)
        # Drain: wait until every send has reached the other side, or give up after `drain` s.
        deadline = loop.time() + drain
        while loop.time() < deadline and any(c not in self.latency for c in mine):
            await asyncio.sleep(0.05)
        latencies = [self.latency[c] for c in mine if c in self.latency]
        return {
            "rate_target": rate,
            "duration_s": duration,
            "sent": len(mine),
            "delivered": len(latencies),
            "undelivered": len(mine) - len(latencies),
            "msg_per_s": round(len(latencies) / duration, 1),
            "latency_ms": summary_ms(latencies),
            "send_late_ms_max": round(max(late, default=0) * 1000, 2),
            # What the tabs sent in the window, by action: the load besides the messages.
            "frames_sent": dict(count_frames(self.conns) - frames_before),
            **meter.report(),
        }

    async def settle(self, timeout: float = 3.0) -> None:
        """Give late messages up to `timeout` more seconds, so that "lost" means never delivered."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and len(self.latency) < len(self.sent):
            await asyncio.sleep(0.1)

    def integrity(self) -> dict:
        """Count duplicated, reordered and lost seqs on every socket, per room."""
        top: dict[int, int] = defaultdict(int)
        for (_, room), seqs in self.seen.items():
            top[room] = max(top[room], max(seqs, default=0))
        duplicated = reordered = lost = 0
        for (_name, room), seqs in self.seen.items():
            counts = Counter(seqs)
            duplicated += sum(n - 1 for n in counts.values())
            highest = 0
            for seq in seqs:
                if seq < highest and counts[seq] == 1:
                    reordered += 1
                highest = max(highest, seq)
            lost += len(set(range(1, top[room] + 1)) - set(counts))
        errors = Counter()
        for conn in self.conns:
            errors.update(conn.errors)
        return {"lost": lost, "duplicated": duplicated, "reordered": reordered, "errors": dict(errors)}

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.conns))


async def steady(plan: dict, *, interval: float, duration: float, servers=(), profile: Profile = BROWSER) -> dict:
    """Scenario 1: every side of every room sends every `interval` seconds for `duration` seconds."""
    sessions = len({room for spec in plan["clients"] for room in spec["rooms"]})
    return await at_rate(plan, rate=2 * sessions / interval, duration=duration, servers=servers, profile=profile)


async def at_rate(plan: dict, *, rate: float, duration: float, servers=(), profile: Profile = BROWSER) -> dict:
    """Open the plan's tabs, send `rate` msg/s for `duration` seconds, settle; return the figures and integrity."""
    chat = Chat.from_plan(plan, profile=profile)
    chat.servers = servers
    connect_s = await chat.connect()
    result = await chat.run_rate(rate=rate, duration=duration)
    await chat.settle()
    result.update(chat.integrity())
    result.update({"sessions": len(chat.room_ends), "sockets": len(chat.conns), "connect_s": round(connect_s, 2)})
    await chat.close()
    return result


def holds(step: dict, p99_limit_ms: float = 100.0) -> bool:
    """Return whether a step held: p99 within the limit, everything delivered, nothing lost, doubled or reordered."""
    return (
        step["latency_ms"]["p99"] <= p99_limit_ms
        and step["undelivered"] == 0
        and step["lost"] == 0
        and step["duplicated"] == 0
        and step["reordered"] == 0
    )


async def knee(
    plan: dict,
    *,
    rates: list[float],
    step_s: float,
    p99_limit_ms: float = 100.0,
    servers=(),
    profile: Profile = BROWSER,
) -> dict:
    """Scenario 2: raise the rate step by step until p99 passes the limit or a message is lost."""
    chat = Chat.from_plan(plan, profile=profile)
    chat.servers = servers
    await chat.connect()
    steps, best = [], 0.0
    for rate in rates:
        step = await chat.run_rate(rate=rate, duration=step_s, drain=2.0)
        step.update(chat.integrity())
        ok = step["holds"] = holds(step, p99_limit_ms)
        steps.append(step)
        print(
            f"    knee step {rate:>6.0f}/s: delivered {step['msg_per_s']:>7.1f}/s p99 {step['latency_ms']['p99']:>8.1f} ms"
            f" gen {step['generator_cpu_pct']}% srv {step['server_cpu_pct']} {'ok' if ok else 'STOP'}",
            flush=True,
        )
        if not ok:
            break
        best = step["msg_per_s"]
    await chat.close()
    return {"steps": steps, "highest_holding_msg_per_s": best}


async def hold(
    plan: dict, *, rate: float, duration: float, p99_limit_ms: float = 100.0, servers=(), profile: Profile = BROWSER
) -> dict:
    """Confirm a knee: send at `rate` for `duration` seconds on fresh sockets; say whether it held."""
    result = await at_rate(plan, rate=rate, duration=duration, servers=servers, profile=profile)
    result["holds"] = holds(result, p99_limit_ms)
    return result


async def overload(
    plan: dict,
    *,
    high: float,
    high_s: float,
    low: float,
    low_s: float,
    p99_limit_ms: float = 100.0,
    servers=(),
    profile: Profile = BROWSER,
) -> dict:
    """Scenario 6: `high` msg/s for `high_s` seconds, then `low` msg/s; when is latency back, and is anything lost?

    Latency is cut into one-second windows by when each message was due; the recovery time is
    when the first window after the overload begins from which every window's p99 is within
    the limit. Refused sends (busy) are sent again by the tabs as the pages do, so the final
    count of lost and doubled messages covers every send the server acknowledged.
    """
    chat = Chat.from_plan(plan, profile=profile)
    chat.servers = servers
    await chat.connect()
    loop = asyncio.get_running_loop()
    first = len(chat.sent)
    burst = await chat.run_rate(rate=high, duration=high_s, drain=0.0)
    calm_from = loop.time() + 0.2  # run_rate starts 0.2 s after it is called
    calm = await chat.run_rate(rate=low, duration=low_s, drain=3.0)
    await chat.settle(timeout=20.0)  # refused sends come back after 2, 4, 8 … s
    windows: dict[int, list[float]] = defaultdict(list)
    for cmid, (due, _receiver) in list(chat.sent.items())[first:]:
        if due >= calm_from:  # a message never delivered counts as infinitely late
            windows[int(due - calm_from)].append(chat.latency.get(cmid, float("inf")))
    p99s = [percentile(windows[second], 99) * 1000 for second in range(int(low_s))]
    p99s = [round(p99, 1) if math.isfinite(p99) else None for p99 in p99s]  # None: its p99 message never came
    over = [second for second, p99 in enumerate(p99s) if p99 is None or p99 > p99_limit_ms]
    # Over the limit in the last second: not recovered within the window (None), not "after low_s".
    recovered = None if over and over[-1] == len(p99s) - 1 else (over[-1] + 1 if over else 0)
    result = {
        "high_msg_per_s": high,
        "high_s": high_s,
        "low_msg_per_s": low,
        "low_s": low_s,
        "overload": burst,
        "after": calm,
        "p99_ms_per_second_after": p99s,
        "recovered_after_s": recovered,
        "sent": len(chat.sent) - first,
        "undelivered": sum(1 for cmid in list(chat.sent)[first:] if cmid not in chat.latency),
        **chat.integrity(),
    }
    await chat.close()
    return result


async def storm(
    plan: dict,
    *,
    victim,
    survivor_url: str,
    rate: float,
    before_s: float,
    after_s: float,
    spread_s: float = 1.0,
    servers=(),
    profile: Profile = BROWSER,
) -> dict:
    """Scenario 7: chats at `rate` msg/s; the victim process is killed (SIGKILL) `before_s` in; its tabs come back.

    Every tab is on the victim. Each comes back to `survivor_url` as a page does (Tab.come_back),
    the first tries of all of them within `spread_s` of each other, while the rooms go on sending:
    a message written meanwhile waits in its tab and goes after the sync with its client_msg_id.
    The sends go on for `after_s` seconds after the kill, then everything must arrive once.
    """
    chat = Chat.from_plan(plan, profile=profile)
    chat.servers = servers
    await chat.connect()
    loop = asyncio.get_running_loop()
    sending = asyncio.create_task(chat.run_rate(rate=rate, duration=before_s + after_s, drain=10.0))
    await asyncio.sleep(0.2 + before_s)
    killed_at = loop.time()
    victim.kill()
    back = await asyncio.gather(
        *(tab.come_back(survivor_url + urlsplit(tab.url).path, spread_s=spread_s) for tab in chat.conns),
        return_exceptions=True,
    )
    caught_up_s = sorted(at - killed_at for at in back if not isinstance(at, BaseException))
    never_back = sum(1 for at in back if isinstance(at, BaseException))
    load = await sending
    await chat.settle(timeout=20.0)
    result = {
        "sockets": len(chat.conns),
        "rate_msg_per_s": rate,
        "caught_up_s": {
            "p50": round(percentile(caught_up_s, 50), 2),
            "p99": round(percentile(caught_up_s, 99), 2),
            "max": round(max(caught_up_s, default=0), 2),
        },
        "never_back": never_back,  # not connected within give_up_s of the kill
        "tries": dict(sorted(Counter(tab.tries for tab in chat.conns).items())),
        "turned_away": sum(len(tab.turns) for tab in chat.conns),
        "turn_s": summary_ms([w for tab in chat.conns for w in tab.turns]),  # in ms, the waits 4503 gave
        "lost_opens": sum(tab.lost_opens for tab in chat.conns),
        "load": load,
        "sent": len(chat.sent),
        "undelivered": sum(1 for cmid in chat.sent if cmid not in chat.latency),
        **chat.integrity(),
    }
    await chat.close()
    return result


# --- Scenario 3: queue burst ------------------------------------------------------------------


class Burst:
    """100 clients press Join Chat within a second while engineers watch the HUD; then they race."""

    def __init__(self, clients: list[dict], engineers: list[dict], *, profile: Profile = BROWSER):
        self.clients = [
            Tab(
                c["url"], role="client", profile=profile, cookie=c["cookie"], name=f"qc{n}", on_frame=self._client_frame
            )
            for n, c in enumerate(clients)
        ]
        self.ticket_of = {conn.name: c["ticket_id"] for conn, c in zip(self.clients, clients)}
        self.engineers = [
            Tab(e["url"], role="engineer", profile=profile, cookie=e["cookie"], name=f"qe{n}", on_frame=self._hud_frame)
            for n, e in enumerate(engineers)
        ]
        self.requested_at: dict[int, float] = {}  # ticket -> when its client sent request_chat
        self.dialog_at: dict[int, float] = {}  # ticket -> when its client's dialog first showed it waiting
        self.first_seen: dict[tuple[str, int], float] = {}  # (engineer, ticket) -> first queue frame showing it
        self.visible: dict[str, dict[int, int]] = {e.name: {} for e in self.engineers}  # engineer -> request -> ticket
        self.sessions: dict[int, list[str]] = defaultdict(list)  # ticket -> engineers who got its session panel
        self.session_at: dict[int, float] = {}
        self.won: Counter[str] = Counter()
        self.changed = asyncio.Event()

    def _client_frame(self, conn: Tab, element: wire.Element, now: float) -> None:
        if element.event == "client_state" and element.data("state") == "waiting":
            self.dialog_at.setdefault(self.ticket_of[conn.name], now)

    def _hud_frame(self, conn: Tab, element: wire.Element, now: float) -> None:
        if element.event == "queue":
            items = {item.number("request-id"): item.number("ticket-id") for item in wire.queue_items(element)}
            self.visible[conn.name] = items
            for ticket in items.values():
                self.first_seen.setdefault((conn.name, ticket), now)
            self.changed.set()
        elif element.event == "session" and element.data("state") != "closed":
            ticket = element.number("ticket")
            self.won[conn.name] += 1
            self.sessions[ticket].append(conn.name)
            self.session_at.setdefault(ticket, now)
            self.changed.set()

    async def run(self, *, spread_s: float = 1.0, servers=()) -> dict:
        loop = asyncio.get_running_loop()
        await open_all(self.engineers + self.clients, sync=True)
        tickets = set(self.ticket_of.values())
        start = loop.time() + 0.3

        async def press(conn: Tab, at: float):
            await asyncio.sleep(max(0.0, at - loop.time()))
            self.requested_at[self.ticket_of[conn.name]] = at
            await conn.request_chat(self.ticket_of[conn.name])

        with CpuMeter(servers) as meter:
            await asyncio.gather(
                *(press(c, start + n * spread_s / len(self.clients)) for n, c in enumerate(self.clients))
            )
            deadline = loop.time() + 30
            expected = {(e.name, t) for e in self.engineers for t in tickets}
            while loop.time() < deadline and not expected <= self.first_seen.keys():
                await asyncio.sleep(0.02)
        latencies = [self.first_seen[k] - self.requested_at[k[1]] for k in expected if k in self.first_seen]
        # A pair never shown within the wait counts as the whole wait (a lower bound), so the
        # percentiles are not flattered by leaving the slowest out.
        waited = loop.time() - start
        latencies += [
            waited - (self.requested_at.get(t, start) - start) for (_, t) in expected - self.first_seen.keys()
        ]
        self.last_count = {name: len(v) for name, v in self.visible.items()}
        result = {
            "requests": len(tickets),
            "engineers": len(self.engineers),
            "hud_counts_at_end": sorted(self.last_count.values()),
            "request_to_hud_ms": summary_ms(latencies),
            "never_shown": len(expected - self.first_seen.keys()),
            "request_to_own_dialog_ms": summary_ms(
                [self.dialog_at[t] - self.requested_at[t] for t in self.dialog_at if t in self.requested_at]
            ),
            **meter.report(),
        }

        # The race: each engineer answers one request at a time, picked at random from what their
        # HUD shows, until the queue is empty, as people clicking Answer would.
        race_start = loop.time()
        attempts = Counter()

        async def engineer(conn: Tab):
            tried: set[int] = set()
            while len(self.session_at) < len(tickets) and loop.time() < race_start + 30:
                choices = [r for r in self.visible[conn.name] if r not in tried]
                if not choices:
                    await asyncio.sleep(0.01)
                    continue
                request_id = random.choice(choices)
                tried.add(request_id)
                attempts[conn.name] += 1
                before = sum(conn.errors.values()), self.won[conn.name]
                await conn.answer(request_id)
                # Wait for this answer's outcome on this socket: a session panel or an error frame.
                until = loop.time() + 10
                while (sum(conn.errors.values()), self.won[conn.name]) == before and loop.time() < until:
                    await asyncio.sleep(0.002)

        await asyncio.gather(*(engineer(e) for e in self.engineers))
        race_s = max(self.session_at.values(), default=race_start) - race_start
        errors = Counter()
        for conn in self.engineers:
            errors.update(conn.errors)
        result.update(
            {
                "race_s": round(race_s, 3),
                "answered": len(self.session_at),
                "answered_twice": sum(1 for names in self.sessions.values() if len(names) > 1),
                "answer_attempts": sum(attempts.values()),
                "answer_errors": dict(errors),
                "frames_sent": dict(sorted(count_frames(self.engineers + self.clients).items())),
            }
        )
        await asyncio.gather(*(c.close() for c in self.engineers + self.clients))
        return result


# --- Scenario 4: idle sockets -----------------------------------------------------------------


async def idle(
    conns_spec: list[dict],
    *,
    server,
    checkpoints: list[int],
    idle_s: float = 15.0,
    probes: int = 30,
    concurrency: int = 20,
    budget_s: float = 240.0,
    profile: Profile = BROWSER,
) -> dict:
    """Open idle sockets up to each checkpoint; measure RSS, ping round trips and idle CPU.

    Opening stops at the first checkpoint reached after `budget_s` seconds of connecting, so a
    server that accepts sockets slowly cannot push the whole run past its time limit; the
    result then says how far it got. With the browser profile every tab syncs as it opens and
    the portal tabs send their keepalive pings, which idle pages do too.
    """
    conns: list[Tab] = []
    loop = asyncio.get_running_loop()
    log_size = server.log_size()
    # Warm up: the first sockets load code and fill caches; memory per socket is measured after.
    warm = [Tab(s["url"], profile=profile, cookie=s.get("cookie", "")) for s in conns_spec[:20]]
    await open_all(warm, sync=profile.idle_sync, concurrency=20)
    await asyncio.gather(*(c.ping() for c in warm))
    conns.extend(warm)
    await asyncio.sleep(1)
    base_rss, base_n = server.rss_kib(), len(conns)
    points = []
    failures: list[Tab] = []
    opening_started = loop.time()
    for target in checkpoints:
        if loop.time() - opening_started > budget_s:
            break
        batch = [Tab(s["url"], profile=profile, cookie=s.get("cookie", "")) for s in conns_spec[len(conns) : target]]
        started = loop.time()
        gate = asyncio.Semaphore(concurrency)

        async def one(conn: Tab):
            # A handshake the server drops (daphne gives the application 5 s to accept) is
            # retried, as the browser's reconnect would; the failures are counted.
            for _attempt in range(5):
                async with gate:
                    try:
                        await conn.open(timeout=60)
                        if profile.idle_sync:
                            await conn.sync(barrier=False)
                        await conn.ping(timeout=60)  # answered once the connect's own work is done
                        return
                    except (TimeoutError, OSError, websockets.exceptions.WebSocketException):
                        failures.append(conn)
                        conn.reader and conn.reader.cancel()
                await asyncio.sleep(0.5)
            raise RuntimeError("a socket could not connect in 5 attempts")

        await asyncio.gather(*(one(c) for c in batch))
        connect_s = loop.time() - started
        conns.extend(batch)
        await asyncio.sleep(0.3)
        sample = random.sample(conns, min(probes, len(conns)))
        pings = []
        for conn in sample:  # one at a time: the round trip of one frame on a loaded process
            pings.append(await conn.ping())
        rss = server.rss_kib()
        points.append(
            {
                "sockets": len(conns),
                "connect_per_s": round(len(batch) / connect_s, 1),
                "rss_mib": round(rss / 1024, 1),
                "rss_kib_per_socket": round((rss - base_rss) / (len(conns) - base_n), 1),
                "ping_ms": summary_ms(pings),
                "failed_handshakes": len(failures),
                "closed": sum(1 for c in conns if c.closed),
            }
        )
        print(f"    idle {len(conns)} sockets: {points[-1]}", flush=True)
    opening_s = loop.time() - opening_started
    cpu_before, wall = server.cpu(), time.perf_counter()
    own = time.process_time()
    await asyncio.sleep(idle_s)
    wall = time.perf_counter() - wall
    pauses = server.gc_pauses_since(log_size)
    result = {
        "points": points,
        "idle_cpu_pct": round(100 * (server.cpu() - cpu_before) / wall, 2),
        # Opening and idling: the collector's pauses of 5 ms or more, in which every socket waited.
        "gc_pause_max_ms": max(pauses, default=0.0),
        "gc_pauses": len(pauses),
        "target_sockets": checkpoints[-1],
        "opening_s": round(opening_s, 1),
        "generator_idle_cpu_pct": round(100 * (time.process_time() - own) / wall, 2),
        "idle_window_s": idle_s,
        "closed": sum(1 for c in conns if c.closed),
    }
    await asyncio.gather(*(c.close() for c in conns))
    return result


# --- One whole chat, as a portal tab and a HUD tab have it ---------------------------------------


async def until(condition, timeout: float, what: str) -> None:
    """Wait until condition() holds; raise TimeoutError naming `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def story(
    client: dict,
    engineer: dict,
    *,
    ticket_id: int,
    profile: Profile = BROWSER,
    chat_s: float = 3.0,
    interval: float = 1.0,
    timeout: float = 30.0,
) -> dict:
    """Run one chat from Join Chat to Leave with one portal tab and one HUD tab; return what each sent.

    `client` and `engineer` are {url, cookie}; the engineer must be one who can answer the
    ticket's request. The client presses Join Chat and types its question while it waits; the
    engineer answers it from the queue; both chat as steady chat does (Chat.run_rate); the
    client's tab drops and reconnects just after sending, so that message may still be pending;
    they chat again; the client leaves, then the engineer. This is what tests/browser/
    test_loadgen_frames.py holds against two real browsers. Returns {"client": [...],
    "engineer": [...]}: every frame each tab sent, as (connection number, frame).
    """
    listed: dict[int, int] = {}  # ticket -> request, as the HUD's queue lists them

    def hud_frame(tab: Tab, element: wire.Element, now: float) -> None:
        if element.event == "queue":
            listed.update({i.number("ticket-id"): i.number("request-id") for i in wire.queue_items(element)})

    portal = Tab(client["url"], role="client", profile=profile, cookie=client["cookie"], name="story-c", record=True)
    hud = Tab(
        engineer["url"],
        role="engineer",
        profile=profile,
        cookie=engineer["cookie"],
        name="story-e",
        on_frame=hud_frame,
        record=True,
    )
    try:
        await open_all([hud, portal])
        await portal.request_chat(ticket_id)
        await until(lambda: ticket_id in listed and portal.state == "waiting", timeout, "the request in the queue")
        await asyncio.sleep(DRAFT_AFTER_S + 0.5)  # the client types the question; the engineer reads it
        await hud.answer(listed[ticket_id])
        await until(lambda: portal.state == "chatting" and set(portal.rooms) & set(hud.rooms), timeout, "the chat")
        room = portal.rooms[-1]
        chat = Chat([portal], [hud])
        await chat.run_rate(rate=2 / interval, duration=chat_s, drain=5.0)
        await portal.post(room, "Sent as the connection drops", "story-before-the-drop")
        await portal.reconnect()
        await until(lambda: not portal.pending, timeout, "the message sent before the drop")
        await chat.run_rate(rate=2 / interval, duration=chat_s, drain=5.0)
        await portal.leave(room)
        await until(lambda: room in portal.ended, timeout, "the client's chat to close")
        await hud.leave(room)
        await until(lambda: room in hud.ended, timeout, "the engineer's session to close")
        await asyncio.sleep(READ_EVERY_S)  # read reports still due go out, or are dropped for a closed room
    finally:
        await asyncio.gather(portal.close(), hud.close())
    return {"client": portal.log, "engineer": hud.log}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", required=True, help="JSON file: clients and engineers with url, cookie, rooms")
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--interval", type=float, default=5)
    parser.add_argument(
        "--generator", choices=sorted(PROFILES), default=BROWSER.name, help="what the tabs send (default: browser)"
    )
    args = parser.parse_args()
    with open(args.plan) as handle:
        plan = json.load(handle)
    result = steady(plan, interval=args.interval, duration=args.duration, profile=PROFILES[args.generator])
    print(json.dumps(asyncio.run(result), indent=2))


if __name__ == "__main__":
    main()
