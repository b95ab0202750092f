"""The client's socket, open on every portal page: Join Chat, the queue, the chat, invitations."""

import asyncio
import logging
import time

from django.conf import settings

from accounts.roles import who
from deskchat.events import call_service

from .. import fragments, screens, selectors, services
from ..errors import ChatError
from ..models import DRAFT_MAX_LENGTH, ChatParticipant
from .frames import as_int, as_text
from .rooms import RoomSocket
from .shared import queue_since

logger = logging.getLogger(__name__)

# Wait this long after a queue change before reading the queue, so that the nudges of one change
# (one per socket) and of a burst of changes share one read (see chat.sockets.shared).
QUEUE_REDRAW_DELAY = 0.05
# Drafts of one socket are stored at most this often (the last one always is): see write_drafts.
DRAFT_WRITE_INTERVAL = 1.0


class ClientSocket(RoomSocket):
    """A contact's socket: their chat dialog, from Join Chat to the end of the chat."""

    PARTICIPANTS_CLASS = "chat-participants"
    ROLE = ChatParticipant.Role.CLIENT
    IGNORED_EVENTS = frozenset({"room.read", "queue.changed", "queue.draft", "availability.changed"})

    async def authorize(self) -> bool:
        self.client_state: dict = {}  # the context of the dialog as last drawn
        self.position_redraw: asyncio.Task | None = None
        self.position_changed_at = 0.0  # when the latest queue.position nudge reached this socket
        self.draft: tuple[int, str] | None = None  # the latest draft frame not stored yet
        self.draft_writer: asyncio.Task | None = None
        self.contact = (await self.read(who, user=self.user)).contact
        self.display_name = self.contact.name if self.contact else ""
        return self.contact is not None

    async def rooms_at_connect(self) -> list[int]:
        # One statement tells most sockets all they need: no rooms, and an idle dialog.
        self.start = await selectors.portal_start(contact=self.contact)
        return await super().rooms_at_connect() if self.start.in_active_room else []

    async def on_connected(self):
        await super().on_connected()
        idle = screens.idle_dialog(self.start, contact=self.contact)
        if idle is None:
            await self.send_client_state(in_no_room=not self.rooms)
        else:
            self.client_state = idle
            await self.send(text_data=fragments.client_state(idle))

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

    # --- Frames -------------------------------------------------------------------------------

    async def do_request_chat(self, payload):
        """Join Chat: one trip to the database thread, and the dialog drawn from what it returned."""
        queued = await call_service(services.join_chat, contact=self.contact, ticket_id=as_int(payload, "ticket_id"))
        self.client_state = fragments.waiting_dialog(self.contact, queued)
        await self.send(text_data=fragments.client_state(self.client_state))

    async def do_cancel(self, payload):
        await call_service(services.cancel_request, contact=self.contact, request_id=as_int(payload, "request_id"))

    async def do_callback(self, payload):
        request_id, text = as_int(payload, "request_id"), as_text(payload, "body")
        await call_service(services.request_callback, contact=self.contact, request_id=request_id, text=text)
        await self.send_notice("callback", "Thanks. An engineer will call you back; it is noted on your ticket.")

    async def do_note(self, payload):
        """Stop waiting and leave what the client typed on the ticket as their note."""
        request_id, text = as_int(payload, "request_id"), as_text(payload, "body")
        request = await call_service(
            services.leave_note_instead, contact=self.contact, request_id=request_id, text=text
        )
        await self.send_notice("note_added", f"Your note is on ticket #{request.ticket_id}. We will reply there.")

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
        request_id = as_int(payload, "request_id")
        room = await call_service(services.accept_invitation, contact=self.contact, request_id=request_id)
        await self.open_room(room.pk)
        await self.send_client_state()

    async def do_reject_invitation(self, payload):
        await call_service(services.reject_invitation, contact=self.contact, request_id=as_int(payload, "request_id"))

    # --- Drawing ------------------------------------------------------------------------------

    async def send_client_state(self, *, in_no_room: bool = False) -> None:
        """Draw the dialog; in_no_room: the connect has just read that the contact is in no room.

        Only sockets that know that share a read that relied on it: another tab redrawing after a
        room opened must not be handed it.
        """

        async def load():
            context = await self.read(screens.client_dialog, contact=self.contact, in_no_room=in_no_room)
            return fragments.client_state(context), context

        html, context = await self.shared(("client_state", in_no_room), load)
        self.client_state = dict(context)  # this socket's own copy: a position redraw changes it
        await self.send(text_data=html)

    async def room_panel(self, room_id: int) -> str:
        return fragments.client_room(await self.read(screens.client_room, user=self.user, room_id=room_id))

    # --- Group events -------------------------------------------------------------------------

    async def request_changed(self, event):
        """The contact's request moved on (answered, expired …): watch its room, redraw.

        The socket that asked for the chat has drawn it waiting already; its own nudge is skipped.
        """
        if event.get("state") == "waiting" and self.shows_waiting(event.get("request_id")):
            return
        rooms = await self.shared("rooms", lambda: self.read(selectors.rooms_for_socket, user=self.user))
        for room_id in rooms:
            await self.open_room(room_id)
        await self.send_client_state()

    def shows_waiting(self, request_id) -> bool:
        """Return whether the dialog shows this request waiting already."""
        shown = self.client_state
        request = shown.get("request")
        return shown.get("state") == "waiting" and request is not None and request.pk == request_id

    async def invitation_changed(self, event):
        await self.request_changed(event)

    async def room_opened(self, event):
        await self.request_changed(event)

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
                snapshot = await queue_since(moment)
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
