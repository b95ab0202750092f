"""A daphne process is killed with SIGKILL mid-chat: its clients move to the other one and carry on."""

import asyncio
import time

import pytest

from tests.faults.harness import Peer, chatter, judge, keep_connected, settle

pytestmark = [pytest.mark.multiprocess, pytest.mark.postgres, pytest.mark.redis]


async def test_kill_9_of_one_server_loses_nothing(cluster):
    """Clients of the killed process reconnect to the survivor, re-send unacked messages, lose nothing."""
    seeded = cluster.seed(chats=8)
    doomed, survivor = cluster.start_servers(2)
    peers = []
    for n, chat in enumerate(seeded["chats"]):
        # Each chat has one side on each process, so every message crosses Redis before the crash.
        client_url = (lambda url: lambda: [url])(doomed.ws_url if n % 2 == 0 else survivor.ws_url)
        peers.append(
            Peer(
                name=f"c{n}",
                path="/ws/chat/",
                session=chat["client"]["session"],
                room_id=chat["room_id"],
                urls=client_url,
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
    for peer in peers:
        peer.urls = cluster.ws_urls  # from now on, any live server

    stop = asyncio.Event()
    senders = [asyncio.create_task(chatter(peer, stop, interval=0.3)) for peer in peers]
    healer = asyncio.create_task(keep_connected(peers, stop))
    await asyncio.sleep(3)
    on_doomed = [p for p in peers if p.connected and p.ws.remote_address[1] == doomed.port]
    killed_at = time.monotonic()
    doomed.kill()
    await asyncio.sleep(4)
    stop.set()
    await asyncio.gather(*senders, healer)
    await settle(peers, timeout=60)

    stored = cluster.stored_seqs()
    tally = judge(peers, stored)
    cluster.assert_rooms_consistent()
    missing_ids = set().union(*(p.sent for p in peers)) - cluster.stored_client_msg_ids()
    moved = [p for p in on_doomed if p.ws is not None and p.ws.remote_address[1] == survivor.port]
    print(
        f"\nserver crash: {len(on_doomed)} sockets on the killed process, {len(moved)} back on the survivor, "
        f"{sum(len(s) for s in stored.values())} messages, {tally}, "
        f"reconnect after kill within {max((max(p.catch_up_times) for p in on_doomed), default=0):.2f}s, "
        f"{time.monotonic() - killed_at:.1f}s after the kill everything was settled"
    )
    for peer in peers:
        await peer.drop()

    assert on_doomed and len(moved) == len(on_doomed)
    assert missing_ids == set()
    assert (tally.lost, tally.duplicated, tally.reordered, tally.unacked) == (0, 0, 0, 0)
