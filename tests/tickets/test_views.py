"""The portal's ticket pages: who sees what, what bad input gets back, and htmx partials."""

import re

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from accounts.models import Access, CompanyPermission, Contact, ContactPermission
from accounts.permissions import CREATE_TICKET
from tests.queries import statements_run
from tickets.models import Ticket, TicketNote

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def list_url():
    return reverse("tickets:list")


def detail_url(ticket):
    return reverse("tickets:detail", args=[ticket.pk])


def note_url(ticket):
    return reverse("tickets:note_add", args=[ticket.pk])


def create_url():
    return reverse("tickets:create")


def may_create_tickets(contact, access=Access.ALLOW):
    ContactPermission.objects.create(contact=contact, feature=CREATE_TICKET, access=access)
    return contact


@pytest.fixture
def world(f):
    """Two companies with a ticket each; ours has a public and an internal note."""
    engineer = f.make_engineer(display_name="Dana Reyes")
    contact = f.make_contact(first_name="Olive", last_name="Ours", company=f.make_company(name="Ours Ltd"))
    other = f.make_contact(first_name="Theo", last_name="Theirs", company=f.make_company(name="Theirs Inc"))
    ticket = f.make_ticket(contact=contact, summary="Our printer prints blank pages")
    other_ticket = f.make_ticket(contact=other, summary="Their mail server is down")
    f.make_note(ticket=ticket, text="It started after the toner change.")
    f.make_note(ticket=ticket, author=engineer.user, text="Client is on an old driver, upsell", internal=True)
    f.make_note(ticket=other_ticket, text="Theirs: the MX record looks wrong.")
    return {"engineer": engineer, "contact": contact, "other": other, "ticket": ticket, "other_ticket": other_ticket}


@pytest.fixture
def contact_client(client, world):
    client.force_login(world["contact"].user)
    return client


@pytest.fixture
def engineer_client(client, world):
    client.force_login(world["engineer"].user)
    return client


# --- A contact sees their own company's tickets, and nothing else --------------------------------


def test_contact_list_shows_own_company_tickets_only(contact_client, world):
    """The list shows the company's tickets under its name, and no other company's."""
    response = contact_client.get(list_url())

    html = response.content.decode()
    assert response.status_code == 200
    assert "Ours Ltd tickets" in html
    assert "Our printer prints blank pages" in html
    assert "Their mail server is down" not in html
    assert detail_url(world["other_ticket"]) not in html


def test_contact_sees_own_ticket_and_its_public_notes(contact_client, world):
    """The detail page shows the ticket, its Notes tab and the public note."""
    response = contact_client.get(detail_url(world["ticket"]))

    html = response.content.decode()
    assert response.status_code == 200
    assert "Our printer prints blank pages" in html
    assert f"#{world['ticket'].number}" in html
    assert re.search(r'role="tab"[^>]*>Notes <span class="count" id="notes-count">1</span>', html)
    assert "It started after the toner change." in html


def test_contact_never_sees_internal_notes(contact_client, world):
    """Internal notes are absent from the page, its htmx tab partial and its note count."""
    full = contact_client.get(detail_url(world["ticket"])).content.decode()
    partial = contact_client.get(detail_url(world["ticket"]), headers=HTMX).content.decode()
    listing = contact_client.get(list_url()).content.decode()

    for html in (full, partial):
        assert "upsell" not in html
        assert "Internal" not in html.replace("Internal (staff only)", "")
        assert 'class="note internal"' not in html
    assert "1 note" in listing and "2 notes" not in listing


def test_contact_cannot_tick_the_internal_box(contact_client, world):
    """The internal checkbox is offered to engineers only."""
    html = contact_client.get(detail_url(world["ticket"])).content.decode()

    assert 'name="internal"' not in html


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_another_company_ticket_detail_is_404(contact_client, world, htmx):
    """Another company's ticket is not found, as a page or as an htmx tab."""
    response = contact_client.get(detail_url(world["other_ticket"]), headers=HTMX if htmx else {})

    assert response.status_code == 404
    assert b"Their mail server" not in response.content
    assert b"MX record" not in response.content


@pytest.mark.parametrize("tab", ["notes", "history"])
def test_another_company_ticket_tabs_are_404(contact_client, world, tab):
    """Direct links to another company's ticket tabs answer 404 too."""
    response = contact_client.get(detail_url(world["other_ticket"]) + f"?tab={tab}")

    assert response.status_code == 404


@pytest.mark.parametrize("htmx", [False, True], ids=["form", "htmx"])
def test_another_company_note_form_is_404_and_saves_nothing(contact_client, world, htmx):
    """Posting a note to another company's ticket is not found, and no note is written."""
    before = TicketNote.objects.count()

    response = contact_client.post(note_url(world["other_ticket"]), {"text": "Sneaky"}, headers=HTMX if htmx else {})

    assert response.status_code == 404
    assert TicketNote.objects.count() == before
    assert not TicketNote.objects.filter(text="Sneaky").exists()


def test_missing_and_malformed_ticket_urls_are_404(contact_client):
    """A ticket number that does not exist, or is not a number, is simply not found."""
    assert contact_client.get("/tickets/999999/").status_code == 404
    assert contact_client.get("/tickets/abc/").status_code == 404
    assert contact_client.get("/tickets/99999999999999999999999/").status_code == 404
    assert contact_client.post("/tickets/999999/notes/", {"text": "x"}).status_code == 404


def test_a_user_who_is_neither_contact_nor_engineer_sees_no_tickets(client, f, world):
    """An account with no contact or engineer profile lists nothing and opens nothing."""
    client.force_login(f.make_user())

    assert b"Our printer" not in client.get(list_url()).content
    assert client.get(detail_url(world["ticket"])).status_code == 404


# --- Anonymous visitors are sent to sign in ----------------------------------------------------


@pytest.mark.parametrize(
    "method, url_name",
    [("get", "list"), ("get", "detail"), ("post", "note_add"), ("get", "create"), ("post", "create")],
)
def test_anonymous_users_are_redirected_to_login(client, world, method, url_name):
    """Every ticket page sends an anonymous visitor to the login page and back afterwards."""
    args = [world["ticket"].pk] if url_name in {"detail", "note_add"} else []
    url = reverse(f"tickets:{url_name}", args=args)

    response = getattr(client, method)(url, {"text": "hi", "summary": "hi"} if method == "post" else {})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert f"next={url}" in response["Location"].replace("%2F", "/")
    assert not TicketNote.objects.filter(text="hi").exists()
    assert not Ticket.objects.filter(summary="hi").exists()


# --- Engineers ----------------------------------------------------------------------------------


def test_engineer_list_shows_every_company_ticket(engineer_client, world):
    """The staff list shows all tickets with their company."""
    html = engineer_client.get(list_url()).content.decode()

    assert "All tickets" in html
    assert "Our printer prints blank pages" in html
    assert "Their mail server is down" in html
    assert "Theirs Inc" in html


def test_engineer_sees_internal_notes_marked_internal(engineer_client, world):
    """Engineers read internal notes, each carrying an Internal badge; public notes carry none."""
    html = engineer_client.get(detail_url(world["ticket"])).content.decode()

    internal = world["ticket"].notes.get(internal=True)
    public = world["ticket"].notes.get(internal=False)
    internal_item = re.search(rf'<li class="note internal" id="note-{internal.pk}">.*?</li>', html, re.S).group()
    public_item = re.search(rf'<li class="note" id="note-{public.pk}">.*?</li>', html, re.S).group()
    assert "upsell" in internal_item and ">Internal<" in internal_item
    assert "Internal" not in public_item
    assert "Dana Reyes" in internal_item


def test_each_note_is_signed_with_its_authors_desk_name(engineer_client, world, f):
    """A contact signs with their name, an engineer with their display name (even one with a contact
    profile too), anyone else with their username."""
    both = f.make_engineer(display_name="Sam Okafor")
    Contact.objects.create(user=both.user, company=world["contact"].company)
    f.make_note(ticket=world["ticket"], author=both.user, text="From staff with a client login")
    f.make_note(ticket=world["ticket"], author=f.make_user(username="root"), text="From the administrator")
    html = engineer_client.get(detail_url(world["ticket"])).content.decode()

    def signature(note) -> str:
        item = re.search(rf'<li class="note[^"]*" id="note-{note.pk}">.*?</li>', html, re.S).group()
        return re.search(r"<strong>(.*?)</strong>", item).group(1)

    signed = {note.text: signature(note) for note in world["ticket"].notes.all()}
    assert signed == {
        "It started after the toner change.": "Olive Ours",
        "Client is on an old driver, upsell": "Dana Reyes",
        "From staff with a client login": "Sam Okafor",
        "From the administrator": "root",
    }


def test_engineer_can_write_an_internal_note(engineer_client, world):
    """The internal box on an engineer's note is honoured."""
    response = engineer_client.post(note_url(world["ticket"]), {"text": "Check the driver", "internal": "on"})

    assert response.status_code == 302
    assert TicketNote.objects.get(text="Check the driver").internal is True


def test_engineer_cannot_open_the_client_ticket_form(engineer_client):
    """Only contacts open tickets from the portal."""
    assert engineer_client.get(create_url()).status_code == 403


# --- Adding notes -------------------------------------------------------------------------------


def test_adding_a_note_redirects_to_the_ticket(contact_client, world):
    """A plain form post saves the note and redirects back to the ticket (post/redirect/get)."""
    response = contact_client.post(note_url(world["ticket"]), {"text": "  Tried rebooting.  "})

    assert response.status_code == 302
    assert response["Location"] == detail_url(world["ticket"])
    note = TicketNote.objects.get(text="Tried rebooting.")
    assert (note.ticket, note.author, note.internal) == (world["ticket"], world["contact"].user, False)
    page = contact_client.get(response["Location"]).content.decode()
    assert "Note added." in page
    assert "Tried rebooting." in page


def test_adding_a_note_with_htmx_returns_the_notes_partial(contact_client, world):
    """An htmx post answers with the notes block alone: the new note and an emptied form."""
    response = contact_client.post(note_url(world["ticket"]), {"text": "Tried rebooting."}, headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="notes">')
    assert "<html" not in html and "<h1" not in html
    assert "Tried rebooting.</div>" in html
    assert "It started after the toner change." in html
    assert re.search(r'<textarea name="text"[^>]*></textarea>', html)
    assert TicketNote.objects.filter(text="Tried rebooting.", internal=False).exists()
    # The Notes tab's count sits outside the swapped block, so it comes along out of band.
    assert '<span class="count" id="notes-count" hx-swap-oob="true">2</span>' in html


def test_full_page_has_no_out_of_band_fragments(contact_client, world):
    """The out-of-band count is only for htmx responses; the page itself carries the count once."""
    html = contact_client.get(detail_url(world["ticket"])).content.decode()

    assert html.count('id="notes-count"') == 1
    assert 'id="notes-count" hx-swap-oob' not in html


def test_contact_internal_flag_is_ignored(contact_client, world):
    """A contact who forges internal=on gets an ordinary, visible note, never an internal one."""
    response = contact_client.post(note_url(world["ticket"]), {"text": "Am I hidden?", "internal": "on"})

    assert response.status_code == 302
    assert TicketNote.objects.get(text="Am I hidden?").internal is False
    assert "Am I hidden?" in contact_client.get(detail_url(world["ticket"])).content.decode()


@pytest.mark.parametrize("text", ["", "   \n  "], ids=["empty", "whitespace"])
@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_empty_note_is_refused_with_a_message(contact_client, world, text, htmx):
    """An empty note answers 422 with a clear message next to the field, and saves nothing."""
    before = TicketNote.objects.count()

    response = contact_client.post(note_url(world["ticket"]), {"text": text}, headers=HTMX if htmx else {})

    html = response.content.decode()
    assert response.status_code == 422
    assert "Write something before adding the note." in html
    assert 'aria-invalid="true"' in html
    assert ("<html" in html) is not htmx
    assert TicketNote.objects.count() == before


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_oversized_note_is_refused_with_a_message(contact_client, world, htmx):
    """A note over NOTE_MAX_LENGTH answers 422 naming the limit, keeps the text, and saves nothing."""
    before = TicketNote.objects.count()
    text = "x" * (settings.NOTE_MAX_LENGTH + 1)

    response = contact_client.post(note_url(world["ticket"]), {"text": text}, headers=HTMX if htmx else {})

    html = response.content.decode()
    assert response.status_code == 422
    assert f"at most {settings.NOTE_MAX_LENGTH} characters (it has {settings.NOTE_MAX_LENGTH + 1})" in html
    assert text in html  # the writer's text is not lost
    assert TicketNote.objects.count() == before


def test_a_note_of_exactly_the_limit_is_accepted(contact_client, world):
    """NOTE_MAX_LENGTH characters is still allowed."""
    response = contact_client.post(note_url(world["ticket"]), {"text": "y" * settings.NOTE_MAX_LENGTH})

    assert response.status_code == 302
    assert TicketNote.objects.filter(text="y" * settings.NOTE_MAX_LENGTH).exists()


def test_note_text_is_escaped(contact_client, world):
    """Markup in a note is shown as text, never run."""
    contact_client.post(note_url(world["ticket"]), {"text": "<script>alert(1)</script>"})

    html = contact_client.get(detail_url(world["ticket"])).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_note_form_only_accepts_post(contact_client, world):
    """The note URL is a form target; a GET is not allowed."""
    assert contact_client.get(note_url(world["ticket"])).status_code == 405


# --- Creating tickets ---------------------------------------------------------------------------


def test_contact_with_permission_opens_a_ticket(contact_client, world):
    """A contact allowed to create tickets gets the form, and a valid post opens one for their company."""
    may_create_tickets(world["contact"])

    assert contact_client.get(create_url()).status_code == 200
    response = contact_client.post(
        create_url(), {"summary": "Screen flickers", "description": "Since today", "priority": "high"}
    )

    ticket = Ticket.objects.get(summary="Screen flickers")
    assert response.status_code == 302
    assert response["Location"] == detail_url(ticket)
    assert (ticket.company, ticket.contact, ticket.priority) == (world["contact"].company, world["contact"], "high")
    assert f"Ticket #{ticket.number} opened." in contact_client.get(response["Location"]).content.decode()


def test_create_permission_can_come_from_the_company(contact_client, world):
    """The company's create_ticket override lets its contacts open tickets."""
    CompanyPermission.objects.create(company=world["contact"].company, feature=CREATE_TICKET, access=Access.ALLOW)

    assert contact_client.get(create_url()).status_code == 200


def test_new_ticket_button_follows_the_permission(contact_client, world):
    """The list offers New ticket only to contacts who may create tickets."""
    assert "New ticket" not in contact_client.get(list_url()).content.decode()

    may_create_tickets(world["contact"])

    assert "New ticket" in contact_client.get(list_url()).content.decode()


@pytest.mark.parametrize("access", [None, Access.DENY, Access.INHERIT], ids=["no-row", "deny", "inherit"])
def test_contact_without_permission_gets_403_on_the_create_form(contact_client, world, access):
    """Without create_ticket, both the form and a direct post are forbidden, and nothing is saved."""
    if access:
        may_create_tickets(world["contact"], access=access)

    assert contact_client.get(create_url()).status_code == 403
    assert contact_client.post(create_url(), {"summary": "Let me in", "priority": "low"}).status_code == 403
    assert not Ticket.objects.filter(summary="Let me in").exists()


def test_contact_denied_at_contact_level_in_an_allowed_company_gets_403(contact_client, world):
    """The contact's deny beats the company's allow."""
    CompanyPermission.objects.create(company=world["contact"].company, feature=CREATE_TICKET, access=Access.ALLOW)
    may_create_tickets(world["contact"], access=Access.DENY)

    assert contact_client.get(create_url()).status_code == 403


@pytest.mark.parametrize("summary", ["", "    "], ids=["empty", "whitespace"])
def test_ticket_without_summary_is_refused(contact_client, world, summary):
    """No summary: 422, a clear message, the description kept, and no ticket saved."""
    may_create_tickets(world["contact"])
    before = Ticket.objects.count()

    response = contact_client.post(create_url(), {"summary": summary, "description": "Keep me", "priority": "low"})

    html = response.content.decode()
    assert response.status_code == 422
    assert "Give the ticket a short summary." in html
    assert "Keep me" in html
    assert Ticket.objects.count() == before


def test_a_post_with_no_fields_at_all_is_refused(contact_client, world):
    """An empty POST body is a ticket without a summary too, not a fresh form."""
    may_create_tickets(world["contact"])
    before = Ticket.objects.count()

    response = contact_client.post(create_url(), {})

    assert response.status_code == 422
    assert "Give the ticket a short summary." in response.content.decode()
    assert Ticket.objects.count() == before


def test_forged_company_id_is_refused(contact_client, world):
    """A post naming another company is refused with an "own company" message, and nothing is saved."""
    may_create_tickets(world["contact"])
    before = Ticket.objects.count()

    response = contact_client.post(
        create_url(), {"summary": "Planted", "priority": "low", "company": world["other"].company_id}
    )

    assert response.status_code == 422
    assert "You can only open tickets for your own company." in response.content.decode()
    assert Ticket.objects.count() == before
    assert not Ticket.objects.filter(summary="Planted").exists()


def test_own_company_id_in_the_post_is_accepted(contact_client, world):
    """Naming one's own company is harmless."""
    may_create_tickets(world["contact"])

    response = contact_client.post(
        create_url(), {"summary": "Honest", "priority": "low", "company": world["contact"].company_id}
    )

    assert response.status_code == 302
    assert Ticket.objects.get(summary="Honest").company == world["contact"].company


def test_overlong_summary_and_bad_priority_are_refused(contact_client, world):
    """Field limits and choices are checked before anything is saved."""
    may_create_tickets(world["contact"])
    before = Ticket.objects.count()

    response = contact_client.post(create_url(), {"summary": "s" * 201, "priority": "urgent!!"})

    html = response.content.decode()
    assert response.status_code == 422
    assert "at most 200 characters" in html
    assert "Select a valid choice" in html
    assert Ticket.objects.count() == before


# --- CSRF ---------------------------------------------------------------------------------------


def test_posts_without_a_csrf_token_are_refused(world):
    """With CSRF checks on, a note or ticket post lacking the token is forbidden and saves nothing."""
    may_create_tickets(world["contact"])
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["contact"].user)
    before = (Ticket.objects.count(), TicketNote.objects.count())

    assert client.post(note_url(world["ticket"]), {"text": "No token"}).status_code == 403
    assert client.post(note_url(world["ticket"]), {"text": "No token"}, headers=HTMX).status_code == 403
    assert client.post(create_url(), {"summary": "No token", "priority": "low"}).status_code == 403

    assert (Ticket.objects.count(), TicketNote.objects.count()) == before


def test_htmx_posts_with_the_page_csrf_header_are_accepted(world):
    """The token the page puts in hx-headers is what lets htmx posts through."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["contact"].user)
    html = client.get(detail_url(world["ticket"])).content.decode()
    token = re.search(r"hx-headers='\{\"X-CSRFToken\": \"([^\"]+)\"\}'", html).group(1)

    response = client.post(note_url(world["ticket"]), {"text": "With token"}, headers={**HTMX, "X-CSRFToken": token})

    assert response.status_code == 200
    assert TicketNote.objects.filter(text="With token").exists()


# --- Search, filters and the htmx list ----------------------------------------------------------


def test_list_search_and_status_filter(client, f, world):
    """The search box and status filter narrow the list, and the empty result says why."""
    contact = world["contact"]
    f.make_ticket(contact=contact, summary="VPN drops hourly", status=Ticket.Status.RESOLVED)
    client.force_login(contact.user)

    searched = client.get(list_url(), {"q": "vpn"}).content.decode()
    assert "VPN drops hourly" in searched and "Our printer" not in searched

    by_number = client.get(list_url(), {"q": f"#{world['ticket'].pk}"}).content.decode()
    assert "Our printer" in by_number and "VPN drops" not in by_number

    open_only = client.get(list_url(), {"status": "open"}).content.decode()
    assert "Our printer" in open_only and "VPN drops" not in open_only

    resolved = client.get(list_url(), {"status": "resolved"}).content.decode()
    assert "VPN drops" in resolved and "Our printer" not in resolved

    nothing = client.get(list_url(), {"q": "no such words"}).content.decode()
    assert "No tickets match your search." in nothing


def test_list_search_cannot_reach_another_company(contact_client, world):
    """Searching for another company's name or number finds nothing for a contact."""
    for query in ("Theirs", "mail server", f"#{world['other_ticket'].pk}"):
        html = contact_client.get(list_url(), {"q": query}).content.decode()
        assert "Their mail server" not in html, query


def test_htmx_list_request_returns_only_the_rows(contact_client, world):
    """An htmx search answers with the table alone, not the page around it."""
    response = contact_client.get(list_url(), {"q": "printer"}, headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<table class="tickets">')
    assert "<html" not in html and 'class="filters"' not in html and "<h1" not in html
    assert "Our printer prints blank pages" in html


def test_list_pages_long_lists(client, f):
    """More than a page of tickets splits into pages that keep the search."""
    contact = f.make_contact()
    for n in range(51):
        f.make_ticket(contact=contact, summary=f"Issue {n}")
    client.force_login(contact.user)

    first = client.get(list_url(), {"q": "Issue"}).content.decode()
    second = client.get(list_url(), {"q": "Issue", "page": 2}).content.decode()

    assert "Page 1 of 2" in first and "q=Issue" in first
    assert first.count('data-label="Summary"') == 50
    assert second.count('data-label="Summary"') == 1


def test_list_query_count_does_not_grow_with_tickets(client, f):
    """The list page costs the same number of queries for 3 tickets as for 30."""
    engineer = f.make_engineer()
    client.force_login(engineer.user)

    def count_queries() -> int:
        with statements_run() as statements:
            assert client.get(list_url()).status_code == 200
        return len(statements)

    for _ in range(3):
        f.make_note(ticket=f.make_ticket(board=f.make_board()))
    few = count_queries()
    for _ in range(27):
        f.make_note(ticket=f.make_ticket(board=f.make_board()))
    many = count_queries()

    assert many == few


def test_the_notes_tab_counts_past_chats_without_reading_their_transcripts(client, f):
    """Notes shows how many chats the ticket had; only the Chat history tab reads what was said."""
    from chat import services as chat_services

    contact = f.make_contact(company=f.make_company(chat="allow"))
    ticket = f.make_ticket(contact=contact)
    engineer = f.make_engineer(queues=[f.make_queue(is_default=True)])
    request = chat_services.request_chat(contact=contact, ticket=ticket)
    room = chat_services.answer_request(engineer=engineer, request_id=request.pk)
    chat_services.send_message(room_id=room.pk, user=contact.user, body="The toner is smoking", client_msg_id="m1")
    chat_services.end_room(room_id=room.pk, engineer=engineer)
    quiet = f.make_ticket(contact=contact)
    client.force_login(contact.user)

    with statements_run() as statements:
        notes = client.get(detail_url(ticket)).content.decode()
    history = client.get(detail_url(ticket) + "?tab=history").content.decode()
    no_chats = client.get(detail_url(quiet) + "?tab=history").content.decode()

    assert 'Chat history <span class="count">1</span>' in notes and "The toner is smoking" not in notes
    assert statements and not [sql for sql in statements if "chat_chatmessage" in sql]
    assert "The toner is smoking" in history
    assert 'id="tab-history" href="?tab=history" aria-controls="tab-panel" aria-selected="true"' in history
    assert 'id="tab-history"' not in no_chats and 'aria-selected="true"' in no_chats


def test_a_past_chat_is_headed_by_whom_it_was_with(client, f):
    """The client reads the engineer's name over a past chat, the engineer the client's: not its start time twice."""
    from chat import services as chat_services

    contact = f.make_contact(first_name="Carol", last_name="Diaz", company=f.make_company(chat="allow"))
    ticket = f.make_ticket(contact=contact)
    engineer = f.make_engineer(display_name="Dana Reyes", queues=[f.make_queue(is_default=True)])
    room = chat_services.answer_request(
        engineer=engineer, request_id=chat_services.request_chat(contact=contact, ticket=ticket).pk
    )
    chat_services.end_room(room_id=room.pk, engineer=engineer)

    client.force_login(contact.user)
    assert ">Chat with Dana Reyes</h3>" in client.get(detail_url(ticket) + "?tab=history").content.decode()
    client.force_login(engineer.user)
    assert ">Chat with Carol Diaz</h3>" in client.get(detail_url(ticket) + "?tab=history").content.decode()


# --- Time entries on the staff ticket page ----------------------------------------------------


@pytest.fixture
def entries(f, world):
    """Dana's billable entry with a note, and Sam's non-billable one, on our ticket."""
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from tickets.services import add_time_entry

    start = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=3)
    sam = f.make_engineer(display_name="Sam Okafor")
    dana_entry = add_time_entry(
        ticket=world["ticket"], engineer=world["engineer"], started=start, ended=start + timedelta(minutes=20),
        hours=Decimal("0.50"), notes="Swapped the toner <b>cartridge</b>",
    )  # fmt: skip
    sam_entry = add_time_entry(
        ticket=world["ticket"], engineer=sam, started=start, ended=start + timedelta(hours=1),
        hours=Decimal("1.00"), billable=False,
    )  # fmt: skip
    return {"start": start, "dana": dana_entry, "sam": sam_entry, "sam_engineer": sam}


def edit_url(entry):
    return reverse("tickets:time_entry_edit", args=[entry.ticket_id, entry.pk])


def test_engineers_see_the_tickets_time_entries(engineer_client, world, entries):
    """Engineer, start, end, hours, billable and notes (escaped); Edit only on the viewer's own."""
    from deskchat.timefmt import format_when

    html = engineer_client.get(detail_url(world["ticket"])).content.decode()
    assert 'Time entries <span class="count">2</span>' in html
    assert "Dana Reyes" in html and "0.50 h" in html and "Sam Okafor" in html and "1.00 h" in html
    assert "Billable" in html and "Not billable" in html
    assert format_when(entries["start"]) in html
    assert "Swapped the toner &lt;b&gt;cartridge&lt;/b&gt;" in html
    assert edit_url(entries["dana"]) in html and edit_url(entries["sam"]) not in html


def test_contacts_never_see_time_entries(contact_client, world, entries):
    html = contact_client.get(detail_url(world["ticket"])).content.decode()
    assert "Time entries" not in html and "0.50 h" not in html
    assert contact_client.get(edit_url(entries["dana"])).status_code == 404


def test_the_author_corrects_their_time_entry_in_place(engineer_client, world, entries):
    """The htmx form comes pre-filled; a valid post saves and returns the corrected card."""
    from deskchat.timefmt import format_when

    form = engineer_client.get(edit_url(entries["dana"]), headers=HTMX).content.decode()
    assert f'value="{format_when(entries["start"])}"' in form and "<html" not in form
    start, end = format_when(entries["start"]), format_when(entries["start"] + timedelta_minutes(45))
    response = engineer_client.post(
        edit_url(entries["dana"]),
        {"started": start, "ended": end, "hours": "", "notes": "Toner and drum"},
        headers=HTMX,
    )
    assert response.status_code == 200
    entries["dana"].refresh_from_db()
    assert str(entries["dana"].hours) == "0.75" and entries["dana"].notes == "Toner and drum"
    assert not entries["dana"].billable  # the box was not ticked
    assert "0.75 h" in response.content.decode() and "Toner and drum" in response.content.decode()


def test_a_correction_without_htmx_redirects_to_the_ticket(engineer_client, world, entries):
    from deskchat.timefmt import format_when

    when = format_when(entries["start"])
    response = engineer_client.post(
        edit_url(entries["dana"]), {"started": when, "ended": when, "hours": "0.25", "billable": "on"}
    )
    assert response.status_code == 302 and response["Location"] == detail_url(world["ticket"])
    entries["dana"].refresh_from_db()
    assert str(entries["dana"].hours) == "0.25"


def test_another_engineer_is_refused_the_correction(engineer_client, world, entries):
    """Dana may not open or post Sam's entry's form; nothing changes."""
    from deskchat.timefmt import format_when

    assert engineer_client.get(edit_url(entries["sam"]), headers=HTMX).status_code == 403
    when = format_when(entries["start"])
    response = engineer_client.post(edit_url(entries["sam"]), {"started": when, "ended": when, "hours": "9"})
    assert response.status_code == 403
    entries["sam"].refresh_from_db()
    assert str(entries["sam"].hours) == "1.00"


def test_a_bad_correction_says_why_and_saves_nothing(engineer_client, world, entries):
    response = engineer_client.post(
        edit_url(entries["dana"]), {"started": "yesterday-ish", "ended": "", "hours": "30"}, headers=HTMX
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert "Write it like Dec 2, 2026 09:30." in html and "This field is required." in html
    entries["dana"].refresh_from_db()
    assert str(entries["dana"].hours) == "0.50"


def test_a_time_entry_of_another_ticket_is_not_found(engineer_client, world, entries):
    url = reverse("tickets:time_entry_edit", args=[world["other_ticket"].pk, entries["dana"].pk])
    assert engineer_client.get(url).status_code == 404


def timedelta_minutes(minutes):
    from datetime import timedelta

    return timedelta(minutes=minutes)


def test_signing_notes_costs_no_query_per_author(engineer_client, world, f):
    """The notes come with their authors' profiles, so naming each author reads nothing more."""

    def count_queries() -> int:
        with statements_run() as statements:
            assert engineer_client.get(detail_url(world["ticket"])).status_code == 200
        return len(statements)

    few = count_queries()
    for n in range(4):
        f.make_note(ticket=world["ticket"], author=f.make_engineer().user, text=f"Engineer note {n}")
        f.make_note(ticket=world["ticket"], author=f.make_contact(company=world["contact"].company).user)
    assert count_queries() == few
