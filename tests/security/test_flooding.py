"""Flooding: messages per socket and chat requests per contact (sign-in attempts: test_lockout.py).

Each limit has a setting, refuses with a message a person can act on, and leaves everyone else alone.
"""

import pytest
from asgiref.sync import sync_to_async

from chat import services
from chat.errors import ChatError
from chat.models import ChatMessage, ChatRequest
from tests.chat.wsutil import client_socket, staff_socket

# --- Messages: a token bucket per socket ------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_message_flood_is_rate_limited_per_socket(world, settings):
    """Past CHAT_RATE_BURST frames, sends get `rate_limited` with a clear message; other sockets are unaffected."""
    settings.CHAT_RATE_BURST = 5
    settings.CHAT_RATE_PER_SECOND = 0.01
    room_id = world["room"].pk
    carol = await client_socket(world["carol"].user)
    await carol.send(action="sync", rooms={})
    for n in range(12):
        await carol.send(action="send", room_id=room_id, body=f"flood {n}", client_msg_id=f"f{n}")
    error = await carol.wait_event("error")
    assert error.attrs["data-error"] == "rate_limited"
    assert "sending too fast" in error.text
    await carol.drain(0.3)
    stored = await sync_to_async(ChatMessage.objects.filter(room_id=room_id, body__startswith="flood").count)()
    assert stored == 5

    dana = await staff_socket(world["dana"].user)
    await dana.send(action="sync", rooms={})
    await dana.send(action="send", room_id=room_id, body="still heard", client_msg_id="d-ok")
    await dana.wait_for(lambda e: "still heard" in e.text)
    await carol.wait_for(lambda e: "still heard" in e.text)  # the limited socket still receives
    await carol.close()
    await dana.close()


# --- Chat requests: per contact, counted in the database -------------------------------------


@pytest.mark.django_db
def test_request_cancel_cycles_are_limited_per_contact(world, settings):
    """After CHAT_REQUEST_RATE_PER_MINUTE requests in a minute, the next is refused with rate_limited."""
    settings.CHAT_REQUEST_RATE_PER_MINUTE = 3
    carl, ticket = world["carl"], world["carl_ticket"]
    for _ in range(3):
        request = services.request_chat(contact=carl, ticket=ticket)
        services.cancel_request(contact=carl, request_id=request.pk)
    with pytest.raises(ChatError) as refused:
        services.request_chat(contact=carl, ticket=ticket)
    assert refused.value.code == "rate_limited"
    assert "wait a minute" in refused.value.message
    # Another contact of the same company is not affected.
    assert services.request_chat(contact=world["cleo"], ticket=world["cleo_ticket"]).state == "waiting"
    assert ChatRequest.objects.filter(contact=carl, state="waiting").count() == 0


@pytest.mark.django_db
def test_the_request_limit_lifts_after_a_minute(world, settings):
    """Requests older than a minute no longer count."""
    from datetime import timedelta

    from django.utils import timezone

    settings.CHAT_REQUEST_RATE_PER_MINUTE = 2
    carl, ticket = world["carl"], world["carl_ticket"]
    for _ in range(2):
        services.cancel_request(contact=carl, request_id=services.request_chat(contact=carl, ticket=ticket).pk)
    ChatRequest.objects.filter(contact=carl).update(requested_at=timezone.now() - timedelta(seconds=61))
    assert services.request_chat(contact=carl, ticket=ticket).state == "waiting"


@pytest.mark.django_db
def test_asking_again_for_the_waiting_request_does_not_count(world, settings):
    """Re-sending request_chat for the ticket already waiting returns it and is never refused."""
    settings.CHAT_REQUEST_RATE_PER_MINUTE = 1
    first = services.request_chat(contact=world["carl"], ticket=world["carl_ticket"])
    for _ in range(5):
        assert services.request_chat(contact=world["carl"], ticket=world["carl_ticket"]).pk == first.pk


@pytest.mark.django_db(transaction=True)
async def test_a_request_flood_gets_a_clear_error_frame(world, settings):
    """Over the socket, the refused request is an error frame saying to wait; the other sockets' requests go on."""
    settings.CHAT_REQUEST_RATE_PER_MINUTE = 2
    carl = await client_socket(world["carl"].user)
    for _ in range(2):
        await carl.send(action="request_chat", ticket_id=world["carl_ticket"].pk)
        state = await carl.wait_event("client_state", state="waiting")
        await carl.send(action="cancel", request_id=int(state.attrs["data-request-id"]))
        await carl.wait_event("client_state", state="idle")
        await carl.drain(0.3)
        carl.received.clear()
    await carl.send(action="request_chat", ticket_id=world["carl_ticket"].pk)
    error = await carl.wait_event("error")
    assert error.attrs["data-error"] == "rate_limited"
    assert "wait a minute" in error.text
    await carl.close()
    # A second socket of the same contact (another tab, another process) is limited too.
    again = await client_socket(world["carl"].user)
    await again.send(action="request_chat", ticket_id=world["carl_ticket"].pk)
    assert (await again.wait_event("error")).attrs["data-error"] == "rate_limited"
    await again.close()


@pytest.mark.django_db(transaction=True)
async def test_a_junk_flood_is_not_answered_frame_for_frame(world, settings):
    """Malformed frames and unknown actions cost a token too: past the burst they are dropped unanswered,
    so junk cannot make the server render error frames as fast as it arrives; a ping still gets its pong."""
    settings.CHAT_RATE_BURST = 5
    settings.CHAT_RATE_PER_SECOND = 0.01
    carol = await client_socket(world["carol"].user)
    await carol.drain(0.2)
    carol.received.clear()
    for n in range(60):
        await carol.send_raw("{junk" if n % 2 else '{"action": "nope"}')
    await carol.send(action="ping")
    await carol.wait_event("pong")
    await carol.drain(0.3)
    errors = [e for e in carol.received if e.attrs.get("data-event") == "error"]
    assert 1 <= len(errors) <= 5
    await carol.close()
