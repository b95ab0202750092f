"""B1: a bare Channels consumer under daphne that relays chat frames to a group.

It speaks the subset of DeskChat's protocol the load generator uses (`send`, `sync`, `ping`)
and answers with the same message markup (`data-seq`, `data-room`, `data-client-msg-id`), so
the same generator measures it. A socket joins the groups `room.<id>` for the ids in its query
string (`/ws/relay/?rooms=1,2`). Sequence numbers come from a per-process counter (there is no
database), which is right for the single process the baseline runs on.

    daphne -p 8100 bench.relay_asgi:application   (with RELAY_LAYER=core|pubsub, REDIS_URL=…)
"""

import itertools
import json
import os
from collections import defaultdict
from urllib.parse import parse_qs

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.relay_settings")

import django  # noqa: E402

django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from bench.relay_ws import PONG, message_html  # noqa: E402
from deskchat import gc_pauses  # noqa: E402

gc_pauses.watch(float(os.environ.get("GC_PAUSE_LOG_MS", "0")))

_seqs: dict[int, itertools.count] = defaultdict(lambda: itertools.count(1))


class RelayConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        query = parse_qs(self.scope.get("query_string", b"").decode())
        self.rooms = [int(r) for r in query.get("rooms", [""])[0].split(",") if r]
        await self.accept()
        for room in self.rooms:
            await self.channel_layer.group_add(f"room.{room}", self.channel_name)

    async def disconnect(self, code):
        for room in self.rooms:
            await self.channel_layer.group_discard(f"room.{room}", self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        payload = json.loads(text_data)
        action = payload.get("action")
        if action == "send":
            room = int(payload["room_id"])
            await self.channel_layer.group_send(
                f"room.{room}",
                {
                    "type": "chat.message",
                    "room_id": room,
                    "seq": next(_seqs[room]),
                    "client_msg_id": payload.get("client_msg_id", ""),
                    "body": payload.get("body", ""),
                },
            )
        elif action in ("ping", "sync"):
            await self.send(text_data=PONG)

    async def chat_message(self, event):
        await self.send(text_data=message_html(event["room_id"], event["seq"], event["client_msg_id"], event["body"]))


application = ProtocolTypeRouter({"websocket": URLRouter([path("ws/relay/", RelayConsumer.as_asgi())])})
