"""The supervisor view's socket: it only listens, and sends the board each time it changes.

The board (every queue's figures, every engineer's state) changes with the events that
deskchat.events nudges the supervisors' group with: queue changes, sessions opening and
closing, availability, an engineer's HUD coming online. A nudge makes each supervisor socket
ask for a read that began after it (chat.sockets.shared.LatestRead), so ten supervisors cost one
read and one render per change. The board depends on the viewer's time zone (what "today" is,
how moments are written), so there is one shared read per zone.

Going offline has no event (it is the absence of presence refreshes), so every socket also
redraws every REFRESH_SECONDS, from a read no older than that: one read per process per period.
"""

import asyncio
import logging
import time

from django.utils import timezone

from accounts.roles import who
from deskchat.events import supervisor_group
from deskchat.loops import for_this_loop

from .. import fragments, selectors
from .base import Socket
from .shared import LatestRead

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 30  # presence runs out without an event: CHAT_PRESENCE_TIMEOUT_SECONDS is 90 by default
REDRAW_DELAY = 0.1  # a burst of nudges (one answer is several events) becomes one redraw


class SupervisorSocket(Socket):
    """A supervisor view's socket."""

    async def authorize(self) -> bool:
        return (await self.read(who, user=self.user)).is_supervisor

    async def on_connected(self):
        self.board = for_this_loop(("board", timezone.get_current_timezone_name()), LatestRead)
        self.dirty = False
        self.changed_at = time.monotonic()
        self.redraw: asyncio.Task | None = None
        await self.join(supervisor_group())
        # What changed between the page's render and this join is drawn now.
        self.refresher = asyncio.create_task(self._refresh_forever())
        await self.supervisor_changed({})

    async def disconnect(self, code):
        for task in (getattr(self, "refresher", None), getattr(self, "redraw", None)):
            if task:
                task.cancel()
        await super().disconnect(code)

    async def take_frame(self, text_data, bytes_data):
        """Ignore what the browser sends: the board is read-only and this socket only listens."""

    async def board_since(self, moment: float) -> str:
        async def load():
            return fragments.supervisor_board(await self.read(selectors.supervisor_overview))

        return await self.board.since(moment, load)

    async def supervisor_changed(self, event):
        """Redraw from a read that begins after this nudge, once per short burst of nudges."""
        self.changed_at = time.monotonic()
        self.dirty = True
        if self.redraw is None or self.redraw.done():
            self.redraw = asyncio.create_task(self._redraw())

    async def _redraw(self):
        """Redraw until no nudge is left undrawn (one may arrive while a read is under way)."""
        try:
            while self.dirty:
                await asyncio.sleep(REDRAW_DELAY)
                self.dirty = False
                await self.send(text_data=await self.board_since(self.changed_at))
        except Exception:  # noqa: BLE001 - the socket may have closed meanwhile; the next nudge retries
            logger.warning("supervisor redraw failed", exc_info=True)

    async def _refresh_forever(self):
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.send(text_data=await self.board_since(time.monotonic() - REFRESH_SECONDS))
            except Exception:  # noqa: BLE001 - keep refreshing; a closed socket cancels this task
                logger.warning("supervisor refresh failed", exc_info=True)
