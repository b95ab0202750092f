"""The per-process sweeper and the registry of engineers with a HUD socket in this process.

Time-driven changes (a request's pickup timeout, the end of a first-offer window) live in the
database as timestamps. The sweeper only finds the due ones and calls the services, whose
conditional UPDATEs make each change happen once however many processes sweep. So a restart
loses nothing: the next sweep, in any process, finds what fell due meanwhile.

Presence works the same way: each process refreshes `last_seen_at` for the engineers it holds
sockets for; an engineer nobody refreshes for CHAT_PRESENCE_TIMEOUT_SECONDS counts as offline.
"""

import asyncio
import logging
import time
from collections import Counter

from django.conf import settings

from deskchat import events
from deskchat.events import call_service
from deskchat.loops import call_when_daphne_runs

from . import services

logger = logging.getLogger(__name__)

PRESENCE_REFRESH_SECONDS = 15
_connected: Counter[int] = Counter()
_sweepers: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}


async def engineer_connected(engineer_id: int) -> None:
    """Count a HUD socket and mark the engineer seen at once (supervisors see them come online)."""
    _connected[engineer_id] += 1
    await call_service(services.touch_presence, [engineer_id])
    if _connected[engineer_id] == 1:
        await events.publish_async(events.supervisor_group(), {"type": "supervisor.changed"})


def engineer_disconnected(engineer_id: int) -> None:
    """Forget one HUD socket; the engineer goes offline when no process refreshes them."""
    _connected[engineer_id] -= 1
    if _connected[engineer_id] <= 0:
        del _connected[engineer_id]


def connected_engineers() -> list[int]:
    return list(_connected)


def ensure_sweeper() -> None:
    """Start this process's sweeper on the running event loop, once."""
    if not settings.CHAT_SWEEPER_IN_PROCESS:
        return
    loop = asyncio.get_running_loop()
    task = _sweepers.get(loop)
    if task is None or task.done():
        _sweepers[loop] = loop.create_task(run_sweeper())


def start_sweeper_with_daphne() -> None:
    """Start the sweeper as soon as daphne's reactor runs, not only on the first websocket.

    A freshly restarted process may get no socket for a while, and its deadlines should not wait
    for one.
    """
    call_when_daphne_runs(ensure_sweeper)


async def run_sweeper() -> None:
    """Sweep forever: resend failed nudges, expire due requests, release offers, refresh presence."""
    last_refresh = 0.0
    while True:
        try:
            await call_service(services.sweep)
            if time.monotonic() - last_refresh >= PRESENCE_REFRESH_SECONDS:
                await call_service(services.touch_presence, connected_engineers())
                last_refresh = time.monotonic()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a database blip must not stop the sweeping
            logger.warning("chat sweep failed; retrying", exc_info=True)
        await events.resend_failed()  # apart from the sweep: Redis and the database fail separately
        await asyncio.sleep(settings.CHAT_SWEEP_INTERVAL_SECONDS)
