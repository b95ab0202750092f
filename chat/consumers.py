"""Websocket consumers: the client's chat socket and the engineer's HUD socket.

Both speak the same protocol. The browser sends JSON frames `{"action": "...", ...}` (htmx's ws
extension sends a form's fields this way). The server answers with HTML fragments that htmx swaps
in by id (`hx-swap-oob`); every fragment's root carries `data-event`, and messages carry
`data-room` and `data-seq`, so programs other than htmx can read them too.

Delivery: a `chat.message` event carries the message. A socket remembers the last sequence
number it sent for each room; a duplicate is dropped, and a gap (the channel layer is lossy) is
filled from the database. After (re)connecting, the browser sends `sync` with the last sequence
number it has per room; until then live messages for that room are held back, since the sync
reads everything committed from the database anyway.

No ORM code lives here: reads go through chat.selectors, writes through chat.services.
"""

import asyncio
import json
import logging
import time

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import Http404
from django.utils import timezone

from accounts.roles import who
from deskchat.events import call_service, queue_group, room_group, user_group
from deskchat.timefmt import activate_viewer_time_zone

from . import fragments, presence, selectors, services, shared_queue
from .models import DRAFT_MAX_LENGTH, ChatParticipant
from .services import ChatError
from .user_sockets import admit, user_sockets

logger = logging.getLogger(__name__)

# Wait this long after a queue change before reading the queue, so that the nudges of one change
# (one per socket) and of a burst of changes share one read (see chat.shared_queue).
QUEUE_REDRAW_DELAY = 0.05

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
# Drafts of one socket are stored at most this often (the last one always is): see write_drafts.
DRAFT_WRITE_INTERVAL = 1.0
# A sync names the rooms the browser shows; past this many closed ones, the oldest are not caught up.
SYNC_MAX_CLOSED_ROOMS = 5


class TokenBucket:
    """Allow a burst of frames, refilled at a steady rate (per connection)."""

    def __init__(self, burst: int, per_second: float):
        self.capacity = burst
        self.tokens = float(burst)
        self.rate = per_second
        self.updated = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def as_int(payload: dict, key: str) -> int:
    """Read a positive integer field of a frame, or refuse the frame."""
    value = payload.get(key)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 16:
        value = int(value)  # form fields arrive as text; isdigit alone admits "²" and 5,000-digit numbers
    if isinstance(value, bool) or not isinstance(value, int) or not (0 <= value < 2**53):
        raise ChatError("bad_frame", f"'{key}' must be a whole number.")
    return value


def as_text(payload: dict, key: str, *, limit: int = 100_000) -> str:
    value = payload.get(key, "")
    if not isinstance(value, str) or len(value) > limit:
        raise ChatError("bad_frame", f"'{key}' must be text.")
    return value


def storable(payload: dict) -> bool:
    """Return whether every string in a frame is text PostgreSQL can store and a socket can send.

    JSON may spell a NUL (\\u0000) or a lone surrogate (\\ud800): PostgreSQL refuses the first, and
    the second cannot be encoded as UTF-8, so echoing it back in an error frame would fail too.
    """
    pending = [payload]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str):
            if "\x00" in value:
                return False
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


class ChatSocket(AsyncWebsocketConsumer):
    """What both sockets share: framing, errors, rooms, messages and catch-up."""

    # Frames that cost nothing to store (or, as drafts, are coalesced before they are stored) are
    # throttled separately and dropped silently.
    LIGHT_ACTIONS = {"typing", "read", "sync", "ping", "draft"}
    # The class of the page's participant box: the redrawn box replaces it whole (hx-swap-oob).
    PARTICIPANTS_CLASS = ""
    # The role this socket's user has in its rooms: a read frame moves that participation on.
    ROLE = ""

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
        self.rooms: dict[int, int | None] = {}  # room id -> last seq sent; None until synced
        self.bucket = TokenBucket(settings.CHAT_RATE_BURST, settings.CHAT_RATE_PER_SECOND)
        self.light_bucket = TokenBucket(settings.CHAT_RATE_BURST * 2, settings.CHAT_RATE_PER_SECOND * 4)
        self.groups_joined: set[str] = set()
        # When the event being handled reached this socket; None while a frame (or the connect) is
        # handled, whose reads must begin after its own writes.
        self.heard_at: float | None = None
        self.frames_waiting = 0
        self.backlog: asyncio.Queue = asyncio.Queue()
        self.closed = False
        # Every later handler runs in this task's context (and its threads copy it): frames are
        # written in the viewer's time zone, as their pages are (deskchat/timefmt.py).
        activate_viewer_time_zone(self.scope.get("cookies"))
        await self.accept()
        await self.join(user_group(self.user.pk))
        for room_id in await database_sync_to_async(selectors.rooms_for_socket)(user=self.user):
            await self.watch_room(room_id)
        presence.ensure_sweeper()
        await self.on_connected()
        self.worker = asyncio.create_task(self.work())

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
                await self.handle_frame(handler, *item)
                continue
            if self.closed:
                continue
            self.heard_at = heard_at
            try:
                await handler(item)
            except Exception:  # noqa: BLE001 - one failed redraw must not stop the socket
                logger.exception("chat event %r failed", item.get("type"))

    async def shared(self, key, load):
        """Return `load()`'s result from a read this user's sockets in this process share (chat.user_sockets).

        What is read is often drawn already, with moments written in the viewer's time zone, and
        one user's sockets may come from browsers in different zones: those share nothing.
        """
        heard_at = time.monotonic() if self.heard_at is None else self.heard_at
        return await user_sockets().read(self.user.pk, (key, timezone.get_current_timezone_name()), heard_at, load)

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

    async def join(self, group: str) -> None:
        if group not in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.add(group)

    async def leave_group(self, group: str) -> None:
        if group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)
            self.groups_joined.discard(group)

    async def watch_room(self, room_id: int, *, synced_at: int | None = None) -> None:
        self.rooms.setdefault(room_id, synced_at)
        await self.join(room_group(room_id))

    # --- Incoming frames ------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        """Check a frame as it arrives and queue it for this socket's worker (see dispatch)."""
        await self.take_frame(text_data, bytes_data)

    async def take_frame(self, text_data, bytes_data):
        """Refuse or drop a frame at once if it is junk, over the rate limit or over the backlog; else queue it.

        Nothing here waits for the database, so a flood is checked as fast as it arrives, not when
        the frames before it are done.
        """
        try:
            payload = json.loads(text_data if text_data is not None else bytes_data)
            if not isinstance(payload, dict):
                raise ValueError
        except (ValueError, TypeError, UnicodeDecodeError, RecursionError):
            await self.refuse_junk("bad_frame", "That frame was not a JSON object.")
            return
        if not storable(payload):
            await self.refuse_junk("bad_frame", "That frame contained characters that cannot be stored.")
            return
        action = payload.get("action")
        handler = self.actions().get(action) if isinstance(action, str) else None
        if handler is None:
            await self.refuse_junk("unknown_action", f"Unknown action {str(action)[:40]!r}.")
            return
        bucket = self.light_bucket if action in self.LIGHT_ACTIONS else self.bucket
        if not bucket.take() or self.frames_waiting >= settings.CHAT_FRAME_BACKLOG:
            if action not in self.LIGHT_ACTIONS:
                # Naming the frame's client_msg_id lets the browser put the refused text back.
                await self.send_error("rate_limited", "You are sending too fast. Wait a moment and try again.", payload)
            return
        if getattr(self, "worker", None) is None:
            await self.handle_frame(handler, action, payload)
            return
        self.frames_waiting += 1
        self.backlog.put_nowait((None, handler, (action, payload)))

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

    def actions(self) -> dict:
        return {
            "ping": self.do_ping,
            "sync": self.do_sync,
            "send": self.do_send,
            "typing": self.do_typing,
            "read": self.do_read,
            "leave": self.do_leave,
        }

    async def do_ping(self, payload):
        await self.send(text_data=fragments.pong())

    async def do_sync(self, payload):
        """Bring the browser up to date, then go live.

        For each room the browser names, send what follows its last seq. A room it does not
        name gets a fresh panel and every message; a named room that is no longer active for
        this user gets its last messages and its closed state.
        """
        seen = payload.get("rooms") or {}
        if not isinstance(seen, dict):
            raise ChatError("bad_frame", "'rooms' must map room ids to sequence numbers.")
        known = {}
        for key, seq in list(seen.items())[:50]:
            key = str(key)  # ascii and short, so int() below never fails on "²" or 5,000 digits
            if key.isascii() and key.isdigit() and len(key) <= 16 and isinstance(seq, int) and 0 <= seq < 2**31:
                known[int(key)] = seq
        for room_id in list(self.rooms):
            if room_id in known:
                await self.catch_up(room_id, known[room_id])
            else:
                await self.show_room(room_id)
        others = [room_id for room_id in known if room_id not in self.rooms]
        if others:
            # One read for all of them: rooms made up or someone else's cost nothing more.
            past = await database_sync_to_async(selectors.rooms_participated)(user=self.user, room_ids=others)
            for room_id in past[:SYNC_MAX_CLOSED_ROOMS]:
                await self.show_closed_room(room_id, known[room_id])

    async def open_room(self, room_id: int) -> None:
        """Start watching a room this user just entered, and show it from its first message."""
        if room_id not in self.rooms:
            await self.watch_room(room_id)
            await self.show_room(room_id)

    async def show_room(self, room_id: int) -> None:
        await self.send(text_data=await self.shared(("room_panel", room_id), lambda: self.room_panel(room_id)))
        await self.catch_up(room_id, 0)

    async def show_closed_room(self, room_id: int, seq: int) -> None:
        """Send what followed `seq` in a room this user was in, and its closed state.

        Call only for a room selectors.rooms_participated returned: never tell a socket about a
        room it was not in.
        """
        messages = await database_sync_to_async(selectors.messages_after)(room_id=room_id, seq=seq)
        await self.send_messages(messages)
        await self.send(text_data=await self.closed_panel(room_id))

    async def closed_panel(self, room_id: int) -> str:
        return await self.shared(("room_closed", room_id), lambda: fragments.room_closed(room_id, viewer=self.user))

    async def room_panel(self, room_id: int) -> str:
        raise NotImplementedError

    async def catch_up(self, room_id: int, after: int) -> None:
        """Send every message after `after`, a page at a time, and go live from the last one."""
        while True:
            messages = await self.shared(
                ("messages", room_id, after),
                lambda after=after: database_sync_to_async(selectors.messages_after)(room_id=room_id, seq=after),
            )
            await self.send_messages(messages)
            if messages:
                after = messages[-1]["seq"]
            if len(messages) < selectors.MESSAGES_PAGE:
                break
        self.rooms[room_id] = after

    async def send_messages(self, messages: list[dict]) -> None:
        for frame in fragments.message_frames(messages, viewer=self.user):
            await self.send(text_data=frame)

    async def do_send(self, payload):
        room_id = as_int(payload, "room_id")
        self.require_room(room_id)
        message, created = await call_service(
            services.send_message,
            room_id=room_id,
            user=self.user,
            body=payload.get("body"),
            client_msg_id=as_text(payload, "client_msg_id", limit=64),
            kind=self.message_kind(payload),
        )
        # The message itself comes back through the room group, after commit: that is the ack.
        # A retry of a message already stored publishes nothing (its first publish may have been
        # lost with Redis, or its commit's reply with the database), so ack it from the database.
        last = self.rooms.get(room_id)
        if not created and last is not None and message.seq > last:
            await self.catch_up(room_id, last)

    def message_kind(self, payload) -> str:
        return "text"

    async def do_typing(self, payload):
        room_id = as_int(payload, "room_id")
        self.require_room(room_id)
        await call_service(
            services.notify_typing, room_id=room_id, user=self.user, typing=bool(payload.get("typing", True))
        )

    async def do_read(self, payload):
        room_id = as_int(payload, "room_id")
        # No require_room: the page marks messages read as they arrive, the leaver's own "… left."
        # among them, and that read can cross the room.left that stops this socket watching the
        # room. mark_read accepts it from anyone who was in the room and refuses everyone else.
        await call_service(
            services.mark_read, room_id=room_id, user=self.user, seq=as_int(payload, "seq"), role=self.ROLE
        )

    async def do_leave(self, payload):
        room_id = as_int(payload, "room_id")
        self.require_room(room_id)
        await call_service(services.leave_room, room_id=room_id, user=self.user)

    def require_room(self, room_id: int) -> None:
        if room_id not in self.rooms:
            raise ChatError("not_participant", "You are not in this chat.")

    # --- Group events -----------------------------------------------------------------------

    async def chat_message(self, event):
        """Deliver one message in order: drop duplicates, fill gaps from the database."""
        room_id, message = event["room_id"], event["message"]
        if room_id not in self.rooms:
            return
        last = self.rooms[room_id]
        if last is None or message["seq"] <= last:
            return  # not synced yet (the sync will read it), or already sent
        if message["seq"] == last + 1:
            self.rooms[room_id] = message["seq"]
            await self.send_messages([message])
        else:
            await self.catch_up(room_id, last)
        if message["kind"] == "system":
            await self.send_participants(room_id)

    async def room_typing(self, event):
        if event["room_id"] in self.rooms and event["user_id"] != self.user.pk:
            await self.send(text_data=fragments.typing(event))

    async def room_ended(self, event):
        room_id = event["room_id"]
        if room_id in self.rooms:
            await self.catch_up(room_id, self.rooms[room_id] or 0)
            self.rooms.pop(room_id, None)
            await self.leave_group(room_group(room_id))
            await self.send(text_data=await self.closed_panel(room_id))

    async def room_left(self, event):
        """This user left a room (from any of their sockets): stop watching it."""
        room_id = event["room_id"]
        if room_id in self.rooms:
            await self.catch_up(room_id, self.rooms[room_id] or 0)
            self.rooms.pop(room_id, None)
            await self.leave_group(room_group(room_id))
            await self.send(text_data=await self.closed_panel(room_id))

    async def send_participants(self, room_id: int) -> None:
        await self.send(text_data=await fragments.participants(room_id, css_class=self.PARTICIPANTS_CLASS))

    async def send_error(self, code: str, message: str, payload: dict | None = None) -> None:
        await self.send(text_data=fragments.error(code, message, payload))

    # Events only the other kind of socket acts on are ignored here.
    async def room_read(self, event):
        pass

    async def queue_changed(self, event):
        pass

    async def queue_draft(self, event):
        pass

    async def queue_position(self, event):
        pass

    async def availability_changed(self, event):
        pass

    async def authorize(self) -> bool:
        raise NotImplementedError

    async def on_connected(self) -> None:
        pass


class ClientChatConsumer(ChatSocket):
    """A client's socket, open on every portal page: requests, the chat, invitations."""

    PARTICIPANTS_CLASS = "chat-participants"
    ROLE = ChatParticipant.Role.CLIENT

    async def authorize(self) -> bool:
        self.client_state: dict = {}  # the context of the dialog as last drawn
        self.position_redraw: asyncio.Task | None = None
        self.position_changed_at = 0.0  # when the latest queue.position nudge reached this socket
        self.draft: tuple[int, str] | None = None  # the latest draft frame not stored yet
        self.draft_writer: asyncio.Task | None = None
        self.contact = (await database_sync_to_async(who)(self.user)).contact
        return self.contact is not None

    async def on_connected(self):
        await self.send_client_state()

    def actions(self) -> dict:
        return {
            **super().actions(),
            "request_chat": self.do_request_chat,
            "cancel": self.do_cancel,
            "callback": self.do_callback,
            "note": self.do_note,
            "draft": self.do_draft,
            "accept_invitation": self.do_accept_invitation,
            "reject_invitation": self.do_reject_invitation,
        }

    async def do_request_chat(self, payload):
        html, self.client_state = await call_service(self.ask_for_chat, as_int(payload, "ticket_id"))
        await self.send(text_data=html)

    def ask_for_chat(self, ticket_id: int) -> tuple[str, dict]:
        """Find the ticket, ask for the chat and draw the dialog, in one trip to the database thread.

        A burst of clients pressing Join Chat queues up on that one thread, so each trip counts.
        """
        from tickets.selectors import get_ticket_for_contact

        try:
            ticket = get_ticket_for_contact(contact=self.contact, ticket_id=ticket_id)
        except Http404:  # never say whether another company's ticket exists
            raise ChatError("not_found", "No such ticket.") from None
        request = services.request_chat(contact=self.contact, ticket=ticket)
        return fragments.render_client_state(self.contact, waiting=request)

    async def do_cancel(self, payload):
        await call_service(services.cancel_request, contact=self.contact, request_id=as_int(payload, "request_id"))

    async def do_callback(self, payload):
        await call_service(
            services.request_callback,
            contact=self.contact,
            request_id=as_int(payload, "request_id"),
            text=as_text(payload, "body"),
        )
        await self.send(
            text_data=fragments.notice(
                "callback", "Thanks. An engineer will call you back; it is noted on your ticket."
            )
        )

    async def do_note(self, payload):
        """Stop waiting and leave what the client typed on the ticket as their note."""
        request = await call_service(
            services.leave_note_instead,
            contact=self.contact,
            request_id=as_int(payload, "request_id"),
            text=as_text(payload, "body"),
        )
        await self.send(
            text_data=fragments.notice(
                "note_added", f"Your note is on ticket #{request.ticket_id}. We will reply there."
            )
        )

    async def do_draft(self, payload):
        """Keep the question typed while waiting for the engineers' queue; store the latest once a second at most."""
        # A question longer than the queue item shows is cut, not refused: the box allows a whole message.
        text = as_text(payload, "body", limit=settings.CHAT_MESSAGE_MAX_LENGTH)[:DRAFT_MAX_LENGTH]
        self.draft = (as_int(payload, "request_id"), text)
        if self.draft_writer is None or self.draft_writer.done():
            self.draft_writer = asyncio.create_task(self.write_drafts())

    async def write_drafts(self):
        """Store drafts as they come, DRAFT_WRITE_INTERVAL apart, always ending with the latest one.

        Each stored draft redraws every HUD listing the queue, so a fast typist (or a script) must
        not cost a write and a redraw per keystroke. A refused draft (the request was answered or
        cancelled meanwhile) is dropped unanswered: the client has nothing to do about it.
        """
        while self.draft is not None:
            request_id, text = self.draft
            self.draft = None
            try:
                await call_service(services.save_draft, contact=self.contact, request_id=request_id, text=text)
            except ChatError as refusal:
                logger.debug("draft for request %s dropped: %s", request_id, refusal.code)
            except Exception:  # noqa: BLE001 - a draft is a hint; the next one is stored anyway
                logger.warning("draft for request %s failed", request_id, exc_info=True)
            await asyncio.sleep(DRAFT_WRITE_INTERVAL)

    async def do_accept_invitation(self, payload):
        room = await call_service(
            services.accept_invitation, contact=self.contact, request_id=as_int(payload, "request_id")
        )
        await self.open_room(room.pk)
        await self.send_client_state()

    async def do_reject_invitation(self, payload):
        await call_service(services.reject_invitation, contact=self.contact, request_id=as_int(payload, "request_id"))

    async def send_client_state(self) -> None:
        html, state = await self.shared("client_state", lambda: fragments.client_state(self.contact))
        self.client_state = dict(state)  # this socket's own copy: a position redraw changes it
        await self.send(text_data=html)

    async def request_changed(self, event):
        """The contact's request moved on (answered, expired …): watch its room, redraw.

        The socket that asked for the chat has drawn it waiting already; its own nudge is skipped.
        """
        shown = self.client_state
        request = shown.get("request")
        if (
            event.get("state") == "waiting"
            and shown.get("state") == "waiting"
            and request
            and request.pk == event.get("request_id")
        ):
            return
        rooms = await self.shared("rooms", lambda: database_sync_to_async(selectors.rooms_for_socket)(user=self.user))
        for room_id in rooms:
            await self.open_room(room_id)
        await self.send_client_state()

    async def queue_position(self, event):
        """Someone ahead of the contact left the queue: redraw their place in it.

        Every client behind gets this nudge at once, so the place comes from the process's shared
        queue read rather than a read of this socket's own; waiting a moment lets the nudges of
        one change, and of a burst of changes, share one read.
        """
        shown = self.client_state
        if shown.get("state") != "waiting" or shown["request"].queue_id != event.get("queue_id"):
            return
        self.position_changed_at = time.monotonic()
        if self.position_redraw is None or self.position_redraw.done():
            # A task, so that a burst of nudges never holds up this socket's other events.
            self.position_redraw = asyncio.create_task(self._redraw_position())

    async def _redraw_position(self):
        """Redraw the place in the queue until no nudge is left undrawn."""
        try:
            while True:
                await asyncio.sleep(QUEUE_REDRAW_DELAY)
                moment = self.position_changed_at
                snapshot = await shared_queue.shared_read().since(moment)
                shown = self.client_state  # read after the wait: the dialog may have moved on
                position = snapshot["positions"].get(shown["request"].pk) if shown.get("state") == "waiting" else None
                if position is not None and position != shown.get("position"):  # None: request.changed redraws
                    shown["position"] = position
                    await self.send(text_data=fragments.client_position(shown, position))
                if self.position_changed_at == moment:
                    return
        except Exception:  # noqa: BLE001 - the socket may have closed meanwhile
            logger.warning("queue position redraw failed", exc_info=True)

    async def disconnect(self, code):
        if getattr(self, "position_redraw", None):
            self.position_redraw.cancel()
        await super().disconnect(code)

    async def room_panel(self, room_id: int) -> str:
        return await fragments.client_room(room_id, viewer=self.user)

    async def invitation_changed(self, event):
        await self.request_changed(event)

    async def room_opened(self, event):
        await self.request_changed(event)


class StaffChatConsumer(ChatSocket):
    """An engineer's HUD socket: the live queue and every session they are in."""

    PARTICIPANTS_CLASS = "participants-box"
    ROLE = ChatParticipant.Role.ENGINEER

    async def authorize(self) -> bool:
        self.engineer = (await database_sync_to_async(who)(self.user)).engineer
        return self.engineer is not None

    async def on_connected(self):
        for queue_id in await database_sync_to_async(selectors.queue_ids_for)(engineer=self.engineer):
            await self.join(queue_group(queue_id))
        await presence.engineer_connected(self.engineer.pk)
        self.queue_redraw: asyncio.Task | None = None
        self.queue_dirty = False
        self.queue_changes: set[int] = set()  # requests whose change the next redraw reports
        self.queue_changed_at = time.monotonic()  # when the latest queue change reached this socket
        self.queue_shown: set[int] = set()  # requests in the queue as last drawn
        self.taken_told: set[int] = set()  # requests the notice on screen says a colleague answered
        await self.send(text_data=await fragments.staff_queue(self.engineer, shown=self.queue_shown))

    async def disconnect(self, code):
        if getattr(self, "engineer", None) is not None and hasattr(self, "queue_redraw"):
            presence.engineer_disconnected(self.engineer.pk)
            if self.queue_redraw:
                self.queue_redraw.cancel()
        await super().disconnect(code)

    def actions(self) -> dict:
        return {
            **super().actions(),
            "answer": self.do_answer,
            "end": self.do_end,
            "invite_engineer": self.do_invite_engineer,
            "join": self.do_join,
            "invite_contact": self.do_invite_contact,
            "cancel_invitation": self.do_cancel_invitation,
            "set_availability": self.do_set_availability,
        }

    def message_kind(self, payload) -> str:
        kind = payload.get("kind") or "text"
        return kind if kind in ("text", "greeting", "farewell") else "invalid"

    async def do_answer(self, payload):
        room = await call_service(
            services.answer_request, engineer=self.engineer, request_id=as_int(payload, "request_id")
        )
        await self.open_room(room.pk)

    async def do_end(self, payload):
        room_id = as_int(payload, "room_id")
        self.require_room(room_id)
        await call_service(services.end_room, room_id=room_id, engineer=self.engineer)

    async def do_invite_engineer(self, payload):
        room_id = as_int(payload, "room_id")
        self.require_room(room_id)
        other = await database_sync_to_async(selectors.engineer_by_id)(as_int(payload, "engineer_id"))
        if other is None:
            raise ChatError("not_found", "No such engineer.")
        await call_service(
            services.invite_engineer,
            room_id=room_id,
            by=self.engineer,
            engineer=other,
            transfer=bool(payload.get("transfer")),
        )
        await self.send(text_data=fragments.notice("invited", f"Invited {other.display_name}."))

    async def do_join(self, payload):
        participant = await call_service(services.join_room, room_id=as_int(payload, "room_id"), engineer=self.engineer)
        await self.open_room(participant.room_id)

    async def do_invite_contact(self, payload):
        from tickets.selectors import get_ticket_for_user

        try:
            ticket = await database_sync_to_async(get_ticket_for_user)(
                user=self.user, ticket_id=as_int(payload, "ticket_id")
            )
        except ChatError:
            raise
        except Exception:
            raise ChatError("not_found", "No such ticket.") from None
        await call_service(services.invite_contact, engineer=self.engineer, ticket=ticket)

    async def do_cancel_invitation(self, payload):
        await call_service(services.cancel_invitation, engineer=self.engineer, request_id=as_int(payload, "request_id"))

    async def do_set_availability(self, payload):
        await call_service(
            services.set_availability, engineer=self.engineer, availability=as_text(payload, "availability", limit=20)
        )

    async def room_panel(self, room_id: int) -> str:
        return await fragments.session(room_id, viewer=self.user)

    # --- Group events -----------------------------------------------------------------------

    async def queue_changed(self, event):
        """Redraw the queue from the process's shared read, at most once per short burst of changes."""
        if isinstance(event.get("request_id"), int):
            self.queue_changes.add(event["request_id"])
        self.queue_changed_at = time.monotonic()
        self.queue_dirty = True
        if self.queue_redraw is None or self.queue_redraw.done():
            self.queue_redraw = asyncio.create_task(self._redraw_queue())

    async def queue_draft(self, event):
        """A waiting client's question changed: redraw the queue item that shows it, as for any change."""
        await self.queue_changed(event)

    async def _redraw_queue(self):
        """Redraw until no change is left undrawn, and say who took a request that left this queue.

        A change that arrives while a redraw reads the database may not be in what it read, so it
        marks the queue dirty again and the loop draws once more.
        """
        try:
            while self.queue_dirty:
                await asyncio.sleep(QUEUE_REDRAW_DELAY)
                self.queue_dirty = False
                changed, self.queue_changes = self.queue_changes, set()
                before = set(self.queue_shown)
                await self.send(
                    text_data=await fragments.staff_queue(
                        self.engineer, shown=self.queue_shown, changed_at=self.queue_changed_at
                    )
                )
                await self._update_taken_notice(gone=(before - self.queue_shown) & changed)
        except Exception:  # noqa: BLE001 - the socket may have closed meanwhile
            logger.warning("queue redraw failed", exc_info=True)

    async def _update_taken_notice(self, *, gone: set[int]):
        """Say who took requests that just left the queue; take the words back when one returns.

        A request returns when the engineer who answered it leaves, and then "Dana answered
        Carol's chat" would contradict the queue right under it.
        """
        if gone:
            note = await fragments.taken_notice(engineer=self.engineer, request_ids=gone)
            if note:
                self.taken_told = gone
                await self.send(text_data=note)
        elif self.taken_told & self.queue_shown:
            self.taken_told = set()
            await self.send(text_data=fragments.notice("", ""))

    async def availability_changed(self, event):
        # Read afresh: who() keeps the profile as it was when the socket opened.
        engineer_id = self.engineer.pk
        self.engineer = await self.shared(
            "engineer", lambda: database_sync_to_async(selectors.engineer_by_id)(engineer_id)
        )
        await self.queue_changed(event)

    async def room_read(self, event):
        """Show how far the client has read ("Seen"): only client reads are published (services.mark_read)."""
        if event["room_id"] in self.rooms:
            await self.send(text_data=fragments.read_position(event))

    async def room_opened(self, event):
        await self.open_room(event["room_id"])

    async def room_invited(self, event):
        room_id = event["room_id"]
        await self.send(
            text_data=await self.shared(("room_invitation", room_id), lambda: fragments.room_invitation(room_id))
        )

    async def invitation_changed(self, event):
        request_id = event["request_id"]
        await self.send(
            text_data=await self.shared(("sent_invitation", request_id), lambda: fragments.sent_invitation(request_id))
        )

    async def request_changed(self, event):
        pass
