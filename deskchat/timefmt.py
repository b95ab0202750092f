"""The one way DeskChat writes a moment for people, in the viewer's time zone: "Dec 2, 2026 05:12".

Every page, fragment, transcript and form writes moments through `format_when` (the `when`
filter and the `{% when %}` tag in templates, which are builtins); static/deskchat/time.js
writes the same text in the browser. The viewer's time zone comes from the browser: time.js
stores `Intl.DateTimeFormat().resolvedOptions().timeZone` in the TIME_ZONE_COOKIE cookie, and
`activate_viewer_time_zone` (TimeZoneMiddleware for pages, the sockets' connect for frames)
turns it on, falling back to settings.TIME_ZONE. Durations (waits, chat lengths) are not
moments: they are m:ss clocks (chat_tags.chat_clock and hud.js's clock).
"""

from datetime import datetime
from functools import lru_cache
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from django import template
from django.utils import timezone
from django.utils.html import format_html

TIME_ZONE_COOKIE = "deskchat_tz"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# What format_when writes, for parsing it back (forms); %d and %H also read "2" and "5".
PARSE_FORMAT = "%b %d, %Y %H:%M"

register = template.Library()


def format_when(value: datetime | str | None) -> str:
    """Write a moment as "Dec 2, 2026 05:12" in the active time zone (a naive one is taken as local).

    An ISO 8601 string is accepted too: events carry moments that way.
    """
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    return f"{MONTHS[local.month - 1]} {local.day}, {local.year} {local.hour:02d}:{local.minute:02d}"


@register.filter(name="when")
def when_filter(value) -> str:
    """Write a moment as format_when does (the only date filter templates use)."""
    return format_when(value)


@register.simple_tag(name="when")
def when_tag(value) -> str:
    """Write a moment as a <time> element that time.js can redraw in the browser's own zone."""
    if value is None or value == "":
        return ""
    iso = value if isinstance(value, str) else value.isoformat()
    return format_html('<time datetime="{}" data-when>{}</time>', iso, format_when(value))


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):  # not an IANA name (or not a safe one): ignore it
        return None


def viewer_zone(cookies) -> ZoneInfo | None:
    """Return the time zone the viewer's browser named in its cookie, if it is a real one."""
    name = unquote((cookies or {}).get(TIME_ZONE_COOKIE, ""))
    if not name or len(name) > 64:
        return None
    return _zone(name)


def activate_viewer_time_zone(cookies) -> None:
    """Make the viewer's time zone the active one, or settings.TIME_ZONE if the browser named none."""
    zone = viewer_zone(cookies)
    if zone is None:
        timezone.deactivate()
    else:
        timezone.activate(zone)
