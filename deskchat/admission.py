"""How many websocket handshakes a process works on at once, and when a refused one comes back.

A socket's connect costs a few reads in the process's one database thread (the session and its
user, who they are, their rooms, what the page shows first). When a process dies, every socket
it held comes back to the others within a second or two. Taken all at once, each connect waited
behind hundreds of others, the browsers' handshakes timed out and were tried again, and the
server kept working for connections that were gone: it never caught up (docs/benchmarks.md).

Past CHAT_CONNECTS_IN_PROGRESS a handshake waits in line for a place, first come first served,
as long as the process can take the line within LONGEST_QUEUE_WAIT_S. Past that it is turned
away before its session is read: accepted and closed at once with code 4503, whose reason says
in how many milliseconds to come back. The turns handed out are spaced by the rate at which this
process finishes connects (its places, each held as long as connects lately took), so the tabs
return about as fast as it can take them, instead of all together, or after doubling waits
(htmx's own backoff) that leave it idle while they sleep.
"""

import asyncio
import time
from collections import deque

from django.conf import settings

from deskchat.loops import for_this_loop

# Where a consumer finds its admission in the scope: it releases it once its connect's reads are done.
SCOPE_KEY = "deskchat.admission"
CLOSE_TRY_LATER = 4503
# How much each finished connect moves the average time a connect holds its place.
AVERAGE_WEIGHT = 0.2
# A handshake waits at most this long for a place (daphne drops one not accepted within 5 s);
# past what the process can take in that time, it is given a turn instead.
LONGEST_QUEUE_WAIT_S = 3.0
# Never told to wait longer than this, whatever the queue of returning tabs.
LONGEST_WAIT_S = 60.0
# Turns are handed out this many times faster than the process has lately finished connects. A tab
# that comes back too early costs one handshake accepted and closed (no session read), and is
# given a new turn from the rate measured then; one told to come back too late leaves the process
# idle meanwhile. And the rate measured in a storm's first second, while every tab's handshake is
# taken at once, is the lowest of the storm.
TURN_OPTIMISM = 3.0


class Connects:
    """The handshakes this process works on, those waiting for a place, and the turns handed out."""

    def __init__(self):
        self.in_progress = 0
        self.waiting: deque[asyncio.Future] = deque()  # first come, first served (and some given up)
        self.in_line = 0  # those of them still waiting
        self.held_s: float | None = None  # how long a connect has held its place lately, on average
        self.next_turn = 0.0  # the latest time handed out to a handshake turned away

    def full(self) -> bool:
        limit = settings.CHAT_CONNECTS_IN_PROGRESS
        return bool(limit) and self.in_progress >= limit

    def rate(self) -> float:
        """Return how many connects a second the process finishes when every place is taken.

        The limit's worth of places, each held for the average time lately (one second before
        any has finished). Counting the connects finished in the last seconds instead would read
        a process that was idle until a storm began as a slow one.
        """
        limit = settings.CHAT_CONNECTS_IN_PROGRESS or 1
        return limit / max(self.held_s if self.held_s is not None else 1.0, 0.001)

    async def enter(self) -> bool:
        """Take a place, waiting in line for one if the line is short enough; return False if turned away."""
        if not self.full() and not self.in_line:
            self.in_progress += 1
            return True
        if self.in_line >= self.rate() * LONGEST_QUEUE_WAIT_S:
            return False
        place = asyncio.get_running_loop().create_future()
        self.waiting.append(place)
        self.in_line += 1
        try:
            await asyncio.wait_for(asyncio.shield(place), LONGEST_QUEUE_WAIT_S)
            return True
        except TimeoutError:
            if place.done():  # handed a place just as the wait ran out: keep it
                return True
            place.cancel()
            return False
        except BaseException:
            # The handshake went away while in line (its browser closed it): a place handed to it
            # meanwhile goes on to the next, or it would be held by nobody for good.
            if place.done() and not place.cancelled():
                self.leave()
            place.cancel()
            raise
        finally:
            self.in_line -= 1

    def leave(self, held_s: float | None = None) -> None:
        """Give a place back (held for held_s): to the first in line still waiting, or to the pool."""
        if held_s is not None:
            self.held_s = held_s if self.held_s is None else self.held_s + AVERAGE_WEIGHT * (held_s - self.held_s)
        while self.waiting:
            place = self.waiting.popleft()
            if not place.done():
                place.set_result(None)  # the place passes on: in_progress stays as it is
                return
        self.in_progress -= 1

    def turn(self) -> float:
        """Return in how many seconds a handshake turned away now should come back: the next free turn.

        The turns come after the line waiting now (which the process takes at the rate it finishes
        connects), spaced by TURN_OPTIMISM times that rate.
        """
        now = time.monotonic()
        rate = self.rate()
        after_line = max(self.next_turn, now + self.in_line / rate)
        self.next_turn = min(after_line + 1 / (rate * TURN_OPTIMISM), now + LONGEST_WAIT_S)
        return self.next_turn - now


def connects() -> Connects:
    """Return this process's count of handshakes in progress."""
    return for_this_loop("connects", Connects)


class Admission:
    """One handshake's place among those in progress, given back once (release)."""

    __slots__ = ("count", "held", "since")

    def __init__(self, count: Connects):
        self.count = count
        self.held = True
        self.since = time.monotonic()

    def release(self, *, connected: bool = False) -> None:
        """Give the place back; `connected`: the socket's first reads are done, so its time counts in the rate."""
        if self.held:
            self.held = False
            self.count.leave(time.monotonic() - self.since if connected else None)


class Admitted:
    """The receive and send a handshake let in hands on: what the gate read first, then the server's own.

    A class with slots rather than two closures: the socket holds them for its whole life.
    """

    __slots__ = ("admission", "replay", "server_receive", "server_send")

    def __init__(self, admission: Admission, replay: list, server_receive, server_send):
        self.admission = admission
        self.replay = replay  # the connect message, then the gate's pending read of the next one
        self.server_receive = server_receive
        self.server_send = server_send

    async def receive(self):
        if self.replay:
            item = self.replay.pop(0)
            return await item if isinstance(item, asyncio.Future) else item
        return await self.server_receive()

    async def send(self, message):
        if message["type"] == "websocket.close":  # refused or closed before its reads were done
            self.admission.release()
        await self.server_send(message)


class ConnectGate:
    """ASGI middleware that lets a websocket handshake in when the process has a place for it, or turns it away."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.application(scope, receive, send)
        connect = await receive()
        if connect["type"] != "websocket.connect":
            return
        count = connects()
        entering = asyncio.ensure_future(count.enter())
        next_message = asyncio.ensure_future(receive())  # a disconnect, if the browser gives up in line
        await asyncio.wait({entering, next_message}, return_when=asyncio.FIRST_COMPLETED)
        if not entering.done():  # gone while in line: nothing of it is worked on
            entering.cancel()
            await asyncio.gather(entering, return_exceptions=True)
            return
        if not entering.result():
            next_message.cancel()
            return await try_later(send, count.turn())
        admission = Admission(count)
        if next_message.done() and next_message.result()["type"] == "websocket.disconnect":
            admission.release()  # let in just as it went away
            return
        admitted = Admitted(admission, [connect, next_message], receive, send)
        try:
            return await self.application({**scope, SCOPE_KEY: admission}, admitted.receive, admitted.send)
        finally:
            next_message.cancel()
            admission.release()


async def try_later(send, wait_s: float) -> None:
    """Accept the handshake and close it at once with 4503, saying when to come back (ms); then end.

    Accepted, because a socket closed before that reaches the page as a bare 1006. Not a consumer
    (as Channels' WebsocketDenier is): that would take a channel on the layer (a Redis
    subscription) for every handshake turned away.
    """
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": CLOSE_TRY_LATER, "reason": str(round(wait_s * 1000))})
