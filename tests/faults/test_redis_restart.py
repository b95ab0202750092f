"""Redis dies and comes back: sends are stored meanwhile, delivery resumes, the gap is read from the DB.

Redis only carries nudges. While it is down, a send is still written to PostgreSQL (the publish
after commit fails and is logged), so nothing is dropped; the other side reads it from the
database as soon as the next nudge shows a gap, or on its next sync.
"""

import asyncio
import time
from collections import Counter

import pytest

from tests.faults.harness import Peer, chatter, judge, keep_connected, settle

pytestmark = [pytest.mark.multiprocess, pytest.mark.postgres, pytest.mark.redis]


async def test_redis_restart_loses_nothing_and_delivery_resumes(cluster):
    """Kill -9 Redis for 3 s mid-chat, start it again on the same port: delivery resumes within 5 s."""
    seeded = cluster.seed(chats=4)
    first, second = cluster.start_servers(2)
    peers = []
    for n, chat in enumerate(seeded["chats"]):
        # Client and engineer on different processes: their messages must cross Redis.
        peers.append(
            Peer(
                name=f"c{n}",
                path="/ws/chat/",
                session=chat["client"]["session"],
                room_id=chat["room_id"],
                urls=lambda: [first.ws_url],
            )
        )
        peers.append(
            Peer(
                name=f"e{n}",
                path="/ws/hud/",
                session=chat["engineer"]["session"],
                room_id=chat["room_id"],
                urls=lambda: [second.ws_url],
            )
        )
    await asyncio.gather(*(peer.connect(timeout=60) for peer in peers))

    stop = asyncio.Event()
    senders = [asyncio.create_task(chatter(peer, stop, interval=0.3)) for peer in peers]
    healer = asyncio.create_task(keep_connected(peers, stop))
    await asyncio.sleep(2)

    cluster.redis.kill()
    down_at = time.monotonic()
    sent_before_outage = {p.name: p.sent_count for p in peers}
    await asyncio.sleep(3)
    sent_during_outage = {
        f"{p.name}-{i}" for p in peers for i in range(sent_before_outage[p.name] + 1, p.sent_count + 1)
    }
    cluster.redis.start()
    up_at = time.monotonic()

    # Delivery has resumed for a peer once a message reaches its open socket after Redis is back
    # (both sides send every ~0.3 s, so each socket has something to receive).
    resumed: dict[str, float] = {}
    connects = {p.name: p.connects for p in peers}
    while len(resumed) < len(peers) and time.monotonic() - up_at < 30:
        for peer in peers:
            if peer.name not in resumed and peer.last_message_at > up_at and peer.connects == connects[peer.name]:
                resumed[peer.name] = peer.last_message_at - up_at
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*senders, healer)
    await settle(peers, timeout=60)

    stored_ids = cluster.stored_client_msg_ids()
    stored = cluster.stored_seqs()
    tally = judge(peers, stored)
    cluster.assert_rooms_consistent()
    slowest = max(resumed.values(), default=float("inf"))
    print(
        f"\nredis restart: outage {up_at - down_at:.1f}s, {len(sent_during_outage)} sends during it, "
        f"{len(sent_during_outage & stored_ids)} stored; delivery resumed for {len(resumed)}/{len(peers)} "
        f"within {slowest:.2f}s of Redis coming back; {tally}; "
        f"errors {sum((p.errors for p in peers), Counter())}"
    )
    for peer in peers:
        await peer.drop()

    assert sent_during_outage and sent_during_outage <= stored_ids, "a send during the outage was dropped"
    assert set().union(*(p.sent for p in peers)) <= stored_ids
    assert len(resumed) == len(peers) and slowest <= 5.0, resumed
    assert (tally.lost, tally.duplicated, tally.reordered, tally.unacked) == (0, 0, 0, 0)


async def test_messages_sent_while_redis_is_down_reach_a_quiet_room_once_it_is_back(cluster):
    """No later message reveals the gap: what was stored during the outage still arrives within 5 s of Redis's return."""
    seeded = cluster.seed(chats=2)
    first, second = cluster.start_servers(2)
    clients = [
        Peer(
            name=f"c{n}",
            path="/ws/chat/",
            session=chat["client"]["session"],
            room_id=chat["room_id"],
            urls=lambda: [first.ws_url],
        )
        for n, chat in enumerate(seeded["chats"])
    ]
    engineers = [
        Peer(
            name=f"e{n}",
            path="/ws/hud/",
            session=chat["engineer"]["session"],
            room_id=chat["room_id"],
            urls=lambda: [second.ws_url],
        )
        for n, chat in enumerate(seeded["chats"])
    ]
    peers = clients + engineers
    await asyncio.gather(*(peer.connect(timeout=60) for peer in peers))
    for client in clients:
        await client.send("before the outage")
    await asyncio.sleep(1)

    cluster.redis.kill()
    for client in clients:
        await client.send("during the outage")
        await client.ping()  # the server has handled (stored) it
    cluster.redis.start()
    up_at = time.monotonic()

    stored = cluster.stored_seqs()
    while time.monotonic() - up_at < 10 and not all(set(stored[p.room_id]) <= set(p.arrivals) for p in peers):
        await asyncio.sleep(0.05)
    arrived_after = time.monotonic() - up_at
    tally = judge(peers, stored)
    print(
        f"\nredis restart, quiet room: everything stored during the outage reached both sides "
        f"{arrived_after:.2f}s after Redis was back; {tally}"
    )
    for peer in peers:
        await peer.drop()
    assert arrived_after <= 5.0
    assert (tally.lost, tally.duplicated, tally.reordered, tally.unacked) == (0, 0, 0, 0)
