"""What every DeskChat socket does, whatever page opened it.

It lets in only a signed-in user, within the cap of sockets per user, whom the socket kind
accepts (`authorize`). Frames are checked as they arrive: junk and floods are refused at once,
without waiting for the database. Accepted frames and group events then wait in one queue per
socket, which one worker takes in order, so a socket's view changes in the order things
happened. A refusal (ChatError) or a failure becomes an error frame; the socket stays open.
"""

import asyncio
import logging
import time

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from deskchat.admission import SCOPE_KEY as ADMISSION
from deskchat.timefmt import activate_viewer_time_zone

from .. import fragments
from ..errors import ChatError
from . import frames
from .shared import admit, process_backlog, user_sockets

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


class Socket(AsyncWebsocketConsumer):
    """The plumbing of a socket: who may connect, frames on arrival, one worker, groups, errors."""

    # Frames that cost nothing to store (or, as drafts, are coalesced before they are stored) are
    # throttled separately and dropped silently.
    LIGHT_ACTIONS = frozenset({"typing", "read", "sync", "ping", "draft"})
    # Frames refused as `busy` while the process's backlog is full: the browser sends them again
    # later with the same client_msg_id. Other frames are a person's rare clicks, and still queue.
    SHED_WHEN_BUSY = frozenset({"send"})
    # Group events this kind of socket hears (its groups get them) and has nothing to do with.
    IGNORED_EVENTS: frozenset[str] = frozenset()

    async def connect(self):
        self.user = self.scope.get("user")
        if self.user is None or not self.user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not await admit(self, self.user.pk):
            return
        self.counted = True
        if not await self.authorize():
            user_sockets().discard(self.user.pk, self)  # refused before the handshake: maybe no disconnect
            self.counted = False
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.start_queue()
        # Every later handler runs in this task's context (and its threads copy it): frames are
        # written in the viewer's time zone, as their pages are (deskchat/timefmt.py).
        activate_viewer_time_zone(self.scope.get("cookies"))
        await self.accept()
        await self.on_connected()
        self.release_admission()
        self.worker = asyncio.create_task(self.work())

    def release_admission(self) -> None:
        """Give back this handshake's place among those the process works on (deskchat/admission.py)."""
        admission = self.scope.get(ADMISSION)
        if admission is not None:
            admission.release(connected=True)

    def start_queue(self) -> None:
        self.bucket = frames.TokenBucket(settings.CHAT_RATE_BURST, settings.CHAT_RATE_PER_SECOND)
        self.light_bucket = frames.TokenBucket(settings.CHAT_RATE_BURST * 2, settings.CHAT_RATE_PER_SECOND * 4)
        self.groups_joined: set[str] = set()
        # When the event being handled reached this socket; None while a frame (or the connect) is
        # handled, whose reads must begin after its own writes.
        self.heard_at: float | None = None
        self.frames_waiting = 0
        self.backlog = frames.Mailbox()
        self.closed = False

    async def authorize(self) -> bool:
        """Return whether this user may open this kind of socket (and keep what the handlers need)."""
        raise NotImplementedError

    async def on_connected(self) -> None:
        """Join this socket's groups and send what the page shows first."""

    def actions(self) -> dict:
        """Return the handler of each action this socket accepts."""
        return {}

    async def dispatch(self, message):
        """Call the handler of a frame or group event, without Channels' trip to the database thread.

        Channels (4.2 and later) runs close_old_connections in the process's one database thread
        before every handler, so each chat message delivered to a socket would queue behind every
        other socket's queries. Every ORM call here goes through database_sync_to_async (or
        call_service), which closes stale connections in that thread before and after anyway.

        Channels also waits for each handler before it takes the next message, so a frame's rate
        limit used to be checked only once the frames before it were done, and a flood queued
        without limit. Once connected, a frame is checked here as it arrives (take_frame) and
        queued with the group events for this socket's worker (work).
        """
        if message["type"] in self.IGNORED_EVENTS:
            return
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        if getattr(self, "worker", None) is None or message["type"] in ("websocket.connect", "websocket.disconnect"):
            await handler(message)
        elif message["type"] == "websocket.receive":
            await self.take_frame(message.get("text"), message.get("bytes"))
        else:
            # Group events wait their turn behind the frames before them, so a socket's view of
            # its rooms changes in the order things happened; they are few and never refused.
            self.backlog.put_nowait((time.monotonic(), handler, message))

    async def work(self):
        """Handle this socket's frames and events one at a time, in the order they arrived."""
        while True:
            entry = await self.backlog.get()
            if entry is None:  # the socket closed, and the frames it sent before are done
                return
            heard_at, handler, item = entry
            if isinstance(item, tuple):  # a frame: (action, payload)
                self.frames_waiting -= 1
                self.heard_at = None
                try:
                    await self.handle_frame(handler, *item)
                finally:
                    if item[0] not in self.LIGHT_ACTIONS:
                        process_backlog().waiting -= 1
            elif not self.closed:
                self.heard_at = heard_at
                try:
                    await handler(item)
                except ChatError as refusal:  # the thing is no longer this user's to see: nothing to draw
                    logger.debug("chat event %r not drawn: %s", item.get("type"), refusal.code)
                except Exception:  # noqa: BLE001 - one failed redraw must not stop the socket
                    logger.exception("chat event %r failed", item.get("type"))

    async def disconnect(self, code):
        if getattr(self, "worker", None) is not None:
            # Not cancelled: a frame sent before closing (a Leave, a message) is still carried
            # out, and a service cancelled mid-call would never publish what it committed.
            self.closed = True
            self.backlog.put_nowait(None)
        if getattr(self, "counted", False):
            user_sockets().discard(self.user.pk, self)
        for group in getattr(self, "groups_joined", ()):
            await self.channel_layer.group_discard(group, self.channel_name)

    # --- Reads --------------------------------------------------------------------------------

    async def read(self, func, /, **kwargs):
        """Run a read (a chat.screens or chat.selectors function) in the database thread."""
        return await database_sync_to_async(func)(**kwargs)

    async def shared(self, key, load):
        """Return `load()`'s result from a read this user's sockets in this process share (chat.sockets.shared).

        What is read is often drawn already, with moments written in the viewer's time zone, and
        one user's sockets may come from browsers in different zones: those share nothing.
        """
        heard_at = time.monotonic() if self.heard_at is None else self.heard_at
        return await user_sockets().read(self.user.pk, (key, timezone.get_current_timezone_name()), heard_at, load)

    # --- Groups -------------------------------------------------------------------------------

    async def join(self, group: str) -> None:
        if group not in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.add(group)

    async def leave_group(self, group: str) -> None:
        if group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)
            self.groups_joined.discard(group)

    # --- Incoming frames ----------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        """Check a frame as it arrives and queue it for this socket's worker (see dispatch)."""
        await self.take_frame(text_data, bytes_data)

    async def take_frame(self, text_data, bytes_data):
        """Refuse or drop a frame at once if it is junk, over the rate limit or over a backlog; else queue it.

        Nothing here waits for the database, so a flood is checked as fast as it arrives, not when
        the frames before it are done. The socket's backlog (CHAT_FRAME_BACKLOG) stops one sender;
        the process's (CHAT_PROCESS_BACKLOG) sheds sends when everyone together sends more than
        the process can store.
        """
        try:
            payload = frames.parse(text_data, bytes_data)
        except ChatError as junk:
            await self.refuse_junk(junk.code, junk.message)
            return
        action = payload.get("action")
        handler = self.actions().get(action) if isinstance(action, str) else None
        if handler is None:
            await self.refuse_junk("unknown_action", f"Unknown action {str(action)[:40]!r}.")
            return
        if not self.admits(action):
            if action not in self.LIGHT_ACTIONS:
                # Naming the frame's client_msg_id lets the browser put the refused text back.
                await self.send_error("rate_limited", "You are sending too fast. Wait a moment and try again.", payload)
            return
        if getattr(self, "worker", None) is None:
            await self.handle_frame(handler, action, payload)
            return
        if action not in self.LIGHT_ACTIONS:
            backlog = process_backlog()
            if action in self.SHED_WHEN_BUSY and backlog.full():
                await self.send_error(
                    "busy", "Chat is busy right now. Your message will be sent again in a moment.", payload
                )
                return
            backlog.waiting += 1
        self.frames_waiting += 1
        self.backlog.put_nowait((None, handler, (action, payload)))

    def admits(self, action: str) -> bool:
        """Return whether a frame of this action fits the socket's rate limit and backlog (taking a token)."""
        bucket = self.light_bucket if action in self.LIGHT_ACTIONS else self.bucket
        return bucket.take() and self.frames_waiting < settings.CHAT_FRAME_BACKLOG

    async def handle_frame(self, handler, action: str, payload: dict) -> None:
        """Do what one accepted frame asks, and answer a refusal or failure with an error frame."""
        try:
            await handler(payload)
        except ChatError as error:
            await self.send_error(error.code, error.message, payload)
        except (OperationalError, InterfaceError):
            # The database is down or restarting: nothing was changed (or a retry with the same
            # client_msg_id finds it stored), so say so plainly; the sender keeps the text and retries.
            logger.warning("chat frame %r failed: database unavailable", action, exc_info=True)
            await self.send_error(
                "unavailable", "Chat is briefly unavailable. Please send that again in a moment.", payload
            )
        except Exception:  # noqa: BLE001 - one bad frame must not close the socket
            logger.exception("chat frame %r failed", action)
            await self.send_error("server_error", "Something went wrong on our side. Please try again.", payload)

    async def refuse_junk(self, code: str, message: str) -> None:
        """Answer a frame that names no action we know, while it costs the sender a token.

        Otherwise a stream of junk would make the server render error frames as fast as anyone
        can send; once the bucket is empty, junk is dropped unanswered.
        """
        if self.bucket.take():
            await self.send_error(code, message)

    async def send_error(self, code: str, message: str, payload: dict | None = None) -> None:
        await self.send(text_data=fragments.error(code, message, payload))

    async def send_notice(self, code: str, message: str) -> None:
        await self.send(text_data=fragments.notice(code, message))
