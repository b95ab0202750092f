"""Clients drop and reconnect at random while messages flow: nothing is lost, doubled or reordered.

Two daphne processes share the private PostgreSQL and Redis. Each live chat has a client tab and
an engineer tab, both sending. Droppers cut random tabs (an aborted TCP stream or a polite close)
and reconnect them to either server, as the browser does: `sync` with the last seq it shows, then
re-send whatever was not acknowledged, with the same client_msg_id.
"""

import asyncio
import json
import random
import time

import pytest

from tests.conftest import ROOT
from tests.faults.churn import make_peers
from tests.faults.harness import chatter, judge, keep_connected, machine_is_busy, percentile, settle

pytestmark = [pytest.mark.multiprocess, pytest.mark.postgres, pytest.mark.redis]
RESULTS = ROOT / "var" / "fault-results"


async def run_drops(cluster, *, chats: int, drops: int, droppers: int, interval: float) -> dict:
    """Run the drop storm and return the figures; assert nothing was lost, doubled or reordered."""
    seeded = cluster.seed(chats=chats)
    cluster.start_servers(2)
    peers = make_peers(cluster, seeded["chats"])
    await asyncio.gather(*(peer.connect(timeout=120) for peer in peers))
    for peer in peers:
        peer.catch_up_times.clear()  # the first connects are not reconnects

    stop = asyncio.Event()
    senders = [asyncio.create_task(chatter(peer, stop, interval=interval)) for peer in peers]
    healer = asyncio.create_task(keep_connected(peers, stop))
    done = 0
    catch_ups: list[float] = []

    async def dropper():
        nonlocal done
        while done < drops:
            peer = random.choice(peers)
            if peer.lock.locked():
                await asyncio.sleep(0.01)
                continue
            done += 1
            catch_ups.append(await peer.bounce(pause=random.uniform(0, 0.3), timeout=60))
            await asyncio.sleep(random.uniform(0, 0.05))

    started = time.monotonic()
    await asyncio.gather(*(dropper() for _ in range(droppers)))
    storm_seconds = time.monotonic() - started
    busy = machine_is_busy()
    stop.set()
    await asyncio.gather(*senders, healer)
    settle_started = time.monotonic()
    await settle(peers, timeout=120)
    settle_seconds = time.monotonic() - settle_started

    stored = cluster.stored_seqs()
    tally = judge(peers, stored)
    cluster.assert_rooms_consistent()
    sent = set().union(*(peer.sent for peer in peers))
    missing_ids = sent - cluster.stored_client_msg_ids()
    figures = {
        "drops": done,
        "storm_seconds": round(storm_seconds, 1),
        "settle_seconds": round(settle_seconds, 1),
        "messages": sum(len(seqs) for seqs in stored.values()),
        "sent": len(sent),
        "catch_up_p50": round(percentile(catch_ups, 50), 3),
        "catch_up_p99": round(percentile(catch_ups, 99), 3),
        "catch_up_max": round(max(catch_ups), 3),
        "tally": tally,
        "busy": busy,
    }
    print(f"\nclient drops: {figures}")
    for peer in peers:
        await peer.drop()

    assert missing_ids == set(), f"sent but never stored: {sorted(missing_ids)[:10]}"
    assert (tally.lost, tally.duplicated, tally.reordered, tally.unacked) == (0, 0, 0, 0), figures
    return figures


def report_catch_up(name: str, figures: dict) -> None:
    """Print the catch-up figures against the issue's bound (p99 <= 1 s) and keep them as JSON.

    Speed is reported, not asserted: a timed assertion fails on a busy machine for reasons that
    are not ours (see docs/reliability.md, Limits). Loss, duplication and order are asserted.
    """
    verdict = "PASS" if figures["catch_up_p99"] <= 1.0 else "MISS"
    busy = f" (machine busy: {figures['busy']})" if figures["busy"] else ""
    print(
        f"{name}: catch-up p50 {figures['catch_up_p50']} s, p99 {figures['catch_up_p99']} s "
        f"(bound 1 s): {verdict}{busy}"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({**figures, "tally": str(figures["tally"])}, indent=2))


async def test_random_drops_lose_nothing(cluster):
    """100 random drops across 10 live chats: every message arrives once, in order; catch-up is reported."""
    figures = await run_drops(cluster, chats=10, drops=100, droppers=4, interval=3.0)
    report_catch_up("client-drops-100", figures)


@pytest.mark.slow
async def test_a_thousand_drops_across_fifty_chats_lose_nothing(cluster):
    """The issue's figure: 1,000 random drops across 50 live chats while messages flow (10 a second)."""
    figures = await run_drops(cluster, chats=50, drops=1000, droppers=20, interval=10.0)
    report_catch_up("client-drops-1000", figures)
