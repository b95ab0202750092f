"""The portal in a real browser against a real daphne: a client's ticket story and an engineer's landing.

Screenshots land in screenshots/<test name>/.
"""

import re

import pytest

from tests.conftest import login
from tickets.models import TicketNote

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 800}


def test_contact_reads_and_adds_notes_and_engineer_reaches_staff_list(browser, live_server_url, screenshot, desk):
    """A client sees only their company's tickets, reads public notes, adds one without a reload, and gets a
    clear error for an empty one; an engineer signs in on the same page and reaches the staff list."""
    desk.add_notes()
    ticket, other_ticket = desk.ticket, desk.outsider_ticket
    client_context = browser.new_context(viewport=LAPTOP)
    page = client_context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    # The client signs in and lands on their company's tickets.
    login(page, live_server_url, "carol")
    assert page.url.endswith("/tickets/")
    assert page.locator("h1").inner_text() == "Ours Ltd tickets"
    rows = page.locator("table.tickets tbody")
    assert "Outlook keeps asking for my password" in rows.inner_text()
    assert "Their mail server is down" not in page.content()
    screenshot(page, "01-client-ticket-list")

    # Another company's ticket is not found, even by its direct URL.
    response = page.goto(f"{live_server_url}/tickets/{other_ticket.pk}/")
    assert response.status == 404
    assert "Their mail server" not in page.content()
    page.goto(f"{live_server_url}/tickets/")

    # The client opens the ticket and reads its public notes under the Notes tab, never the internal one.
    page.click(f"text=#{ticket.number}")
    page.wait_for_url(re.compile(rf"/tickets/{ticket.pk}/$"))
    assert page.locator("[role=tab]#tab-notes").inner_text().startswith("Notes")
    assert page.locator("#tab-notes .count").inner_text() == "1"
    notes = page.locator("#notes ol.notes")
    assert "It started after this morning's update." in notes.inner_text()
    assert "upsell" not in page.content()
    assert page.locator(".internal-badge").count() == 0
    screenshot(page, "02-client-ticket-detail")

    # Adding a note swaps the notes block in place: the new note shows and the page never reloads.
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    page.fill("#id_text", "I restarted Outlook; it asked again.")
    page.click("#notes button[type=submit]")
    page.locator("#notes li.note", has_text="I restarted Outlook; it asked again.").wait_for()
    assert navigations == []
    assert page.input_value("#id_text") == ""
    assert page.locator("#notes li.note").count() == 2
    assert page.locator("#tab-notes .count").inner_text() == "2"
    screenshot(page, "03-client-note-added")
    assert TicketNote.objects.filter(
        ticket=ticket, text="I restarted Outlook; it asked again.", internal=False
    ).exists()

    # An empty note is refused with a clear message next to the field, and nothing is saved.
    before = TicketNote.objects.count()
    page.fill("#id_text", "   ")
    page.click("#notes button[type=submit]")
    error = page.locator("#note-errors")
    error.wait_for()
    assert "Write something before adding the note." in error.inner_text()
    assert page.get_attribute("#id_text", "aria-invalid") == "true"
    assert navigations == []
    assert TicketNote.objects.count() == before
    screenshot(page, "04-client-empty-note-error")

    # The same page on a phone.
    page.set_viewport_size(PHONE)
    page.reload()
    screenshot(page, "05-client-ticket-detail-phone")
    assert errors == []
    client_context.close()

    # The engineer signs in on the same page and reaches the staff list of all tickets.
    engineer_context = browser.new_context(viewport=LAPTOP)
    staff = engineer_context.new_page()
    staff.on("pageerror", lambda error: errors.append(str(error)))
    login(staff, live_server_url, "dana")
    assert staff.url.endswith("/hud/")
    staff.click("nav >> text=Tickets")
    staff.wait_for_url(re.compile(r"/tickets/$"))
    assert staff.locator("h1").inner_text() == "All tickets"
    listing = staff.locator("table.tickets tbody").inner_text()
    assert "Outlook keeps asking for my password" in listing and "Their mail server is down" in listing
    screenshot(staff, "06-engineer-ticket-list")

    # ... and sees the internal note, marked, beside the client's new one.
    staff.click(f"text=#{ticket.number}")
    staff.wait_for_url(re.compile(rf"/tickets/{ticket.pk}/$"))
    internal = staff.locator("#notes li.note.internal")
    assert "upsell MFA" in internal.inner_text()
    assert internal.locator(".internal-badge").inner_text() == "Internal"
    assert "I restarted Outlook; it asked again." in staff.locator("#notes").inner_text()
    screenshot(staff, "07-engineer-ticket-detail")
    assert errors == []
    engineer_context.close()
