"""Read positions in a real browser: what they cost the client's page, and "Seen" on the HUD.

The client's page reports how far it has read at most once a second per room, and only while it
is visible (static/chat/socket.js); the HUD shows "Seen" under the last message the client has
seen. Screenshots land in screenshots/<test name>/.
"""

import pytest
from playwright.sync_api import expect

from chat.models import ChatParticipant
from tests.browser.test_portal_chat import (
    WAIT,
    client_messages,
    client_page,
    hud_page,
    join_and_answer,
    session,
    staff_send,
)
from tests.browser.test_portal_window import record_frames

pytestmark = pytest.mark.browser

BURST = 100

# The engineer's HUD sends the burst itself, as fast as its socket takes frames; the server's
# limits on one socket's frames are raised so that none of them is refused.
ROOMY = {"CHAT_RATE_BURST": 500, "CHAT_RATE_PER_SECOND": 500, "CHAT_FRAME_BACKLOG": 500}

SEND_BURST = """([room, count]) => {
  for (let n = 0; n < count; n++) {
    window.deskchatSocket.send(JSON.stringify(
      {action: "send", room_id: room, body: "Burst line " + n, client_msg_id: "burst-" + n}));
  }
}"""

# Let the test say whether the page is hidden: the browser shows both contexts' pages at once.
HIDE = """hidden => {
  if (!("__hidden" in window)) {
    Object.defineProperty(document, "visibilityState", {
      configurable: true, get: () => (window.__hidden ? "hidden" : "visible")});
  }
  window.__hidden = hidden;
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def reads(frames) -> list[int]:
    return [frame["seq"] for frame in frames if frame.get("action") == "read"]


def seen(hud, room_id):
    """The "Seen" mark in the session (there is one at most)."""
    return session(hud, room_id).locator(".msg-seen")


def test_a_burst_costs_a_handful_of_reads_and_the_hud_shows_seen(browser, daphne_servers, screenshot, desk):
    """Dana sends 100 messages at once: Olive's page shows them all and reports her reading in a
    handful of frames, and Dana's session shows "Seen" under the last one, also after a reload.
    While Olive's page is hidden it reports nothing; once it is visible again it reports, once."""
    base = daphne_servers(1, **ROOMY)[0].url
    staff = hud_page(browser, base)
    hud = staff.page
    client = client_page(browser, base)
    page = client.page
    frames = record_frames(page)  # from the next socket on: join_and_answer opens the ticket page
    room = join_and_answer(page, base, hud, desk.ticket)
    expect(seen(hud, room.pk)).to_have_count(1, timeout=WAIT)  # "Dana Reyes joined." is seen

    mark = len(frames)
    hud.evaluate(SEND_BURST, [room.pk, BURST])
    last = BURST + 1
    expect(client_messages(page).filter(has_text=f"Burst line {BURST - 1}")).to_have_count(1, timeout=WAIT)
    last_line = session(hud, room.pk).locator(f"li[data-seq='{last}']")
    expect(last_line.locator(".msg-seen")).to_have_text("Seen", timeout=WAIT)
    expect(seen(hud, room.pk)).to_have_count(1)
    during = reads(frames[mark:])
    assert 1 <= len(during) <= 5 and during[-1] == last, during
    assert ChatParticipant.objects.get(room=room, role="client").last_read_seq == last
    session(hud, room.pk).locator(".messages").evaluate("el => { el.scrollTop = el.scrollHeight; }")
    screenshot(hud, "01-seen-under-the-last-line")

    # Hidden, the page shows what arrives but reports no read; visible again, it reports once.
    page.evaluate(HIDE, True)
    mark = len(frames)
    staff_send(hud, room.pk, "Are you still there?")
    expect(client_messages(page).filter(has_text="Are you still there?")).to_have_count(1, timeout=WAIT)
    page.wait_for_timeout(1500)  # longer than a coalesced read waits
    assert reads(frames[mark:]) == []
    expect(last_line.locator(".msg-seen")).to_have_count(1)
    screenshot(hud, "02-not-seen-while-the-client-looks-away")

    page.evaluate(HIDE, False)
    question = session(hud, room.pk).locator("li.msg", has_text="Are you still there?")
    expect(question.locator(".msg-seen")).to_have_text("Seen", timeout=WAIT)
    expect(question.locator(".msg-seen")).to_be_in_viewport()  # the list follows it down
    assert reads(frames[mark:]) == [last + 1]

    # After a reload the session is drawn from the database, "Seen" where it was.
    hud.reload()
    expect(hud.locator("#hud-connection")).to_have_attribute("data-state", "live", timeout=WAIT)
    question = session(hud, room.pk).locator("li.msg", has_text="Are you still there?")
    expect(question.locator(".msg-seen")).to_have_text("Seen", timeout=WAIT)
    expect(seen(hud, room.pk)).to_have_count(1)
    screenshot(hud, "03-seen-after-a-reload")
    assert client.errors == [] and staff.errors == []
    client.close()
    staff.close()
