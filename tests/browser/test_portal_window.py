"""The client's chat window (issue 13) in a real browser: where it sits, how it scrolls, what it says.

Each test is one story with two browser contexts, the contact on the portal and the engineer on the
Staff HUD. Screenshots land in screenshots/<test name>/.
"""

import json
import re

import pytest
from playwright.sync_api import expect

from chat import services
from chat.models import ChatRequest, MessageTemplate
from tests.browser.test_portal_chat import (
    PHONE,
    WAIT,
    answer_in_hud,
    client_messages,
    client_page,
    dock,
    hud_page,
    join_and_answer,
    join_chat,
    session,
    staff_send,
)

pytestmark = pytest.mark.browser

SMALL_LAPTOP = {"width": 1280, "height": 800}
WIDE_LAPTOP = {"width": 1366, "height": 768}
PORTRAIT_TABLET = {"width": 768, "height": 1024}
SMALL_WINDOW = {"width": 900, "height": 700}

AT_BOTTOM = "el => el.scrollHeight - el.scrollTop - el.clientHeight < 4"


def scroller(page):
    """The dialog's scrolling message area."""
    return page.locator("#chat-room")


def at_bottom(page) -> bool:
    return scroller(page).evaluate(AT_BOTTOM)


def round_trip(page) -> None:
    """Wait until the server has answered every frame the page sent so far (a ping's pong comes last)."""
    page.evaluate("document.getElementById('chat-pong').removeAttribute('data-event')")
    page.evaluate("window.deskchatSocket.send(JSON.stringify({action: 'ping'}))")
    expect(page.locator("#chat-pong")).to_have_attribute("data-event", "pong", timeout=WAIT)


def record_frames(page) -> list[dict]:
    """Record every frame the page sends over its sockets, decoded."""
    frames: list[dict] = []

    def on_socket(ws):
        ws.on("framesent", lambda payload: frames.append(json.loads(payload)) if isinstance(payload, str) else None)

    page.on("websocket", on_socket)
    return frames


def overlaps(a: dict, b: dict) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def seed_messages(room, engineer, count: int) -> None:
    """Store messages from the engineer straight into the database (the page sees them after a reload)."""
    for n in range(count):
        services.send_message(room_id=room.pk, user=engineer.user, body=f"Earlier line {n}", client_msg_id=f"seed-{n}")


# --- Stories -------------------------------------------------------------------------------------


def test_the_window_opens_at_the_newest_message_and_follows_new_ones(browser, live_server_url, screenshot, desk):
    """After a reload the chat opens at its newest message; new messages are followed while the
    client is at the bottom; once they scroll up, a "New messages" button appears instead, which
    scrolls down and goes away, as it does when they scroll down themselves."""
    staff = hud_page(browser, live_server_url)
    hud = staff.page
    client = client_page(browser, live_server_url)
    page = client.page
    room = join_and_answer(page, live_server_url, hud, desk.ticket)
    seed_messages(room, desk.dana, 30)

    page.reload()
    expect(dock(page)).to_have_attribute("data-conn", "open", timeout=WAIT)
    expect(client_messages(page).filter(has_text="Earlier line 29")).to_be_in_viewport()
    assert at_bottom(page)
    expect(client_messages(page).filter(has_text="Earlier line 0")).not_to_be_in_viewport()

    # At the bottom, a new message is followed.
    staff_send(hud, room.pk, "Following along?")
    expect(client_messages(page).filter(has_text="Following along?")).to_be_in_viewport(timeout=WAIT)
    assert at_bottom(page)
    expect(page.get_by_role("button", name="New messages")).to_be_hidden()
    screenshot(page, "01-opens-at-the-newest")

    # Scrolled up to read: the window stays put and offers to jump to what is new.
    scroller(page).evaluate("el => { el.scrollTop = 0; }")
    page.wait_for_function("() => document.getElementById('chat-room').scrollTop === 0")
    staff_send(hud, room.pk, "A new line while you read.")
    jump = page.get_by_role("button", name="New messages")
    expect(jump).to_be_visible(timeout=WAIT)
    assert scroller(page).evaluate("el => el.scrollTop") == 0
    expect(client_messages(page).filter(has_text="A new line while you read.")).not_to_be_in_viewport()
    screenshot(page, "02-new-messages-button")
    jump.click()
    expect(client_messages(page).filter(has_text="A new line while you read.")).to_be_in_viewport(timeout=WAIT)
    expect(jump).to_be_hidden()
    page.wait_for_function(f"() => ({AT_BOTTOM})(document.getElementById('chat-room'))")

    # Scrolling down by hand reads them too.
    scroller(page).evaluate("el => { el.scrollTop = 0; }")
    page.wait_for_function("() => document.getElementById('chat-room').scrollTop === 0")
    staff_send(hud, room.pk, "And one more.")
    expect(jump).to_be_visible(timeout=WAIT)
    scroller(page).evaluate("el => { el.scrollTop = el.scrollHeight; }")
    expect(jump).to_be_hidden(timeout=WAIT)

    # What the client sends themselves is always brought into view.
    scroller(page).evaluate("el => { el.scrollTop = 0; }")
    page.wait_for_function("() => document.getElementById('chat-room').scrollTop === 0")
    page.fill("#chat-input", "My own line.")
    page.press("#chat-input", "Enter")
    expect(client_messages(page).filter(has_text="My own line.")).to_be_in_viewport(timeout=WAIT)
    assert client.errors == [] and staff.errors == []
    client.close()
    staff.close()


def test_leaving_says_you_left_with_no_error_and_chat_ended_only_when_it_ended(
    browser, live_server_url, screenshot, desk
):
    """A normal Leave while the engineer stays shows "You left the chat", no red error, and the page
    sends nothing more for that room; when a chat really ends, the window says "Chat ended"."""
    ticket = desk.ticket
    staff = hud_page(browser, live_server_url)
    hud = staff.page
    client = client_page(browser, live_server_url)
    page = client.page
    frames = record_frames(page)
    room = join_and_answer(page, live_server_url, hud, ticket)
    staff_send(hud, room.pk, "Hello Carol.")
    page.fill("#chat-input", "Thanks, bye")  # typing, so a typing frame is due as she leaves

    page.get_by_role("button", name="Leave the chat").click()
    expect(dock(page)).to_have_attribute("data-view", "ended", timeout=WAIT)
    expect(page.locator(f"#room-{room.pk}-closed")).to_have_text("You left this chat.")
    page.wait_for_timeout(1000)  # longer than the read position's debounce: a late frame would be out by now
    round_trip(page)
    expect(page.locator("#chat-errors")).to_have_text("")
    expect(page.locator("#chat-title")).to_have_text("You left the chat")
    expect(page.locator("#chat-live")).to_have_text("You left the chat.", timeout=WAIT)
    left_at = next(i for i, frame in enumerate(frames) if frame.get("action") == "leave")
    late = [f for f in frames[left_at + 1 :] if f.get("room_id") in (room.pk, str(room.pk))]
    assert late == [], late
    screenshot(page, "01-left-while-the-engineer-stays")
    # On the next page there is nothing left to show: no window, no error.
    page.reload()
    expect(dock(page)).to_have_attribute("data-conn", "open", timeout=WAIT)
    expect(dock(page)).to_have_attribute("data-view", "idle")
    expect(page.locator("#chat-errors")).to_have_text("")

    # A second chat, which ends (Dana leaves, so it goes back to the queue; Carol then leaves the
    # queue too): the window says so.
    session(hud, room.pk).get_by_role("button", name="Leave", exact=True).click()
    second = join_and_answer(page, live_server_url, hud, ticket)
    session(hud, second.pk).get_by_role("button", name="Leave", exact=True).click()
    expect(client_messages(page).filter(has_text="Dana Reyes left.")).to_have_count(1, timeout=WAIT)
    expect(page.locator("#chat-status")).to_contain_text("back in the queue", timeout=WAIT)
    page.get_by_role("button", name="Leave: cancel the chat request").click()
    expect(page.locator(f"#room-{second.pk}-closed")).to_contain_text("This chat has ended.", timeout=WAIT)
    expect(page.locator("#chat-title")).to_have_text("Chat ended")
    round_trip(page)
    expect(page.locator("#chat-errors")).to_have_text("")
    screenshot(page, "02-chat-ended")
    assert client.errors == [] and staff.errors == []
    client.close()
    staff.close()


def test_an_alert_goes_away_when_the_dialog_changes_state(browser, live_server_url, screenshot, desk, f):
    """ "You are already waiting …" and "You are already in a chat …" are about the moment they were
    said: once the request is answered, or the chat left or cancelled, they are gone."""
    ticket = desk.ticket
    other = f.make_ticket(contact=desk.contact, summary="New laptop")
    staff = hud_page(browser, live_server_url)
    hud = staff.page
    client = client_page(browser, live_server_url)
    page = client.page
    forge = "ticket => window.deskchatSocket.send(JSON.stringify({action: 'request_chat', ticket_id: ticket}))"
    errors = page.locator("#chat-errors")

    # Waiting, then asking again (another tab, or an old page): told, until the request moves on.
    request = join_chat(page, live_server_url, ticket)
    page.evaluate(forge, other.pk)
    expect(errors).to_have_text(f"You are already waiting for a chat about ticket #{ticket.pk}.", timeout=WAIT)
    screenshot(page, "01-already-waiting")
    answer_in_hud(hud, request.pk)
    expect(dock(page)).to_have_attribute("data-view", "chatting", timeout=WAIT)
    expect(errors).to_have_text("")
    expect(errors).to_be_hidden()

    # Chatting, then asking again: told, until the chat is left.
    page.evaluate(forge, other.pk)
    expect(errors).to_contain_text("You are already in a chat.", timeout=WAIT)
    page.get_by_role("button", name="Leave the chat").click()
    expect(dock(page)).to_have_attribute("data-view", "ended", timeout=WAIT)
    expect(errors).to_have_text("")
    page.locator("#chat-leave .chat-cross").click()
    expect(dock(page)).to_have_attribute("data-view", "idle")

    # Waiting, told, then cancelled: the dialog closes instead of keeping the old alert on screen.
    join_chat(page, live_server_url, ticket)
    page.evaluate(forge, other.pk)
    expect(errors).to_contain_text("You are already waiting", timeout=WAIT)
    page.get_by_role("button", name="Leave: cancel the chat request").click()
    expect(dock(page)).to_have_attribute("data-view", "idle", timeout=WAIT)
    expect(page.locator("#chat-dialog")).to_be_hidden()
    expect(errors).to_have_text("")
    assert client.errors == [] and staff.errors == []
    client.close()
    staff.close()


def test_join_chat_says_what_it_does_while_a_chat_is_open(browser, live_server_url, screenshot, desk, f):
    """While a chat waits or runs, the button on its ticket says "Open chat" and elsewhere "Chat open
    on #n"; either opens the window instead of asking again. It changes live and after a reload."""
    ticket = desk.ticket
    other = f.make_ticket(contact=desk.contact, summary="New laptop")
    staff = hud_page(browser, live_server_url)
    hud = staff.page
    client = client_page(browser, live_server_url)
    page = client.page
    frames = record_frames(page)
    button = page.locator("[data-chat-join]")

    request = join_chat(page, live_server_url, ticket)
    expect(button).to_have_text("Open chat", timeout=WAIT)
    page.get_by_role("button", name="Minimize chat").click()
    expect(dock(page)).to_have_attribute("data-minimized", "1")
    button.click()
    expect(dock(page)).not_to_have_attribute("data-minimized", "1")
    expect(page.locator("#chat-input")).to_be_focused()
    screenshot(page, "01-open-chat-on-its-ticket")

    # Another ticket: the button names the chat's ticket and opens the window.
    page.goto(f"{live_server_url}/tickets/{other.pk}/")
    expect(dock(page)).to_have_attribute("data-conn", "open", timeout=WAIT)
    expect(button).to_have_text(f"Chat open on #{ticket.pk}")
    page.get_by_role("button", name="Minimize chat").click()
    button.click()
    expect(dock(page)).not_to_have_attribute("data-minimized", "1")
    expect(dock(page)).to_have_attribute("data-view", "waiting")
    screenshot(page, "02-chat-open-elsewhere")
    round_trip(page)
    assert [f for f in frames if f.get("action") == "request_chat"] == [
        {"action": "request_chat", "ticket_id": ticket.pk}
    ]
    assert ChatRequest.objects.filter(contact=desk.contact).count() == 1
    expect(page.locator("#chat-errors")).to_have_text("")

    # Answered and then left: the button turns back into Join Chat without a reload.
    answer_in_hud(hud, request.pk)
    expect(dock(page)).to_have_attribute("data-view", "chatting", timeout=WAIT)
    expect(button).to_have_text(f"Chat open on #{ticket.pk}")
    page.goto(f"{live_server_url}/tickets/{ticket.pk}/")
    expect(button).to_have_text("Open chat")
    expect(dock(page)).to_have_attribute("data-conn", "open", timeout=WAIT)
    page.get_by_role("button", name="Leave the chat").click()
    expect(dock(page)).to_have_attribute("data-view", "ended", timeout=WAIT)
    expect(button).to_have_text("Join Chat")
    page.goto(f"{live_server_url}/tickets/{other.pk}/")
    expect(button).to_have_text("Join Chat")
    assert client.errors == [] and staff.errors == []
    client.close()
    staff.close()


def test_the_chat_history_appears_when_the_chat_ends_and_shows_peoples_words_only(
    browser, live_server_url, screenshot, desk
):
    """When the chat on the page's ticket ends, the Chat history tab appears at once, with the new
    transcript, keeping a half-written note; the client reads the words, not "Greeting" labels,
    which the staff ticket page keeps."""
    ticket = desk.ticket
    MessageTemplate.objects.create(kind="greeting", name="Hello", body="Hi {client_first_name}, {engineer_name} here.")
    staff = hud_page(browser, live_server_url)
    hud = staff.page
    client = client_page(browser, live_server_url)
    page = client.page
    page.goto(f"{live_server_url}/tickets/{ticket.pk}/")
    expect(page.get_by_role("tab", name=re.compile("Chat history"))).to_have_count(0)
    room = join_and_answer(page, live_server_url, hud, ticket)
    panel = session(hud, room.pk)
    panel.get_by_role("button", name="Greeting: Hello").click()
    panel.locator("form.compose textarea").press("Enter")
    expect(client_messages(page).filter(has_text="Hi Carol, Dana Reyes here.")).to_have_count(1, timeout=WAIT)
    page.fill("#id_text", "Half a note")
    panel.get_by_role("button", name="Leave", exact=True).click()
    expect(client_messages(page).filter(has_text="Dana Reyes left.")).to_have_count(1, timeout=WAIT)
    # Back in the queue after Dana left: Carol stops waiting, which ends the chat.
    page.get_by_role("button", name="Leave: cancel the chat request").click()
    expect(dock(page)).to_have_attribute("data-view", "ended", timeout=WAIT)

    tab = page.get_by_role("tab", name=re.compile("Chat history"))
    expect(tab).to_be_visible(timeout=WAIT)
    expect(tab).to_contain_text("1")
    expect(page.locator("#id_text")).to_have_value("Half a note")
    tab.click()
    item = page.locator(f"#chat-history-{room.pk}")
    expect(item.locator(".transcript")).to_contain_text("Hi Carol, Dana Reyes here.", timeout=WAIT)
    expect(item.locator(".chat-history-facts")).not_to_contain_text("In progress")
    expect(item.locator(".msg-kind")).to_have_count(0)
    assert "greeting" not in item.inner_text().lower()
    page.get_by_role("button", name="Minimize chat").click()
    screenshot(page, "01-history-without-labels")

    # The staff ticket page keeps the label.
    hud.goto(f"{live_server_url}/tickets/{ticket.pk}/?tab=history")
    expect(hud.locator(f"#chat-history-{room.pk} .msg-kind")).to_have_text("Greeting")
    assert client.errors == [] and staff.errors == []
    client.close()
    staff.close()


@pytest.mark.parametrize("viewport", [SMALL_LAPTOP, WIDE_LAPTOP], ids=["1280x800", "1366x768"])
def test_on_a_laptop_the_window_leaves_the_page_readable_and_stays_minimised(
    browser, live_server_url, screenshot, desk, viewport
):
    """On a laptop the open window sits beside the ticket, not over it (nor over "Add a note");
    minimised, it stays so from page to page and counts the messages that came meanwhile."""
    ticket = desk.ticket
    staff = hud_page(browser, live_server_url)
    hud = staff.page
    client = client_page(browser, live_server_url, viewport=viewport)
    page = client.page
    room = join_and_answer(page, live_server_url, hud, ticket)
    staff_send(hud, room.pk, "Hello Carol, how can I help?")

    dialog = page.locator("#chat-dialog").bounding_box()
    for selector in ("article.ticket h1", "#id_text", ".note-form button[type=submit]", "dl.facts", "#ticket-tabs"):
        box = page.locator(selector).bounding_box()
        assert not overlaps(box, dialog), (selector, box, dialog)
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    assert dialog["y"] >= 0 and dialog["y"] + dialog["height"] <= viewport["height"], dialog
    expect(page.locator("#chat-input")).to_be_in_viewport()
    screenshot(page, "01-chatting-beside-the-ticket")

    # Minimised, the page gets its full width back, and the window stays minimised on the next page.
    page.get_by_role("button", name="Minimize chat").click()
    expect(page.locator("#chat-body")).to_be_hidden()
    bar = page.locator("#chat-dialog").bounding_box()
    assert bar["height"] < 80, bar
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My tickets").click()
    page.wait_for_url(re.compile(r"/tickets/$"))
    expect(dock(page)).to_have_attribute("data-conn", "open", timeout=WAIT)
    expect(dock(page)).to_have_attribute("data-minimized", "1")
    expect(page.locator("#chat-body")).to_be_hidden()
    unread = page.locator("#chat-unread")
    expect(unread).to_be_hidden()

    # Messages that come meanwhile are counted on the bar, from page to page, until it is opened.
    staff_send(hud, room.pk, "Could you restart Outlook?")
    staff_send(hud, room.pk, "And tell me what it says.")
    expect(unread).to_be_visible(timeout=WAIT)
    expect(unread).to_have_text("2")
    expect(unread).to_have_attribute("title", "2 new messages")
    screenshot(page, "02-minimised-with-unread-count")
    page.goto(f"{live_server_url}/tickets/{ticket.pk}/")
    expect(dock(page)).to_have_attribute("data-conn", "open", timeout=WAIT)
    expect(dock(page)).to_have_attribute("data-minimized", "1")
    expect(unread).to_have_text("2", timeout=WAIT)
    page.get_by_role("button", name="Minimize chat").click()
    expect(page.locator("#chat-body")).to_be_visible()
    expect(unread).to_be_hidden()
    expect(client_messages(page).filter(has_text="And tell me what it says.")).to_be_in_viewport()
    page.reload()
    expect(dock(page)).to_have_attribute("data-conn", "open", timeout=WAIT)
    expect(dock(page)).not_to_have_attribute("data-minimized", "1")
    expect(unread).to_be_hidden()
    assert client.errors == [] and staff.errors == []
    client.close()
    staff.close()


def test_on_a_phone_the_window_is_usable(browser, live_server_url, screenshot, desk):
    """At 390x844 the open window fits the screen with its message box on it, and minimised it is a
    bar that leaves the page's end readable."""
    ticket = desk.ticket
    staff = hud_page(browser, live_server_url)
    hud = staff.page
    client = client_page(browser, live_server_url, viewport=PHONE)
    page = client.page
    room = join_and_answer(page, live_server_url, hud, ticket)
    staff_send(hud, room.pk, "Hello Carol, how can I help?")
    dialog = page.locator("#chat-dialog").bounding_box()
    assert dialog["x"] >= 0 and dialog["x"] + dialog["width"] <= PHONE["width"], dialog
    assert dialog["y"] >= 0 and dialog["y"] + dialog["height"] <= PHONE["height"], dialog
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    expect(page.locator("#chat-input")).to_be_in_viewport()
    expect(page.locator("#chat-send")).to_be_in_viewport()
    screenshot(page, "01-phone-chatting")
    page.get_by_role("button", name="Minimize chat").click()
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    bar = page.locator("#chat-dialog").bounding_box()
    note_button = page.locator(".note-form button[type=submit]").bounding_box()
    assert not overlaps(bar, note_button), (bar, note_button)
    screenshot(page, "02-phone-minimised")
    assert client.errors == [] and staff.errors == []
    client.close()
    staff.close()


@pytest.mark.parametrize("viewport", [PORTRAIT_TABLET, SMALL_WINDOW], ids=["768x1024", "900x700"])
def test_on_a_tablet_the_window_is_a_panel_the_page_can_scroll_clear_of(
    browser, live_server_url, screenshot, desk, viewport
):
    """Between phone and laptop the open window is a panel across the bottom, not a box floating over
    the page, and the page's end (the note form) scrolls up clear of it."""
    ticket = desk.ticket
    staff = hud_page(browser, live_server_url)
    hud = staff.page
    client = client_page(browser, live_server_url, viewport=viewport)
    page = client.page
    room = join_and_answer(page, live_server_url, hud, ticket)
    staff_send(hud, room.pk, "Hello Olive, how can I help?")

    dialog = page.locator("#chat-dialog").bounding_box()
    assert dialog["x"] <= 1 and dialog["x"] + dialog["width"] >= viewport["width"] - 1, dialog
    assert abs(dialog["y"] + dialog["height"] - viewport["height"]) <= 1, dialog
    assert dialog["height"] <= viewport["height"] * 0.5 + 1, dialog
    for selector in ("#chat-input", "#chat-send"):  # whole, not cut off by the panel's height
        box = page.locator(selector).bounding_box()
        assert dialog["y"] <= box["y"] and box["y"] + box["height"] <= dialog["y"] + dialog["height"], (selector, box)
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    for selector in ("#id_text", ".note-form button[type=submit]"):
        box = page.locator(selector).bounding_box()
        assert box["y"] + box["height"] <= dialog["y"], (selector, box, dialog)
    screenshot(page, "01-tablet-chatting-page-scrolled-to-its-end")
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "02-tablet-chatting")
    assert client.errors == [] and staff.errors == []
    client.close()
    staff.close()
