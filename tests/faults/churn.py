"""The soak workload: chat in every room while connections churn, sampling the servers' memory.

Shared by bench/soak.py (15 minutes by default, a table at the end) and tests/faults/test_soak.py
(a minute or so). Every live chat has a client tab and an engineer tab, both sending. A churner
drops a random tab and reconnects it, `connects_per_minute` times a minute, as people reloading
pages and losing their network would. The servers' resident memory (VmRSS) is sampled all along.

Drift compares the median of the first samples after the warm-up with the median of the last
ones, so one sample taken during a garbage-collection spike decides nothing.
"""

import asyncio
import random
import statistics
import time
from dataclasses import dataclass, field

from tests.faults.harness import Peer, Tally, chatter, judge, keep_connected, percentile, settle
from tests.faults.servers import FaultCluster

WINDOW = 3  # samples per median at either end of the measurement


@dataclass
class Sample:
    elapsed: float
    rss_kib: list[int]  # one per server
    connects: int
    messages: int


@dataclass
class SoakResult:
    seconds: float
    warmup: float
    samples: list[Sample] = field(default_factory=list)
    connects: int = 0
    messages: int = 0
    catch_up_p99: float = 0.0
    tally: Tally = field(default_factory=Tally)
    missing: int = 0  # sent but never stored

    def measured(self) -> list[Sample]:
        return [s for s in self.samples if s.elapsed >= self.warmup]

    def drift(self) -> list[float]:
        """Return each server's memory drift after the warm-up, in percent."""
        after = self.measured()
        if len(after) < 2:
            return [0.0 for _ in (self.samples[0].rss_kib if self.samples else [])]
        window = max(1, min(WINDOW, len(after) // 2))
        drifts = []
        for n in range(len(after[0].rss_kib)):
            start = statistics.median(s.rss_kib[n] for s in after[:window])
            end = statistics.median(s.rss_kib[n] for s in after[-window:])
            drifts.append(100.0 * (end - start) / start)
        return drifts

    def table(self) -> str:
        """Render the samples and the verdict as a plain-text table."""
        servers = len(self.samples[0].rss_kib) if self.samples else 0
        head = f"{'time':>7}  " + "  ".join(f"{'server ' + str(n + 1) + ' MiB':>14}" for n in range(servers))
        head += f"  {'connects':>9}  {'sent':>9}"
        lines = [head, "-" * len(head)]
        for s in self.samples:
            mark = " " if s.elapsed >= self.warmup else "w"  # w: still warming up
            lines.append(
                f"{s.elapsed:6.0f}s{mark} "
                + "  ".join(f"{kib / 1024:14.1f}" for kib in s.rss_kib)
                + f"  {s.connects:9d}  {s.messages:9d}"
            )
        lines.append("-" * len(head))
        lines.append(
            "drift after warm-up: " + ", ".join(f"server {n + 1} {d:+.2f}%" for n, d in enumerate(self.drift()))
        )
        lines.append(
            f"{self.connects} connects in {self.seconds:.0f}s ({60 * self.connects / self.seconds:.0f}/min), "
            f"{self.messages} messages, catch-up p99 {self.catch_up_p99:.3f}s; lost {self.tally.lost}, "
            f"duplicated {self.tally.duplicated}, reordered {self.tally.reordered}, "
            f"unacknowledged {self.tally.unacked}, never stored {self.missing}"
        )
        return "\n".join(lines)


def make_peers(cluster: FaultCluster, chats: list[dict]) -> list[Peer]:
    """Return a client tab and an engineer tab for each seeded chat, on any live server."""
    peers = []
    for n, chat in enumerate(chats):
        peers.append(
            Peer(
                name=f"c{n}",
                path="/ws/chat/",
                session=chat["client"]["session"],
                room_id=chat["room_id"],
                urls=cluster.ws_urls,
            )
        )
        peers.append(
            Peer(
                name=f"e{n}",
                path="/ws/hud/",
                session=chat["engineer"]["session"],
                room_id=chat["room_id"],
                urls=cluster.ws_urls,
            )
        )
    return peers


async def run_soak(
    cluster: FaultCluster,
    peers: list[Peer],
    *,
    seconds: float,
    warmup: float,
    connects_per_minute: float = 100,
    message_interval: float = 5.0,
    sample_every: float = 5.0,
    progress=None,
) -> SoakResult:
    """Run the workload on started servers and connected-to-be peers; judge it against the database."""
    result = SoakResult(seconds=seconds, warmup=warmup)
    await asyncio.gather(*(peer.connect(timeout=120) for peer in peers))
    for peer in peers:
        peer.catch_up_times.clear()  # the first connects are not reconnects
    stop = asyncio.Event()
    senders = [asyncio.create_task(chatter(peer, stop, interval=message_interval)) for peer in peers]
    healer = asyncio.create_task(keep_connected(peers, stop))
    started = time.monotonic()
    bounces: set[asyncio.Task] = set()
    catch_ups: list[float] = []

    async def churn():
        gap = 60.0 / connects_per_minute
        next_at = time.monotonic()
        while not stop.is_set():
            next_at += gap
            peer = random.choice(peers)
            if not peer.lock.locked():
                task = asyncio.create_task(peer.bounce(pause=random.uniform(0, 0.2), timeout=60))
                task.add_done_callback(
                    lambda t: catch_ups.append(t.result()) if not t.cancelled() and t.exception() is None else None
                )
                bounces.add(task)
                task.add_done_callback(bounces.discard)
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def sample() -> Sample:
        return Sample(
            elapsed=time.monotonic() - started,
            rss_kib=[server.rss_kib() for server in cluster.servers],
            connects=sum(peer.connects for peer in peers),
            messages=sum(len(peer.sent) for peer in peers),
        )

    churner = asyncio.create_task(churn())
    result.samples.append(sample())
    while time.monotonic() - started < seconds:
        await asyncio.sleep(min(sample_every, max(0.0, seconds - (time.monotonic() - started))))
        result.samples.append(sample())
        if progress:
            progress(result.samples[-1])
    stop.set()
    result.seconds = time.monotonic() - started
    result.connects = sum(peer.connects for peer in peers) - len(peers)  # before the final reconnects
    await asyncio.gather(churner, *senders, healer)
    await asyncio.gather(*list(bounces), return_exceptions=True)
    await settle(peers, timeout=120)

    stored = cluster.stored_seqs()
    result.tally = judge(peers, stored)
    cluster.assert_rooms_consistent()
    sent = set().union(*(peer.sent for peer in peers))
    result.missing = len(sent - cluster.stored_client_msg_ids())
    result.messages = sum(len(seqs) for seqs in stored.values())
    result.catch_up_p99 = percentile(catch_ups, 99)
    for peer in peers:
        await peer.drop()
    return result
