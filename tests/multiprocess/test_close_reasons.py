"""A real daphne sends the reason of a close, not only its code (deskchat/asgi.py patches it to)."""

import asyncio

import pytest
import websockets

from chat.sockets.shared import CLOSE_TOO_MANY_SOCKETS, TOO_MANY_SOCKETS_REASON
from tests.multiprocess.test_two_processes import Live

pytestmark = [pytest.mark.multiprocess]


async def test_a_socket_past_the_cap_per_user_gets_its_code_and_reason(daphne_servers, desk):
    server = daphne_servers(1, CHAT_MAX_SOCKETS_PER_USER=1)[0]
    first = await Live.open(server, "/ws/chat/", desk.contact.user)
    second = await Live.open(server, "/ws/chat/", desk.contact.user)
    await asyncio.wait_for(second.reader, 10)
    assert second.ws.close_code == CLOSE_TOO_MANY_SOCKETS
    assert second.ws.close_reason == TOO_MANY_SOCKETS_REASON
    await first.ws.close()
    with pytest.raises(websockets.exceptions.ConnectionClosed):
        await second.ws.send("{}")
