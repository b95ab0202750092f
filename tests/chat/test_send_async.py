"""The sockets' send path: on PostgreSQL a message is stored on the event loop's own connections.

A daphne process runs every ORM call in one database thread. These tests hold that thread busy
and show that a message is still stored and published (PostgreSQL), and that with the async
connections turned off (DB_ASYNC_POOL_MAX=0, and always on SQLite) it waits for the thread.
"""

import asyncio
import threading

import psycopg_pool
import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import OperationalError

from chat import services
from chat.errors import ChatError
from chat.models import ChatMessage
from deskchat import adb
from deskchat.events import room_group
from deskchat.loops import for_this_loop

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def room(desk):
    """An active room: Carol's request answered by Dana."""
    request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
    return services.answer_request(engineer=desk.dana, request_id=request.pk)


class HeldDatabaseThread:
    """Keep the database thread (database_sync_to_async) busy until released."""

    def __init__(self):
        self.release = threading.Event()
        self.started = threading.Event()

    def _hold(self):
        self.started.set()
        self.release.wait(10)

    async def __aenter__(self):
        self.task = asyncio.ensure_future(database_sync_to_async(self._hold)())
        await asyncio.to_thread(self.started.wait, 5)
        return self

    async def __aexit__(self, *exc):
        self.release.set()
        await self.task


async def listen(room_id: int):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(room_group(room_id), channel)
    return layer, channel


@pytest.mark.postgres
async def test_a_send_is_stored_and_published_while_the_database_thread_is_busy(desk, room):
    layer, channel = await listen(room.pk)
    async with HeldDatabaseThread():
        message, created = await asyncio.wait_for(
            services.send_message_async(
                room_id=room.pk, user=desk.contact.user, body="Printer on fire", client_msg_id="c-1"
            ),
            timeout=5,
        )
        event = await asyncio.wait_for(layer.receive(channel), timeout=5)
    assert created and message.seq == 2  # after "Dana Reyes joined."
    assert event["message"]["seq"] == 2 and event["message"]["body"] == "Printer on fire"
    assert event["message"]["author_name"] == desk.contact.user.get_full_name()
    stored = await ChatMessage.objects.aget(room=room, seq=2)
    assert (stored.body, stored.client_msg_id, stored.author_id) == ("Printer on fire", "c-1", desk.contact.user.pk)


async def test_with_the_async_connections_off_a_send_waits_for_the_database_thread(desk, room, settings):
    settings.DB_ASYNC_POOL_MAX = 0
    async with HeldDatabaseThread():
        send = asyncio.ensure_future(
            services.send_message_async(room_id=room.pk, user=desk.contact.user, body="Hello", client_msg_id="c-1")
        )
        await asyncio.sleep(0.5)
        assert not send.done()
    message, created = await asyncio.wait_for(send, timeout=5)
    assert created and message.seq == 2


@pytest.mark.postgres
async def test_concurrent_sends_get_gapless_seqs_and_a_retry_is_stored_once(desk, room):
    """Many commits in flight at once: every seq once, in order, and a retried client_msg_id stored once."""
    users = [desk.contact.user, desk.dana.user]
    sends = [
        services.send_message_async(room_id=room.pk, user=users[n % 2], body=f"m{n}", client_msg_id=f"id-{n}")
        for n in range(40)
    ]
    retries = [
        services.send_message_async(room_id=room.pk, user=users[0], body="m0", client_msg_id="id-0") for _ in range(5)
    ]
    results = await asyncio.gather(*sends, *retries)
    assert adb.available()
    seqs = sorted(message.seq for message, created in results if created)
    assert seqs == list(range(2, 42))
    assert {message.seq for message, created in results if message.client_msg_id == "id-0"} == {
        next(m.seq for m, created in results if created and m.client_msg_id == "id-0")
    }
    stored = await sync_to_async(list)(
        ChatMessage.objects.filter(room=room).order_by("seq").values_list("seq", flat=True)
    )
    assert stored == list(range(1, 42))


async def test_a_send_by_someone_not_in_the_room_is_refused_and_nothing_is_stored(desk, room):
    with pytest.raises(ChatError) as refused:
        await services.send_message_async(room_id=room.pk, user=desk.sam.user, body="Hi", client_msg_id="s-1")
    assert refused.value.code == "not_participant"
    assert await ChatMessage.objects.filter(room=room).acount() == 1


async def test_a_send_to_an_ended_or_unknown_room_says_which(desk, room):
    await sync_to_async(services.end_room)(room_id=room.pk, engineer=desk.dana)
    with pytest.raises(ChatError) as ended:
        await services.send_message_async(room_id=room.pk, user=desk.contact.user, body="Still there?")
    with pytest.raises(ChatError) as unknown:
        await services.send_message_async(room_id=room.pk + 1000, user=desk.contact.user, body="Hello?")
    assert (ended.value.code, unknown.value.code) == ("room_ended", "not_found")
    assert not await ChatMessage.objects.filter(room=room, body="Still there?").aexists()


@pytest.mark.postgres
async def test_a_pool_that_cannot_lend_a_connection_reads_as_the_database_being_unavailable(desk, room):
    """The pool's own refusals (PoolClosed here; PoolTimeout alike) come out as Django's OperationalError.

    That is what the sockets answer with `unavailable`, which the page sends again later with the
    same client_msg_id; nothing is stored meanwhile.
    """
    async with adb.connection():
        pass  # this loop's pool is open
    holder = for_this_loop(("adb", "default"), lambda: None)
    await holder.pool.close()
    with pytest.raises(OperationalError) as refused:
        await services.send_message_async(room_id=room.pk, user=desk.contact.user, body="Hello?", client_msg_id="c-1")
    assert isinstance(refused.value.__cause__, psycopg_pool.PoolClosed)
    assert not await ChatMessage.objects.filter(room=room, client_msg_id="c-1").aexists()
