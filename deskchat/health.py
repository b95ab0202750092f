"""Liveness and readiness probes for a proxy, a load balancer or monitoring.

`/healthz` answers as long as the process serves requests; `/readyz` also asks the database and
the channel layer. Both are answered by a middleware at the top of the stack, before host
validation, sessions and authentication, so a probe by IP address works, costs no session read,
and is never redirected to HTTPS. They name only which part failed, never data.
"""

import asyncio
import logging

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.http import JsonResponse
from django.utils.decorators import sync_and_async_middleware

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 2.0
NO_STORE = {"Cache-Control": "no-store"}


def _database_answers() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def _channel_layer_answers() -> None:
    # A publish to a group nobody is in: with Redis, one round trip; in memory, nothing to ask.
    await get_channel_layer().group_send("deskchat.readyz", {"type": "readyz.probe"})


async def _check(name: str, probe) -> str:
    try:
        await asyncio.wait_for(probe(), PROBE_TIMEOUT_SECONDS)
        return "ok"
    except Exception:  # noqa: BLE001 - any failure means not ready; the log says which
        logger.warning("readiness probe: %s does not answer", name, exc_info=True)
        return "unavailable"


async def readiness() -> tuple[int, dict]:
    """Ask the database and the channel layer; return the status code and what each said."""
    database, layer = await asyncio.gather(
        _check("database", sync_to_async(_database_answers, thread_sensitive=True)),
        _check("channel layer", _channel_layer_answers),
    )
    checks = {"database": database, "channel_layer": layer}
    return (200 if all(value == "ok" for value in checks.values()) else 503), checks


async def _answer(path: str) -> JsonResponse:
    if path == "/healthz":
        return JsonResponse({"status": "ok"}, headers=NO_STORE)
    status, checks = await readiness()
    return JsonResponse({"status": "ok" if status == 200 else "unavailable", **checks}, status=status, headers=NO_STORE)


PROBE_PATHS = {"/healthz", "/readyz"}


@sync_and_async_middleware
def health_probes(get_response):
    """Answer GET and HEAD on /healthz and /readyz before the rest of the middleware runs."""
    if asyncio.iscoroutinefunction(get_response):

        async def middleware(request):
            if request.path in PROBE_PATHS and request.method in ("GET", "HEAD"):
                return await _answer(request.path)
            return await get_response(request)

    else:

        def middleware(request):
            if request.path in PROBE_PATHS and request.method in ("GET", "HEAD"):
                return async_to_sync(_answer)(request.path)
            return get_response(request)

    return middleware
