"""B0: a minimal asyncio `websockets` relay, the Python floor on this machine.

Same frames and markup as bench/relay_asgi.py: sockets name their rooms in the query string,
`send` is fanned out to every socket in the room with a per-room sequence number.

    python -m bench.relay_ws 8101
"""

import asyncio
import itertools
import json
import os
import sys
from collections import defaultdict
from html import escape
from urllib.parse import parse_qs, urlsplit

import websockets

PONG = '<div id="chat-pong" hx-swap-oob="true" data-event="pong" hidden></div>'


def message_html(room: int, seq: int, cmid: str, body: str) -> str:
    """Render a message as DeskChat's messages fragment does (the attributes the generator reads)."""
    return (
        f'<ol id="room-{room}-messages" hx-swap-oob="beforeend" data-event="messages" data-room="{room}">'
        f'<li id="msg-{room}-{seq}" class="msg msg-text" data-seq="{seq}" data-room="{room}" data-kind="text" '
        f'data-client-msg-id="{escape(cmid)}"><div class="msg-body">{escape(body)}</div></li></ol>'
    )


rooms: dict[int, set] = defaultdict(set)
seqs: dict[int, itertools.count] = defaultdict(lambda: itertools.count(1))


async def handler(ws):
    query = parse_qs(urlsplit(ws.request.path).query)
    mine = [int(r) for r in query.get("rooms", [""])[0].split(",") if r]
    for room in mine:
        rooms[room].add(ws)
    try:
        async for frame in ws:
            payload = json.loads(frame)
            action = payload.get("action")
            if action == "send":
                room = int(payload["room_id"])
                websockets.broadcast(
                    rooms[room],
                    message_html(room, next(seqs[room]), payload.get("client_msg_id", ""), payload.get("body", "")),
                )
            elif action in ("ping", "sync"):
                await ws.send(PONG)
    finally:
        for room in mine:
            rooms[room].discard(ws)


async def main(port: int) -> None:
    async with websockets.serve(handler, "127.0.0.1", port, max_size=65536, ping_interval=20, ping_timeout=30):
        await asyncio.Future()


if __name__ == "__main__":
    from deskchat import gc_pauses

    gc_pauses.watch(float(os.environ.get("GC_PAUSE_LOG_MS", "0")))
    asyncio.run(main(int(sys.argv[1])))
