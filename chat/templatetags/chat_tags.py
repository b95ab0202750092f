"""Small formatting helpers for the chat templates: wait clocks, durations and size limits."""

from datetime import datetime, timedelta

from django import template
from django.conf import settings
from django.utils import timezone

from chat.fragments import messages_html
from chat.models import DRAFT_MAX_LENGTH

register = template.Library()


def _clock(seconds: int) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


@register.filter
def chat_clock(since: datetime | None) -> str:
    """Render the time elapsed since a moment as m:ss (h:mm:ss past an hour), as client.js does."""
    if not since:
        return "0:00"
    return _clock((timezone.now() - since).total_seconds())


@register.filter
def chat_seconds(seconds: int | None) -> str:
    """Render a number of seconds as the HUD's m:ss clock (h:mm:ss past an hour); "–" for none."""
    return "–" if seconds is None else _clock(seconds)


@register.filter
def chat_duration(value: timedelta | None) -> str:
    """Render a chat's length for people: "45 s", "4 min 12 s", "1 h 5 min"."""
    if value is None:
        return ""
    seconds = max(0, int(value.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {seconds} s"
    return f"{seconds} s"


@register.filter
def has_engineer(participants) -> bool:
    """Return whether an engineer is among a room's participants."""
    return any(p.role == "engineer" for p in participants)


@register.simple_tag
def chat_limit(name: str) -> int:
    """Return a length limit from settings, so a form's maxlength matches what the server accepts."""
    return {"note": settings.NOTE_MAX_LENGTH, "message": settings.CHAT_MESSAGE_MAX_LENGTH, "draft": DRAFT_MAX_LENGTH}[
        name
    ]


@register.simple_tag
def chat_messages(messages, viewer_id=None, history=False, labels=False):
    """Render a list of message payloads with chat.fragments.message_html, the one markup of a message."""
    return messages_html(messages, viewer_id=viewer_id, history=history, labels=labels)


@register.filter
def chat_partners(participants, viewer_is_engineer: bool) -> str:
    """Name the people on the other side of a past chat: the engineers for a client, the client for staff."""
    wanted = "client" if viewer_is_engineer else "engineer"
    names = [p.display_name for p in participants if p.role == wanted]
    return ", ".join(dict.fromkeys(names)) or ("the client" if viewer_is_engineer else "the service desk")
