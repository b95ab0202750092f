"""The supervisor view, live: its socket, and one read of the board per process for every supervisor.

The board (every queue's figures, every engineer's state) changes with the events that
deskchat.events nudges the supervisors' group with: queue changes, sessions opening and
closing, availability, an engineer's HUD coming online. A nudge makes each supervisor socket
ask for a read that began after it; the first starts one, the others wait for that same read,
and all of them send the one HTML it rendered. So ten supervisors cost one read and one render
per change, as the HUD's queue does (chat/shared_queue.py). The board depends on the viewer's
time zone (what "today" is, how moments are written), so there is one shared read per zone.

Going offline has no event (it is the absence of presence refreshes), so every socket also
redraws every REFRESH_SECONDS, from a read no older than that: one read per process per period.
"""

import asyncio
import logging
import time

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.roles import who
from deskchat.events import supervisor_group
from deskchat.timefmt import activate_viewer_time_zone

from . import selectors
from .user_sockets import admit, user_sockets

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 30  # presence runs out without an event: CHAT_PRESENCE_TIMEOUT_SECONDS is 90 by default
REDRAW_DELAY = 0.1  # a burst of nudges (one answer is several events) becomes one redraw
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


def render_board() -> str:
    """Render the supervisor board as the frame that replaces it on the page (in the active zone)."""
    return render_to_string("hud/supervisor.html#board", {**selectors.supervisor_overview(), "oob": True})


class SharedBoard:
    """The latest board of this process for one time zone, and the read in flight."""

    def __init__(self):
        self.html: str | None = None
        self.started_at = float("-inf")  # time.monotonic() when the latest read began
        self.reading: asyncio.Task | None = None

    async def since(self, moment: float) -> str:
        """Return the board from a read that began after `moment`."""
        while self.html is None or self.started_at <= moment:
            if self.reading is None or self.reading.done():
                self.reading = asyncio.ensure_future(self._read())  # in the caller's time zone
            await asyncio.shield(self.reading)
        return self.html

    async def _read(self) -> None:
        started_at = time.monotonic()
        html = await database_sync_to_async(render_board)()
        if started_at > self.started_at:
            self.html, self.started_at = html, started_at


_boards: dict[tuple[asyncio.AbstractEventLoop, str], SharedBoard] = {}


def shared_board(zone: str) -> SharedBoard:
    """Return this event loop's shared board for a time zone (one per daphne process and zone)."""
    loop = asyncio.get_running_loop()
    if (loop, zone) not in _boards:
        for old in [key for key in _boards if key[0].is_closed()]:
            del _boards[old]
        _boards[(loop, zone)] = SharedBoard()
    return _boards[(loop, zone)]


class SupervisorConsumer(AsyncWebsocketConsumer):
    """A supervisor view's socket: it only listens, and sends the board each time it changes."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not await admit(self, user.pk):
            return
        self.user_id = user.pk
        if not (await database_sync_to_async(who)(user)).is_supervisor:
            user_sockets().discard(user.pk, self)
            await self.close(code=CLOSE_FORBIDDEN)
            return
        activate_viewer_time_zone(self.scope.get("cookies"))
        self.board = shared_board(timezone.get_current_timezone_name())
        self.dirty = False
        self.changed_at = time.monotonic()
        self.redraw: asyncio.Task | None = None
        await self.accept()
        await self.channel_layer.group_add(supervisor_group(), self.channel_name)
        # What changed between the page's render and this join is drawn now.
        self.refresher = asyncio.create_task(self._refresh_forever())
        await self.supervisor_changed({})

    async def dispatch(self, message):
        """Call the handler directly, without Channels' trip to the database thread (see ChatSocket)."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def disconnect(self, code):
        if hasattr(self, "user_id"):
            user_sockets().discard(self.user_id, self)
        if hasattr(self, "refresher"):
            await self.channel_layer.group_discard(supervisor_group(), self.channel_name)
            self.refresher.cancel()
            if self.redraw:
                self.redraw.cancel()

    async def receive(self, text_data=None, bytes_data=None):
        """Ignore what the browser sends: the board is read-only and this socket only listens."""

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
                await self.send(text_data=await self.board.since(self.changed_at))
        except Exception:  # noqa: BLE001 - the socket may have closed meanwhile; the next nudge retries
            logger.warning("supervisor redraw failed", exc_info=True)

    async def _refresh_forever(self):
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.send(text_data=await self.board.since(time.monotonic() - REFRESH_SECONDS))
            except Exception:  # noqa: BLE001 - keep refreshing; a closed socket cancels this task
                logger.warning("supervisor refresh failed", exc_info=True)
