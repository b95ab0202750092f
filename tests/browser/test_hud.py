"""The Staff HUD in a real browser: engineers and a client in separate contexts against a real daphne.

Each test drives one whole story. Screenshots land in screenshots/<test name>/.
"""

import re
import time
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from accounts.models import Engineer
from chat.models import ChatRequest, ChatRoom, MessageTemplate
from deskchat.timefmt import PARSE_FORMAT, format_when
from tests.conftest import login
from tickets.models import TimeEntry

pytestmark = pytest.mark.browser

# How every screen writes a moment (deskchat.timefmt.format_when): "Dec 2, 2026 05:12".
WHEN = r"[A-Z][a-z]{2} \d{1,2}, \d{4} \d\d:\d\d"

LAPTOP = {"width": 1360, "height": 900}
WAIT = 20_000  # ms: the machine is shared, so expectations wait generously

# Playwright emulates focus, so every page thinks it is looked at. This lets a test put a HUD
# "in the background" (hidden tab, no focus), which is when hud.js raises a desktop
# notification, and records the notifications the page creates.
BACKGROUND_SHIM = """
(() => {
  window.__background = false;
  const hidden = Object.getOwnPropertyDescriptor(Document.prototype, "hidden");
  Object.defineProperty(document, "hidden", {get() { return window.__background || hidden.get.call(document); }});
  const hasFocus = Document.prototype.hasFocus;
  document.hasFocus = function () { return !window.__background && hasFocus.call(document); };
  window.__notifications = [];
  if (window.Notification) {
    const Real = window.Notification;
    const Recording = function (title, options) {
      window.__notifications.push({title: title, body: (options || {}).body || ""});
      return new Real(title, options);
    };
    Object.defineProperty(Recording, "permission", {get() { return Real.permission; }});
    Recording.requestPermission = Real.requestPermission.bind(Real);
    window.Notification = Recording;
  }
})();
"""


@pytest.fixture(autouse=True)
def hud_story(desk):
    """Dana supervises, Carol's ticket has notes, and there are a greeting and a farewell with placeholders."""
    desk.dana.is_supervisor = True
    desk.dana.save(update_fields=["is_supervisor"])
    desk.add_notes()
    MessageTemplate.objects.create(
        kind="greeting",
        name="Hello",
        body="Hi {client_first_name}, {engineer_name} here about ticket #{ticket_number}.",
    )
    MessageTemplate.objects.create(
        kind="farewell", name="Bye", body="Thanks {client_first_name}, closing ticket #{ticket_number} chat now."
    )


@pytest.fixture
def away(desk) -> Engineer:
    """Alex Morgan, away, the third member of the default queue."""
    return desk.add_engineer("Alex Morgan", username="alex", availability=Engineer.Availability.AWAY)


class Watcher:
    """Collect page errors and full navigations (a "without a reload" check) of one page."""

    def __init__(self, page):
        self.errors = []
        self.navigations = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on(
            "framenavigated", lambda frame: self.navigations.append(frame.url) if frame == page.main_frame else None
        )


def open_page(browser, base_url, username, *, permissions=(), shim=False, time_zone=None):
    context = browser.new_context(
        viewport=LAPTOP, permissions=list(permissions), base_url=base_url, timezone_id=time_zone
    )
    if shim:
        context.add_init_script(BACKGROUND_SHIM)
    page = context.new_page()
    page.set_default_timeout(WAIT)
    watcher = Watcher(page)
    login(page, base_url, username)
    return context, page, watcher


def open_hud(page):
    if not page.url.endswith("/hud/"):
        page.goto("/hud/")
    expect(page.locator("#hud-connection")).to_have_attribute("data-state", "live", timeout=WAIT)


def join_chat(page, ticket):
    """The client asks to chat from their ticket page with the portal's Join Chat button."""
    page.goto(f"/tickets/{ticket.pk}/")
    expect(page.locator("#chat-dock")).to_have_attribute("data-conn", re.compile("open|live"), timeout=WAIT)
    page.get_by_role("button", name="Join Chat").click()
    expect(page.locator("#chat-status")).to_have_attribute("data-state", "waiting", timeout=WAIT)


def queue_item(page, request_id):
    return page.locator(f"#hud-queue .queue-item[data-request-id='{request_id}']")


def session(page, room_id):
    return page.locator(f"#session-{room_id}")


def clock_seconds(text: str) -> int:
    parts = [int(part) for part in text.strip().split(":")]
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + part
    return seconds


def wait_until(page, script, timeout=WAIT / 1000):
    """Poll a JavaScript expression until it is truthy (wait_for_function evaluates strings, which the CSP forbids)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(script):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {script}")
        page.wait_for_timeout(200)


def send_from_hud(page, room_id, text):
    box = session(page, room_id).locator("form.compose textarea")
    box.fill(text)
    box.press("Enter")


def test_queue_race_chat_templates_invite_leave_log_and_time_entry(browser, daphne_servers, screenshot, desk, away):
    """A client's request shows live on both engineers' HUDs with a running timer and turns red
    (with a text label) once overdue; only the available engineers are alerted. Both press Answer at
    once: one gets the session and the ticket beside it, the other is told a colleague took it.
    They chat with the client, use a greeting and a farewell, invite the colleague (who joins with
    one click), leave, copy the chat log and save a rounded time entry."""
    base = daphne_servers(1, CHAT_QUEUE_ALERT_SECONDS=2)[0].url
    dana_ctx, dana, dana_w = open_page(browser, base, "dana", permissions=["clipboard-read", "clipboard-write"])
    sam_ctx, sam, sam_w = open_page(browser, base, "sam", permissions=["clipboard-read", "clipboard-write"])
    alex_ctx, alex, alex_w = open_page(browser, base, "alex")
    carol_ctx, carol, carol_w = open_page(browser, base, "carol")
    for page in (dana, sam, alex):
        open_hud(page)
        expect(page.locator("#hud-queue .empty")).to_have_text("Nobody is waiting.")
    expect(alex.locator("#availability-form input[value=away]")).to_be_checked()
    screenshot(dana, "01-empty-queue")
    navigations_before = len(dana_w.navigations), len(sam_w.navigations)

    # The client asks to chat from the ticket page.
    join_chat(carol, desk.ticket)
    request = ChatRequest.objects.get(contact=desk.contact)
    screenshot(carol, "02-client-waiting")

    # It shows on every HUD without a reload, with client, company, ticket and summary.
    for page in (dana, sam, alex):
        item = queue_item(page, request.pk)
        expect(item).to_be_visible(timeout=WAIT)
        expect(item.locator(".who")).to_have_text("Carol Client")
        expect(item.locator(".company")).to_have_text("Ours Ltd")
        expect(item.locator(".queue-ticket")).to_contain_text(f"#{desk.ticket.pk} Outlook keeps asking for my password")
        expect(page.locator("#hud-queue h2 .count")).to_have_text("1")
    assert (len(dana_w.navigations), len(sam_w.navigations)) == navigations_before

    # The timer runs, and after the (short) threshold the queue turns red and says so in words.
    timer = queue_item(dana, request.pk).locator(".wait-timer")
    expect(timer).to_have_text(re.compile(r"^0:0[0-9]$"))
    first = clock_seconds(timer.inner_text())
    expect(timer).not_to_have_text(f"0:{first:02d}", timeout=WAIT)
    expect(dana.locator("#hud-queue")).to_have_class(re.compile(r"\boverdue\b"), timeout=WAIT)
    expect(dana.locator("#hud-queue .overdue-text")).to_be_visible()
    expect(dana.locator("#hud-queue .overdue-text")).to_have_text("Waiting over 2 s")
    expect(queue_item(dana, request.pk).locator(".overdue-label")).to_be_visible()
    expect(queue_item(dana, request.pk).locator(".overdue-label")).to_contain_text("Overdue")
    assert clock_seconds(timer.inner_text()) >= 2

    # The available engineers get the in-page alert with the count and the longest wait; the away one does not.
    for page in (dana, sam):
        alert = page.locator("#hud-alert")
        expect(alert).to_be_visible(timeout=WAIT)
        expect(alert).to_contain_text(re.compile(r"1 person is waiting in the chat queue\. Longest wait: 0:0\d\."))
    screenshot(dana, "03-queue-overdue-with-alert")
    expect(alex.locator("#hud-alert")).to_be_hidden()
    assert alex.locator("#hud-alert").get_attribute("data-shown") is None
    screenshot(alex, "04-away-engineer-not-alerted")

    # Dismiss hides the alert; the request stays in the queue.
    sam.get_by_role("button", name="Dismiss").click()
    expect(sam.locator("#hud-alert")).to_be_hidden()
    expect(queue_item(sam, request.pk)).to_be_visible()
    dana.get_by_role("button", name="Launch").click()
    expect(dana.locator("#hud-alert")).to_be_hidden()
    expect(queue_item(dana, request.pk).get_by_role("button", name="Answer")).to_be_focused()

    # Both engineers press Answer at the same moment.
    buttons = [
        queue_item(page, request.pk).get_by_role("button", name="Answer").element_handle() for page in (dana, sam)
    ]
    for button in buttons:
        button.evaluate("b => b.click()")
    deadline = time.monotonic() + WAIT / 1000
    while not ChatRoom.objects.filter(request=request).exists():
        assert time.monotonic() < deadline, "nobody won the answer"
        time.sleep(0.1)
    room = ChatRoom.objects.get(request=request)
    room_id = room.pk
    request.refresh_from_db()
    winner, loser = (dana, sam) if request.answered_by_id == desk.dana.pk else (sam, dana)
    winner_name, loser_name = ("Dana Reyes", "Sam Okafor") if winner is dana else ("Sam Okafor", "Dana Reyes")
    loser_engineer = desk.sam if winner is dana else desk.dana

    # The request vanishes from every queue, and the others are told which colleague took it; the
    # loser's own Answer is refused (if it reached the server before the request left their queue).
    for page in (dana, sam, alex):
        expect(queue_item(page, request.pk)).to_have_count(0, timeout=WAIT)
        expect(page.locator("#hud-queue")).not_to_have_class(re.compile(r"\boverdue\b"))
    for page in (loser, alex):
        expect(page.locator("#chat-notice")).to_have_text(f"{winner_name} answered Carol Client's chat.", timeout=WAIT)
        expect(page.locator("#chat-notice")).to_be_visible()
    expect(winner.locator("#chat-notice[data-notice=taken]")).to_have_count(0)
    if loser.locator("#chat-errors[data-event=error]").count():
        expect(loser.locator("#chat-errors")).to_have_attribute("data-error", "taken")
        expect(loser.locator("#chat-errors")).to_contain_text("A colleague already answered this chat.")
    expect(loser.locator("#sessions > .session")).to_have_count(0)
    assert ChatRoom.objects.filter(request=request).count() == 1
    screenshot(loser, "05-loser-told-colleague-took-it")

    # The winner has the session, with the ticket beside the chat: details, notes, chat history.
    panel = session(winner, room_id)
    expect(panel).to_be_visible()
    expect(winner.locator(f"#tab-room-{room_id}")).to_have_attribute("aria-selected", "true")
    ticket_panel = panel.locator(".session-ticket")
    expect(ticket_panel).to_contain_text("Outlook keeps asking for my password", timeout=WAIT)
    expect(ticket_panel).to_contain_text("Ours Ltd")
    expect(ticket_panel).to_contain_text("It started after this morning's update.")
    expect(ticket_panel).to_contain_text("Probably the token cache")
    # The chat in progress is this session, not history: neither counted nor listed there.
    history_summary = ticket_panel.locator("summary", has_text="Chat history")
    expect(history_summary.locator(".count")).to_have_text("0")
    history_summary.click()
    expect(ticket_panel.locator("ol.chat-history li")).to_have_text(["No chats yet."])
    expect(panel.get_by_role("button", name="Copy chat log")).to_be_disabled()
    expect(panel.get_by_role("button", name="Enter time entry")).to_be_disabled()

    # Messages both ways.
    expect(carol.locator("#chat-status")).to_have_attribute("data-state", "chatting", timeout=WAIT)
    expect(carol.locator("#chat-status")).to_have_attribute("data-engineer-present", "1", timeout=WAIT)
    carol.fill("#chat-input", "Hello, it asks for my password <again>.")
    carol.click("#chat-send")
    expect(panel.locator(".messages")).to_contain_text("Hello, it asks for my password <again>.", timeout=WAIT)
    send_from_hud(winner, room_id, "Let me look at your mailbox.")
    expect(carol.locator(f"#room-{room_id}-messages")).to_contain_text("Let me look at your mailbox.", timeout=WAIT)

    # A greeting: one click inserts the filled-in template for editing, then it is sent.
    panel.get_by_role("button", name="Greeting: Hello").click()
    box = panel.locator("form.compose textarea")
    greeting = f"Hi Carol, {winner_name} here about ticket #{desk.ticket.number}."
    expect(box).to_have_value(greeting)
    expect(box).to_be_focused()
    box.press("End")
    box.type(" How can I help?")
    screenshot(winner, "06-greeting-inserted")
    box.press("Enter")
    sent = panel.locator(".messages li[data-kind=greeting]")
    expect(sent).to_contain_text(greeting + " How can I help?", timeout=WAIT)
    expect(carol.locator(f"#room-{room_id}-messages")).to_contain_text(greeting + " How can I help?", timeout=WAIT)

    # Invite: the colleague gets an invitation and joins with one click.
    panel.locator("details.invite summary").click()
    panel.locator("select[name=engineer_id]").select_option(str(loser_engineer.pk))
    panel.locator("form.invite-form").get_by_role("button", name="Invite").click()
    card = loser.locator(f"#room-invitation-{room_id}")
    expect(card).to_be_visible(timeout=WAIT)
    expect(card).to_contain_text(f"ticket #{desk.ticket.pk}")
    screenshot(loser, "07-invited")
    card.get_by_role("button", name="Join").click()
    expect(session(loser, room_id)).to_be_visible(timeout=WAIT)
    expect(card).to_have_count(0)
    expect(session(loser, room_id).locator(".messages")).to_contain_text("How can I help?")
    participants = panel.locator(f"#room-{room_id}-participants")
    expect(participants.locator("summary")).to_have_text("In this chat: 3", timeout=WAIT)
    participants.locator("summary").click()
    expect(participants.locator("li")).to_have_text(
        [winner_name + " (engineer)", loser_name + " (engineer)", "Carol Client"]
    )
    send_from_hud(loser, room_id, "I can see the token cache error too.")
    expect(carol.locator(f"#room-{room_id}-messages")).to_contain_text(
        "I can see the token cache error too.", timeout=WAIT
    )
    screenshot(winner, "08-three-in-the-chat")

    # A farewell, edited and sent.
    panel.get_by_role("button", name="Farewell: Bye").click()
    farewell = f"Thanks Carol, closing ticket #{desk.ticket.number} chat now."
    expect(box).to_have_value(farewell)
    box.fill(farewell + " Bye!")
    panel.locator("form.compose").get_by_role("button", name="Send").click()
    expect(panel.locator(".messages li[data-kind=farewell]")).to_contain_text(farewell + " Bye!", timeout=WAIT)
    expect(carol.locator(f"#room-{room_id}-messages")).to_contain_text(farewell + " Bye!", timeout=WAIT)

    # Leave unlocks Copy chat log and Enter time entry.
    panel.locator("form.leave-form").get_by_role("button", name="Leave").click()
    expect(panel).to_have_attribute("data-state", "closed", timeout=WAIT)
    expect(panel.get_by_role("button", name="Copy chat log")).to_be_enabled()
    expect(panel.get_by_role("button", name="Enter time entry")).to_be_enabled()
    expect(panel.locator("form.compose")).to_be_hidden()
    expect(winner.locator(f"#tab-room-{room_id}")).to_contain_text("(left)")
    expect(session(loser, room_id).locator(".messages")).to_contain_text(f"{winner_name} left.", timeout=WAIT)

    # Copy chat log puts a plain-text transcript with times and names on the clipboard.
    panel.get_by_role("button", name="Copy chat log").click()
    expect(panel.locator(".copy-status")).to_have_text("Chat log copied to the clipboard.", timeout=WAIT)
    log = winner.evaluate("navigator.clipboard.readText()")
    assert log.startswith(f"Chat #{room_id} on ticket #{desk.ticket.pk} with Carol Client, started ")
    assert re.search(rf"^\[{WHEN}\] Carol Client: Hello, it asks for my password <again>\.$", log, re.M)
    assert re.search(rf"^\[{WHEN}\] {winner_name}: {re.escape(greeting)} How can I help\?$", log, re.M)
    assert re.search(rf"^\[{WHEN}\] \* {winner_name} left\.$", log, re.M)
    screenshot(winner, "09-left-log-copied")

    # Enter time entry opens the form pre-filled from the chat, copies the log again, and saves a
    # rounded duration: moving the start 16 minutes back makes it half an hour.
    winner.evaluate("navigator.clipboard.writeText('')")
    panel.get_by_role("button", name="Enter time entry").click()
    form = panel.locator("form.time-entry")
    expect(form).to_be_visible(timeout=WAIT)
    expect(form.locator("[name=hours]")).to_have_value("0.25")
    expect(form.locator("[name=notes]")).to_have_value(re.compile(r"Carol Client: Hello, it asks for my password"))
    expect(panel.locator(".copy-status")).to_have_text("Chat log copied to the clipboard.", timeout=WAIT)
    assert "How can I help?" in winner.evaluate("navigator.clipboard.readText()")
    ended = datetime.strptime(form.locator("[name=ended]").input_value(), PARSE_FORMAT)
    started = format_when(ended - timedelta(minutes=16))
    form.locator("[name=started]").fill(started)
    form.locator("[name=started]").dispatch_event("change")
    expect(form.locator("[name=hours]")).to_have_value("0.50")
    screenshot(winner, "10-time-entry-form")
    form.get_by_role("button", name="Save time entry").click()
    saved = panel.locator(".time-entry-saved")
    expect(saved).to_contain_text(f"Time entry saved: 0.50 h on ticket #{desk.ticket.pk}.", timeout=WAIT)
    entry = TimeEntry.objects.get(ticket=desk.ticket)
    assert entry.hours == Decimal("0.50")
    assert entry.engineer_id == request.answered_by_id
    assert "Carol Client: Hello, it asks for my password <again>." in entry.notes
    screenshot(winner, "11-time-entry-saved")

    for watcher in (dana_w, sam_w, alex_w, carol_w):
        assert watcher.errors == []
    for context in (dana_ctx, sam_ctx, alex_ctx, carol_ctx):
        context.close()


def test_alerts_reload_transfer_and_supervisor_view(browser, daphne_servers, screenshot, desk, away):
    """An engineer with the HUD in the background gets a desktop notification (and a repeating beep)
    saying how many wait and for how long; the away engineer gets nothing. A reload brings back the
    queue, the live session with what was said meanwhile, and a left session still to wrap up. A
    hand-over moves the chat to a colleague, and the supervisor view follows queues and engineers."""
    Engineer.objects.filter(pk=desk.dana.pk).update(max_concurrent_chats=1)
    server = daphne_servers(1, CHAT_QUEUE_ALERT_SECONDS=2)[0]
    base = server.url
    dana_ctx, dana, dana_w = open_page(browser, base, "dana", permissions=["notifications"], shim=True)
    sam_ctx, sam, sam_w = open_page(browser, base, "sam", permissions=["notifications"], shim=True)
    alex_ctx, alex, alex_w = open_page(browser, base, "alex", shim=True)
    carol_ctx, carol, carol_w = open_page(browser, base, "carol")
    nina_ctx, nina, nina_w = open_page(browser, base, "nina")
    for page in (dana, sam, alex):
        open_hud(page)
    assert dana.evaluate("Notification.permission") == "granted"
    expect(dana.locator("#enable-notifications")).to_be_hidden()

    # Dana and Alex look elsewhere; Sam goes Busy from the HUD (busy engineers are not alerted either).
    dana.evaluate("window.__background = true")
    alex.evaluate("window.__background = true")
    sam.get_by_label("Busy").check()
    expect(sam.locator("#hud-queue")).to_have_attribute("data-availability", "busy", timeout=WAIT)
    expect(sam.locator("#hud-queue")).to_have_attribute("data-notify", "0")
    assert Engineer.objects.get(pk=desk.sam.pk).availability == "busy"

    # Two clients ask to chat, a moment apart.
    join_chat(carol, desk.ticket)
    first = ChatRequest.objects.get(contact=desk.contact)
    expect(queue_item(dana, first.pk)).to_be_visible(timeout=WAIT)
    expect(dana.locator("#hud-queue")).to_have_class(re.compile(r"\boverdue\b"), timeout=WAIT)
    join_chat(nina, desk.colleague_ticket)
    second = ChatRequest.objects.get(contact=desk.colleague)
    expect(queue_item(dana, second.pk)).to_be_visible(timeout=WAIT)
    apart = int((second.requested_at - first.requested_at).total_seconds())
    assert apart >= 2

    # Dana's desktop notification and popup say two people wait, the first for longest.
    alert = dana.locator("#hud-alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text(re.compile(r"2 people are waiting in the chat queue\. Longest wait: \d+:\d\d\."))
    longest = clock_seconds(re.search(r"Longest wait: ([\d:]+)\.", alert.inner_text()).group(1))
    assert longest >= apart
    wait_until(dana, "window.__notifications.length >= 2")
    notes = dana.evaluate("window.__notifications")
    assert notes[0] == {"title": "DeskChat: chat queue", "body": notes[0]["body"]}
    assert notes[0]["body"].startswith("1 person is waiting in the chat queue. Longest wait: 0:0")
    assert re.fullmatch(r"2 people are waiting in the chat queue\. Longest wait: \d+:\d\d\.", notes[-1]["body"])
    assert clock_seconds(re.search(r"Longest wait: ([\d:]+)\.", notes[-1]["body"]).group(1)) >= apart - 1
    # While the requests wait unseen in a hidden tab, the HUD beeps again and again.
    wait_until(dana, "Number(document.getElementById('hud').dataset.beeps || 0) >= 2")
    screenshot(dana, "01-two-waiting-alert")
    # Neither the away engineer nor the busy one is alerted, though both see the queue.
    for page in (alex, sam):
        expect(queue_item(page, second.pk)).to_be_visible()
        expect(page.locator("#hud-alert")).to_be_hidden()
    assert alex.evaluate("window.__notifications") == []
    assert alex.evaluate("document.getElementById('hud').dataset.beeps") is None

    # The supervisor view lists the queue and every engineer's availability.
    board = dana_ctx.new_page()
    board.set_default_timeout(WAIT)
    board.goto("/hud/supervisor/")
    expect(board.locator("#supervisor-connection")).to_have_attribute("data-state", "live", timeout=WAIT)
    row = board.locator(f"tr[data-queue-id='{desk.queue.pk}']")
    expect(row.locator("[data-col=waiting]")).to_have_text("2")
    # Waits read as the HUD's clock (m:ss), and tick on between two boards.
    longest = row.locator("[data-col=longest]")
    expect(longest).to_have_text(re.compile(r"^\d+:\d\d$"))
    expect(longest).not_to_have_text(longest.inner_text(), timeout=WAIT)
    engineers = board.locator("table.supervisor-engineers")

    def engineer_cell(engineer, column):
        return engineers.locator(f"tr[data-engineer-id='{engineer.pk}'] [data-col={column}]")

    expect(engineer_cell(away, "availability")).to_contain_text("Away")
    expect(engineer_cell(desk.sam, "availability")).to_contain_text("Busy")
    expect(engineer_cell(desk.dana, "availability")).to_contain_text("Available")
    screenshot(board, "02-supervisor-two-waiting")
    # On a phone every cell, the totals row's too, keeps its column's name.
    board.set_viewport_size({"width": 390, "height": 844})
    labels = board.evaluate(
        """() => [...document.querySelectorAll('.supervisor-queues tfoot td')]
                 .filter(td => getComputedStyle(td, '::before').content !== 'none')
                 .map(td => td.dataset.label)"""
    )
    assert labels == ["Waiting", "Longest wait", "Answered", "Abandoned", "Expired", "Callbacks", "Median wait"]
    screenshot(board, "02b-supervisor-on-a-phone")
    board.set_viewport_size(LAPTOP)

    # Dana comes back and answers Carol, with the popup still up since Nina waits too.
    dana.evaluate("window.__background = false")
    expect(alert).to_be_visible()
    queue_item(dana, first.pk).get_by_role("button", name="Answer").click()
    expect(dana.locator("#sessions > .session")).to_have_count(1, timeout=WAIT)
    room = ChatRoom.objects.get(request=first)
    panel = session(dana, room.pk)
    expect(panel).to_be_visible()
    # At her limit of one chat, Dana is no longer alerted about Nina, who still waits.
    expect(dana.locator("#hud-queue")).to_have_attribute("data-notify", "0", timeout=WAIT)
    expect(queue_item(dana, second.pk)).to_be_visible()
    expect(alert).to_be_hidden()
    send_from_hud(dana, room.pk, "Hi Carol, looking now.")
    expect(carol.locator(f"#room-{room.pk}-messages")).to_contain_text("Hi Carol, looking now.", timeout=WAIT)

    # The supervisor view follows live over its socket (it does not poll): one waiting, one
    # answered, Dana in one session.
    expect(row.locator("[data-col=waiting]")).to_have_text("1", timeout=WAIT)
    expect(row.locator("[data-col=answered]")).to_have_text("1")
    expect(engineer_cell(desk.dana, "sessions")).to_have_text("1 / 1")
    screenshot(board, "03-supervisor-one-answered")
    board.close()

    # Dana reloads while Carol writes: the queue (with Nina's wait still counting) and the session
    # come back, with the message sent meanwhile.
    waited = clock_seconds(queue_item(dana, second.pk).locator(".wait-timer").inner_text())
    dana.goto("about:blank")
    carol.fill("#chat-input", "Did you find anything?")
    carol.click("#chat-send")
    expect(carol.locator(f"#room-{room.pk}-messages")).to_contain_text("Did you find anything?", timeout=WAIT)
    dana.goto("/hud/")
    open_hud(dana)
    expect(queue_item(dana, second.pk)).to_be_visible()
    assert clock_seconds(queue_item(dana, second.pk).locator(".wait-timer").inner_text()) >= waited
    expect(dana.locator("#hud-queue")).to_have_class(re.compile(r"\boverdue\b"))
    panel = session(dana, room.pk)
    expect(panel).to_be_visible(timeout=WAIT)
    expect(dana.locator(f"#tab-room-{room.pk}")).to_have_attribute("aria-selected", "true")
    expect(panel.locator(".messages")).to_contain_text("Hi Carol, looking now.")
    expect(panel.locator(".messages")).to_contain_text("Did you find anything?")
    expect(panel.locator(".messages li[data-seq]")).to_have_count(ChatRoom.objects.get(pk=room.pk).last_seq)
    expect(panel.locator(".session-ticket")).to_contain_text("Outlook keeps asking for my password", timeout=WAIT)
    screenshot(dana, "04-after-reload")

    # A dropped connection (the server restarts): the HUD says so, reconnects, and catches up on
    # what was said meanwhile.
    server.stop()
    expect(dana.locator("#hud-connection")).to_have_attribute("data-state", "down", timeout=WAIT)
    expect(dana.locator("#hud-connection")).to_have_text("Connection lost. Reconnecting…")
    screenshot(dana, "05-connection-lost")
    server.start()
    expect(carol.locator("#chat-dock")).to_have_attribute("data-conn", "open", timeout=2 * WAIT)
    carol.fill("#chat-input", "Are you still there?")
    carol.click("#chat-send")
    expect(carol.locator(f"#room-{room.pk}-messages")).to_contain_text("Are you still there?", timeout=WAIT)
    expect(dana.locator("#hud-connection")).to_have_attribute("data-state", "live", timeout=2 * WAIT)
    expect(panel.locator(".messages")).to_contain_text("Are you still there?", timeout=WAIT)
    expect(panel.locator(".messages li[data-seq]")).to_have_count(ChatRoom.objects.get(pk=room.pk).last_seq)

    # A second session: Dana answers Nina too; each tab counts what its chat has that Dana has not read.
    queue_item(dana, second.pk).get_by_role("button", name="Answer").click()
    expect(dana.locator("#sessions > .session")).to_have_count(2, timeout=WAIT)
    second_room = ChatRoom.objects.get(request=second)
    expect(dana.locator(f"#tab-room-{second_room.pk}")).to_have_attribute("aria-selected", "true")
    expect(session(dana, room.pk)).to_be_hidden()
    carol.fill("#chat-input", "Hello? Anyone?")
    carol.click("#chat-send")
    carol_tab = dana.locator(f"#tab-room-{room.pk}")
    expect(carol_tab.locator(".unread")).to_have_text("1", timeout=WAIT)
    expect(carol_tab.locator(".unread")).to_be_visible()
    expect(dana.locator(f"#tab-room-{second_room.pk} .unread")).to_be_hidden()
    expect(dana).to_have_title(re.compile(r"^\(1\) "))
    screenshot(dana, "06-two-sessions-unread")
    carol_tab.click()
    expect(session(dana, room.pk)).to_be_visible()
    expect(carol_tab.locator(".unread")).to_be_hidden()
    expect(panel.locator(".messages")).to_contain_text("Hello? Anyone?")
    expect(dana).not_to_have_title(re.compile(r"^\("))

    # Hand-over: Sam (available again) is asked to take over, joins with one click, and Dana leaves.
    sam.get_by_label("Available").check()
    expect(sam.locator("#hud-queue")).to_have_attribute("data-availability", "available", timeout=WAIT)
    sam.evaluate("window.__background = true")
    panel.locator("details.invite summary").click()
    options = panel.locator("select[name=engineer_id] option")
    expect(options.first).to_have_text("Sam Okafor · available")
    expect(options.last).to_have_text("Alex Morgan · away")
    panel.locator("select[name=engineer_id]").select_option(str(desk.sam.pk))
    panel.get_by_label("Hand the chat over (I leave when they join)").check()
    panel.locator("form.invite-form").get_by_role("button", name="Invite").click()
    card = sam.locator(f"#room-invitation-{room.pk}")
    expect(card).to_be_visible(timeout=WAIT)
    # Sam, looking elsewhere, also gets a desktop notification of the invitation.
    wait_until(sam, "window.__notifications.some(n => n.title === 'DeskChat: chat invitation')")
    invitation = [n for n in sam.evaluate("window.__notifications") if n["title"] == "DeskChat: chat invitation"]
    assert invitation[0]["body"].startswith(f"You are invited to a chat with Carol Client on ticket #{desk.ticket.pk} ")
    sam.evaluate("window.__background = false")
    card.get_by_role("button", name="Join").click()
    expect(session(sam, room.pk)).to_be_visible(timeout=WAIT)
    expect(session(sam, room.pk).locator(".messages")).to_contain_text("Did you find anything?")
    expect(panel).to_have_attribute("data-state", "closed", timeout=WAIT)
    expect(panel.locator(".messages")).to_contain_text("Dana Reyes asked Sam Okafor to take over the chat.")
    expect(panel.locator(".messages")).to_contain_text("Dana Reyes left.")
    send_from_hud(sam, room.pk, "Sam here, I'll take it from here.")
    expect(carol.locator(f"#room-{room.pk}-messages")).to_contain_text(
        "Sam here, I'll take it from here.", timeout=WAIT
    )
    expect(carol.locator("#chat-status")).to_contain_text("Sam Okafor")
    screenshot(sam, "07-after-hand-over")

    # A reload keeps the session Dana left, to wrap up: Copy chat log and Enter time entry stay open.
    dana.reload()
    open_hud(dana)
    panel = session(dana, room.pk)
    expect(panel).to_be_visible(timeout=WAIT)
    expect(panel).to_have_attribute("data-state", "closed")
    expect(panel.get_by_role("button", name="Copy chat log")).to_be_enabled()
    expect(panel.get_by_role("button", name="Enter time entry")).to_be_enabled()
    expect(panel.locator(".messages")).to_contain_text("Sam here, I'll take it from here.")
    screenshot(dana, "08-left-session-after-reload")

    # Once Dana enters the time for it, the session is wrapped up and a reload no longer brings it back.
    panel.get_by_role("button", name="Enter time entry").click()
    panel.locator("form.time-entry").get_by_role("button", name="Save time entry").click()
    expect(panel.locator(".time-entry-saved")).to_contain_text("Time entry saved: 0.25 h", timeout=WAIT)
    assert TimeEntry.objects.get(ticket=desk.ticket, engineer=desk.dana).hours == Decimal("0.25")
    dana.reload()
    open_hud(dana)
    expect(session(dana, room.pk)).to_have_count(0)
    expect(session(dana, second_room.pk)).to_be_visible(timeout=WAIT)

    for watcher in (dana_w, sam_w, alex_w, carol_w, nina_w):
        assert watcher.errors == []
    for context in (dana_ctx, sam_ctx, alex_ctx, carol_ctx, nina_ctx):
        context.close()


def test_contact_is_refused_the_hud_and_engineer_invites_contact_from_ticket(browser, daphne_servers, screenshot, desk):
    """A client gets 403 from /hud/ and the supervisor view, and the staff socket refuses them. An
    engineer invites the ticket's contact from the staff ticket page and follows the answer there."""
    base = daphne_servers(1)[0].url
    carol_ctx, carol, carol_w = open_page(browser, base, "carol")
    for url, reason in (("/hud/", "The HUD is for engineers."), ("/hud/supervisor/", "The HUD is for engineers.")):
        response = carol.goto(url)
        assert response.status == 403, url
        expect(carol.locator("#hud")).to_have_count(0)
        expect(carol.get_by_role("heading", level=1)).to_have_text("You can't open this page")
        expect(carol.locator("main")).to_contain_text(reason)
        expect(carol.get_by_role("link", name="Back to your tickets")).to_be_visible()
    screenshot(carol, "01-contact-refused")
    carol.goto(f"/tickets/{desk.ticket.pk}/")
    outcome = carol.evaluate("""() => new Promise(resolve => {
        const socket = new WebSocket(`ws://${location.host}/ws/hud/`);
        let opened = false, frames = 0;
        socket.onopen = () => { opened = true; };
        socket.onmessage = () => { frames += 1; };
        socket.onclose = event => resolve({opened: opened, frames: frames, code: event.code});
    })""")
    assert outcome["opened"] is False and outcome["frames"] == 0, outcome

    # The engineer asks the contact to chat from the staff ticket page and sees it pending.
    dana_ctx, dana, dana_w = open_page(browser, base, "dana")
    open_hud(dana)
    ticket_page = dana_ctx.new_page()
    ticket_page.set_default_timeout(WAIT)
    ticket_page.goto(f"/tickets/{desk.ticket.pk}/")
    ticket_page.get_by_role("button", name="Invite to chat").click()
    status = ticket_page.locator("#hud-ticket-chat")
    expect(status).to_have_attribute("data-state", "waiting", timeout=WAIT)
    expect(status.locator(".invitation-state")).to_have_text("Pending")
    expect(dana.locator("#sent-invitations .sent-invitation")).to_contain_text("Pending", timeout=WAIT)
    screenshot(ticket_page, "02-invitation-pending")

    # The contact accepts from the portal; the ticket page says so and the HUD opens the session.
    invitation = carol.locator("#chat-invitation")
    expect(invitation).to_contain_text("Dana Reyes would like to chat with you", timeout=WAIT)
    invitation.get_by_role("button", name="Accept").click()
    expect(status).to_have_attribute("data-state", "answered", timeout=WAIT)
    expect(status.locator(".invitation-state")).to_have_text("Accepted")
    room = ChatRoom.objects.get(request__contact=desk.contact)
    expect(session(dana, room.pk)).to_be_visible(timeout=WAIT)
    expect(dana.locator("#sent-invitations .sent-invitation")).to_contain_text("Accepted", timeout=WAIT)
    send_from_hud(dana, room.pk, "Thanks for accepting.")
    expect(carol.locator(f"#room-{room.pk}-messages")).to_contain_text("Thanks for accepting.", timeout=WAIT)
    screenshot(ticket_page, "03-invitation-accepted")
    screenshot(dana, "04-hud-session-from-invitation")
    dana.set_viewport_size({"width": 390, "height": 844})
    expect(session(dana, room.pk).locator("form.compose textarea")).to_be_visible()
    screenshot(dana, "05-hud-session-on-a-phone")

    for watcher in (carol_w, dana_w):
        assert watcher.errors == []
    for context in (carol_ctx, dana_ctx):
        context.close()


NEW_YORK = "America/New_York"


def written_in_new_york(moment) -> str:
    """What every screen must show for a moment to a viewer whose browser is in New York."""
    from django.utils import timezone

    with timezone.override(NEW_YORK):
        return format_when(moment)


def test_colleague_chat_names_the_client_time_entries_and_one_time_format(browser, daphne_servers, screenshot, desk, f):
    """Carol chats about her colleague Ken's ticket: the HUD's tab, heading, message box, greeting,
    ticket panel and chat log name Carol, not Ken. Dana's time entry shows in the ticket panel and on
    the staff ticket page, where she corrects it (its form fits at laptop and phone widths). For
    viewers in New York, one message's time reads the same on the HUD, in the client's dialog, in
    the chat log and in the ticket's Chat history, and the time entry's start the same in the panel
    and on the ticket page, all in the one format."""
    ken = f.make_contact(username="ken", first_name="Ken", last_name="Adams", company=desk.company)
    ken_ticket = f.make_ticket(contact=ken, summary="Monitor flickers on the left")
    base = daphne_servers(1)[0].url
    dana_ctx, dana, dana_w = open_page(
        browser, base, "dana", permissions=["clipboard-read", "clipboard-write"], time_zone=NEW_YORK
    )
    carol_ctx, carol, carol_w = open_page(browser, base, "carol", time_zone=NEW_YORK)
    open_hud(dana)

    # Carol asks to chat about Ken's ticket; Dana answers.
    join_chat(carol, ken_ticket)
    request = ChatRequest.objects.get(contact=desk.contact)
    item = queue_item(dana, request.pk)
    expect(item.locator(".who")).to_have_text("Carol Client", timeout=WAIT)
    item.get_by_role("button", name="Answer").click()
    expect(dana.locator("#sessions > .session")).to_have_count(1, timeout=WAIT)
    room = ChatRoom.objects.get(request=request)
    panel = session(dana, room.pk)

    # Everything about "the client" is Carol, who is in the chat; Ken stays the ticket's contact.
    expect(dana.locator(f"#tab-room-{room.pk}")).to_contain_text(f"Carol Client · #{ken_ticket.pk}")
    expect(panel.locator(".session-head h3")).to_contain_text("Carol Client, Ours Ltd")
    expect(panel.get_by_label("Message to Carol Client")).to_be_visible()
    expect(panel.locator(".session-head")).not_to_contain_text("Ken")
    ticket_panel = panel.locator(".session-ticket")
    expect(ticket_panel.locator(".session-client dt")).to_have_text("In this chat", timeout=WAIT)
    expect(ticket_panel.locator(".session-client dd")).to_have_text("Carol Client")
    expect(ticket_panel.locator("dt", has_text="Ticket contact").locator("xpath=following-sibling::dd")).to_have_text(
        "Ken Adams"
    )
    panel.get_by_role("button", name="Greeting: Hello").click()
    box = panel.locator("form.compose textarea")
    expect(box).to_have_value(f"Hi Carol, Dana Reyes here about ticket #{ken_ticket.pk}.")
    box.press("Enter")
    expect(carol.locator(f"#room-{room.pk}-messages")).to_contain_text("Hi Carol, Dana Reyes", timeout=WAIT)
    screenshot(dana, "01-session-names-carol")

    # One message, the same time text in New York on both sides.
    carol.fill("#chat-input", "The left half flickers when it warms up.")
    carol.click("#chat-send")
    expect(panel.locator(".messages")).to_contain_text("The left half flickers", timeout=WAIT)
    message = room.messages.get(body="The left half flickers when it warms up.")
    expected = written_in_new_york(message.created)
    assert expected != format_when(message.created)  # the server runs on UTC: the zone did change
    hud_time = panel.locator(f"#msg-{room.pk}-{message.seq} time")
    dock_time = carol.locator(f"#room-{room.pk}-messages li[data-seq='{message.seq}'] time")
    expect(hud_time).to_have_text(expected)
    expect(dock_time).to_have_text(expected)
    screenshot(carol, "02-client-dialog-time")

    # Dana leaves (the chat goes back to the queue), then Carol stops waiting: the chat ends and
    # the log names Carol, in New York time.
    panel.locator("form.leave-form").get_by_role("button", name="Leave").click()
    expect(panel).to_have_attribute("data-state", "closed", timeout=WAIT)
    carol.get_by_role("button", name="Leave: cancel the chat request").click()
    deadline = time.monotonic() + WAIT / 1000
    while ChatRoom.objects.get(pk=room.pk).is_active:
        assert time.monotonic() < deadline, "the chat did not end"
        time.sleep(0.1)
    panel.get_by_role("button", name="Copy chat log").click()
    expect(panel.locator(".copy-status")).to_have_text("Chat log copied to the clipboard.", timeout=WAIT)
    log = dana.evaluate("navigator.clipboard.readText()")
    assert log.startswith(f"Chat #{room.pk} on ticket #{ken_ticket.pk} with Carol Client, started ")
    assert f"({NEW_YORK})" in log.splitlines()[0]
    assert f"[{expected}] Carol Client: The left half flickers when it warms up." in log

    # The time entry: its fields fit the form at laptop width, and it saves.
    panel.get_by_role("button", name="Enter time entry").click()
    form = panel.locator("form.time-entry")
    expect(form).to_be_visible(timeout=WAIT)
    expect(form.locator("[name=started]")).to_have_value(re.compile(f"^{WHEN}$"))
    expect(form).to_contain_text(f"Times in {NEW_YORK}.")
    assert_inside(form, form.locator("[name=hours]"))
    # The grid holds whatever its inputs' own widths: with the browser's wide date-time inputs
    # (what the form had before) the Hours box used to stick out past the form's edge.
    form.evaluate(WIDE_MOMENT_INPUTS)
    for width in (LAPTOP["width"], 1024, 960):  # a small laptop's session column is narrow
        dana.set_viewport_size({"width": width, "height": LAPTOP["height"]})
        assert_inside(form, form.locator("[name=hours]"))
    dana.set_viewport_size(LAPTOP)
    form.evaluate(TEXT_MOMENT_INPUTS)
    expect(form.locator("[name=started]")).to_have_value(re.compile(f"^{WHEN}$"))
    screenshot(dana, "03-time-entry-form-laptop")
    dana.set_viewport_size({"width": 390, "height": 844})
    assert_inside(form, form.locator("[name=hours]"))
    assert_inside(form, form.locator("[name=started]"))
    screenshot(dana, "04-time-entry-form-phone")
    dana.set_viewport_size(LAPTOP)
    form.get_by_role("button", name="Save time entry").click()
    expect(panel.locator(".time-entry-saved")).to_contain_text("Time entry saved: 0.25 h", timeout=WAIT)
    entry = TimeEntry.objects.get(ticket=ken_ticket)

    # The ticket panel reloads with the entry: engineer, times, hours, billable, notes, and Edit.
    card = ticket_panel.locator(f"#time-entry-item-{entry.pk}")
    expect(card).to_be_visible(timeout=WAIT)
    expect(card).to_contain_text("Dana Reyes")
    expect(card).to_contain_text("0.25 h")
    expect(card).to_contain_text("Billable")
    started_text = written_in_new_york(entry.started)
    expect(card.locator(".time-entry-span time").first).to_have_text(started_text)
    expect(card.locator(".time-entry-notes summary")).to_contain_text(f"Chat #{room.pk} on ticket")
    expect(ticket_panel.locator("summary", has_text="Chat history").locator(".count")).to_have_text("1")
    screenshot(dana, "05-ticket-panel-time-entry")
    # Edit opens the correction in the panel itself; Cancel puts the card back.
    card.get_by_role("link", name="Edit").click()
    expect(ticket_panel.locator(f"#time-entry-item-{entry.pk} form.time-entry")).to_be_visible(timeout=WAIT)
    assert_inside(ticket_panel, ticket_panel.locator(f"#time-entry-item-{entry.pk} [name=hours]"))
    screenshot(dana, "05b-ticket-panel-correcting")
    ticket_panel.get_by_role("link", name="Cancel").click()
    expect(card.locator(".time-entry-hours")).to_have_text("0.25 h", timeout=WAIT)

    # On the staff ticket page: the same entry, the same start text; Dana corrects it in place.
    page = dana_ctx.new_page()
    page.set_default_timeout(WAIT)
    page.goto(f"/tickets/{ken_ticket.pk}/")
    row = page.locator(f"#time-entry-item-{entry.pk}")
    expect(row.locator(".time-entry-span time").first).to_have_text(started_text)
    row.get_by_role("link", name="Edit").click()
    correction = page.locator(f"#time-entry-item-{entry.pk} form.time-entry")
    expect(correction).to_be_visible(timeout=WAIT)
    assert_inside(correction, correction.locator("[name=hours]"))
    correction.locator("[name=started]").fill(format_when(datetime.strptime(
        correction.locator("[name=ended]").input_value(), PARSE_FORMAT
    ) - timedelta(minutes=40)))  # fmt: skip
    correction.locator("[name=started]").dispatch_event("change")
    expect(correction.locator("[name=hours]")).to_have_value("0.75")
    correction.locator("[name=notes]").fill("Reseated the monitor cable.")
    screenshot(page, "06-correcting-time-entry")
    correction.get_by_role("button", name="Save correction").click()
    expect(row).to_contain_text("0.75 h", timeout=WAIT)
    expect(row).to_contain_text("Reseated the monitor cable.")
    expect(row).not_to_have_class(re.compile(r"\bediting\b"))  # htmx has settled the swapped card
    entry.refresh_from_db()
    assert entry.hours == Decimal("0.75") and entry.notes == "Reseated the monitor cable."
    screenshot(page, "07-ticket-page-time-entries")

    # The ticket's Chat history writes the message's time as the HUD and the dialog did.
    page.goto(f"/tickets/{ken_ticket.pk}/?tab=history")
    expect(page.locator(f"#chat-history-{room.pk} .transcript")).to_contain_text(expected)
    screenshot(page, "08-chat-history-times")

    for watcher in (dana_w, carol_w):
        assert watcher.errors == []
    for context in (dana_ctx, carol_ctx):
        context.close()


# The browser's own date-time inputs (what the form had before) are wide whatever the space.
WIDE_MOMENT_INPUTS = """f => f.querySelectorAll('[name=started], [name=ended]').forEach(i => {
  i.dataset.keep = i.value; i.type = 'datetime-local'; i.step = '1'; i.value = '2026-12-02T04:37:53';
})"""
TEXT_MOMENT_INPUTS = """f => f.querySelectorAll('[name=started], [name=ended]').forEach(i => {
  i.type = 'text'; i.removeAttribute('step'); i.value = i.dataset.keep;
})"""


def assert_inside(outer, inner):
    """Assert an element's box lies within another's (a field that sticks out of its form fails)."""
    o, i = outer.bounding_box(), inner.bounding_box()
    assert o and i, "not rendered"
    assert i["x"] >= o["x"] - 0.5 and i["x"] + i["width"] <= o["x"] + o["width"] + 0.5, (o, i)
