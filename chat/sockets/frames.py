"""Read the fields of a frame the browser sent, and limit how fast a socket may send them.

The browser sends JSON objects `{"action": "...", ...}` (htmx's ws extension sends a form's
fields this way, so numbers may arrive as text). A field that is not what the action needs is
refused with ChatError("bad_frame"), which the socket answers with an error frame.
"""

import asyncio
import json
import time

from ..errors import ChatError

# A sync names the rooms the browser shows; past this many, the rest are ignored.
SYNC_MAX_ROOMS = 50


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


class Mailbox:
    """A socket's queue of frames and events for its one worker: put_nowait, and get.

    asyncio.Queue does the same with four deques and an Event (about 2.4 KiB); a process holds
    one of these per socket, and most of them stay empty for the socket's life.
    """

    __slots__ = ("items", "waiter")

    def __init__(self):
        self.items: list = []
        self.waiter: asyncio.Future | None = None

    def put_nowait(self, item) -> None:
        self.items.append(item)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def get(self):
        """Return the oldest item, waiting for one if there is none."""
        while not self.items:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.items.pop(0)


def parse(text_data, bytes_data) -> dict:
    """Return the frame as a dict, or refuse it: it must be a JSON object of storable text."""
    try:
        payload = json.loads(text_data if text_data is not None else bytes_data)
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError):
        raise ChatError("bad_frame", "That frame was not a JSON object.") from None
    if not isinstance(payload, dict):
        raise ChatError("bad_frame", "That frame was not a JSON object.")
    if not storable(payload):
        raise ChatError("bad_frame", "That frame contained characters that cannot be stored.")
    return payload


def as_int(payload: dict, key: str) -> int:
    """Read a positive integer field of a frame, or refuse the frame."""
    value = payload.get(key)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 16:
        value = int(value)  # form fields arrive as text; isdigit alone admits "²" and 5,000-digit numbers
    if isinstance(value, bool) or not isinstance(value, int) or not (0 <= value < 2**53):
        raise ChatError("bad_frame", f"'{key}' must be a whole number.")
    return value


def as_text(payload: dict, key: str, *, limit: int = 100_000) -> str:
    """Read a text field of a frame (empty if missing), or refuse the frame."""
    value = payload.get(key, "")
    if not isinstance(value, str) or len(value) > limit:
        raise ChatError("bad_frame", f"'{key}' must be text.")
    return value


def as_room_seqs(payload: dict) -> dict[int, int]:
    """Read a sync's `rooms`, {room id: last seq the browser has}; entries that are not both numbers are skipped."""
    seen = payload.get("rooms") or {}
    if not isinstance(seen, dict):
        raise ChatError("bad_frame", "'rooms' must map room ids to sequence numbers.")
    known = {}
    for key, seq in list(seen.items())[:SYNC_MAX_ROOMS]:
        key = str(key)  # ascii and short, so int() below never fails on "²" or 5,000 digits
        if key.isascii() and key.isdigit() and len(key) <= 16 and isinstance(seq, int) and 0 <= seq < 2**31:
            known[int(key)] = seq
    return known


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
