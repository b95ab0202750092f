"""An engineer's Staff HUD socket: the live queue, Answer, and every session they are in."""

import asyncio
import logging
import time

from django.utils import timezone

from accounts.roles import who
from deskchat.events import call_service, queue_group

from .. import fragments, presence, screens, selectors, services
from ..errors import ChatError
from ..models import ChatParticipant
from .frames import as_int, as_text
from .rooms import RoomSocket
from .shared import queue_since

logger = logging.getLogger(__name__)

# Wait this long after a queue change before reading the queue, so that the nudges of one change
# (one per socket) and of a burst of changes share one read (see chat.sockets.shared).
QUEUE_REDRAW_DELAY = 0.05


async def draw_queue(engineer, moment: float) -> tuple[str, set[int]]:
    """Draw the engineer's queue from the process's read that began after `moment`; return it and the ids listed.

    Engineers who see the same requests the same way share one drawing of the read.
    """
    snapshot = await queue_since(moment, engineer.pk)
    summary = selectors.queue_summary(engineer=engineer, snapshot=snapshot)  # filters the read: no query
    engineer = summary["engineer"]
    offered_to_me = tuple(r.pk for r in summary["requests"] if r.offered_to_id == engineer.pk and not r.offer_released)
    key = (
        tuple(r.pk for r in summary["requests"]),
        offered_to_me,
        engineer.availability,
        summary["notify"],
        timezone.get_current_timezone_name(),  # the items write when each request came in
    )
    if key not in snapshot["rendered"]:
        snapshot["rendered"][key] = fragments.staff_queue(summary)
    return snapshot["rendered"][key]


class HudSocket(RoomSocket):
    """An engineer's socket: the queues they are a member of, and their sessions."""

    PARTICIPANTS_CLASS = "participants-box"
    ROLE = ChatParticipant.Role.ENGINEER
    IGNORED_EVENTS = frozenset({"queue.position", "request.changed"})

    async def authorize(self) -> bool:
        self.engineer = (await self.read(who, user=self.user)).engineer
        self.display_name = self.engineer.display_name if self.engineer else ""
        return self.engineer is not None

    async def on_connected(self):
        await super().on_connected()
        for queue_id in await self.read(selectors.queue_ids_for, engineer=self.engineer):
            await self.join(queue_group(queue_id))
        await presence.engineer_connected(self.engineer.pk)
        self.queue_redraw: asyncio.Task | None = None
        self.queue_dirty = False
        self.queue_changes: set[int] = set()  # requests whose change the next redraw reports
        self.queue_changed_at = time.monotonic()  # when the latest queue change reached this socket
        self.queue_shown: set[int] = set()  # requests in the queue as last drawn
        self.taken_told: set[int] = set()  # requests the notice on screen says a colleague answered
        await self.send_queue(time.monotonic())

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

    # --- Frames -------------------------------------------------------------------------------

    async def do_answer(self, payload):
        request_id = as_int(payload, "request_id")
        room = await call_service(services.answer_request, engineer=self.engineer, request_id=request_id)
        await self.open_room(room.pk)

    async def do_end(self, payload):
        room_id = self.require_room(as_int(payload, "room_id"))
        await call_service(services.end_room, room_id=room_id, engineer=self.engineer)

    async def do_invite_engineer(self, payload):
        room_id = self.require_room(as_int(payload, "room_id"))
        other = await self.read(selectors.engineer_by_id, engineer_id=as_int(payload, "engineer_id"))
        if other is None:
            raise ChatError("not_found", "No such engineer.")
        transfer = bool(payload.get("transfer"))
        await call_service(
            services.invite_engineer, room_id=room_id, by=self.engineer, engineer=other, transfer=transfer
        )
        await self.send_notice("invited", f"Invited {other.display_name}.")

    async def do_join(self, payload):
        participant = await call_service(services.join_room, room_id=as_int(payload, "room_id"), engineer=self.engineer)
        await self.open_room(participant.room_id)

    async def do_invite_contact(self, payload):
        ticket_id = as_int(payload, "ticket_id")
        await call_service(services.invite_ticket_contact, engineer=self.engineer, ticket_id=ticket_id)

    async def do_cancel_invitation(self, payload):
        await call_service(services.cancel_invitation, engineer=self.engineer, request_id=as_int(payload, "request_id"))

    async def do_set_availability(self, payload):
        availability = as_text(payload, "availability", limit=20)
        await call_service(services.set_availability, engineer=self.engineer, availability=availability)

    async def room_panel(self, room_id: int) -> str:
        return fragments.session(await self.read(screens.session, room_id=room_id, viewer=self.user))

    # --- The queue ----------------------------------------------------------------------------

    async def send_queue(self, moment: float) -> None:
        """Send the queue from a read that began after `moment`, and remember what it lists."""
        html, listed = await draw_queue(self.engineer, moment)
        self.queue_shown = set(listed)
        await self.send(text_data=html)

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
                await self.send_queue(self.queue_changed_at)
                await self._update_taken_notice(gone=(before - self.queue_shown) & changed)
        except Exception:  # noqa: BLE001 - the socket may have closed meanwhile
            logger.warning("queue redraw failed", exc_info=True)

    async def _update_taken_notice(self, *, gone: set[int]):
        """Say who took requests that just left the queue; take the words back when one returns.

        A request returns when the engineer who answered it leaves, and then "Dana answered
        Carol's chat" would contradict the queue right under it.
        """
        if gone:
            note = fragments.taken_notice(await self.read(screens.taken, engineer=self.engineer, request_ids=gone))
            if note:
                self.taken_told = gone
                await self.send(text_data=note)
        elif self.taken_told & self.queue_shown:
            self.taken_told = set()
            await self.send_notice("", "")

    # --- Other group events -------------------------------------------------------------------

    async def availability_changed(self, event):
        # Read afresh: who() keeps the profile as it was when the socket opened.
        engineer_id = self.engineer.pk
        self.engineer = await self.shared(
            "engineer", lambda: self.read(selectors.engineer_by_id, engineer_id=engineer_id)
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

        async def load():
            return fragments.room_invitation(
                await self.read(screens.room_invitation, engineer=self.engineer, room_id=room_id)
            )

        await self.send(text_data=await self.shared(("room_invitation", room_id), load))

    async def invitation_changed(self, event):
        request_id = event["request_id"]

        async def load():
            context = await self.read(screens.sent_invitation, engineer=self.engineer, request_id=request_id)
            return fragments.sent_invitation(context)

        await self.send(text_data=await self.shared(("sent_invitation", request_id), load))
