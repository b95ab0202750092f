"""Client portal chat (issue 4) in a real browser against a real daphne: a contact and an engineer.

Each test is one story with two browser contexts: the contact on the portal, the engineer on the
Staff HUD (or, for invitations, on the staff ticket page). Screenshots land in
screenshots/<test name>/.
"""

import json
import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from chat import services
from chat.models import ChatMessage, ChatRequest, ChatRoom, MessageTemplate
from tests.conftest import login
from tickets.models import Ticket, TicketNote

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 860}
WAIT = 20_000  # ms: the machine is shared, so waits are generous; none of them is an assertion by time


@pytest.fixture
def ken_ticket(desk) -> Ticket:
    """The ticket of Ken Adams, Carol's colleague, whose own chat is denied."""
    return desk.add_contact("Ken", "Adams", username="ken", chat="deny", summary="Printer jams on A3")[1]


# --- Helpers -----------------------------------------------------------------------------------


class Watched:
    """A page that records uncaught script errors; the test asserts there were none."""

    def __init__(self, browser, base_url: str, username: str, viewport=LAPTOP):
        self.context = browser.new_context(viewport=viewport)
        self.context.set_default_timeout(60_000)  # page loads on a busy, shared machine
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        # Console errors count too (a CSP violation is only a console error); failed socket
        # connections while a test holds the network down do not.
        self.page.on(
            "console",
            lambda msg: (
                self.errors.append(f"{msg.text} ({self.page.url})")
                if msg.type == "error" and "WebSocket" not in msg.text and msg.text != "[object Event]"
                else None
            ),
        )
        login(self.page, base_url, username)

    def close(self):
        self.context.close()


def client_page(browser, base_url, username="carol", viewport=LAPTOP) -> Watched:
    client = Watched(browser, base_url, username, viewport)
    expect(client.page.locator("#chat-dock")).to_have_attribute("data-conn", "open", timeout=WAIT)
    return client


def hud_page(browser, base_url, username="dana") -> Watched:
    engineer = Watched(browser, base_url, username)
    assert engineer.page.url.endswith("/hud/")
    expect(engineer.page.locator("#hud-connection")).to_have_attribute("data-state", "live", timeout=WAIT)
    return engineer


def dock(page):
    return page.locator("#chat-dock")


def client_messages(page):
    """The message items of the client's current chat (never the pending, unsent ones)."""
    return page.locator("#chat-room li.msg[data-seq]")


def seqs(page) -> list[int]:
    return [
        int(seq)
        for seq in page.locator("#chat-room li.msg[data-seq]").evaluate_all("items => items.map(li => li.dataset.seq)")
    ]


def session(page, room_id):
    return page.locator(f"#session-{room_id}")


def staff_send(page, room_id, text):
    box = session(page, room_id).locator("form.compose textarea")
    box.fill(text)
    box.press("Enter")
    expect(session(page, room_id).locator("li.msg", has_text=text)).to_have_count(1, timeout=WAIT)


def client_send(page, text):
    page.fill("#chat-input", text)
    page.press("#chat-input", "Enter")
    expect(client_messages(page).filter(has_text=text)).to_have_count(1, timeout=WAIT)


def answer_in_hud(page, request_id):
    page.locator(f"#hud-queue li[data-request-id='{request_id}'] button", has_text="Answer").click()


# --- Stories -------------------------------------------------------------------------------------


def test_join_wait_answered_chat_both_ways_and_leave(browser, live_server_url, screenshot, desk, f):
    """Join Chat puts the contact in the queue: the dialog shows a live wait timer and their place,
    which moves up as the one ahead is answered; the message box stays locked, saying why, until
    Dana answers; then messages go both ways with names, and the cross leaves the chat."""
    ticket = desk.ticket
    # Someone else is already waiting, so Carol joins the queue second.
    ahead_request = services.request_chat(contact=desk.colleague, ticket=desk.colleague_ticket)

    staff = hud_page(browser, live_server_url)
    hud = staff.page
    expect(hud.locator("#hud-queue")).to_have_attribute("data-count", "1", timeout=WAIT)

    client = client_page(browser, live_server_url)
    page = client.page
    page.goto(f"{live_server_url}/tickets/{ticket.pk}/")
    expect(dock(page)).to_have_attribute("data-conn", "open", timeout=WAIT)
    expect(dock(page)).to_have_attribute("data-view", "idle")
    expect(page.locator("#chat-dialog")).to_be_hidden()
    screenshot(page, "01-ticket-with-join-chat")

    page.get_by_role("button", name="Join Chat").click()
    expect(dock(page)).to_have_attribute("data-view", "waiting", timeout=WAIT)
    status = page.locator("#chat-status")
    expect(status.locator(".position")).to_have_text("You are number 2 in the queue.")
    request = ChatRequest.objects.get(contact=desk.contact, state=ChatRequest.State.WAITING)
    # The timer counts from the server's timestamp; it has moved past 0:01 without a reload.
    timer = status.locator(".wait-timer")
    expect(timer).to_have_text(re.compile(r"^0:0[1-9]$|^0:[1-5]\d$"), timeout=WAIT)
    expect(status.locator(".chat-ticket a")).to_have_attribute("href", f"/tickets/{ticket.pk}/")
    # The message box is locked, with the reason next to it; typing is still allowed (and kept).
    expect(page.locator("#chat-send")).to_be_disabled()
    expect(page.locator("#chat-lock")).to_have_text(re.compile("You can send once an engineer joins"))
    expect(page.locator("#chat-input")).to_be_focused()
    page.fill("#chat-input", "Hello, anyone there?")
    page.press("#chat-input", "Enter")
    expect(page.locator("#chat-input")).to_have_value("Hello, anyone there?")
    assert not ChatMessage.objects.exists()
    screenshot(page, "02-waiting-second-in-queue")

    # The same timer after a reload starts from the server's timestamp, not from zero.
    page.reload()
    expect(dock(page)).to_have_attribute("data-view", "waiting", timeout=WAIT)
    expect(page.locator("#chat-status .wait-timer")).not_to_have_text("0:00", timeout=WAIT)
    expect(page.locator("#chat-input")).to_have_value("Hello, anyone there?")

    # Dana answers the one ahead: Carol moves up without a reload.
    expect(hud.locator("#hud-queue")).to_have_attribute("data-count", "2", timeout=WAIT)
    answer_in_hud(hud, ahead_request.pk)
    expect(page.locator("#chat-status .position")).to_have_text("You are next in the queue.", timeout=WAIT)
    screenshot(page, "03-waiting-next-in-queue")

    # Dana answers Carol: the dialog turns into the chat, the box unlocks and the lock line goes.
    answer_in_hud(hud, request.pk)
    expect(dock(page)).to_have_attribute("data-view", "chatting", timeout=WAIT)
    room = ChatRoom.objects.get(request=request)
    expect(page.locator("#chat-send")).to_be_enabled(timeout=WAIT)
    expect(page.locator("#chat-lock")).to_have_text("")
    expect(page.locator("#chat-status")).to_contain_text("Chatting with the service desk")
    expect(client_messages(page).filter(has_text="Dana Reyes joined.")).to_have_count(1, timeout=WAIT)
    participants = page.locator("#chat-status details.participants")
    participants.locator("summary").click()
    expect(participants).to_contain_text("Dana Reyes")
    expect(participants).to_contain_text("Carol Client")

    # Messages both ways, with names.
    expect(session(hud, room.pk)).to_be_visible(timeout=WAIT)
    staff_send(hud, room.pk, "Hi Carol, Dana here. Which Outlook version?")
    engineer_line = client_messages(page).filter(has_text="Which Outlook version?")
    expect(engineer_line).to_have_count(1, timeout=WAIT)
    expect(engineer_line.locator(".msg-author")).to_have_text("Dana Reyes")
    # What Carol typed while waiting is still in the box; she sends it now.
    page.press("#chat-input", "Enter")
    expect(client_messages(page).filter(has_text="Hello, anyone there?")).to_have_count(1, timeout=WAIT)
    client_send(page, "Outlook 2021, on Windows 11.")
    on_hud = session(hud, room.pk).locator("li.msg", has_text="Outlook 2021, on Windows 11.")
    expect(on_hud).to_have_count(1, timeout=WAIT)
    expect(on_hud.locator(".msg-author")).to_have_text("Carol Client")
    assert seqs(page) == sorted(set(seqs(page)))
    # Carol's own message is one bubble: its body has no second box of its own inside it.
    mine = client_messages(page).filter(has_text="Outlook 2021").locator(".msg-body")
    assert mine.evaluate("el => getComputedStyle(el).backgroundColor") == "rgba(0, 0, 0, 0)"
    screenshot(page, "04-chatting")
    screenshot(hud, "05-engineer-session")

    # Carol leaves with the cross: the dialog says so, and Dana sees her go.
    page.get_by_role("button", name="Leave the chat").click()
    expect(page.locator(f"#room-{room.pk}-closed")).to_contain_text("You left this chat.", timeout=WAIT)
    expect(dock(page)).to_have_attribute("data-view", "ended", timeout=WAIT)
    expect(session(hud, room.pk).locator("li.msg", has_text="Carol Client left.")).to_have_count(1, timeout=WAIT)
    # The participant list, redrawn after "left", keeps its place (and class), and is put away
    # with the rest of the live chat.
    expect(page.locator(f"#room-{room.pk}-participants")).to_have_class("chat-participants")
    expect(page.locator("#chat-status details.participants")).to_be_hidden()
    screenshot(page, "06-left")
    assert list(ChatMessage.objects.filter(room=room, author=desk.contact.user).values_list("body", flat=True)) == [
        "Hello, anyone there?",
        "Outlook 2021, on Windows 11.",
    ]

    assert client.errors == [] and staff.errors == []
    client.close()
    staff.close()


def join_chat(page, base_url, ticket) -> ChatRequest:
    """The contact asks to chat about the ticket from its page; return the waiting request."""
    page.goto(f"{base_url}/tickets/{ticket.pk}/")
    expect(dock(page)).to_have_attribute("data-conn", "open", timeout=WAIT)
    page.get_by_role("button", name="Join Chat").click()
    expect(dock(page)).to_have_attribute("data-view", "waiting", timeout=WAIT)
    return ChatRequest.objects.get(ticket=ticket, kind=ChatRequest.Kind.CLIENT, state=ChatRequest.State.WAITING)


def join_and_answer(page, base_url, hud, ticket) -> ChatRoom:
    """The contact asks to chat about the ticket; Dana answers from the HUD; return the room."""
    request = join_chat(page, base_url, ticket)
    answer_in_hud(hud, request.pk)
    expect(dock(page)).to_have_attribute("data-view", "chatting", timeout=WAIT)
    expect(page.locator("#chat-send")).to_be_enabled(timeout=WAIT)
    room = ChatRoom.objects.get(request=request)
    expect(session(hud, room.pk)).to_be_visible(timeout=WAIT)
    return room


def assert_each_message_once(page, room):
    """Every stored message shows exactly once, in order, with no gap: counted by data-seq."""
    shown = seqs(page)
    stored = list(ChatMessage.objects.filter(room=room).order_by("seq").values_list("seq", flat=True))
    assert shown == stored == list(range(1, len(stored) + 1))


def test_dialog_follows_navigation_and_survives_a_forced_reconnect(browser, live_server_url, screenshot, desk):
    """A waiting request can be cancelled with the cross. A chat comes back on another portal page
    exactly as it was; when the socket drops, the dialog says it is reconnecting, catches up on
    what Dana sent meanwhile, and sends what Carol typed offline once: no message lost or shown twice."""
    ticket = desk.ticket
    staff = hud_page(browser, live_server_url)
    hud = staff.page
    client = client_page(browser, live_server_url)
    page = client.page
    # While waiting, the cross cancels the request: it leaves Dana's queue and the dialog closes.
    first = join_chat(page, live_server_url, ticket)
    expect(hud.locator(f"#hud-queue li[data-request-id='{first.pk}']")).to_have_count(1, timeout=WAIT)
    page.get_by_role("button", name="Leave: cancel the chat request").click()
    expect(dock(page)).to_have_attribute("data-view", "idle", timeout=WAIT)
    expect(page.locator("#chat-dialog")).to_be_hidden()
    expect(hud.locator(f"#hud-queue li[data-request-id='{first.pk}']")).to_have_count(0, timeout=WAIT)
    first.refresh_from_db()
    assert first.state == ChatRequest.State.CANCELLED

    room = join_and_answer(page, live_server_url, hud, ticket)
    staff_send(hud, room.pk, "Morning! Let's have a look.")
    client_send(page, "Thanks, it happens every hour.")
    expect(client_messages(page).filter(has_text="Morning!")).to_have_count(1, timeout=WAIT)
    assert_each_message_once(page, room)

    # Another portal page: the dialog is back, in its state, with the same messages once each.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My tickets").click()
    page.wait_for_url(re.compile(r"/tickets/$"))
    expect(dock(page)).to_have_attribute("data-conn", "open", timeout=WAIT)
    expect(dock(page)).to_have_attribute("data-view", "chatting")
    expect(page.locator("#chat-send")).to_be_enabled()
    staff_send(hud, room.pk, "Does it happen in webmail too?")
    expect(client_messages(page).filter(has_text="webmail")).to_have_count(1, timeout=WAIT)
    assert_each_message_once(page, room)
    screenshot(page, "01-chat-on-ticket-list")

    # The dialog's ticket link works from anywhere.
    page.locator("#chat-status .chat-ticket a").click()
    page.wait_for_url(re.compile(rf"/tickets/{ticket.pk}/$"))
    expect(dock(page)).to_have_attribute("data-conn", "open", timeout=WAIT)
    expect(client_messages(page)).to_have_count(len(seqs(page)))
    assert_each_message_once(page, room)

    # The connection drops (closed from here, and kept down until the test lets it back).
    client.context.set_offline(True)
    page.evaluate("window.deskchatSocket.close()")
    expect(dock(page)).to_have_attribute("data-conn", "reconnecting", timeout=WAIT)
    expect(page.locator("#chat-conn")).to_be_visible()
    expect(page.locator("#chat-conn")).to_have_text("Reconnecting…")
    # Dana writes while Carol is away; Carol writes too, and her message waits for the connection.
    staff_send(hud, room.pk, "Sent while you were away.")
    page.fill("#chat-input", "Typed while offline.")
    page.press("#chat-input", "Enter")
    pending_item = page.locator("#chat-pending li.pending", has_text="Typed while offline.")
    expect(pending_item).to_have_count(1)
    expect(pending_item).to_contain_text("Waiting for the connection to send")
    expect(page.locator("#chat-input")).to_have_value("")
    screenshot(page, "02-reconnecting-with-pending-message")
    assert not ChatMessage.objects.filter(body="Typed while offline.").exists()

    # Back online: the dialog catches up and sends the waiting message, once.
    client.context.set_offline(False)
    expect(dock(page)).to_have_attribute("data-conn", "open", timeout=WAIT)
    expect(page.locator("#chat-conn")).to_be_hidden()
    expect(client_messages(page).filter(has_text="Sent while you were away.")).to_have_count(1, timeout=WAIT)
    expect(client_messages(page).filter(has_text="Typed while offline.")).to_have_count(1, timeout=WAIT)
    expect(page.locator("#chat-pending li")).to_have_count(0)
    expect(session(hud, room.pk).locator("li.msg", has_text="Typed while offline.")).to_have_count(1, timeout=WAIT)
    assert ChatMessage.objects.filter(room=room, body="Typed while offline.").count() == 1
    assert_each_message_once(page, room)

    # A reload shows the same, once each too.
    page.reload()
    expect(dock(page)).to_have_attribute("data-conn", "open", timeout=WAIT)
    staff_send(hud, room.pk, "All caught up?")
    expect(client_messages(page).filter(has_text="All caught up?")).to_have_count(1, timeout=WAIT)
    assert_each_message_once(page, room)
    screenshot(page, "03-caught-up")
    assert client.errors == [] and staff.errors == []
    client.close()
    staff.close()


def test_messages_refused_as_too_fast_are_retried_and_stored_once(browser, daphne_servers, screenshot, desk):
    """A "not now" refusal (rate_limited here; unavailable during a database restart takes the same
    path) keeps the message pending and sends it again with the same client_msg_id: every message
    typed in a burst arrives once, on both the portal and the HUD, and none is stored twice."""
    base = daphne_servers(1, CHAT_RATE_BURST=3, CHAT_RATE_PER_SECOND=1)[0].url
    staff = hud_page(browser, base)
    hud = staff.page
    client = client_page(browser, base)
    page = client.page
    request = join_chat(page, base, desk.ticket)
    answer_in_hud(hud, request.pk)
    expect(page.locator("#chat-send")).to_be_enabled(timeout=WAIT)
    room = ChatRoom.objects.get(request=request)
    expect(session(hud, room.pk)).to_be_visible(timeout=WAIT)

    burst = [f"Client line {n}" for n in range(6)]
    for text in burst:
        page.fill("#chat-input", text)
        page.press("#chat-input", "Enter")
    replies = [f"Engineer line {n}" for n in range(6)]
    box = session(hud, room.pk).locator("form.compose textarea")
    for text in replies:
        box.fill(text)
        box.press("Enter")

    for text in burst + replies:
        expect(client_messages(page).filter(has_text=text)).to_have_count(1, timeout=60_000)
        expect(session(hud, room.pk).locator("li.msg", has_text=text)).to_have_count(1, timeout=60_000)
    expect(page.locator("#chat-input")).to_have_value("")
    screenshot(page, "01-burst-delivered")
    stored = list(ChatMessage.objects.filter(room=room, kind=ChatMessage.Kind.TEXT).values_list("body", flat=True))
    assert sorted(stored) == sorted(burst + replies)
    assert seqs(page) == sorted(set(seqs(page)))
    client.close()
    staff.close()


def test_a_message_refused_as_busy_stays_sending_and_goes_again_with_the_same_id(
    browser, daphne_servers, screenshot, desk
):
    """A process past its backlog refuses a message as busy: the page says so, shows it as Sending…,
    never as sent, and sends it again a moment later with the same client_msg_id; nothing is stored.

    CHAT_PROCESS_BACKLOG=0 keeps this server always past it (only messages are shed, so Join
    Chat and Answer still work)."""
    base = daphne_servers(1, CHAT_PROCESS_BACKLOG=0)[0].url
    staff = hud_page(browser, base)
    client = client_page(browser, base)
    page = client.page
    sent: list[dict] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda frame: sent.append(json.loads(frame))))
    room = join_and_answer(page, base, staff.page, desk.ticket)

    page.fill("#chat-input", "Is the VPN down for everyone?")
    page.press("#chat-input", "Enter")
    pending = page.locator("#chat-pending li.pending", has_text="Is the VPN down for everyone?")
    expect(pending).to_contain_text("Sending…", timeout=WAIT)
    expect(page.locator("#chat-errors")).to_contain_text("Chat is busy right now", timeout=WAIT)
    expect(page.locator("#chat-errors")).to_have_attribute("data-error", "busy")
    screenshot(page, "01-busy-sending")

    def sends():
        return [f for f in sent if f.get("action") == "send" and f.get("body") == "Is the VPN down for everyone?"]

    page.wait_for_timeout(4_000)  # the first retry comes after about 2 s (±25%)
    tries = sends()
    assert len(tries) >= 2 and len({f["client_msg_id"] for f in tries}) == 1
    expect(pending).to_contain_text("Sending…")
    expect(client_messages(page).filter(has_text="Is the VPN down")).to_have_count(0)
    assert not ChatMessage.objects.filter(room=room, body="Is the VPN down for everyone?").exists()
    client.close()
    staff.close()


def test_pickup_timeout_offers_a_prefilled_ticket_note_and_a_callback(browser, daphne_servers, screenshot, desk):
    """Nobody answers in time: the dialog says so and offers a ticket note pre-filled with what the
    contact typed while waiting, which lands on the ticket; next time, the callback request does."""
    base = daphne_servers(1, CHAT_PICKUP_TIMEOUT_SECONDS=3, CHAT_SWEEP_INTERVAL_SECONDS=0.5)[0].url
    ticket = desk.ticket
    staff = hud_page(browser, base)
    hud = staff.page
    client = client_page(browser, base)
    page = client.page

    request = join_chat(page, base, ticket)
    expect(hud.locator(f"#hud-queue li[data-request-id='{request.pk}']")).to_have_count(1, timeout=WAIT)
    page.fill("#chat-input", "Outlook asks for my password every hour since Monday.")
    # Nobody answers: the request expires, and leaves Dana's queue too.
    expect(dock(page)).to_have_attribute("data-view", "expired", timeout=WAIT)
    expect(hud.locator(f"#hud-queue li[data-request-id='{request.pk}']")).to_have_count(0, timeout=WAIT)
    expect(page.locator("#chat-status")).to_contain_text("Nobody could answer in time")
    offer = page.locator("#chat-offer")
    expect(offer).to_contain_text("no engineer was free to answer")
    note = offer.get_by_label(f"Your note for ticket #{ticket.pk}")
    expect(note).to_have_value("Outlook asks for my password every hour since Monday.")
    expect(page.locator("#chat-compose")).to_be_hidden()
    screenshot(page, "01-timeout-offer")

    note.fill("Outlook asks for my password every hour since Monday. Restarting does not help.")
    offer.get_by_role("button", name="Add note to ticket").click()
    expect(page.locator("#chat-notice")).to_contain_text(f"Your note is on ticket #{ticket.pk}", timeout=WAIT)
    # The ticket page under the dialog shows the note without a reload, and the offer is gone,
    # so the note cannot be added twice.
    expect(page.locator("#notes li.note", has_text="Restarting does not help.")).to_have_count(1, timeout=WAIT)
    expect(offer).to_be_hidden()
    expect(page.locator("#chat-dialog .chat-side")).to_be_hidden()
    screenshot(page, "02-note-added")
    assert TicketNote.objects.filter(
        ticket=ticket,
        author=desk.contact.user,
        internal=False,
        text="Outlook asks for my password every hour since Monday. Restarting does not help.",
    ).exists()
    assert ChatRequest.objects.get(pk=request.pk).state == ChatRequest.State.EXPIRED

    # The cross closes the dialog, and the offer, once taken up, stays closed on the next page.
    expect(dock(page)).to_have_attribute("data-view", "message")
    page.locator("#chat-leave .chat-cross").click()
    expect(dock(page)).to_have_attribute("data-view", "idle")
    page.reload()
    expect(dock(page)).to_have_attribute("data-conn", "open", timeout=WAIT)
    expect(dock(page)).to_have_attribute("data-view", "idle")

    # A second try, and again nobody answers: this time Carol asks to be called back.
    second = join_chat(page, base, ticket)
    page.fill("#chat-input", "Please call me on 555 0100 after 2pm.")
    expect(dock(page)).to_have_attribute("data-view", "expired", timeout=WAIT)
    expect(note).to_have_value("Please call me on 555 0100 after 2pm.")
    page.get_by_role("button", name="Call me back instead").click()
    expect(page.locator("#chat-notice")).to_contain_text("An engineer will call you back", timeout=WAIT)
    expect(dock(page)).not_to_have_attribute("data-view", "expired", timeout=WAIT)
    # The callback request is noted on the ticket, with what Carol typed; the page shows it at once.
    callback_item = page.locator("#notes li.note", has_text="Please call me back instead of chatting.")
    expect(callback_item).to_have_count(1, timeout=WAIT)
    expect(callback_item).to_contain_text("Please call me on 555 0100")
    expect(page.get_by_role("button", name="Call me back instead")).to_be_hidden()
    screenshot(page, "03-callback-requested")
    assert ChatRequest.objects.get(pk=second.pk).state == ChatRequest.State.CALLBACK
    callback_note = TicketNote.objects.get(ticket=ticket, text__contains="Please call me back instead of chatting.")
    assert "Please call me on 555 0100 after 2pm." in callback_note.text
    assert not callback_note.internal
    # What she typed went with it: the next chat starts with an empty box.
    expect(page.locator("#chat-input")).to_have_value("")
    page.reload()
    expect(dock(page)).to_have_attribute("data-conn", "open", timeout=WAIT)
    expect(page.locator("#chat-input")).to_have_value("")
    assert client.errors == [] and staff.errors == []
    client.close()
    staff.close()


def test_greeting_typing_farewell_and_the_chat_history_tab(browser, live_server_url, screenshot, desk):
    """A whole chat as the client sees it (greeting, typing indicator, messages, farewell, "Dana
    left."), then the ticket's Chat history tab beside Notes: participants, start, end, duration
    and the full transcript."""
    ticket = desk.ticket
    MessageTemplate.objects.create(kind="greeting", name="Hello", body="Hi {client_first_name}, {engineer_name} here.")
    MessageTemplate.objects.create(kind="farewell", name="Bye", body="Glad I could help with #{ticket_number}!")
    staff = hud_page(browser, live_server_url)
    hud = staff.page
    client = client_page(browser, live_server_url)
    page = client.page
    page.goto(f"{live_server_url}/tickets/{ticket.pk}/")
    # No chat yet: no Chat history tab.
    expect(page.get_by_role("tab", name=re.compile("Notes"))).to_be_visible()
    expect(page.get_by_role("tab", name=re.compile("Chat history"))).to_have_count(0)
    room = join_and_answer(page, live_server_url, hud, ticket)
    panel = session(hud, room.pk)

    # Dana's greeting, from her template.
    panel.get_by_role("button", name="Greeting: Hello").click()
    expect(panel.locator("form.compose textarea")).to_have_value("Hi Carol, Dana Reyes here.")
    panel.locator("form.compose textarea").press("Enter")
    greeting = client_messages(page).filter(has_text="Hi Carol, Dana Reyes here.")
    expect(greeting).to_have_count(1, timeout=WAIT)
    expect(greeting).to_have_attribute("data-kind", "greeting")
    # Dana types: Carol sees it, and it goes away when the message arrives.
    panel.locator("form.compose textarea").press_sequentially("Let me", delay=30)
    expect(page.locator(f"#room-{room.pk}-typing")).to_have_text("Dana Reyes is typing…", timeout=WAIT)
    screenshot(page, "01-typing")
    panel.locator("form.compose textarea").press_sequentially(" reset your token cache.", delay=5)
    panel.locator("form.compose textarea").press("Enter")
    expect(client_messages(page).filter(has_text="Let me reset your token cache.")).to_have_count(1, timeout=WAIT)
    expect(page.locator(f"#room-{room.pk}-typing")).to_have_text("")
    client_send(page, "It works now, thank you!")
    panel.get_by_role("button", name="Farewell: Bye").click()
    panel.locator("form.compose textarea").press("Enter")
    farewell = client_messages(page).filter(has_text=f"Glad I could help with #{ticket.pk}!")
    expect(farewell).to_have_count(1, timeout=WAIT)
    expect(farewell).to_have_attribute("data-kind", "farewell")

    # Dana leaves: Carol sees it, is back in the queue, and the box locks again, saying why.
    panel.get_by_role("button", name="Leave", exact=True).click()
    expect(client_messages(page).filter(has_text="Dana Reyes left.")).to_have_count(1, timeout=WAIT)
    expect(page.locator("#chat-send")).to_be_disabled(timeout=WAIT)
    expect(page.locator("#chat-lock")).to_have_text(re.compile("You can send once an engineer joins"))
    expect(page.locator("#chat-status")).to_contain_text("Dana Reyes left the chat")
    # The participant dropdown follows live, and keeps its look.
    people = page.locator(f"#room-{room.pk}-participants")
    expect(people.locator("summary")).to_have_text("In this chat: 1")
    expect(people).to_have_class("chat-participants")
    screenshot(page, "02-engineer-left")
    # Carol stops waiting, which ends the chat; the dialog says so, and where the transcript is.
    page.get_by_role("button", name="Leave: cancel the chat request").click()
    expect(page.locator(f"#room-{room.pk}-closed")).to_have_text(
        f"This chat has ended. The transcript is on ticket #{ticket.pk}.", timeout=WAIT
    )
    expect(dock(page)).to_have_attribute("data-view", "ended")
    screenshot(page, "03-chat-ended")
    room.refresh_from_db()
    assert room.state == ChatRoom.State.ENDED and room.ended_at

    # The ticket now has a Chat history tab beside Notes.
    page.reload()
    history_tab = page.get_by_role("tab", name=re.compile("Chat history"))
    expect(history_tab).to_contain_text("1")
    history_tab.click()
    expect(history_tab).to_have_attribute("aria-selected", "true", timeout=WAIT)
    expect(page.get_by_role("tab", name=re.compile("Notes"))).to_have_attribute("aria-selected", "false")
    item = page.locator(f"#chat-history-{room.pk}")
    facts = item.locator(".chat-history-facts")
    expect(facts).to_contain_text("Dana Reyes (engineer)")
    expect(facts).to_contain_text("Carol Client")
    local = lambda moment: timezone.localtime(moment).strftime("%H:%M")  # noqa: E731
    expect(facts.locator("div", has_text="Started")).to_contain_text(local(room.started_at))
    expect(facts.locator("div", has_text="Ended")).to_contain_text(local(room.ended_at))
    expect(facts.locator("div", has_text="Duration")).to_contain_text(re.compile(r"\d+ s|\d+ min"))
    transcript = item.get_by_role("list", name="Transcript")
    stored = list(ChatMessage.objects.filter(room=room).order_by("seq").values_list("body", flat=True))
    expect(transcript.locator("li")).to_have_count(len(stored))
    for position, body in enumerate(stored):
        expect(transcript.locator("li").nth(position)).to_contain_text(body)
    # The client reads people's words: greetings and farewells carry no "Greeting" label here.
    expect(transcript.locator(".msg-kind")).to_have_count(0)
    screenshot(page, "04-chat-history-tab")
    # The tab is a real link too: the history has its own address.
    page.goto(f"{live_server_url}/tickets/{ticket.pk}/?tab=history")
    expect(page.locator(f"#chat-history-{room.pk} .transcript li")).to_have_count(len(stored))
    assert client.errors == [] and staff.errors == []
    client.close()
    staff.close()


def test_engineer_initiated_chat_accepted_then_rejected(browser, live_server_url, screenshot, desk):
    """Dana invites Carol from the ticket page; Carol, on another portal page, gets Accept and Reject.
    Accept opens the chat with Dana already in it; a second invitation, rejected, tells Dana so."""
    ticket = desk.ticket
    staff = hud_page(browser, live_server_url)
    hud = staff.page
    ticket_page = staff.context.new_page()
    ticket_page.on("pageerror", lambda error: staff.errors.append(str(error)))
    client = client_page(browser, live_server_url)
    page = client.page  # on the ticket list, not the ticket

    ticket_page.goto(f"{live_server_url}/tickets/{ticket.pk}/")
    ticket_page.get_by_role("button", name="Invite to chat").click()
    expect(ticket_page.locator("#hud-ticket-chat .invitation-state")).to_have_text("Pending", timeout=WAIT)

    invitation = page.get_by_role("alertdialog", name="Chat invitation")
    expect(invitation).to_be_visible(timeout=WAIT)
    expect(invitation).to_contain_text(f"Dana Reyes would like to chat with you about ticket #{ticket.pk}")
    accept = invitation.get_by_role("button", name="Accept")
    expect(accept).to_be_focused()
    screenshot(page, "01-invitation")
    page.keyboard.press("Enter")

    # The chat opens with Dana already in it: no waiting, the box is open.
    expect(dock(page)).to_have_attribute("data-view", "chatting", timeout=WAIT)
    expect(invitation).to_have_count(0)
    expect(page.locator("#chat-send")).to_be_enabled()
    expect(page.locator("#chat-input")).to_be_focused()
    room = ChatRoom.objects.get(request__kind=ChatRequest.Kind.INVITATION, request__contact=desk.contact)
    expect(page.locator(f"#room-{room.pk}-participants li[data-role=engineer]")).to_have_text("Dana Reyes (engineer)")
    expect(client_messages(page).filter(has_text="Carol Client joined.")).to_have_count(1, timeout=WAIT)
    # Dana sees it accepted, on the ticket page and as a session on her HUD.
    expect(ticket_page.locator("#hud-ticket-chat .invitation-state")).to_have_text("Accepted", timeout=WAIT)
    expect(session(hud, room.pk)).to_be_attached(timeout=WAIT)
    hud.bring_to_front()
    staff_send(hud, room.pk, "Thanks for joining. Quick question about your licence.")
    expect(client_messages(page).filter(has_text="Quick question")).to_have_count(1, timeout=WAIT)
    screenshot(page, "02-invitation-accepted")
    page.get_by_role("button", name="Leave the chat").click()
    expect(dock(page)).to_have_attribute("data-view", "ended", timeout=WAIT)
    session(hud, room.pk).get_by_role("button", name="Leave", exact=True).click()
    expect(session(hud, room.pk)).to_have_attribute("data-state", "closed", timeout=WAIT)
    page.locator("#chat-leave .chat-cross").click()
    expect(dock(page)).to_have_attribute("data-view", "idle")

    # A second invitation, which Carol rejects: Dana is told.
    ticket_page.bring_to_front()
    ticket_page.reload()
    ticket_page.get_by_role("button", name="Invite to chat").click()
    expect(ticket_page.locator("#hud-ticket-chat .invitation-state")).to_have_text("Pending", timeout=WAIT)
    second = ChatRequest.objects.filter(kind=ChatRequest.Kind.INVITATION).latest("pk")
    expect(invitation).to_be_visible(timeout=WAIT)
    invitation.get_by_role("button", name="Reject").click()
    expect(invitation).to_have_count(0, timeout=WAIT)
    expect(dock(page)).to_have_attribute("data-view", "idle")
    expect(ticket_page.locator("#hud-ticket-chat .invitation-state")).to_have_text("Rejected", timeout=WAIT)
    expect(hud.locator(f"#invitation-{second.pk} .invitation-state")).to_have_text("Rejected", timeout=WAIT)
    screenshot(ticket_page, "03-engineer-sees-rejection")
    assert ChatRequest.objects.get(pk=second.pk).state == ChatRequest.State.REJECTED
    assert ChatRoom.objects.count() == 1
    assert client.errors == [] and staff.errors == []
    client.close()
    staff.close()


def test_contact_without_chat_permission_sees_no_button_and_a_forged_frame_is_refused(
    browser, live_server_url, screenshot, desk, ken_ticket
):
    """Ken's chat is denied: his ticket has no Join Chat button, and a request_chat frame sent
    by hand over his socket is refused; another company's ticket is not even found."""
    staff = hud_page(browser, live_server_url)
    client = client_page(browser, live_server_url, username="ken")
    page = client.page
    page.goto(f"{live_server_url}/tickets/{ken_ticket.pk}/")
    expect(dock(page)).to_have_attribute("data-conn", "open", timeout=WAIT)
    expect(page.locator("h1")).to_contain_text("Printer jams on A3")
    expect(page.get_by_role("button", name="Join Chat")).to_have_count(0)
    expect(page.locator("[data-chat-join]")).to_have_count(0)
    screenshot(page, "01-no-join-chat")

    # The frame the button would have sent, forged over the page's own socket.
    page.evaluate(
        "ticket => window.deskchatSocket.send(JSON.stringify({action: 'request_chat', ticket_id: ticket}))",
        ken_ticket.pk,
    )
    errors = page.locator("#chat-errors")
    expect(errors).to_have_attribute("data-error", "not_allowed", timeout=WAIT)
    expect(errors).to_have_text("Chat is not enabled for your account.")
    expect(page.locator("#chat-dialog")).to_be_visible()
    screenshot(page, "02-forged-request-refused")
    # Another company's ticket: not found, exactly as a ticket that does not exist.
    page.evaluate(
        "ticket => window.deskchatSocket.send(JSON.stringify({action: 'request_chat', ticket_id: ticket}))",
        desk.outsider_ticket.pk,
    )
    expect(errors).to_have_attribute("data-error", "not_found", timeout=WAIT)
    assert not ChatRequest.objects.exists()
    expect(staff.page.locator("#hud-queue")).to_have_attribute("data-count", "0")
    assert client.errors == [] and staff.errors == []
    client.close()
    staff.close()


FOCUS = """() => {
  const el = document.activeElement, style = getComputedStyle(el);
  return {id: el.id, text: (el.textContent || '').trim(), label: el.getAttribute('aria-label') || '',
          visible: el.matches(':focus-visible'), outline: style.outlineStyle, width: parseFloat(style.outlineWidth)};
}"""


def focused(page) -> dict:
    """Describe the focused element, and check a keyboard user can see where the focus is."""
    info = page.evaluate(FOCUS)
    assert info["visible"] and info["outline"] != "none" and info["width"] >= 2, info
    return info


def assert_fits(page, width=PHONE["width"]):
    """Nothing scrolls sideways, and the whole dialog is on the screen."""
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    box = page.locator("#chat-dialog").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width, box


def test_keyboard_screen_reader_and_phone_width(browser, live_server_url, screenshot, desk):
    """On a 390px phone, by keyboard alone: Join Chat, wait, chat and leave, with the focus always
    visible, new messages in an aria-live region, state changes announced, and no sideways scroll."""
    ticket = desk.ticket
    staff = hud_page(browser, live_server_url)
    hud = staff.page
    client = client_page(browser, live_server_url, viewport=PHONE)
    page = client.page
    page.goto(f"{live_server_url}/tickets/{ticket.pk}/")
    expect(dock(page)).to_have_attribute("data-conn", "open", timeout=WAIT)

    # Tab to Join Chat; the focus ring shows at every stop on the way.
    for _ in range(20):
        page.keyboard.press("Tab")
        if focused(page)["text"] == "Join Chat":
            break
    else:
        pytest.fail("Join Chat cannot be reached with the Tab key")
    screenshot(page, "01-phone-join-chat-focused")
    page.keyboard.press("Enter")
    expect(dock(page)).to_have_attribute("data-view", "waiting", timeout=WAIT)
    expect(page.locator("#chat-input")).to_be_focused()
    focused(page)
    expect(page.locator("#chat-live")).to_have_text("You are in the queue for a chat.", timeout=WAIT)
    expect(page.locator("#chat-live")).to_have_attribute("aria-live", "polite")
    # The lock line is tied to the box, so a screen reader reads why it cannot send yet.
    expect(page.locator("#chat-input")).to_have_attribute("aria-describedby", "chat-lock")
    expect(page.locator("#chat-lock")).to_have_text(re.compile("You can send once an engineer joins"))
    assert_fits(page)
    screenshot(page, "02-phone-waiting")

    request = ChatRequest.objects.get(contact=desk.contact, state=ChatRequest.State.WAITING)
    answer_in_hud(hud, request.pk)
    expect(dock(page)).to_have_attribute("data-view", "chatting", timeout=WAIT)
    expect(page.locator("#chat-live")).to_have_text("An engineer answered your chat.", timeout=WAIT)
    room = ChatRoom.objects.get(request=request)
    expect(session(hud, room.pk)).to_be_visible(timeout=WAIT)

    # New messages land in a polite live region, so screen readers announce them.
    staff_send(hud, room.pk, "Hello Carol, this is Dana. What do you see on screen?")
    line = client_messages(page).filter(has_text="What do you see on screen?")
    expect(line).to_have_count(1, timeout=WAIT)
    region = page.locator(f"#room-{room.pk}-messages")
    expect(region).to_have_attribute("aria-live", "polite")
    expect(region).to_have_attribute("aria-relevant", "additions")
    expect(region.locator("li", has_text="What do you see on screen?")).to_have_count(1)

    # Typing and Enter send; the focus stays in the box.
    expect(page.locator("#chat-send")).to_be_enabled()
    page.locator("#chat-input").focus()
    page.keyboard.type("A grey window that says 'Need password'.")
    page.keyboard.press("Enter")
    expect(client_messages(page).filter(has_text="Need password")).to_have_count(1, timeout=WAIT)
    expect(page.locator("#chat-input")).to_be_focused()
    expect(page.locator("#chat-input")).to_have_value("")
    # A long unbroken line wraps instead of widening the page.
    staff_send(hud, room.pk, "https://support.example.com/" + "x" * 120)
    expect(client_messages(page).filter(has_text="support.example.com")).to_have_count(1, timeout=WAIT)
    assert_fits(page)
    screenshot(page, "03-phone-chatting")

    # Tab moves on to Send, with a visible focus.
    page.keyboard.press("Tab")
    assert focused(page)["id"] == "chat-send"
    # Escape folds the dialog away and leaves the focus on the button that brings it back.
    page.keyboard.press("Escape")
    expect(dock(page)).to_have_attribute("data-minimized", "1")
    expect(page.locator("#chat-body")).to_be_hidden()
    assert "Minimize chat" in focused(page)["text"]
    expect(page.locator("[data-chat-minimize]")).to_have_attribute("aria-expanded", "false")
    assert_fits(page)
    screenshot(page, "04-phone-minimized")
    page.keyboard.press("Enter")
    expect(page.locator("#chat-body")).to_be_visible()
    expect(page.locator("[data-chat-minimize]")).to_have_attribute("aria-expanded", "true")

    # The next stop is the cross; Enter leaves the chat.
    page.keyboard.press("Tab")
    assert focused(page)["label"] == "Leave the chat"
    page.keyboard.press("Enter")
    expect(dock(page)).to_have_attribute("data-view", "ended", timeout=WAIT)
    expect(page.locator("#chat-live")).to_have_text("You left the chat.", timeout=WAIT)
    expect(session(hud, room.pk).locator("li.msg", has_text="Carol Client left.")).to_have_count(1, timeout=WAIT)
    assert_fits(page)
    screenshot(page, "05-phone-left")
    assert client.errors == [] and staff.errors == []
    client.close()
    staff.close()


def test_a_chat_whose_engineer_left_goes_back_to_the_queue_and_sam_takes_it_over(
    browser, live_server_url, screenshot, desk, f
):
    """While Carol waits, her participants say "Waiting for an engineer" and what she types shows on the
    HUD's queue item. Dana answers: the typed text stays and Send unlocks. Dana leaves: Carol is told she is
    back in the queue, first, with the history still on screen and the note, callback and keep-waiting
    choices; Sam's queue lists "returning: Carol Client (left by Dana Reyes)"; Sam answers into the same room."""
    ticket = desk.ticket
    dana = hud_page(browser, live_server_url)
    sam = hud_page(browser, live_server_url, "sam")
    client = client_page(browser, live_server_url)
    page = client.page
    request = join_chat(page, live_server_url, ticket)

    # 3: the participants while waiting.
    people = page.locator("#chat-status details.participants")
    people.locator("summary").click()
    expect(people.locator("summary")).to_have_text("In this chat: 1")
    expect(people.locator("li")).to_have_text(["Carol Client", "Waiting for an engineer"])
    # 4: the question typed while waiting reaches the queue item, escaped and on one line.
    question = "Outlook <asks> for my password\nevery hour since Monday"
    page.locator("#chat-input").press_sequentially(question.replace("\n", " "), delay=5)
    item = dana.page.locator(f"#hud-queue li[data-request-id='{request.pk}']")
    expect(item.locator(".queue-draft")).to_have_text(
        "Typing: “Outlook <asks> for my password every hour since Monday”", timeout=WAIT
    )
    expect(page.locator("#chat-send")).to_be_disabled()
    screenshot(page, "01-waiting-participants-and-typing")
    screenshot(dana.page, "02-hud-queue-with-the-question")

    # Dana answers: the text stays in the box, and Send unlocks.
    answer_in_hud(dana.page, request.pk)
    expect(dock(page)).to_have_attribute("data-view", "chatting", timeout=WAIT)
    expect(page.locator("#chat-send")).to_be_enabled(timeout=WAIT)
    expect(page.locator("#chat-input")).to_have_value(question.replace("\n", " "))
    page.press("#chat-input", "Enter")
    expect(client_messages(page).filter(has_text="every hour since Monday")).to_have_count(1, timeout=WAIT)
    room = ChatRoom.objects.get(request=request)

    # 1: Dana leaves; Carol is back in the queue, in the same room, told why and what she can do.
    session(dana.page, room.pk).get_by_role("button", name="Leave", exact=True).click()
    expect(page.locator("#chat-status")).to_have_attribute("data-returning", "1", timeout=WAIT)
    expect(dock(page)).to_have_attribute("data-view", "waiting")
    expect(page.locator("#chat-status .state-line")).to_have_text("Dana Reyes left the chat")
    expect(page.locator("#chat-status .position")).to_have_text("You're back in the queue, position 1.")
    expect(client_messages(page).filter(has_text="every hour since Monday")).to_be_visible()
    expect(client_messages(page).filter(has_text="Dana Reyes left.")).to_be_visible()
    choices = page.locator("#chat-offer [data-chat-choices]")
    expect(choices).to_contain_text("Another engineer can take over from here.")
    for label in ("Leave a note", "Ask for a callback", "Keep waiting"):
        expect(choices.get_by_role("button", name=label)).to_be_visible()
    expect(page.locator("#chat-send")).to_be_disabled()
    expect(people.locator("li")).to_have_text(["Carol Client", "Waiting for an engineer"])
    screenshot(page, "03-back-in-the-queue")
    returning = sam.page.locator(f"#hud-queue li[data-request-id='{request.pk}']")
    expect(returning.locator(".queue-who")).to_contain_text(
        "returning: Carol Client (left by Dana Reyes)", timeout=WAIT
    )
    screenshot(sam.page, "04-hud-queue-returning")

    # Carol keeps waiting: the choices fold away, a callback link stays.
    choices.get_by_role("button", name="Keep waiting").click()
    expect(choices).to_be_hidden()
    expect(page.get_by_role("button", name="Rather be called back? Ask for a callback")).to_be_visible()
    page.fill("#chat-input", "Still there?")

    # Sam answers: he joins the same room and sees the history; Carol can send again.
    answer_in_hud(sam.page, request.pk)
    expect(dock(page)).to_have_attribute("data-view", "chatting", timeout=WAIT)
    expect(client_messages(page).filter(has_text="Sam Okafor joined.")).to_have_count(1, timeout=WAIT)
    expect(page.locator("#chat-send")).to_be_enabled(timeout=WAIT)
    expect(page.locator("#chat-input")).to_have_value("Still there?")
    expect(session(sam.page, room.pk).locator("li.msg", has_text="every hour since Monday")).to_have_count(
        1, timeout=WAIT
    )
    client_send(page, "Still there?")
    assert ChatRoom.objects.count() == 1
    assert ChatRequest.objects.get(pk=request.pk).answered_by == desk.sam
    screenshot(page, "05-sam-took-over")
    screenshot(sam.page, "06-sam-session-with-history")
    assert client.errors == [] and dana.errors == [] and sam.errors == []
    for watched in (client, dana, sam):
        watched.close()


def test_with_nobody_available_join_chat_says_so_and_offers_a_note(browser, live_server_url, screenshot, desk):
    """No engineer is online: Join Chat answers "Nobody is available right now" with Leave a note, Ask for
    a callback and Keep waiting, never "You are next in the queue"; Leave a note files what Carol typed as
    her own note and ends the wait."""
    ticket = desk.ticket
    client = client_page(browser, live_server_url)
    page = client.page
    request = join_chat(page, live_server_url, ticket)
    status = page.locator("#chat-status")
    expect(status).to_have_attribute("data-available", "0")
    expect(status.locator(".state-line")).to_have_text("Nobody is available right now")
    expect(status).not_to_contain_text("You are next")
    choices = page.locator("#chat-offer [data-chat-choices]")
    expect(choices).to_contain_text("No engineer who could take your chat is online.")
    for label in ("Leave a note", "Ask for a callback", "Keep waiting"):
        expect(choices.get_by_role("button", name=label)).to_be_visible()
    page.fill("#chat-input", "The scanner on floor 2 sends blank pages.")
    screenshot(page, "01-nobody-available")
    # On a phone the three choices stay on screen, one under another if need be.
    page.set_viewport_size(PHONE)
    for label in ("Leave a note", "Ask for a callback", "Keep waiting"):
        expect(choices.get_by_role("button", name=label)).to_be_in_viewport()
    screenshot(page, "01b-nobody-available-phone")
    page.set_viewport_size(LAPTOP)

    choices.get_by_role("button", name="Leave a note").click()
    expect(page.locator("#chat-notice")).to_contain_text(f"Your note is on ticket #{ticket.pk}", timeout=WAIT)
    expect(page.locator("#notes li.note", has_text="The scanner on floor 2 sends blank pages.")).to_have_count(
        1, timeout=WAIT
    )
    expect(page.locator("#notes li.note", has_text="floor 2")).to_contain_text("Carol Client")
    expect(page.locator("#chat-input")).to_have_value("")
    screenshot(page, "02-note-left")
    assert ChatRequest.objects.get(pk=request.pk).state == ChatRequest.State.CANCELLED
    assert client.errors == []
    client.close()
