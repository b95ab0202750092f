"""No fragment outgrows a websocket frame.

daphne (autobahn) refuses to *send* a message larger than --websocket-max-message-size, the
same limit it applies to what it receives, and the send fails with an exception, so a fragment
over it never arrives. These tests shrink the limit and check that a long catch-up arrives
whole in several frames, and that a long queue lists as many requests as fit.
"""

import pytest
from asgiref.sync import sync_to_async

from chat import selectors, services
from chat.models import ChatRequest
from chat.wire import events, parse, queue_items
from tests.chat.test_consumers import close_all, open_chat, seqs
from tests.chat.wsutil import client_socket, staff_socket

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 64 * 1024  # the budget for a fragment is a quarter of it: 16 KiB


def request_ids(frame: str) -> list[int]:
    (queue,) = events(parse(frame), "queue")
    return [item.number("request-id") for item in queue_items(queue)]


async def test_a_long_catch_up_arrives_whole_in_frames_within_the_limit(desk, settings, monkeypatch):
    """120 messages, some of the longest allowed in characters that escape to entities, read in
    pages of 50: the reconnecting socket gets every one, in order, and no frame over budget."""
    settings.WEBSOCKET_MAX_MESSAGE_SIZE = LIMIT
    monkeypatch.setattr(selectors, "MESSAGES_PAGE", 50)
    client, dana, room_id = await open_chat(desk)
    await client.close()

    @sync_to_async
    def write_history():
        for n in range(120):
            body = '<"&>' * (settings.CHAT_MESSAGE_MAX_LENGTH // 4) if n % 10 == 0 else f"message {n}"
            services.send_message(room_id=room_id, user=desk.dana.user, body=body, client_msg_id=f"h{n}")

    await write_history()
    again = await client_socket(desk.contact.user)
    await again.send(action="sync", rooms={str(room_id): 0})
    await again.wait_message(room_id, 121)
    await again.drain()
    assert seqs(again, room_id) == list(range(1, 122))
    assert len(again.frames) > 3
    assert max(len(frame.encode()) for frame in again.frames) <= LIMIT
    await close_all(again, dana)


async def test_a_long_queue_lists_the_longest_waiting_that_fit_and_counts_them_all(desk, f, settings):
    """With more waiting than one frame holds, the HUD lists the oldest, says how many wait in
    all, and still shows a request as soon as it reaches the top."""
    settings.WEBSOCKET_MAX_MESSAGE_SIZE = LIMIT

    @sync_to_async
    def fill_queue(count: int) -> list[int]:
        ids = []
        for n in range(count):
            contact = f.make_contact(company=desk.contact.company, first_name=f"Waiting{n}")
            ids.append(services.request_chat(contact=contact, ticket=f.make_ticket(contact=contact)).pk)
        return ids

    ids = await fill_queue(60)
    dana = await staff_socket(desk.dana.user)
    queue = await dana.wait_event("queue", count=60)
    frame = dana.frames[-1]
    listed = request_ids(frame)
    assert len(frame.encode()) <= LIMIT // 4
    assert 0 < len(listed) < 60 and listed == ids[: len(listed)]
    assert f"{len(listed)} longest waiting are listed; 60 are waiting in all" in queue.text

    @sync_to_async
    def take_the_listed_and_cancel_the_last():
        ChatRequest.objects.filter(pk__in=ids[: len(listed)]).update(state="cancelled")  # no event
        last = ChatRequest.objects.select_related("contact").get(pk=ids[-1])
        services.cancel_request(contact=last.contact, request_id=last.pk)  # one queue change

    await take_the_listed_and_cancel_the_last()
    await dana.wait_event("queue", count=60 - len(listed) - 1)
    relisted = request_ids(dana.frames[-1])
    assert relisted[0] == ids[len(listed)]
    await dana.close()
