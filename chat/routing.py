"""Websocket URL routes: one socket for clients, one for engineers' HUD."""

from django.urls import path

from . import consumers

websocket_urlpatterns = [
    path("ws/chat/", consumers.ClientChatConsumer.as_asgi()),
    path("ws/hud/", consumers.StaffChatConsumer.as_asgi()),
]
