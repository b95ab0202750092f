"""Helpers for consumer tests: real router, real session cookie, frames read by chat.wire."""

import asyncio
import json

from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from chat.wire import Element, is_message, parse
from deskchat.asgi import application

ORIGIN = b"http://localhost"


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


class Socket:
    """A connected test socket that remembers every element it received."""

    def __init__(self, communicator):
        self.communicator = communicator
        self.received: list[Element] = []
        self.frames: list[str] = []  # the raw text of every frame, for checks on escaping

    async def send(self, **payload):
        await self.communicator.send_to(text_data=json.dumps(payload))

    async def send_raw(self, text):
        await self.communicator.send_to(text_data=text)

    async def next_elements(self, timeout=2.0) -> list[Element]:
        # receive_from's own timeout cancels the application, so wait with receive_nothing.
        if await self.communicator.receive_nothing(timeout=timeout, interval=0.01):
            raise TimeoutError
        frame = await self.communicator.receive_from(timeout=1)
        self.frames.append(frame)
        elements = parse(frame)
        self.received.extend(elements)
        return elements

    async def wait_for(self, predicate, timeout=3.0, *, since: int = 0) -> Element:
        """Return the first received element (from index `since` on, old or new) matching predicate."""
        for element in self.received[since:]:
            if predicate(element):
                return element
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(
                    "timed out; received: "
                    + ", ".join(
                        f"{e.attrs.get('data-event') or 'msg'}:{e.attrs.get('data-error') or e.attrs.get('data-seq') or ''}"
                        for e in self.received
                    )
                )
            for element in await self.next_elements(timeout=remaining):
                if predicate(element):
                    return element

    async def wait_event(self, event, *, since: int = 0, **attrs) -> Element:
        def match(e):
            return e.attrs.get("data-event") == event and all(
                e.attrs.get(f"data-{k.replace('_', '-')}") == str(v) for k, v in attrs.items()
            )

        return await self.wait_for(match, since=since)

    async def next_event(self, event, **attrs) -> Element:
        """Return the next element of this event to arrive, ignoring what came before."""
        return await self.wait_event(event, since=len(self.received), **attrs)

    async def refused(self, **payload) -> Element:
        """Send a frame that must be refused; return the error element it got."""
        mark = len(self.received)
        await self.send(**payload)
        return await self.wait_event("error", since=mark)

    async def assert_open(self) -> None:
        """Show the socket still answers: a ping gets its pong."""
        mark = len(self.received)
        await self.send(action="ping")
        await self.wait_event("pong", since=mark)

    async def wait_message(self, room_id, seq) -> Element:
        return await self.wait_for(
            lambda e: is_message(e) and e.attrs.get("data-room") == str(room_id) and e.attrs.get("data-seq") == str(seq)
        )

    def messages(self, room_id) -> list[Element]:
        return [e for e in self.received if is_message(e) and e.attrs.get("data-room") == str(room_id)]

    async def drain(self, timeout=0.3) -> None:
        """Read until nothing more arrives for `timeout` seconds."""
        while True:
            try:
                await self.next_elements(timeout=timeout)
            except TimeoutError:
                return

    async def close(self):
        await self.communicator.disconnect()


async def pin_session_cookie(monkeypatch, user) -> None:
    """Sign the user in now, and give every later socket of the test that cookie: the sign-in's own queries stay out of a count."""
    cookie = await sync_to_async(session_cookie)(user)
    monkeypatch.setattr("tests.chat.wsutil.session_cookie", lambda _user: cookie)


async def connect(user, path: str, *, origin: bytes | None = ORIGIN, cookie: bool = True, time_zone: str = ""):
    """Open a socket through the real ASGI stack (origin check, session auth, router); origin=None sends none.

    `time_zone` is the zone the browser's time.js would have put in its cookie.
    """
    headers = [(b"host", b"localhost")] + ([(b"origin", origin)] if origin is not None else [])
    if cookie and user is not None:
        value = await sync_to_async(session_cookie)(user)
        if time_zone:
            value += f"; deskchat_tz={time_zone}".encode()
        headers.append((b"cookie", value))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    return Socket(communicator), connected, code


async def client_socket(user, *, time_zone: str = ""):
    socket, connected, code = await connect(user, "/ws/chat/", time_zone=time_zone)
    assert connected, f"client socket refused ({code})"
    return socket


async def staff_socket(user, *, time_zone: str = ""):
    socket, connected, code = await connect(user, "/ws/hud/", time_zone=time_zone)
    assert connected, f"staff socket refused ({code})"
    return socket
