"""Websocket URL routes: one socket for clients, one for engineers' HUD, one for the supervisor view."""

from django.urls import path

from . import consumers, supervisor

websocket_urlpatterns = [
    path("ws/chat/", consumers.ClientChatConsumer.as_asgi()),
    path("ws/hud/", consumers.StaffChatConsumer.as_asgi()),
    path("ws/hud/supervisor/", supervisor.SupervisorConsumer.as_asgi()),
]
