"""Chat pages. Portal views live in chat/views.py, the Staff HUD's in chat/hud_views.py."""

from django.urls import path  # noqa: F401

from . import hud_views

urlpatterns = [
    # portal
    # hud
    path("hud/", hud_views.hud, name="hud"),
    path("hud/supervisor/", hud_views.supervisor, name="hud_supervisor"),
    path("hud/rooms/<int:room_id>/transcript/", hud_views.transcript, name="hud_transcript"),
    path("hud/rooms/<int:room_id>/time-entry/", hud_views.time_entry, name="hud_time_entry"),
    path("hud/rooms/<int:room_id>/colleagues/", hud_views.invite_options, name="hud_invite_options"),
    path("hud/tickets/<int:ticket_id>/panel/", hud_views.ticket_panel, name="hud_ticket_panel"),
    path("hud/tickets/<int:ticket_id>/chat/", hud_views.ticket_chat, name="hud_ticket_chat"),
]
