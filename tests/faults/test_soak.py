"""The soak's short version: chat with connection churn; the servers' memory holds steady.

bench/soak.py runs the same workload (tests/faults/churn.py) for 15 minutes. Here it runs about a
minute on two daphne processes: 100 connects a minute, a message from each tab every few
seconds. After a warm-up (pools fill, templates compile, allocator arenas settle), each process's
resident memory may drift by at most 5%, and nothing may be lost, doubled or reordered.
"""

import pytest

from tests.faults.churn import make_peers, run_soak

pytestmark = [pytest.mark.multiprocess, pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

MAX_DRIFT_PERCENT = 5.0


async def test_memory_holds_steady_under_chat_and_connection_churn(cluster):
    """A minute of chat with 100 connects a minute: RSS drifts by at most 5% after the warm-up."""
    seeded = cluster.seed(chats=10)
    cluster.start_servers(2)
    result = await run_soak(
        cluster,
        make_peers(cluster, seeded["chats"]),
        seconds=60,
        warmup=20,
        connects_per_minute=100,
        message_interval=4.0,
        sample_every=5.0,
    )
    print("\nsoak (short):\n" + result.table())

    assert result.missing == 0
    assert (result.tally.lost, result.tally.duplicated, result.tally.reordered, result.tally.unacked) == (0, 0, 0, 0)
    assert result.connects >= 100 * result.seconds / 60 * 0.8, "the churn fell behind its 100 connects a minute"
    assert all(drift <= MAX_DRIFT_PERCENT for drift in result.drift()), result.table()
