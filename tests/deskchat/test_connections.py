"""The embedded default keeps its SQLite connection open across the sockets' database calls."""

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.db.backends.signals import connection_created

from chat.models import ChatRoom
from tests.conftest import USING_POSTGRES

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(USING_POSTGRES, reason="SQLite only: PostgreSQL's connections come from its pool"),
]


async def test_database_calls_of_a_socket_reuse_one_sqlite_connection():
    """Channels closes old connections around every call; an open one must survive that, so a socket's
    reads do not each open the file and run its PRAGMAs again."""
    opened = []

    def count(sender, connection, **kwargs):
        opened.append(connection.alias)

    def read():
        return ChatRoom.objects.count()

    connection_created.connect(count)
    try:
        for _ in range(5):
            await database_sync_to_async(read)()
    finally:
        connection_created.disconnect(count)
    assert len(opened) <= 1, opened
    assert connection.settings_dict["CONN_MAX_AGE"] is None
