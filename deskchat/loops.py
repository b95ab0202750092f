"""One object per event loop (a daphne process has one loop, a test has its own), and work for when daphne runs."""

import asyncio
import sys
from collections.abc import Callable, Hashable

_per_loop: dict[tuple[asyncio.AbstractEventLoop, Hashable], object] = {}


def for_this_loop(key: Hashable, make: Callable[[], object]):
    """Return this event loop's object under `key`, made on first use (one per daphne process; one per test's loop)."""
    loop = asyncio.get_running_loop()
    if (loop, key) not in _per_loop:
        for old in [k for k in _per_loop if k[0].is_closed()]:
            del _per_loop[old]
        _per_loop[(loop, key)] = make()
    return _per_loop[(loop, key)]


def forget_this_loops(key: Hashable):
    """Remove and return this event loop's object under `key` (None if none was made)."""
    return _per_loop.pop((asyncio.get_running_loop(), key), None)


def call_when_daphne_runs(callback: Callable[[], object]) -> None:
    """Call `callback` once daphne's reactor runs, in a server process only.

    daphne speaks no ASGI lifespan, so hook Twisted's reactor start instead. Only when daphne's
    server module has installed its asyncio reactor: importing Twisted's reactor anywhere else
    would install a default one. A test or a command importing the ASGI module runs no reactor,
    so the callback never runs there.
    """
    if "daphne.server" not in sys.modules:
        return
    from twisted.internet import reactor

    # callLater, not callWhenRunning: the latter fires before the asyncio loop itself runs.
    reactor.callLater(0, callback)
