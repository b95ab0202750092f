"""Read chat data, always through the question "may this user see it?"."""

from accounts.permissions import CHAT, contact_may


def chat_context_for_ticket(*, user, ticket) -> dict:
    """Return what a ticket page needs to show about chat: the Join Chat button and history."""
    rooms = ticket.chat_rooms.filter(state="ended").prefetch_related("participants")
    return {
        "may_chat": contact_may(user, CHAT).allowed,
        "chat_history": rooms,
    }
