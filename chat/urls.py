"""Chat pages. Portal views live in chat/views.py, the Staff HUD's in chat/hud_views.py."""

from django.urls import path  # noqa: F401

urlpatterns = [
    # portal
    # hud
]
