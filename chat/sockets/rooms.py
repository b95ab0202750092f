"""What both chat sockets (the portal's and the HUD's) do in the rooms their user is in.

Delivery: a `chat.message` event carries the message. A socket remembers the last sequence
number it sent for each room; a duplicate is dropped, and a gap (the channel layer is lossy) is
filled from the database. After (re)connecting, the browser sends `sync` with the last sequence
number it has per room; until then live messages for that room are held back, since the sync
reads everything committed from the database anyway.
"""

from deskchat.events import call_service, room_group, user_group

from .. import fragments, presence, screens, selectors, services
from ..errors import ChatError
from .base import Socket
from .frames import as_int, as_room_seqs, as_text
from .shared import read_batch

# A sync names the rooms the browser shows; past this many closed ones, the oldest are not caught up.
SYNC_MAX_CLOSED_ROOMS = 5


class RoomSocket(Socket):
    """A socket that shows chat rooms: sync, send, typing, read, leave, and the rooms' events."""

    # The class of the page's participant box: the redrawn box replaces it whole (hx-swap-oob).
    PARTICIPANTS_CLASS = ""
    # The role this socket's user has in its rooms: a read frame moves that participation on.
    ROLE = ""
    # The name this socket's user has in its rooms (what "… is typing" says): set by authorize.
    display_name = ""

    async def on_connected(self):
        self.rooms: dict[int, int | None] = {}  # room id -> last seq sent; None until synced
        self.shown_rooms: set[int] = set()  # every room this socket sent, watched or closed
        await self.join(user_group(self.user.pk))  # first: what changes after the reads below is heard
        for room_id in await self.rooms_at_connect():
            await self.watch_room(room_id)
        presence.ensure_sweeper()

    async def rooms_at_connect(self) -> list[int]:
        """Return the rooms this user is in as the socket connects: the rooms it watches."""
        return await self.read(selectors.rooms_for_socket, user=self.user)

    def actions(self) -> dict:
        return {
            "ping": self.do_ping,
            "sync": self.do_sync,
            "send": self.do_send,
            "typing": self.do_typing,
            "read": self.do_read,
            "leave": self.do_leave,
        }

    # --- Frames -------------------------------------------------------------------------------

    async def do_ping(self, payload):
        await self.send(text_data=fragments.pong())

    async def do_sync(self, payload):
        """Bring the browser up to date, then go live.

        For each room the browser names, send what follows its last seq. A room it does not
        name gets a fresh panel and every message; a named room that is no longer active for
        this user gets its last messages and its closed state.
        """
        known = as_room_seqs(payload)
        for room_id in list(self.rooms):
            if room_id in known:
                await self.catch_up(room_id, known[room_id])
            else:
                await self.show_room(room_id)
        others = [room_id for room_id in known if room_id not in self.rooms]
        if others:
            # One read for all of them: rooms made up or someone else's cost nothing more.
            past = await self.read(selectors.rooms_participated, user=self.user, room_ids=others)
            for room_id in past[:SYNC_MAX_CLOSED_ROOMS]:
                await self.show_closed_room(room_id, known[room_id])

    async def do_send(self, payload):
        room_id = self.require_room(as_int(payload, "room_id"))
        message, created = await services.send_message_async(
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
        room_id = self.require_room(as_int(payload, "room_id"))
        typing = bool(payload.get("typing", True))
        await services.notify_typing(room_id=room_id, user_id=self.user.pk, name=self.display_name, typing=typing)

    async def do_read(self, payload):
        """Store how far the page has read: with the process's next batch for a room this socket showed.

        No require_room: the page marks messages read as they arrive, the leaver's own "… left."
        among them, and that read can cross the room.left that stops this socket watching the
        room. A room this socket never showed goes to mark_read at once, which accepts it from
        anyone who was in the room and refuses everyone else.
        """
        room_id, seq = as_int(payload, "room_id"), as_int(payload, "seq")
        if room_id in self.shown_rooms:
            read_batch().report(room_id=room_id, user=self.user, seq=seq, role=self.ROLE)
        else:
            await call_service(services.mark_read, room_id=room_id, user=self.user, seq=seq, role=self.ROLE)

    async def do_leave(self, payload):
        room_id = self.require_room(as_int(payload, "room_id"))
        await call_service(services.leave_room, room_id=room_id, user=self.user)

    def require_room(self, room_id: int) -> int:
        """Return the room id if this socket shows that room; refuse it otherwise."""
        if room_id not in self.rooms:
            raise ChatError("not_participant", "You are not in this chat.")
        return room_id

    # --- Showing rooms ------------------------------------------------------------------------

    async def watch_room(self, room_id: int) -> None:
        self.rooms.setdefault(room_id, None)
        self.shown_rooms.add(room_id)
        await self.join(room_group(room_id))

    async def open_room(self, room_id: int) -> None:
        """Start watching a room this user just entered, and show it from its first message."""
        if room_id not in self.rooms:
            await self.watch_room(room_id)
            await self.show_room(room_id)

    async def show_room(self, room_id: int) -> None:
        await self.send(text_data=await self.shared(("room_panel", room_id), lambda: self.room_panel(room_id)))
        await self.catch_up(room_id, 0)

    async def room_panel(self, room_id: int) -> str:
        """Read and render this page's panel of a room."""
        raise NotImplementedError

    async def show_closed_room(self, room_id: int, seq: int) -> None:
        """Send what followed `seq` in a room this user was in, and its closed state.

        Call only for a room selectors.rooms_participated returned: never tell a socket about a
        room it was not in.
        """
        self.shown_rooms.add(room_id)
        await self.send_messages(await self.read(selectors.messages_after, room_id=room_id, seq=seq))
        await self.send_closed_panel(room_id)

    async def send_closed_panel(self, room_id: int) -> None:
        async def load():
            return fragments.room_closed(await self.read(screens.closed_room, user=self.user, room_id=room_id))

        await self.send(text_data=await self.shared(("room_closed", room_id), load))

    async def catch_up(self, room_id: int, after: int) -> None:
        """Send every message after `after`, a page at a time, and go live from the last one."""
        while True:
            messages = await self.shared(
                ("messages", room_id, after),
                lambda after=after: self.read(selectors.messages_after, room_id=room_id, seq=after),
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

    async def send_participants(self, room_id: int) -> None:
        context = await self.read(screens.participants, room_id=room_id)
        await self.send(text_data=fragments.participants(context, css_class=self.PARTICIPANTS_CLASS))

    # --- Group events -------------------------------------------------------------------------

    async def chat_message(self, event):
        """Deliver one message in order: drop duplicates, fill gaps from the database."""
        room_id, message = event["room_id"], event["message"]
        last = self.rooms.get(room_id)
        if last is None or message["seq"] <= last:
            return  # not shown here, not synced yet (the sync will read it), or already sent
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
        """The room ended: send its last messages and its closed state, and stop watching it."""
        await self.stop_watching(event["room_id"])

    async def room_left(self, event):
        """This user left a room (from any of their sockets): stop watching it."""
        await self.stop_watching(event["room_id"])

    async def stop_watching(self, room_id: int) -> None:
        if room_id in self.rooms:
            await self.catch_up(room_id, self.rooms[room_id] or 0)
            self.rooms.pop(room_id, None)
            await self.leave_group(room_group(room_id))
            await self.send_closed_panel(room_id)
