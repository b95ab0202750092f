"""The waiting queue, read once per process and shared by every socket that needs it.

A change to the queue reaches every engineer's HUD socket, and every client queued behind it,
at about the same moment. Each used to read the queue on its own: with 20 engineers watching,
one new request cost 20 reads on the process's single database thread, and one answered request
a read per client still waiting. Now a socket asks for a read that started after the change
reached it; the first such socket starts one, and every other waits for that same read. A HUD
filters it for its engineer in Python, and sockets showing the same requests share the rendered
HTML; a client finds its place in it.
"""

import asyncio
import time

from channels.db import database_sync_to_async

from . import presence, selectors


class SharedQueueRead:
    """The latest queue read of this process, and the read in flight."""

    def __init__(self):
        self.snapshot: dict | None = None
        self.started_at = float("-inf")  # time.monotonic() when the latest read began
        self.reading: asyncio.Task | None = None

    async def since(self, moment: float, engineer_id: int | None = None) -> dict:
        """Return a read that began after `moment` (and includes this engineer, if one is named)."""
        while not self._serves(moment, engineer_id):
            if self.reading is None or self.reading.done():
                self.reading = asyncio.ensure_future(self._read(engineer_id))
            await asyncio.shield(self.reading)
        return self.snapshot

    def _serves(self, moment: float, engineer_id: int | None) -> bool:
        if self.snapshot is None or self.started_at <= moment:
            return False
        return engineer_id is None or engineer_id in self.snapshot["engineers"]

    async def _read(self, engineer_id: int | None) -> None:
        started_at = time.monotonic()
        engineer_ids = {*presence.connected_engineers(), *([engineer_id] if engineer_id else [])}
        snapshot = await database_sync_to_async(selectors.queue_snapshot)(engineer_ids=engineer_ids)
        snapshot["rendered"] = {}
        if started_at > self.started_at:
            self.snapshot, self.started_at = snapshot, started_at


_reads: dict[asyncio.AbstractEventLoop, SharedQueueRead] = {}


def shared_read() -> SharedQueueRead:
    """Return this event loop's shared read (one per daphne process; one per test's loop)."""
    loop = asyncio.get_running_loop()
    if loop not in _reads:
        for old in [old for old in _reads if old.is_closed()]:
            del _reads[old]
        _reads[loop] = SharedQueueRead()
    return _reads[loop]
