"""A user over CHAT_MAX_SOCKETS_PER_USER is told why their window has no connection, and gets in once one closes."""

import pytest
from playwright.sync_api import expect

from tests.browser.test_hud import WAIT, open_page

pytestmark = pytest.mark.browser
RECONNECT_WAIT = 45_000  # the retries back off while the first window stays open


def test_an_extra_portal_window_says_too_many_and_reconnects_when_one_closes(browser, daphne_servers, screenshot, desk):
    base = daphne_servers(1, CHAT_MAX_SOCKETS_PER_USER=1)[0].url
    context, first, _ = open_page(browser, base, "carol")
    expect(first.locator("#chat-dock")).to_have_attribute("data-conn", "open", timeout=WAIT)

    second = context.new_page()
    second.goto(f"{base}/tickets/{desk.ticket.pk}/")
    dock = second.locator("#chat-dock")
    expect(dock).to_have_attribute("data-conn", "reconnecting", timeout=WAIT)
    second.get_by_role("button", name="Join Chat").click()  # nothing can open yet: the page says why
    note = second.locator(".join-offline-note")
    expect(note).to_be_visible()
    expect(note).to_have_text(
        "Too many DeskChat windows are open: close one, and this one reconnects. Your request is sent once connected."
    )
    screenshot(second, "01-portal-too-many-windows")

    first.close()
    expect(dock).to_have_attribute("data-conn", "open", timeout=RECONNECT_WAIT)
    expect(note).to_have_count(0)
    expect(dock).to_have_attribute("data-view", "waiting", timeout=WAIT)  # the request went out once connected
    context.close()


def test_an_extra_hud_window_says_too_many_and_reconnects_when_one_closes(browser, daphne_servers, screenshot, desk):
    base = daphne_servers(1, CHAT_MAX_SOCKETS_PER_USER=1)[0].url
    context, first, _ = open_page(browser, base, "dana")
    expect(first.locator("#hud-connection")).to_have_attribute("data-state", "live", timeout=WAIT)

    second = context.new_page()
    second.goto(f"{base}/hud/")
    status = second.locator("#hud-connection")
    expect(status).to_have_text("Too many HUD windows are open: close one, and this one reconnects.", timeout=WAIT)
    screenshot(second, "01-hud-too-many-windows")

    first.close()
    expect(status).to_have_attribute("data-state", "live", timeout=RECONNECT_WAIT)
    expect(status).to_have_text("Connected")
    context.close()


def test_a_supervisor_view_past_the_cap_says_too_many_and_reconnects(browser, daphne_servers, screenshot, desk):
    """The supervisor view counts towards the cap like the HUD, and its status line says why it waits."""
    desk.dana.is_supervisor = True
    desk.dana.save(update_fields=["is_supervisor"])
    base = daphne_servers(1, CHAT_MAX_SOCKETS_PER_USER=1)[0].url
    context, first, _ = open_page(browser, base, "dana")
    expect(first.locator("#hud-connection")).to_have_attribute("data-state", "live", timeout=WAIT)

    board = context.new_page()
    board.goto(f"{base}/hud/supervisor/")
    status = board.locator("#supervisor-connection")
    expect(status).to_have_text("Too many HUD windows are open: close one, and this one reconnects.", timeout=WAIT)
    screenshot(board, "02-supervisor-too-many-windows")

    first.close()
    expect(status).to_have_attribute("data-state", "live", timeout=RECONNECT_WAIT)
    expect(status).to_have_text("Live")
    context.close()


def test_a_hud_turned_away_with_4503_comes_back_at_its_turn_and_keeps_what_was_clicked_meanwhile(
    browser, daphne_servers, screenshot, desk
):
    """A process taking back many sockets closes a handshake with 4503 and a wait in ms; the page keeps that turn.

    The first two sockets are answered by Playwright's websocket route with what
    deskchat.admission sends past CHAT_CONNECTS_IN_PROGRESS (accepted, then closed at once;
    tests/deskchat/test_admission.py holds the server to it); the third goes through to the
    real server. Going Busy while turned away must survive the second turn-away, which reads
    nothing the page sends, and reach the server once it is really in.
    """
    import time

    from accounts.models import Engineer

    base = daphne_servers(1)[0].url
    context, page, _ = open_page(browser, base, "dana")
    attempts: list[float] = []

    def route(ws):
        attempts.append(time.monotonic())
        if len(attempts) <= 2:
            # Closed once the page has sent its first frames (its sync, and what htmx queued): the page
            # saw it open, as it sees a socket daphne accepts and closes at once.
            ws.on_message(lambda message: ws.close(code=4503, reason="3000"))
        else:
            ws.connect_to_server()

    page.route_web_socket("**/ws/hud/", route)
    page.goto(f"{base}/hud/")
    status = page.locator("#hud-connection")
    expect(status).to_have_text("The chat server is busy reconnecting everyone. Back in a moment…", timeout=WAIT)
    expect(status).to_have_attribute("data-state", "down")
    page.get_by_label("Busy").check()  # queued by htmx while the socket is down
    screenshot(page, "03-hud-turned-away-4503")
    expect(status).to_have_attribute("data-state", "live", timeout=WAIT)
    assert len(attempts) == 3
    assert 2.6 <= attempts[1] - attempts[0] <= 4.0  # 3 s ±10%, plus the page's own work
    assert 2.6 <= attempts[2] - attempts[1] <= 4.0
    expect(page.locator("#hud-queue")).to_have_attribute("data-availability", "busy", timeout=WAIT)
    assert Engineer.objects.get(pk=desk.dana.pk).availability == "busy"
    context.close()
