"""An asyncio load generator that speaks DeskChat's real websocket protocol.

It opens real websockets (the `websockets` library) with the session cookie a browser would
send, sends the frames the browser's forms send (`sync`, `send`, `request_chat`, `answer`,
`ping`) and reads the HTML fragments the server sends back by their data attributes, exactly as
htmx and the tests do: messages by `data-seq` / `data-room` / `data-client-msg-id`, the HUD queue
by `data-request-id`, panels by `data-event`.

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
import random
import re
import time
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlsplit

import websockets


def origin_of(url: str) -> str:
    """Return the origin a browser on this server's pages sends (the socket's scheme, host and port)."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}"


MSG_RE = re.compile(r'data-seq="(\d+)" data-room="(\d+)" data-kind="[^"]*" data-client-msg-id="([^"]*)"')
ERROR_RE = re.compile(r'data-event="error" data-error="([a-z_]+)"')
QUEUE_ITEM_RE = re.compile(r'<li class="queue-item[^"]*" data-request-id="(\d+)".*?href="/tickets/(\d+)/"', re.S)
SESSION_RE = re.compile(r'data-event="session" data-room="(\d+)" data-ticket="(\d+)"')
PONG = 'data-event="pong"'


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


class Conn:
    """One websocket, as one browser tab: it records what arrives, with the arrival time."""

    def __init__(self, url: str, *, cookie: str = "", rooms=(), name: str = "", on_frame=None, on_message=None):
        self.url = url
        self.cookie = cookie
        self.rooms = list(rooms)
        self.name = name
        self.on_frame = on_frame
        self.on_message = on_message
        self.ws = None
        self.reader = None
        self.pong = asyncio.Event()
        self.errors: Counter[str] = Counter()
        self.first_frame = asyncio.Event()
        self.closed = False

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
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for frame in self.ws:
                now = loop.time()
                self.first_frame.set()
                if self.on_message is not None and "data-seq" in frame:
                    for seq, room, cmid in MSG_RE.findall(frame):
                        self.on_message(self, int(room), int(seq), cmid, now)
                if PONG in frame:
                    self.pong.set()
                if 'data-event="error"' in frame:
                    for code in ERROR_RE.findall(frame):
                        self.errors[code] += 1
                if self.on_frame is not None:
                    self.on_frame(self, frame, now)
        except (websockets.exceptions.WebSocketException, OSError):
            pass
        finally:
            self.closed = True

    async def send(self, payload: dict) -> None:
        await self.ws.send(json.dumps(payload))

    async def ping(self, timeout: float = 30.0) -> float:
        """Return the round trip of a ping frame (the consumer answers frames in order)."""
        self.pong.clear()
        started = time.perf_counter()
        await self.send({"action": "ping"})
        await asyncio.wait_for(self.pong.wait(), timeout)
        return time.perf_counter() - started

    async def sync(self) -> None:
        """Send the browser's first frame (every room from seq 0), then wait until it is handled."""
        await self.send({"action": "sync", "rooms": {str(r): 0 for r in self.rooms}})
        await self.ping()

    async def close(self) -> None:
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 2)
            except Exception:  # noqa: BLE001
                pass
        if self.reader is not None:
            self.reader.cancel()


async def open_all(conns: list[Conn], *, concurrency: int = 50, sync: bool = True) -> float:
    """Open (and sync) every connection, a few at a time; return the seconds it took."""
    gate = asyncio.Semaphore(concurrency)
    started = time.perf_counter()

    async def one(conn: Conn):
        async with gate:
            await conn.open()
            if sync:
                await conn.sync()

    await asyncio.gather(*(one(c) for c in conns))
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
    """The steady-chat and knee workloads: rooms with one client socket and one engineer socket each.

    `plan` is {"clients": [{url, cookie, rooms}], "engineers": [{url, cookie, rooms}]}; every room
    appears in exactly one client's and one engineer's list.
    """

    def __init__(self, plan: dict):
        self.clients = [
            Conn(c["url"], cookie=c.get("cookie", ""), rooms=c["rooms"], name=f"c{n}", on_message=self._arrived)
            for n, c in enumerate(plan["clients"])
        ]
        self.engineers = [
            Conn(e["url"], cookie=e.get("cookie", ""), rooms=e["rooms"], name=f"e{n}", on_message=self._arrived)
            for n, e in enumerate(plan["engineers"])
        ]
        self.room_ends: dict[int, tuple[Conn, Conn]] = {}
        by_room_engineer = {r: e for e in self.engineers for r in e.rooms}
        for client in self.clients:
            for room in client.rooms:
                self.room_ends[room] = (client, by_room_engineer[room])
        self.sent: dict[str, tuple[float, Conn]] = {}  # client_msg_id -> (scheduled time, receiver)
        self.latency: dict[str, float] = {}  # client_msg_id -> delivery latency to the other side
        self.seen: dict[tuple[str, int], list[int]] = defaultdict(list)  # (socket, room) -> seqs in order
        self.counter = 0

    @property
    def conns(self) -> list[Conn]:
        return self.clients + self.engineers

    def _arrived(self, conn: Conn, room: int, seq: int, cmid: str, now: float) -> None:
        self.seen[(conn.name, room)].append(seq)
        record = self.sent.get(cmid)
        if record is not None and record[1] is conn and cmid not in self.latency:
            self.latency[cmid] = now - record[0]

    async def connect(self, concurrency: int = 50) -> float:
        return await open_all(self.conns, concurrency=concurrency)

    async def run_rate(self, *, rate: float, duration: float, drain: float = 3.0) -> dict:
        """Send `rate` messages/s in total (both sides of every room alike) for `duration` seconds.

        Each side of each room sends every 2·rooms/rate seconds from a random phase, so the
        sends are spread evenly over the clock.
        """
        loop = asyncio.get_running_loop()
        interval = 2 * len(self.room_ends) / rate
        start = loop.time() + 0.2
        end = start + duration
        mine: list[str] = []
        late: list[float] = []

        async def side(sender: Conn, receiver: Conn, room: int):
            at = start + random.uniform(0, interval)
            while at < end:
                delay = at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    late.append(-delay)
                self.counter += 1
                cmid = f"{sender.name}-{self.counter}"
                self.sent[cmid] = (at, receiver)
                mine.append(cmid)
                try:
                    await sender.send(
                        {
                            "action": "send",
                            "room_id": room,
                            "body": f"bench message {self.counter}",
                            "client_msg_id": cmid,
                        }
                    )
                except (websockets.exceptions.WebSocketException, OSError):
                    pass
                at += interval

        tasks = []
        for room, (client, engineer) in self.room_ends.items():
            tasks.append(side(client, engineer, room))
            tasks.append(side(engineer, client, room))
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


async def steady(plan: dict, *, interval: float, duration: float, servers=()) -> dict:
    """Scenario 1: every side of every room sends every `interval` seconds for `duration` seconds."""
    chat = Chat(plan)
    chat.servers = servers
    connect_s = await chat.connect()
    result = await chat.run_rate(rate=2 * len(chat.room_ends) / interval, duration=duration)
    await chat.settle()
    result.update(chat.integrity())
    result.update({"sessions": len(chat.room_ends), "sockets": len(chat.conns), "connect_s": round(connect_s, 2)})
    await chat.close()
    return result


async def knee(plan: dict, *, rates: list[float], step_s: float, p99_limit_ms: float = 100.0, servers=()) -> dict:
    """Scenario 2: raise the rate step by step until p99 passes the limit or a message is lost."""
    chat = Chat(plan)
    chat.servers = servers
    await chat.connect()
    steps, best = [], 0.0
    for rate in rates:
        step = await chat.run_rate(rate=rate, duration=step_s, drain=2.0)
        integrity = chat.integrity()
        step.update(integrity)
        ok = (
            step["latency_ms"]["p99"] <= p99_limit_ms
            and step["undelivered"] == 0
            and integrity["lost"] == 0
            and integrity["duplicated"] == 0
            and integrity["reordered"] == 0
        )
        step["holds"] = ok
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


# --- Scenario 3: queue burst ------------------------------------------------------------------


class Burst:
    """100 clients press Join Chat within a second while engineers watch the HUD; then they race."""

    def __init__(self, clients: list[dict], engineers: list[dict]):
        self.clients = [
            Conn(c["url"], cookie=c["cookie"], name=f"qc{n}", on_frame=self._client_frame)
            for n, c in enumerate(clients)
        ]
        self.ticket_of = {conn.name: c["ticket_id"] for conn, c in zip(self.clients, clients)}
        self.engineers = [
            Conn(e["url"], cookie=e["cookie"], name=f"qe{n}", on_frame=self._hud_frame) for n, e in enumerate(engineers)
        ]
        self.requested_at: dict[int, float] = {}  # ticket -> when its client sent request_chat
        self.dialog_at: dict[int, float] = {}  # ticket -> when its client's dialog first showed it waiting
        self.first_seen: dict[tuple[str, int], float] = {}  # (engineer, ticket) -> first queue frame showing it
        self.visible: dict[str, dict[int, int]] = {e.name: {} for e in self.engineers}  # engineer -> request -> ticket
        self.sessions: dict[int, list[str]] = defaultdict(list)  # ticket -> engineers who got its session panel
        self.session_at: dict[int, float] = {}
        self.won: Counter[str] = Counter()
        self.changed = asyncio.Event()

    def _client_frame(self, conn: Conn, frame: str, now: float) -> None:
        if 'data-event="client_state"' in frame and 'data-state="waiting"' in frame:
            self.dialog_at.setdefault(self.ticket_of[conn.name], now)

    def _hud_frame(self, conn: Conn, frame: str, now: float) -> None:
        if 'data-event="queue"' in frame:
            items = {int(r): int(t) for r, t in QUEUE_ITEM_RE.findall(frame)}
            self.visible[conn.name] = items
            for ticket in items.values():
                self.first_seen.setdefault((conn.name, ticket), now)
            self.changed.set()
        for _, ticket in SESSION_RE.findall(frame):
            self.won[conn.name] += 1
            self.sessions[int(ticket)].append(conn.name)
            self.session_at.setdefault(int(ticket), now)
            self.changed.set()

    async def run(self, *, spread_s: float = 1.0, servers=()) -> dict:
        loop = asyncio.get_running_loop()
        await open_all(self.engineers + self.clients, sync=True)
        tickets = set(self.ticket_of.values())
        start = loop.time() + 0.3

        async def press(conn: Conn, at: float):
            await asyncio.sleep(max(0.0, at - loop.time()))
            self.requested_at[self.ticket_of[conn.name]] = at
            await conn.send({"action": "request_chat", "ticket_id": self.ticket_of[conn.name]})

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

        async def engineer(conn: Conn):
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
                await conn.send({"action": "answer", "request_id": request_id})
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
) -> dict:
    """Open idle sockets up to each checkpoint; measure RSS, ping round trips and idle CPU.

    Opening stops at the first checkpoint reached after `budget_s` seconds of connecting, so a
    server that accepts sockets slowly cannot push the whole run past its time limit; the
    result then says how far it got.
    """
    conns: list[Conn] = []
    loop = asyncio.get_running_loop()
    log_size = server.log_size()
    # Warm up: the first sockets load code and fill caches; memory per socket is measured after.
    warm = [Conn(s["url"], cookie=s.get("cookie", "")) for s in conns_spec[:20]]
    await open_all(warm, sync=False, concurrency=20)
    await asyncio.gather(*(c.ping() for c in warm))
    conns.extend(warm)
    await asyncio.sleep(1)
    base_rss, base_n = server.rss_kib(), len(conns)
    points = []
    failures: list[Conn] = []
    opening_started = loop.time()
    for target in checkpoints:
        if loop.time() - opening_started > budget_s:
            break
        batch = [Conn(s["url"], cookie=s.get("cookie", "")) for s in conns_spec[len(conns) : target]]
        started = loop.time()
        gate = asyncio.Semaphore(concurrency)

        async def one(conn: Conn):
            # A handshake the server drops (daphne gives the application 5 s to accept) is
            # retried, as the browser's reconnect would; the failures are counted.
            for _attempt in range(5):
                async with gate:
                    try:
                        await conn.open(timeout=60)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", required=True, help="JSON file: clients and engineers with url, cookie, rooms")
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--interval", type=float, default=5)
    args = parser.parse_args()
    with open(args.plan) as handle:
        plan = json.load(handle)
    print(json.dumps(asyncio.run(steady(plan, interval=args.interval, duration=args.duration)), indent=2))


if __name__ == "__main__":
    main()
