"""Websocket URL routes: one socket for clients, one for engineers' HUD, one for the supervisor view."""

from django.urls import path

from .sockets.client import ClientSocket
from .sockets.hud import HudSocket
from .sockets.supervisor import SupervisorSocket

websocket_urlpatterns = [
    path("ws/chat/", ClientSocket.as_asgi()),
    path("ws/hud/", HudSocket.as_asgi()),
    path("ws/hud/supervisor/", SupervisorSocket.as_asgi()),
]
