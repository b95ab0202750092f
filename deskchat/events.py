"""Publish events to channel-layer groups, only after the surrounding transaction commits.

Every write path in the services ends with `publish_on_commit`, so no socket ever hears of a
change that was rolled back. Group names are built here and nowhere else.

The channel layer is lossy (it drops at capacity, and Redis can restart), so an event is a
nudge, never the data of record: receivers compare sequence numbers and read what they missed
from the database.

Sockets call services through `call_service`. A daphne process runs every ORM call in one
database thread, so that thread must not also wait on Redis: under `call_service` the committed
events are held and sent from the event loop once the service returns, and the database thread
moves on to the next caller at once. Elsewhere (views, the shell, tests) they are sent at commit.
"""

import logging
import threading
from collections import deque

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
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


def supervisor_group() -> str:
    """Name the group of every supervisor view's socket."""
    return "supervisors"


# What the supervisor view shows changes with these: the queues (waiting, answered, expired …)
# and each engineer's availability and open sessions. publish_on_commit nudges the supervisors'
# group beside the event's own group, so no service has to remember the supervisor view.
SUPERVISOR_NUDGED_BY = frozenset({"queue.changed", "room.opened", "room.left", "room.ended", "availability.changed"})


# Nudges whose send failed (Redis down). Each process's sweeper sends them again once the layer
# works: a message stored during the outage otherwise reaches a quiet room only with the next
# message or reconnect. A receiver still resubscribing misses the first resend, so each goes out
# RESENDS times, a sweep apart; receivers drop what they already have (by seq), so repeats are
# harmless. A typing indicator is not worth showing late.
RESENDS = 4
_failed: deque[list] = deque(maxlen=1000)  # [group, event, resends left]
_failed_lock = threading.Lock()


def _remember_failed(group: str, event: dict) -> None:
    logger.warning("channel layer send to %s failed", group, exc_info=True)
    if event.get("type") != "room.typing":
        with _failed_lock:
            _failed.append([group, event, RESENDS])


def publish(group: str, event: dict) -> None:
    """Send one event to a group now; log and swallow a layer failure, since the DB is the truth."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, event)
    except Exception:  # noqa: BLE001 - a lost nudge is recovered by the receivers' catch-up
        _remember_failed(group, event)


async def publish_async(group: str, event: dict) -> None:
    """Send one event to a group from the event loop; a failure is kept for the sweeper to resend."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(group, event)
    except Exception:  # noqa: BLE001 - a lost nudge is recovered by the receivers' catch-up
        _remember_failed(group, event)


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


_held = threading.local()  # .events: a list while call_service runs a service in this thread


def publish_on_commit(group: str, event: dict) -> None:
    """Send an event to a group once the current transaction commits (at once outside one).

    An event that changes the supervisor view also nudges the supervisors' group.
    """
    transaction.on_commit(lambda: _publish_or_hold(group, event))
    if event.get("type") in SUPERVISOR_NUDGED_BY:
        transaction.on_commit(lambda: _publish_or_hold(supervisor_group(), {"type": "supervisor.changed"}))


def _publish_or_hold(group: str, event: dict) -> None:
    held = getattr(_held, "events", None)
    if held is None:
        publish(group, event)
    else:
        held.append((group, event))


def _run_holding_events(func, args: tuple, kwargs: dict) -> tuple:
    """Run func, keeping the events its commits publish; return (result, events, error)."""
    _held.events = events = []
    try:
        return func(*args, **kwargs), events, None
    except Exception as error:  # noqa: BLE001 - re-raised by call_service once events are out
        return None, events, error
    finally:
        _held.events = None


async def call_service(func, /, *args, **kwargs):
    """Run a service in the database thread, then publish what it committed from the event loop.

    Events of transactions that committed go out even when the service then raised (a sweep
    commits request by request), and in commit order.
    """
    result, events, error = await database_sync_to_async(_run_holding_events)(func, args, kwargs)
    for group, event in events:
        await publish_async(group, event)
    if error is not None:
        raise error
    return result
