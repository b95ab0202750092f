"""Soak: N minutes of chat with connection churn against real daphne processes; report memory drift.

    .venv/bin/python -m bench.soak                      # 15 minutes, 2 servers, 100 connects a minute
    .venv/bin/python -m bench.soak --minutes 5 --chats 30

It starts its own PostgreSQL cluster and redis-server on free ports (tests/faults/servers.py,
the fault tests' servers), so it never touches the machine's shared ones, and throws them away
at the end. The workload is tests/faults/churn.py, the one tests/faults/test_soak.py runs for a
minute: every chat has a client tab and an engineer tab sending; tabs are dropped and reconnected
at the given rate. It prints a table of each server's resident memory (VmRSS) over time and
exits 1 if any drifts by more than --max-drift percent after the warm-up, or if a message was
lost, doubled or reordered. Needs initdb/pg_ctl (PostgreSQL 15 or 16) and redis-server.
"""

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The harness imports the test suite's helpers (tests/conftest.py and the factories it imports),
# which need Django set up; set it up without a real secret. The servers get their own settings.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deskchat.settings")
_dev_key = "DESKCHAT_ALLOW_DEV_KEY" not in os.environ
os.environ.setdefault("DESKCHAT_ALLOW_DEV_KEY", "1")
import django  # noqa: E402

django.setup()
from tests.faults.churn import make_peers, run_soak  # noqa: E402
from tests.faults.servers import FaultCluster, PrivatePostgres, PrivateRedis  # noqa: E402

if _dev_key:
    os.environ.pop("DESKCHAT_ALLOW_DEV_KEY")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="how long to run (default 15)")
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds before memory counts (default: a tenth of the run, at least 30)",
    )
    parser.add_argument("--servers", type=int, default=2, help="daphne processes (default 2)")
    parser.add_argument("--chats", type=int, default=20, help="live chats, two tabs each (default 20)")
    parser.add_argument("--connects-per-minute", type=float, default=100.0, help="connection churn (default 100)")
    parser.add_argument(
        "--message-interval",
        type=float,
        default=4.0,
        help="seconds between two messages from one tab, on average (default 4)",
    )
    parser.add_argument(
        "--sample-every",
        type=float,
        default=None,
        help="seconds between two memory samples (default: 30, or 5 for runs under 5 minutes)",
    )
    parser.add_argument("--max-drift", type=float, default=5.0, help="allowed RSS drift in percent (default 5)")
    return parser.parse_args(argv)


async def soak(args) -> int:
    seconds = args.minutes * 60
    warmup = args.warmup if args.warmup is not None else max(30.0, seconds / 10)
    sample_every = args.sample_every or (30.0 if seconds >= 300 else 5.0)
    pg = PrivatePostgres()
    redis_dir = Path(tempfile.mkdtemp(prefix="deskchat-soak-redis-"))
    redis = None
    cluster = None
    try:
        print(
            f"soak: {args.minutes:g} min, {args.servers} servers, {args.chats} chats, "
            f"{args.connects_per_minute:g} connects/min, warm-up {warmup:.0f}s",
            flush=True,
        )
        pg.init()
        pg.start()
        pg.make_template()
        redis = PrivateRedis(redis_dir).start()
        cluster = FaultCluster(pg, redis, pg.new_database())
        seeded = cluster.seed(chats=args.chats)
        cluster.start_servers(args.servers)

        def progress(sample):
            rss = ", ".join(f"{kib / 1024:.1f}" for kib in sample.rss_kib)
            print(
                f"  {sample.elapsed:6.0f}s  RSS MiB [{rss}]  connects {sample.connects}  sent {sample.messages}",
                flush=True,
            )

        result = await run_soak(
            cluster,
            make_peers(cluster, seeded["chats"]),
            seconds=seconds,
            warmup=warmup,
            connects_per_minute=args.connects_per_minute,
            message_interval=args.message_interval,
            sample_every=sample_every,
            progress=progress,
        )
    finally:
        if cluster is not None:
            cluster.stop()
        if redis is not None:
            redis.kill()
        shutil.rmtree(redis_dir, ignore_errors=True)
        pg.destroy()

    print()
    print(result.table())
    tally = result.tally
    ok_memory = all(drift <= args.max_drift for drift in result.drift())
    ok_messages = (tally.lost, tally.duplicated, tally.reordered, tally.unacked, result.missing) == (0, 0, 0, 0, 0)
    print(
        f"\nmemory drift <= {args.max_drift:g}%: {'yes' if ok_memory else 'NO'}; "
        f"nothing lost, doubled or reordered: {'yes' if ok_messages else 'NO'}"
    )
    return 0 if ok_memory and ok_messages else 1


def main(argv=None) -> int:
    # A plain SIGTERM would skip the cleanup and leave the private servers running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return asyncio.run(soak(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
