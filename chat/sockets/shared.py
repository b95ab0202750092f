"""The reads a process's sockets share, and the cap on how many sockets one user may hold.

One change reaches many sockets of a process at about the same moment: a new request every
engineer's HUD, an answer every client queued behind it, a nudge every supervisor view, and an
event for a user each of that user's tabs. Each socket used to read the database on its own,
and a daphne process runs every ORM call in one database thread, so with 20 engineers watching
one new request cost 20 reads in a row. Now a socket asks for a read that *began after* the
change reached it: the first such socket starts one, and every other waits for that same read.

- `LatestRead`: the latest read of something every socket of a process shows alike (the
  waiting queue, from which each HUD filters its engineer's part and each client finds its
  place; the supervisor board, one per time zone);
- `UserSockets`: a user's sockets, capped at CHAT_MAX_SOCKETS_PER_USER per process (with 500
  sockets of one contact, every event for them was 500 trips to the database thread), sharing
  each read an event for that user causes; the first of several waits a moment before reading,
  so that the others' copies of the same event arrive first;
- `ProcessBacklog`: the frames this process's sockets accepted and have not finished; past
  CHAT_PROCESS_BACKLOG of them, a send is refused as `busy` (the browser sends it again later
  with the same client_msg_id), so an overload sheds load instead of queueing without bound;
- `ReadBatch`: the read positions the process's sockets reported, written together every
  CHAT_READ_FLUSH_SECONDS (two statements, one commit) rather than one commit each.
"""

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError

from deskchat.events import call_service
from deskchat.loops import for_this_loop

from .. import presence, selectors, services

logger = logging.getLogger(__name__)


class LatestRead:
    """The latest result of one read of this process, and the read in flight."""

    def __init__(self):
        self.value = None
        self.started_at = float("-inf")  # time.monotonic() when the latest read began
        self.reading: asyncio.Future | None = None

    async def since(self, moment: float, load: Callable[[], Awaitable], serves: Callable = lambda value: True):
        """Return a result of `load()` that began after `moment` (and that `serves` accepts)."""
        while self.value is None or self.started_at <= moment or not serves(self.value):
            if self.reading is None or self.reading.done():
                self.reading = asyncio.ensure_future(self._read(load))  # in the caller's context (time zone)
            await asyncio.shield(self.reading)
        return self.value

    async def _read(self, load) -> None:
        started_at = time.monotonic()
        value = await load()
        if started_at > self.started_at:
            self.value, self.started_at = value, started_at


async def queue_since(moment: float, engineer_id: int | None = None) -> dict:
    """Return the process's read of the waiting queue that began after `moment` (selectors.queue_snapshot).

    Name an engineer to have the read include them (their queues, open sessions): it reads the
    engineers with a HUD open in this process, and one that has just connected may not be among
    them yet.
    """

    async def load():
        engineer_ids = {*presence.connected_engineers(), *([engineer_id] if engineer_id else [])}
        snapshot = await database_sync_to_async(selectors.queue_snapshot)(engineer_ids=engineer_ids)
        snapshot["rendered"] = {}  # the HUD's drawings of it, shared by engineers who see the same
        return snapshot

    def serves(snapshot: dict) -> bool:
        return engineer_id is None or engineer_id in snapshot["engineers"]

    return await for_this_loop("queue", LatestRead).since(moment, load, serves)


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


def user_sockets() -> UserSockets:
    """Return this event loop's registry of sockets by user."""
    return for_this_loop("user_sockets", UserSockets)


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


class ReadBatch:
    """The read positions this process's sockets reported, written together every CHAT_READ_FLUSH_SECONDS.

    A page reports how far it has read about once a second per room; a process with a thousand
    rooms open would otherwise commit a thousand times a second on its one database thread.
    Reports of one participation merge into the furthest one. A batch the database refused
    (down, restarting) is merged back and tried again with the next.
    """

    def __init__(self):
        self.pending: dict[tuple[int, int, str], tuple[int, object]] = {}  # (room, user, role) -> (seq, user)
        self.flusher: asyncio.Future | None = None

    def report(self, *, room_id: int, user, seq: int, role: str) -> None:
        self._merge({(room_id, user.pk, role): (seq, user)})
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.ensure_future(self._flush_soon())

    def _merge(self, reports: dict) -> None:
        for key, (seq, user) in reports.items():
            if key not in self.pending or seq > self.pending[key][0]:
                self.pending[key] = (seq, user)

    async def _flush_soon(self) -> None:
        while self.pending:
            await asyncio.sleep(settings.CHAT_READ_FLUSH_SECONDS)
            batch, self.pending = self.pending, {}
            reports = [
                services.ReadReport(room_id=room_id, user=user, seq=seq, role=role)
                for (room_id, _, role), (seq, user) in batch.items()
            ]
            try:
                await call_service(services.mark_reads, reports=reports)
            except (OperationalError, InterfaceError):
                logger.warning("read positions not stored: database unavailable; trying again", exc_info=True)
                self._merge(batch)
            except Exception:  # noqa: BLE001 - a read position is a hint; the page reports again as it reads on
                logger.exception("read positions not stored")


def read_batch() -> ReadBatch:
    """Return this event loop's batch of read positions."""
    return for_this_loop("reads", ReadBatch)


class ProcessBacklog:
    """The frames (other than the light ones) this process's sockets accepted and have not finished."""

    def __init__(self):
        self.waiting = 0

    def full(self) -> bool:
        return self.waiting >= settings.CHAT_PROCESS_BACKLOG


def process_backlog() -> ProcessBacklog:
    """Return this process's backlog of frames."""
    return for_this_loop("backlog", ProcessBacklog)
