"""Summarise a py-spy raw profile (bench/run --profile): where the server's time went.

    python -m bench.profile_summary var/bench/profiles/s1-pg1.txt

Samples are split into the database thread (Channels' `database_sync_to_async` runs every
call of a process in one thread) and the event loop thread (daphne, Twisted, sockets,
channel layer). For each it lists the first frame in DeskChat's own code (`chat/`, `tickets/`,
`accounts/`, `deskchat/`) or, when there is none, the library frame closest to the top,
so it reads as "ours" versus "the framework's".
"""

import re
import sys
from collections import Counter

OURS = ("(chat/", "(tickets/", "(accounts/", "(deskchat/", "(bench/")


def summarise(path: str, top: int = 20) -> str:
    threads: dict[str, Counter] = {"database thread": Counter(), "event loop": Counter(), "other": Counter()}
    totals = Counter()
    idle = Counter()
    waiting = Counter()
    for line in open(path):
        stack, _, count = line.rstrip().rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if any("thread_handler" in f for f in frames):
            kind = "database thread"
        elif any("run_forever" in f for f in frames):
            kind = "event loop"
        else:
            kind = "other"
        totals[kind] += n
        leaf = frames[-1]
        if (
            "select (selectors.py" in leaf
            or "_worker (concurrent/futures/thread.py" in leaf
            or "Condition.wait" in leaf
            or "Connection.wait (psycopg" in leaf
        ):
            idle[kind] += n if "psycopg" not in leaf else 0
        ours = [re.sub(r":\d+\)$", ")", f) for f in frames if f.split(" ", 1)[-1].startswith(OURS)]
        if ours:
            # The outermost frame of ours: the selector, service or fragment a socket called.
            label = ours[1] if len(ours) > 1 and "chat/sockets/" in ours[0] else ours[0]
        else:
            label = "framework: " + re.sub(r":\d+\)$", ")", frames[-1])
        if "psycopg" in leaf and "Connection.wait" in leaf:
            waiting[kind] += n
        threads[kind][label] += n
    out = []
    for kind, counter in threads.items():
        if not totals[kind]:
            continue
        out.append(f"\n{kind}: {totals[kind]} samples ({idle[kind]} idle, {waiting[kind]} waiting for PostgreSQL)")
        for label, n in counter.most_common(top):
            out.append(f"  {100 * n / totals[kind]:5.1f}%  {label}")
    return "\n".join(out)


if __name__ == "__main__":
    for file in sys.argv[1:]:
        print(f"== {file}")
        print(summarise(file))
