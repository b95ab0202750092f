"""What opening a socket costs the database: a bounded, small number of statements.

A daphne process runs every ORM call in one database thread, and building a query there cost
more than PostgreSQL took to run it (docs/benchmarks.md), so every statement of a connect is a
limit on how fast a process takes sockets back after a restart.
"""

import pytest
from asgiref.sync import sync_to_async
from django.db.backends import utils as db_utils

from chat import services
from deskchat.sql import Statement
from tests.chat.wsutil import client_socket, pin_session_cookie, staff_socket

pytestmark = pytest.mark.django_db(transaction=True)

# The session and its user (Channels' AuthMiddleware), who they are, and one statement that says
# they are in no room, invited to none, and what their latest request was (chat.sql.PORTAL_START).
IDLE_CLIENT_CONNECT = 4


@pytest.fixture
def statements(monkeypatch):
    """Collect the SQL every thread runs through Django's cursors (the sockets' run in the database thread)."""
    seen: list[str] = []
    original = db_utils.CursorWrapper._execute_with_wrappers

    def execute(self, sql, *args, **kwargs):
        seen.append(sql)
        return original(self, sql, *args, **kwargs)

    monkeypatch.setattr(db_utils.CursorWrapper, "_execute_with_wrappers", execute)
    # and the statements run on the event loop's own connections (deskchat.adb), on PostgreSQL
    original_async = Statement.fetch_one_async

    async def fetch_one_async(self, params, **kwargs):
        seen.append(self.sql())
        return await original_async(self, params, **kwargs)

    monkeypatch.setattr(Statement, "fetch_one_async", fetch_one_async)
    return seen


async def test_a_portal_socket_of_a_contact_in_no_chat_connects_in_four_statements(desk, statements, monkeypatch):
    """No room read at all when the contact is in no room: most portal sockets are theirs."""
    await pin_session_cookie(monkeypatch, desk.contact.user)
    statements.clear()
    client = await client_socket(desk.contact.user)
    await client.wait_event("client_state", state="idle")
    await client.drain(timeout=0.2)
    assert len(statements) <= IDLE_CLIENT_CONNECT, "\n".join(s[:120] for s in statements)
    joined_room_reads = [s for s in statements if s.count("JOIN") >= 3 and 'FROM "chat_chatroom"' in s]
    assert not joined_room_reads, "the room's joined read ran for a contact in no chat"
    await client.close()


async def test_a_portal_socket_in_a_chat_connects_in_a_bounded_number_of_statements(desk, statements, monkeypatch):
    """In a chat: their rooms, then the dialog's reads (the room with what it names, who is in it, an invitation)."""
    request = await sync_to_async(services.request_chat)(contact=desk.contact, ticket=desk.ticket)
    await sync_to_async(services.answer_request)(engineer=desk.dana, request_id=request.pk)
    await pin_session_cookie(monkeypatch, desk.contact.user)
    statements.clear()
    client = await client_socket(desk.contact.user)
    await client.wait_event("client_state", state="chatting")
    await client.drain(timeout=0.2)
    assert len(statements) <= IDLE_CLIENT_CONNECT + 5, "\n".join(s[:120] for s in statements)
    await client.close()


async def test_a_hud_socket_connects_in_a_bounded_number_of_statements(desk, statements, monkeypatch):
    """The session and user, who, rooms, queues, being seen, and the one shared read of the queue."""
    await pin_session_cookie(monkeypatch, desk.dana.user)
    statements.clear()
    hud = await staff_socket(desk.dana.user)
    await hud.wait_event("queue")
    await hud.drain(timeout=0.2)
    assert len(statements) <= 9, "\n".join(s[:120] for s in statements)
    await hud.close()
