"""PostgreSQL stops (immediate mode, as a crash) and comes back: sends are refused clearly, retried, stored once.

The connection pool's connections all die with the server. A send during the outage gets an
error frame with the code `unavailable` naming its client_msg_id; the client keeps the message
and retries it with the same id, and after recovery each message is stored exactly once.
"""

import asyncio
import time
from collections import Counter

import pytest

from tests.faults.harness import Peer, chatter, judge, keep_connected, settle

pytestmark = [pytest.mark.multiprocess, pytest.mark.postgres, pytest.mark.redis]


async def test_postgres_restart_refuses_clearly_then_stores_each_retry_once(cluster):
    """Sends during the outage get an `unavailable` error frame; retries after it are stored exactly once."""
    seeded = cluster.seed(chats=3)
    cluster.start_servers(2, DB_POOL_MIN=2, DB_POOL_MAX=10)
    peers = []
    for n, chat in enumerate(seeded["chats"]):
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
    await asyncio.gather(*(peer.connect(timeout=60) for peer in peers))

    stop = asyncio.Event()
    senders = [asyncio.create_task(chatter(peer, stop, interval=0.4)) for peer in peers]
    healer = asyncio.create_task(keep_connected(peers, stop))
    await asyncio.sleep(2)

    cluster.pg.stop("immediate")
    down_at = time.monotonic()
    await asyncio.sleep(4)
    cluster.pg.start()
    up_at = time.monotonic()

    # Recovery: every peer's messages are acknowledged again (its oldest pending one is gone).
    recovered_at = None
    while time.monotonic() - up_at < 60:
        if (
            all(peer.connected for peer in peers)
            and not any(sent_at < up_at and sent_at for peer in peers for _, sent_at in peer.pending.values())
            and all(peer.last_message_at > up_at for peer in peers)
        ):
            recovered_at = time.monotonic()
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*senders, healer)
    await settle(peers, timeout=90)

    sent = set().union(*(p.sent for p in peers))
    stored_ids = cluster.stored_client_msg_ids()
    tally = judge(peers, cluster.stored_seqs())
    cluster.assert_rooms_consistent()
    refusals = [r for p in peers for r in p.refusals]
    codes = Counter(code for _, code, _ in refusals)
    print(
        f"\npostgres restart: outage {up_at - down_at:.1f}s; {len(refusals)} sends refused {dict(codes)}; "
        f"e.g. {refusals[0][2]!r}; "
        if refusals
        else "\npostgres restart: no send refused; ",
        end="",
    )
    print(
        f"recovered {recovered_at - up_at:.2f}s after PostgreSQL was back; " if recovered_at else "not recovered; ",
        f"{len(sent)} sent, {len(stored_ids)} stored; {tally}",
    )
    for peer in peers:
        await peer.drop()

    assert codes["unavailable"], "no send was refused as unavailable during the outage"
    assert set(codes) <= {"unavailable", "rate_limited"}, codes  # retries may also meet the rate limit
    assert sent == stored_ids, "each message is stored exactly once (a unique constraint forbids twice)"
    assert recovered_at is not None
    assert (tally.lost, tally.duplicated, tally.reordered, tally.unacked) == (0, 0, 0, 0)
