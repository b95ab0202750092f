"""A process's sockets, by user: the cap on how many one user may hold, and the reads they share.

A user can open any number of tabs, and a script any number of sockets. Every event for a user
(`request.changed`, `room.opened`, `invitation.changed` …) reaches each of their sockets, and each
used to read the database for it on its own: with 500 sockets of one contact, every event for
them was 500 trips to the process's one database thread, and other users' handshakes and frames
waited behind them. So a process holds at most CHAT_MAX_SOCKETS_PER_USER sockets per user, and the
sockets of one user share each read, as chat.shared_queue shares the queue read: a socket asks for
a read that began after the event reached it; the first such socket starts one (after a moment,
when the user has several sockets here, so that their nudges of one event arrive first), and the
others wait for that same read.
"""

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable

from django.conf import settings

# How long the first of a user's several sockets waits before reading, so that the others'
# copies of the same event (delivered in the same few loop turns) can share its read.
GATHER_DELAY = 0.02
# A finished read is kept this long for sockets that were busy when the event arrived.
KEEP_READS_SECONDS = 5.0

CLOSE_TOO_MANY_SOCKETS = 4429
TOO_MANY_SOCKETS_REASON = "Too many open chat windows for this user: close one, then reload this page."


class _Read:
    def __init__(self):
        self.started_at: float | None = None  # None while it waits for the others
        self.task: asyncio.Future | None = None


class UserSockets:
    """This event loop's sockets by user id, and their shared reads."""

    def __init__(self):
        self.sockets: dict[int, set] = defaultdict(set)
        self.reads: dict[tuple, _Read] = {}

    def add(self, user_id: int, socket, *, limit: int) -> bool:
        """Count this socket for its user, or return False when the user already holds `limit` (0: no cap)."""
        held = self.sockets[user_id]
        if limit and len(held) >= limit:
            return False
        held.add(socket)
        return True

    def discard(self, user_id: int, socket) -> None:
        held = self.sockets.get(user_id)
        if held is not None:
            held.discard(socket)
            if not held:
                del self.sockets[user_id]

    def count(self, user_id: int) -> int:
        return len(self.sockets.get(user_id, ()))

    async def read(self, user_id: int, key: Hashable, heard_at: float, load: Callable[[], Awaitable]):
        """Return what `load` reads for this user, from a read that began after `heard_at`.

        Call with the monotonic time the event (or frame) reached the socket: any read that began
        later sees everything committed before it was published.
        """
        full_key = (user_id, key)
        read = self.reads.get(full_key)
        if read is None or (read.started_at is not None and read.started_at <= heard_at):
            read = self.reads[full_key] = _Read()
            read.task = asyncio.ensure_future(self._run(read, load, gather=self.count(user_id) > 1))
            self._forget_old_reads()
        return await asyncio.shield(read.task)

    @staticmethod
    async def _run(read: _Read, load, *, gather: bool):
        if gather:
            await asyncio.sleep(GATHER_DELAY)
        read.started_at = time.monotonic()
        return await load()

    def _forget_old_reads(self) -> None:
        horizon = time.monotonic() - KEEP_READS_SECONDS
        for key in [k for k, r in self.reads.items() if r.task.done() and (r.started_at or 0) < horizon]:
            del self.reads[key]


_registries: dict[asyncio.AbstractEventLoop, UserSockets] = {}


def user_sockets() -> UserSockets:
    """Return this event loop's registry (one per daphne process; one per test's loop)."""
    loop = asyncio.get_running_loop()
    if loop not in _registries:
        for old in [old for old in _registries if old.is_closed()]:
            del _registries[old]
        _registries[loop] = UserSockets()
    return _registries[loop]


async def admit(consumer, user_id: int) -> bool:
    """Count a connecting socket for its user, or close it with 4429 when the user holds the cap already.

    Every kind of socket a user opens counts (chat, HUD, supervisor view), so no kind dodges the
    cap. Call `user_sockets().discard(user_id, consumer)` when an admitted socket goes.
    """
    if user_sockets().add(user_id, consumer, limit=settings.CHAT_MAX_SOCKETS_PER_USER):
        return True
    # Accepted first, since a socket closed before that gets HTTP 403 and no code or reason.
    await consumer.accept()
    await consumer.close(code=CLOSE_TOO_MANY_SOCKETS, reason=TOO_MANY_SOCKETS_REASON)
    return False
