"""The chat sockets through the real ASGI stack: origin check, session, router, consumers."""

import pytest
from asgiref.sync import sync_to_async

from chat.models import ChatMessage, ChatRequest
from tests.chat.wsutil import client_socket, connect, staff_socket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def desk(f):
    """A company allowed to chat, its contact and ticket, and two engineers in the default queue."""
    company = f.make_company(chat="allow")
    contact = f.make_contact(company=company, first_name="Carol")
    ticket = f.make_ticket(contact=contact)
    queue = f.make_queue(name="Service Desk", is_default=True)
    dana = f.make_engineer(display_name="Dana", queues=[queue])
    sam = f.make_engineer(display_name="Sam", queues=[queue])
    return {"contact": contact, "ticket": ticket, "queue": queue, "dana": dana, "sam": sam}


async def test_a_whole_chat_flows_between_client_and_engineer(desk):
    """Join Chat, Answer, messages both ways in order, and the client leaving ends nothing early."""
    client = await client_socket(desk["contact"].user)
    dana = await staff_socket(desk["dana"].user)
    await dana.wait_event("queue", count=0)
    await client.send(action="sync", rooms={})
    await dana.send(action="sync", rooms={})

    await client.send(action="request_chat", ticket_id=desk["ticket"].pk)
    state = await client.wait_event("client_state", state="waiting")
    request_id = int(state.attrs["data-request-id"])
    queue = await dana.wait_event("queue", count=1)
    assert "Carol" in queue.text

    await dana.send(action="answer", request_id=request_id)
    session = await dana.wait_event("session")
    room_id = int(session.attrs["data-room"])
    await client.wait_event("client_state", state="chatting", engineer_present=1)
    joined = await client.wait_message(room_id, 1)
    assert "Dana joined" in joined.text

    await client.send(action="send", room_id=room_id, body="Hello <b>there</b>", client_msg_id="c-1")
    await dana.wait_message(room_id, 2)
    await dana.send(action="send", room_id=room_id, body="Hi Carol", client_msg_id="d-1")
    reply = await client.wait_message(room_id, 3)
    assert "Hi Carol" in reply.text
    assert [e.attrs["data-seq"] for e in client.messages(room_id)] == ["1", "2", "3"]
    await client.close()
    await dana.close()


async def test_a_retried_send_is_stored_once(desk):
    """The same client_msg_id sent twice (a retry after a drop) makes one message."""
    client = await client_socket(desk["contact"].user)
    dana = await staff_socket(desk["dana"].user)
    await client.send(action="sync", rooms={})
    await client.send(action="request_chat", ticket_id=desk["ticket"].pk)
    state = await client.wait_event("client_state", state="waiting")
    await dana.send(action="answer", request_id=int(state.attrs["data-request-id"]))
    room_id = int((await dana.wait_event("session")).attrs["data-room"])
    for _ in range(2):
        await client.send(action="send", room_id=room_id, body="only once", client_msg_id="same-id")
    await client.wait_message(room_id, 2)
    await client.drain()
    count = await sync_to_async(ChatMessage.objects.filter(room_id=room_id, body="only once").count)()
    assert count == 1
    assert len([e for e in client.messages(room_id) if e.attrs["data-seq"] == "2"]) == 1
    await client.close()
    await dana.close()


async def test_a_socket_catches_up_after_reconnecting(desk):
    """A reconnecting socket gets exactly what followed the last seq it had, in order."""
    client = await client_socket(desk["contact"].user)
    dana = await staff_socket(desk["dana"].user)
    await client.send(action="sync", rooms={})
    await client.send(action="request_chat", ticket_id=desk["ticket"].pk)
    state = await client.wait_event("client_state", state="waiting")
    await dana.send(action="answer", request_id=int(state.attrs["data-request-id"]))
    room_id = int((await dana.wait_event("session")).attrs["data-room"])
    await client.wait_message(room_id, 1)
    await client.close()
    for n in range(3):
        await dana.send(action="send", room_id=room_id, body=f"missed {n}", client_msg_id=f"m{n}")
    await dana.wait_message(room_id, 4)

    again = await client_socket(desk["contact"].user)
    await again.send(action="sync", rooms={str(room_id): 1})
    await again.wait_message(room_id, 4)
    await again.drain()
    assert [e.attrs["data-seq"] for e in again.messages(room_id)] == ["2", "3", "4"]
    await again.close()
    await dana.close()


async def test_second_answer_to_a_taken_request_is_refused(desk):
    """When two engineers answer, the second is told a colleague took it."""
    client = await client_socket(desk["contact"].user)
    dana = await staff_socket(desk["dana"].user)
    sam = await staff_socket(desk["sam"].user)
    await client.send(action="request_chat", ticket_id=desk["ticket"].pk)
    request_id = int((await client.wait_event("client_state", state="waiting")).attrs["data-request-id"])
    await dana.send(action="answer", request_id=request_id)
    await dana.wait_event("session")
    await sam.send(action="answer", request_id=request_id)
    error = await sam.wait_event("error")
    assert error.attrs["data-error"] == "taken"
    assert "colleague" in error.text
    request = await sync_to_async(ChatRequest.objects.get)(pk=request_id)
    assert request.state == "answered"
    for s in (client, dana, sam):
        await s.close()


async def test_anonymous_and_cross_origin_sockets_are_refused(desk):
    """No session means no socket, and another origin is refused before the consumer runs."""
    _, connected, code = await connect(None, "/ws/chat/", cookie=False)
    assert not connected and code == 4401
    _, connected, _ = await connect(desk["contact"].user, "/ws/chat/", origin=b"http://evil.example")
    assert not connected
    _, connected, code = await connect(desk["contact"].user, "/ws/hud/")
    assert not connected and code == 4403
