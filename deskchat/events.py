"""Publish events to channel-layer groups, only after the surrounding transaction commits.

Every write path in the services ends with `publish_on_commit`, so no socket ever hears of a
change that was rolled back. Group names are built here and nowhere else.

The channel layer is lossy (it drops at capacity, and Redis can restart), so an event is a
nudge, never the data of record: receivers compare sequence numbers and read what they missed
from the database.
"""

import logging
import threading
from collections import deque

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def room_group(room_id: int) -> str:
    """Name the group of every socket showing this chat room."""
    return f"room.{room_id}"


def queue_group(queue_id: int) -> str:
    """Name the group of every HUD socket of this queue's members."""
    return f"queue.{queue_id}"


def user_group(user_id: int) -> str:
    """Name the group of every socket this user has open."""
    return f"user.{user_id}"


STAFF_GROUP = "staff"  # every HUD socket: presence and supervisor figures

# Nudges whose send failed (Redis down). Each process's sweeper sends them again once the layer
# works: a message stored during the outage otherwise reaches a quiet room only with the next
# message or reconnect. A receiver still resubscribing misses the first resend, so each goes out
# RESENDS times, a sweep apart; receivers drop what they already have (by seq), so repeats are
# harmless. A typing indicator is not worth showing late.
RESENDS = 4
_failed: deque[list] = deque(maxlen=1000)  # [group, event, resends left]
_failed_lock = threading.Lock()


def publish(group: str, event: dict) -> None:
    """Send one event to a group now; log and swallow a layer failure, since the DB is the truth."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, event)
    except Exception:  # noqa: BLE001 - a lost nudge is recovered by the receivers' catch-up
        logger.warning("channel layer send to %s failed", group, exc_info=True)
        if event.get("type") != "room.typing":
            with _failed_lock:
                _failed.append([group, event, RESENDS])


async def resend_failed() -> int:
    """Send again the nudges whose send failed; stop at the first failure (the layer is still down)."""
    layer = get_channel_layer()
    with _failed_lock:
        batch = list(_failed)
    if layer is None or not batch:
        return 0
    sent = 0
    for item in batch:
        try:
            await layer.group_send(item[0], item[1])
        except Exception:  # noqa: BLE001 - still down: try again on the next sweep
            break
        item[2] -= 1
        sent += 1
    with _failed_lock:
        for item in [item for item in _failed if item[2] <= 0]:
            _failed.remove(item)
    return sent


def publish_on_commit(group: str, event: dict) -> None:
    """Send an event to a group once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: publish(group, event))
