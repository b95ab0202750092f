"""One object per event loop: a daphne process has one loop, a test has its own."""

import asyncio
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
