"""Async PostgreSQL connections on the event loop, for the one-statement hot paths.

A daphne process runs every ORM call in one database thread (channels' database_sync_to_async),
so each message waited for the commits of every message before it: at 150 msg/s that thread was
busy in every sample, more than half of it waiting on commits, while the event loop idled
(docs/benchmarks.md). A message is stored by one statement (chat_send_message) and needs no
ORM, so it runs here instead: on an async connection from this process's own small pool, with
many commits in flight at once, which PostgreSQL flushes together. Each statement runs in
autocommit, so once it returns the message is committed, as before.

PostgreSQL only: SQLite has one writer, and its statements stay in the database thread.
DB_ASYNC_POOL_MAX=0 turns this off and sends every path through the database thread (an A/B).
"""

import functools
from contextlib import asynccontextmanager

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from psycopg_pool import AsyncConnectionPool

from .loops import for_this_loop, forget_this_loops


def available(using: str = DEFAULT_DB_ALIAS) -> bool:
    """Return whether this database's hot paths run on the event loop's own connections."""
    return settings.DB_ASYNC_POOL_MAX > 0 and vendor(using) == "postgresql"


@functools.cache
def vendor(using: str = DEFAULT_DB_ALIAS) -> str:
    """Return the database's vendor ("postgresql", "sqlite"), read once per process.

    On the event loop, Django's connections are kept per task (asgiref's Local): each socket
    that asked `connections[using]` there got a DatabaseWrapper of its own, about 3 KiB it held
    for its life (docs/benchmarks.md).
    """
    return connections[using].vendor


class _LoopPool:
    """One event loop's pool of async connections to one database, opened on first use."""

    def __init__(self, using: str):
        database = connections[using]
        # Django's mapping of psycopg's errors to django.db's, kept here for the same reason as vendor()
        self.wrap_database_errors = database.wrap_database_errors
        params = database.get_connection_params()
        params.pop("cursor_factory", None)  # Django's is the sync ClientCursor
        # The same SQL text and parameters as Django's cursors (client-side binding).
        params.update(autocommit=True, cursor_factory=psycopg.AsyncClientCursor)
        self.timezone_name = database.timezone_name
        self.set_time_zone_sql = database.ops.set_time_zone_sql()
        self.pool = AsyncConnectionPool(
            kwargs=params,
            min_size=1,
            max_size=settings.DB_ASYNC_POOL_MAX,
            timeout=settings.DATABASES[using].get("OPTIONS", {}).get("pool", {}).get("timeout", 10),
            configure=self._configure,
            open=False,
            name=f"deskchat-{using}",
        )
        self.opened = False

    async def _configure(self, connection) -> None:
        # As Django does for its own connections: datetimes read back in the connection's zone.
        if connection.info.parameter_status("TimeZone") != self.timezone_name:
            await connection.execute(self.set_time_zone_sql, [self.timezone_name])

    async def ready(self) -> AsyncConnectionPool:
        if not self.opened:
            await self.pool.open()
            self.opened = True
        return self.pool


@asynccontextmanager
async def connection(using: str = DEFAULT_DB_ALIAS):
    """Lend one of this event loop's connections (autocommit); errors come out as Django's own."""
    holder = for_this_loop(("adb", using), lambda: _LoopPool(using))
    pool = await holder.ready()
    # Django's own mapping, as around its cursors: psycopg's errors (the pool's PoolTimeout and
    # PoolClosed are OperationalErrors too) come out as django.db's, the original as __cause__, so
    # `deskchat.sql.raised`/`violates` read them as usual.
    with holder.wrap_database_errors:
        async with pool.connection() as conn:
            yield conn


async def close(using: str = DEFAULT_DB_ALIAS) -> None:
    """Close this event loop's pool, if it has one (a test, before its loop ends)."""
    holder = forget_this_loops(("adb", using))
    if holder is not None and holder.opened:
        await holder.pool.close()
