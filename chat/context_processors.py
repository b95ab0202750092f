"""Put the client's chat dialog, as it stands now, into every portal page.

The dialog is rendered with the page (templates/chat/_dock.html), so it comes back on every page
already in its state, with the current room's messages; the socket then sends only what follows.
"""

from django.utils.functional import SimpleLazyObject

from accounts.roles import who

from . import screens, selectors

# Cookies client.js sets so a page renders the dialog as the client left it, without a flash.
MINIMIZED_COOKIE = "deskchat_dock_min"
DISMISSED_COOKIE = "deskchat_dock_dismissed"


def chat_dock(request):
    """Expose `chat_dock` to templates; it reads the database only if a page renders the dock."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"chat_dock": SimpleLazyObject(lambda: dock_context(user, request.COOKIES))}


def dock_context(user, cookies) -> dict:
    """Return the dialog's state for a contact (empty for anyone else) and its initial view."""
    contact = who(user).contact
    if contact is None:
        return {}
    context = screens.client_dialog(contact)
    room, chat_request = context["room"], context["request"]
    context["room_messages"] = selectors.messages_after(room_id=room.pk, seq=0) if room else []
    view = context["state"]
    if view == "expired" and chat_request and cookies.get(DISMISSED_COOKIE) == str(chat_request.pk):
        view = "idle"  # the client closed this offer already
    context["view"] = view
    context["minimized"] = cookies.get(MINIMIZED_COOKIE) == "1" and view != "idle"
    # Join Chat on a ticket page opens this chat instead of asking for another one.
    context["open_ticket_id"] = chat_request.ticket_id if chat_request and view in ("waiting", "chatting") else None
    return context
