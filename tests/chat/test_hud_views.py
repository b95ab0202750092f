"""The Staff HUD's pages: who may open them, the chat log, time entries, invitations, supervisors."""

import re
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from chat import services
from chat.hud_views import rounded_hours
from chat.models import ChatParticipant, ChatRequest, ChatRoom
from deskchat.timefmt import TIME_ZONE_COOKIE, format_when
from tests.queries import statements_run
from tickets.models import TimeEntry

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def chat_between(desk, *, minutes: float = 4) -> "ChatRoom":  # noqa: F821
    """Answer a request, exchange two messages, and have Dana leave after `minutes`."""
    request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
    room = services.answer_request(engineer=desk.dana, request_id=request.pk)
    services.send_message(
        room_id=room.pk, user=desk.contact.user, body="It dropped again <b>now</b>", client_msg_id="c1"
    )
    services.send_message(room_id=room.pk, user=desk.dana.user, body="Looking at it", client_msg_id="d1")
    services.leave_room(room_id=room.pk, user=desk.dana.user)
    joined = timezone.now() - timedelta(minutes=minutes)
    ChatParticipant.objects.filter(room=room, user=desk.dana.user).update(joined_at=joined, left_at=timezone.now())
    return room


# --- Access ---------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_sign_in(client):
    """Every HUD page asks an anonymous visitor to sign in first."""
    for url in (
        reverse("hud"),
        reverse("hud_supervisor"),
        reverse("hud_transcript", args=[1]),
        reverse("hud_time_entry", args=[1]),
        reverse("hud_ticket_chat", args=[1]),
    ):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url


def test_a_contact_is_refused_every_hud_page(client, desk):
    """A client gets 403 from the HUD, the supervisor view and every session helper."""
    room = chat_between(desk)
    client.force_login(desk.contact.user)
    for url in (
        reverse("hud"),
        reverse("hud_supervisor"),
        reverse("hud_transcript", args=[room.pk]),
        reverse("hud_time_entry", args=[room.pk]),
        reverse("hud_ticket_panel", args=[desk.ticket.pk]),
        reverse("hud_ticket_chat", args=[desk.ticket.pk]),
        reverse("hud_invite_options", args=[room.pk]),
    ):
        assert client.get(url, **HTMX).status_code == 403, url
    assert client.post(reverse("hud_ticket_chat", args=[desk.ticket.pk])).status_code == 403
    assert not ChatRequest.objects.filter(kind=ChatRequest.Kind.INVITATION).exists()


def test_a_refused_page_explains_itself_on_the_site_layout(client, desk):
    """The 403 page says why in plain words, inside the site's layout, with a way back."""
    client.force_login(desk.contact.user)
    response = client.get(reverse("hud"))
    assert response.status_code == 403
    page = response.content.decode()
    assert "You can't open this page" in page and "The HUD is for engineers." in page
    assert 'href="/tickets/"' in page and "Back to your tickets" in page


def test_engineers_land_on_the_hud(client, desk):
    """The front page sends an engineer to the HUD, which connects to the staff socket."""
    client.force_login(desk.dana.user)
    response = client.get(reverse("home"), follow=True)
    assert response.redirect_chain[-1][0] == reverse("hud")
    html = response.content.decode()
    assert 'ws-connect="/ws/hud/"' in html
    assert "Chat queue" in html and "Nobody is waiting." in html
    assert 'name="availability" value="available" checked' in html
    assert "Supervisor view" not in html


def test_the_hud_lists_waiting_requests_with_their_wait(client, desk):
    """A waiting request shows its client, company, ticket and the seconds waited so far."""
    request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
    ChatRequest.objects.filter(pk=request.pk).update(requested_at=timezone.now() - timedelta(seconds=42))
    client.force_login(desk.dana.user)
    html = client.get(reverse("hud")).content.decode()
    assert f'data-request-id="{request.pk}"' in html
    assert "Carol Client" in html and "Ours Ltd" in html and "Outlook keeps asking for my password" in html
    assert 'data-waited="42"' in html
    assert 'aria-label="waiting time">0:42</span>' in html  # m:ss from the first drawing, as the timer ticks on
    assert 'class="hud-queue overdue"' in html  # 42 s is past the 30 s alert


# --- The chat log ---------------------------------------------------------------------------


def test_the_chat_log_is_plain_text_with_times_and_names(client, desk):
    """Copy chat log fetches a text/plain transcript; user text comes back exactly as typed."""
    room = chat_between(desk)
    client.force_login(desk.dana.user)
    response = client.get(reverse("hud_transcript", args=[room.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    text = response.content.decode()
    assert f"Chat #{room.pk} on ticket #{desk.ticket.pk} with Carol Client, started " in text
    assert "Carol Client: It dropped again <b>now</b>" in text
    assert "Dana Reyes: Looking at it" in text
    stamp = format_when(room.messages.get(client_msg_id="d1").created)
    assert f"[{stamp}] Dana Reyes: Looking at it" in text


def test_the_chat_log_is_written_in_the_viewers_time_zone_which_it_names(client, desk):
    """A browser in New York gets New York times, and the log says which zone they are in."""
    room = chat_between(desk)
    client.force_login(desk.dana.user)
    client.cookies[TIME_ZONE_COOKIE] = "America/New_York"
    text = client.get(reverse("hud_transcript", args=[room.pk])).content.decode()
    created = room.messages.get(client_msg_id="d1").created
    with timezone.override("America/New_York"):
        stamp = format_when(created)
    assert f"[{stamp}] Dana Reyes: Looking at it" in text and "(America/New_York)" in text.splitlines()[0]


def test_the_chat_log_of_a_missing_room_is_not_found(client, desk):
    client.force_login(desk.dana.user)
    assert client.get(reverse("hud_transcript", args=[999_999])).status_code == 404


# --- Time entries ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "step", "hours"),
    [
        (0, 15, "0.25"),
        (4, 15, "0.25"),
        (15, 15, "0.25"),
        (16, 15, "0.50"),
        (61, 15, "1.25"),
        (7, 6, "0.20"),
        (20, 0, "0.33"),
    ],
)
def test_time_is_rounded_up_to_whole_steps(minutes, step, hours):
    """A chat is billed in whole steps of TIME_ENTRY_ROUNDING_MINUTES, at least one."""
    start = timezone.now()
    assert rounded_hours(start, start + timedelta(minutes=minutes), step_minutes=step) == Decimal(hours)


def test_the_time_entry_form_is_prefilled_from_the_chat(client, desk, settings):
    """Start and end are the engineer's time in the chat, hours are rounded, notes the transcript."""
    settings.TIME_ENTRY_ROUNDING_MINUTES = 15
    room = chat_between(desk, minutes=16)
    part = ChatParticipant.objects.get(room=room, user=desk.dana.user)
    client.force_login(desk.dana.user)
    response = client.get(reverse("hud_time_entry", args=[room.pk]), **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    # In the one format every screen writes moments in, not the browser's datetime-local format.
    start, end = format_when(part.joined_at), format_when(part.left_at)
    assert f'name="started" value="{start}"' in html and f'name="ended" value="{end}"' in html
    assert 'name="hours" value="0.50"' in html
    assert "Dana Reyes: Looking at it" in html
    assert "It dropped again &lt;b&gt;now&lt;/b&gt;" in html  # escaped in the form
    assert "<html" not in html  # the partial, for the session panel


def test_saving_a_time_entry_records_it_on_the_ticket(client, desk):
    """The saved entry has the posted times, hours and notes, and the panel says so."""
    room = chat_between(desk)
    client.force_login(desk.dana.user)
    started = timezone.localtime(timezone.now() - timedelta(minutes=20)).replace(microsecond=0)
    ended = started + timedelta(minutes=20)
    response = client.post(
        reverse("hud_time_entry", args=[room.pk]),
        {
            "started": started.strftime("%Y-%m-%dT%H:%M:%S"),
            "ended": ended.strftime("%Y-%m-%dT%H:%M:%S"),
            "hours": "",
            "notes": "Reset the VPN profile",
            "billable": "on",
        },
        **HTMX,
    )
    assert response.status_code == 200
    entry = TimeEntry.objects.get(ticket=desk.ticket)
    assert entry.engineer == desk.dana
    assert entry.hours == Decimal("0.50")  # empty hours: 20 minutes rounded up to 30
    assert (entry.started, entry.ended) == (started, ended)
    assert entry.notes == "Reset the VPN profile" and entry.billable
    assert 'data-hours="0.50"' in response.content.decode()


def test_a_time_entry_ending_before_it_starts_is_refused(client, desk):
    room = chat_between(desk)
    client.force_login(desk.dana.user)
    now = timezone.localtime(timezone.now()).replace(microsecond=0)
    response = client.post(
        reverse("hud_time_entry", args=[room.pk]),
        {
            "started": now.strftime("%Y-%m-%dT%H:%M:%S"),
            "ended": (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S"),
            "hours": "0.25",
        },
        **HTMX,
    )
    assert response.status_code == 422
    assert "The end can&#x27;t be before the start." in response.content.decode()
    assert not TimeEntry.objects.exists()


def test_a_time_entry_without_htmx_redirects_to_the_hud(client, desk):
    room = chat_between(desk)
    client.force_login(desk.dana.user)
    now = timezone.localtime(timezone.now()).replace(microsecond=0)
    response = client.post(
        reverse("hud_time_entry", args=[room.pk]),
        {
            "started": now.strftime("%Y-%m-%dT%H:%M:%S"),
            "ended": now.strftime("%Y-%m-%dT%H:%M:%S"),
            "hours": "0.25",
        },
    )
    assert response.status_code == 302 and response["Location"] == reverse("hud")
    assert TimeEntry.objects.get().hours == Decimal("0.25")


def test_only_the_chats_engineers_enter_time_for_it(client, desk):
    """An engineer who was not in the chat gets 404 from its time entry."""
    room = chat_between(desk)
    client.force_login(desk.sam.user)
    assert client.get(reverse("hud_time_entry", args=[room.pk]), **HTMX).status_code == 404


def test_a_left_session_comes_back_after_a_reload_until_time_is_entered(client, desk):
    """The HUD re-renders a session the engineer left, unlocked, until a time entry wraps it up."""
    room = chat_between(desk)
    client.force_login(desk.dana.user)
    html = client.get(reverse("hud")).content.decode()
    assert f'id="session-{room.pk}"' in html and 'data-state="closed"' in html
    assert "Looking at it" in html and "It dropped again &lt;b&gt;now&lt;/b&gt;" in html
    assert 'data-action="copy-log" >Copy chat log' in html  # not disabled
    now = timezone.now()
    TimeEntry.objects.create(ticket=desk.ticket, engineer=desk.dana, started=now, ended=now, hours=1)
    assert f'id="session-{room.pk}"' not in client.get(reverse("hud")).content.decode()


def test_a_reloaded_session_says_how_far_the_client_has_read_even_after_they_left(client, desk):
    """The session panel carries the client's read position from the database ("Seen" is drawn
    there), also once the chat has ended and the client's participation is closed."""
    room = chat_between(desk)
    services.mark_read(room_id=room.pk, user=desk.contact.user, seq=3, role=ChatParticipant.Role.CLIENT)
    client.force_login(desk.dana.user)
    assert 'data-seen-seq="3"' in client.get(reverse("hud")).content.decode()
    services.leave_room(room_id=room.pk, user=desk.contact.user)
    assert ChatRoom.objects.get(pk=room.pk).state == ChatRoom.State.ENDED
    html = client.get(reverse("hud")).content.decode()
    assert f'id="session-{room.pk}"' in html and 'data-seen-seq="3"' in html
    assert f'<div id="room-{room.pk}-seen" class="seen-position" hidden></div>' in html


def test_the_hud_reads_its_closed_sessions_in_the_same_queries_however_many_there_are(client, desk, f):
    """One closed session or four: the HUD page makes the same number of queries (no query per session)."""
    client.force_login(desk.dana.user)

    def hud_queries() -> int:
        with statements_run() as statements:
            html = client.get(reverse("hud")).content.decode()
        return len(statements), html.count('data-state="closed"')

    chat_between(desk)
    one = hud_queries()
    for n in range(3):
        contact = f.make_contact(company=desk.company, first_name=f"Other{n}")
        chat_between(replace(desk, contact=contact, ticket=f.make_ticket(contact=contact, summary=f"Another {n}")))
    four = hud_queries()
    assert (one[1], four[1]) == (1, 4)
    assert four[0] == one[0]


# --- Inviting a colleague -------------------------------------------------------------------


def test_the_invite_menu_lists_colleagues_as_they_are_now(client, desk, f):
    """Opening Invite re-reads availability: a colleague who just became available comes first."""
    request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
    room = services.answer_request(engineer=desk.dana, request_id=request.pk)
    aaron = f.make_engineer(display_name="Aaron Away", availability="away")
    sam = desk.sam
    sam.availability = "busy"
    sam.last_seen_at = timezone.now()
    sam.save()
    client.force_login(desk.dana.user)
    url = reverse("hud_invite_options", args=[room.pk])
    before = client.get(url, **HTMX).content.decode()
    assert before.index("Aaron Away · offline") < before.index("Sam Okafor · busy")
    services.set_availability(engineer=sam, availability="available")
    after = client.get(url, **HTMX).content.decode()
    assert after.index("Sam Okafor · available") < after.index("Aaron Away · offline")
    assert "Dana Reyes" not in after
    assert f'value="{aaron.pk}"' in after


def test_only_the_chats_engineers_get_its_invite_menu(client, desk, f):
    """An engineer who is not in the chat gets 404 from its Invite menu."""
    room = chat_between(desk)
    client.force_login(f.make_engineer(display_name="Outsider").user)
    assert client.get(reverse("hud_invite_options", args=[room.pk]), **HTMX).status_code == 404


def test_greetings_come_before_farewells_and_own_templates_before_shared_ones(desk):
    """The template bar offers a greeting first, and an engineer's own template before the shared one."""
    from chat import selectors
    from chat.models import MessageTemplate

    shared_bye = MessageTemplate.objects.create(kind="farewell", name="A bye", body="Bye")
    shared_hi = MessageTemplate.objects.create(kind="greeting", name="A hello", body="Hi")
    own_hi = MessageTemplate.objects.create(kind="greeting", name="Z mine", body="Hey", owner=desk.dana)
    assert selectors.templates_for(engineer=desk.dana) == [own_hi, shared_hi, shared_bye]


# --- The ticket beside a session ------------------------------------------------------------


def test_the_ticket_panel_shows_details_notes_and_chat_history(client, desk, f):
    room = chat_between(desk)
    services.leave_room(room_id=room.pk, user=desk.contact.user)  # the last one out ends it
    f.make_note(ticket=desk.ticket, author=desk.sam.user, text="Staff only hint", internal=True)
    client.force_login(desk.dana.user)
    response = client.get(reverse("hud_ticket_panel", args=[desk.ticket.pk]), **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Outlook keeps asking for my password" in html and "Ours Ltd" in html
    assert "Staff only hint" in html and "Internal" in html
    assert f"Chat #{room.pk}" in html and reverse("hud_transcript", args=[room.pk]) in html
    plain = client.get(reverse("hud_ticket_panel", args=[desk.ticket.pk]))
    assert plain.status_code == 302 and plain["Location"] == reverse("tickets:detail", args=[desk.ticket.pk])


def test_the_ticket_panel_lists_the_ten_latest_chats_counts_all_and_reads_no_transcript(client, desk, settings):
    """Eleven chats: the count says 11, ten are listed with a link to the rest, and no message is read."""
    settings.CHAT_REQUEST_RATE_PER_MINUTE = 0
    for _ in range(11):
        request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        room = services.answer_request(engineer=desk.dana, request_id=request.pk)
        services.end_room(room_id=room.pk, engineer=desk.dana)
    client.force_login(desk.dana.user)

    with statements_run() as statements:
        html = client.get(reverse("hud_ticket_panel", args=[desk.ticket.pk]), **HTMX).content.decode()

    assert 'Chat history <span class="count">11</span>' in html
    assert html.count("Chat log</a>") == 10 and "The 10 latest of 11 chats are listed" in html
    assert reverse("tickets:detail", args=[desk.ticket.pk]) + "?tab=history" in html
    assert statements and not [sql for sql in statements if 'FROM "chat_chatmessage"' in sql]


# --- Inviting a ticket's contact ------------------------------------------------------------


def test_an_engineer_invites_the_contact_from_the_ticket_and_sees_the_answer(client, desk):
    """Invite to chat shows Pending (and polls), then Rejected once the contact says no."""
    client.force_login(desk.dana.user)
    ticket_page = client.get(reverse("tickets:detail", args=[desk.ticket.pk])).content.decode()
    assert reverse("hud_ticket_chat", args=[desk.ticket.pk]) in ticket_page

    response = client.post(reverse("hud_ticket_chat", args=[desk.ticket.pk]), **HTMX)
    html = response.content.decode()
    invitation = ChatRequest.objects.get(kind=ChatRequest.Kind.INVITATION, ticket=desk.ticket)
    assert invitation.invited_by == desk.dana and invitation.state == "waiting"
    assert "Pending" in html and 'hx-trigger="every 3s"' in html

    services.reject_invitation(contact=desk.contact, request_id=invitation.pk)
    html = client.get(reverse("hud_ticket_chat", args=[desk.ticket.pk]), **HTMX).content.decode()
    assert 'data-state="rejected"' in html and "Rejected" in html and "every 3s" not in html


def test_an_accepted_invitation_shows_as_accepted(client, desk):
    client.force_login(desk.dana.user)
    client.post(reverse("hud_ticket_chat", args=[desk.ticket.pk]), **HTMX)
    invitation = ChatRequest.objects.get(kind=ChatRequest.Kind.INVITATION)
    services.accept_invitation(contact=desk.contact, request_id=invitation.pk)
    html = client.get(reverse("hud_ticket_chat", args=[desk.ticket.pk]), **HTMX).content.decode()
    assert "Accepted" in html and reverse("hud") in html


def test_inviting_a_contact_who_may_not_chat_says_why(client, desk, f):
    contact = f.make_contact(company=f.make_company(chat="deny"), first_name="Nora")
    ticket = f.make_ticket(contact=contact)
    client.force_login(desk.dana.user)
    response = client.post(reverse("hud_ticket_chat", args=[ticket.pk]), **HTMX)
    assert response.status_code == 422
    assert "is not allowed to chat" in response.content.decode()
    plain = client.post(reverse("hud_ticket_chat", args=[ticket.pk]), follow=True)
    assert "is not allowed to chat" in plain.content.decode()


def test_contacts_do_not_see_the_invite_button(client, desk):
    client.force_login(desk.contact.user)
    page = client.get(reverse("tickets:detail", args=[desk.ticket.pk])).content.decode()
    assert reverse("hud_ticket_chat", args=[desk.ticket.pk]) not in page


# --- The supervisor view --------------------------------------------------------------------


def test_only_supervisors_open_the_supervisor_view(client, desk):
    client.force_login(desk.dana.user)
    assert client.get(reverse("hud_supervisor")).status_code == 403


@pytest.fixture
def local_noon(settings):
    """Put the desk in a time zone where it is about noon now, so "today" holds the last hours
    whenever the suite runs (run just after midnight, requests from minutes ago were yesterday)."""
    offset = 12 - timezone.now().hour  # Etc/GMT-N is N hours ahead of UTC
    settings.TIME_ZONE = "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


def test_the_supervisor_sees_each_queue_and_engineer(client, desk, f, django_assert_max_num_queries, local_noon):
    """Waiting count and longest wait, today's answered/abandoned/expired and median wait, and load."""
    boss = f.make_engineer(display_name="Bea Boss", is_supervisor=True)
    network = f.make_queue(name="Network Team", priorities=["critical"], members=[desk.sam])
    now = timezone.now()

    def requested(ticket, *, ago, state="waiting", waited=None):
        request = ChatRequest.objects.create(
            ticket=ticket,
            contact=ticket.contact,
            queue=desk.queue,
            state=state,
            expires_at=now + timedelta(minutes=5),
        )
        answered_at = now - timedelta(seconds=ago - waited) if waited is not None else None
        ChatRequest.objects.filter(pk=request.pk).update(
            requested_at=now - timedelta(seconds=ago), answered_at=answered_at
        )

    room = chat_between(desk)  # answered at once
    services.join_room(room_id=room.pk, engineer=desk.dana)  # back in: one open session
    requested(f.make_ticket(contact=f.make_contact(company=desk.company)), ago=50)
    for waited in (10, 20, 60):
        requested(f.make_ticket(contact=f.make_contact(company=desk.company)), ago=300, state="answered", waited=waited)
    requested(f.make_ticket(contact=f.make_contact(company=desk.company)), ago=300, state="cancelled")
    requested(f.make_ticket(contact=f.make_contact(company=desk.company)), ago=300, state="expired")
    services.set_availability(engineer=desk.sam, availability="away")

    client.force_login(boss.user)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("hud_supervisor"), **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert "every 5s" not in html  # no polling: the supervisor socket sends the board
    desk_row = html.split(f'data-queue-id="{desk.queue.pk}"')[1].split("</tr>")[0]
    assert 'data-col="waiting">1<' in desk_row
    assert 'data-waited="5' in desk_row and ">0:5" in desk_row  # 50 s (or 51 s if the clock ticked), as m:ss
    assert 'data-col="answered">4<' in desk_row  # three above and chat_between's own
    assert 'data-col="abandoned">1<' in desk_row and 'data-col="expired">1<' in desk_row
    assert 'data-col="median">0:15<' in desk_row  # waits of about 0, 10, 20 and 60 s
    network_row = html.split(f'data-queue-id="{network.pk}"')[1].split("</tr>")[0]
    assert 'data-col="waiting">0<' in network_row and 'data-col="median">–<' in network_row
    dana_row = html.split(f'data-engineer-id="{desk.dana.pk}"')[1].split("</tr>")[0]
    assert "Available" in dana_row and 'data-col="sessions">1 / 3<' in dana_row
    sam_row = html.split(f'data-engineer-id="{desk.sam.pk}"')[1].split("</tr>")[0]
    assert "Away" in sam_row and 'data-col="sessions">0 / 3<' in sam_row
    full = client.get(reverse("hud_supervisor")).content.decode()
    assert "<html" in full and "Supervisor view" in full


def test_a_request_back_in_the_queue_waits_from_its_return_on_the_supervisor_view(client, desk, f, local_noon):
    """Its engineer left after a 10-minute chat 20 s ago: the board's longest wait is 0:20, not 10:20,
    as on the HUD's queue; answered again 5 s later, today's median wait is that 5 s."""
    boss = f.make_engineer(display_name="Bea Boss", is_supervisor=True)
    room = chat_between(desk)  # Dana, the only engineer, left: the request is back in the queue
    now = timezone.now()
    ChatRequest.objects.filter(pk=room.request_id).update(
        requested_at=now - timedelta(minutes=10, seconds=20), returned_at=now - timedelta(seconds=20)
    )
    client.force_login(boss.user)

    def desk_row():
        html = client.get(reverse("hud_supervisor"), **HTMX).content.decode()
        return html.split(f'data-queue-id="{desk.queue.pk}"')[1].split("</tr>")[0]

    row = desk_row()
    assert 'data-col="waiting">1<' in row and 'data-waited="2' in row and ">0:2" in row  # 20 s (21 if it ticked)
    services.answer_request(request_id=room.request_id, engineer=desk.sam)
    ChatRequest.objects.filter(pk=room.request_id).update(answered_at=now - timedelta(seconds=15))
    assert 'data-col="median">0:05<' in desk_row()


def test_the_supervisor_sees_who_is_offline_as_offline_with_what_they_set(client, desk, f):
    """Not "Available (offline)": an engineer without a HUD open is Offline, and what they set is said apart."""
    boss = f.make_engineer(display_name="Alex Boss", is_supervisor=True)
    services.touch_presence([desk.dana.pk])
    client.force_login(boss.user)
    html = client.get(reverse("hud_supervisor"), **HTMX).content.decode()
    dana_row = html.split(f'data-engineer-id="{desk.dana.pk}"')[1].split("</tr>")[0]
    assert "avail-available" in dana_row and "Offline" not in dana_row
    sam_row = html.split(f'data-engineer-id="{desk.sam.pk}"')[1].split("</tr>")[0]
    assert '<span class="badge avail-offline">Offline</span> <span class="muted">(set to Available)</span>' in sam_row
    assert "avail-available" not in sam_row


def test_every_cell_of_the_supervisor_totals_row_is_labelled_for_phones(client, desk, f):
    """On a phone each cell shows its column's name (data-label), the totals row too."""
    boss = f.make_engineer(display_name="Alex Boss", is_supervisor=True)
    client.force_login(boss.user)
    html = client.get(reverse("hud_supervisor"), **HTMX).content.decode()
    totals = html.split("<tfoot>")[1].split("</tfoot>")[0]
    cells = re.findall(r"<t[hd][^>]*>", totals)
    assert len(cells) == 8 and all("data-label=" in cell for cell in cells)
    assert "All queues" in totals


# --- The client of a session is who is in the chat, not the ticket's contact ------------------


@pytest.fixture
def colleague_chat(desk, f):
    """Ken, Carol's colleague, asks to chat about Carol's ticket, and Dana answers."""
    ken = f.make_contact(company=desk.company, first_name="Ken", last_name="Adams")
    request = services.request_chat(contact=ken, ticket=desk.ticket)
    room = services.answer_request(engineer=desk.dana, request_id=request.pk)
    return {"ken": ken, "room": room}


def test_a_session_names_the_contact_in_the_chat_not_the_tickets_contact(client, desk, colleague_chat):
    """Tab title, heading and the message box's label name Ken, who asked, on Carol's ticket."""
    from chat import fragments, screens

    room = colleague_chat["room"]
    context = screens.session(room.pk, viewer=desk.dana.user)
    html = fragments._render(fragments.STAFF, "session_panel", {**context, "messages": []})
    assert f'data-title="Ken Adams · #{desk.ticket.pk}"' in html
    assert "· Ken Adams, Ours Ltd</span>" in html
    assert 'aria-label="Message to Ken Adams"' in html
    assert "Carol" not in html


def test_a_greeting_greets_the_contact_in_the_chat(desk, colleague_chat):
    """{client_first_name} is the first name of who asked (or was invited), not the ticket's contact."""
    from chat.models import MessageTemplate
    from chat.selectors import render_template

    template = MessageTemplate.objects.create(kind="greeting", name="Hi", body="Hi {client_first_name}!")
    assert render_template(template, room=colleague_chat["room"], engineer=desk.dana) == "Hi Ken!"


def test_the_chat_log_and_the_ticket_panel_name_the_contact_in_the_chat(client, desk, colleague_chat):
    room = colleague_chat["room"]
    client.force_login(desk.dana.user)
    log = client.get(reverse("hud_transcript", args=[room.pk])).content.decode()
    assert log.startswith(f"Chat #{room.pk} on ticket #{desk.ticket.pk} with Ken Adams, started ")
    url = reverse("hud_ticket_panel", args=[desk.ticket.pk])
    panel = client.get(f"{url}?room={room.pk}", **HTMX).content.decode()
    assert "<dt>In this chat</dt><dd>Ken Adams" in panel and "<dt>Ticket contact</dt><dd>Carol Client" in panel
    # A session the engineer is not in names nobody.
    client.force_login(desk.sam.user)
    assert "In this chat" not in client.get(f"{url}?room={room.pk}", **HTMX).content.decode()


# --- Chat history lists ended chats only ------------------------------------------------------


def test_the_ticket_panel_neither_counts_nor_lists_a_chat_still_in_progress(client, desk):
    """A live chat is a session, not history: the count and the list grow once it ends."""
    request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
    room = services.answer_request(engineer=desk.dana, request_id=request.pk)
    client.force_login(desk.dana.user)
    url = reverse("hud_ticket_panel", args=[desk.ticket.pk])
    live = client.get(url, **HTMX).content.decode()
    assert 'Chat history <span class="count">0</span>' in live and f"Chat #{room.pk}" not in live
    services.end_room(room_id=room.pk, engineer=desk.dana)
    ended = client.get(url, **HTMX).content.decode()
    assert 'Chat history <span class="count">1</span>' in ended and f"Chat #{room.pk}" in ended


# --- Time entries on the ticket panel ---------------------------------------------------------


def test_the_ticket_panel_lists_the_tickets_time_entries(client, desk):
    """Engineer, start, end, hours, billable and notes of every entry; Edit only on one's own."""
    from tickets.services import add_time_entry

    start = timezone.now() - timedelta(hours=2)
    mine = add_time_entry(
        ticket=desk.ticket, engineer=desk.dana, started=start, ended=start + timedelta(minutes=20),
        hours=Decimal("0.50"), notes="Reset the VPN profile", billable=True,
    )  # fmt: skip
    theirs = add_time_entry(
        ticket=desk.ticket, engineer=desk.sam, started=start, ended=start + timedelta(hours=1),
        hours=Decimal("1.00"), notes="", billable=False,
    )  # fmt: skip
    client.force_login(desk.dana.user)
    html = client.get(reverse("hud_ticket_panel", args=[desk.ticket.pk]), **HTMX).content.decode()
    assert 'Time entries <span class="count">2</span>' in html
    assert "Dana Reyes" in html and "0.50 h" in html and "Billable" in html and "Reset the VPN profile" in html
    assert "Sam Okafor" in html and "1.00 h" in html and "Not billable" in html
    assert format_when(start) in html and format_when(start + timedelta(minutes=20)) in html
    assert reverse("tickets:time_entry_edit", args=[desk.ticket.pk, mine.pk]) in html
    assert reverse("tickets:time_entry_edit", args=[desk.ticket.pk, theirs.pk]) not in html


def test_saving_a_time_entry_tells_the_ticket_panels_to_reload(client, desk):
    room = chat_between(desk)
    client.force_login(desk.dana.user)
    now = format_when(timezone.now())
    response = client.post(
        reverse("hud_time_entry", args=[room.pk]), {"started": now, "ended": now, "hours": "0.25"}, **HTMX
    )
    assert response.status_code == 200 and response["HX-Trigger"] == "time-entry-saved"
    assert TimeEntry.objects.get().hours == Decimal("0.25")


def test_a_url_encoded_time_zone_cookie_is_understood(client, desk):
    """A browser that encodes the slash (America%2FNew_York) still gets its zone."""
    room = chat_between(desk)
    client.force_login(desk.dana.user)
    client.cookies[TIME_ZONE_COOKIE] = "America%2FNew_York"
    assert "(America/New_York)" in client.get(reverse("hud_transcript", args=[room.pk])).content.decode()


def test_a_bogus_time_zone_cookie_falls_back_to_the_sites_zone(client, desk, settings):
    room = chat_between(desk)
    client.force_login(desk.dana.user)
    for bogus in ("Mars/Olympus_Mons", "../../etc/passwd", "x" * 200):
        client.cookies[TIME_ZONE_COOKIE] = bogus
        first_line = client.get(reverse("hud_transcript", args=[room.pk])).content.decode().splitlines()[0]
        assert first_line.endswith(f"({settings.TIME_ZONE})")


def test_the_supervisor_sees_whom_each_engineer_chats_with(client, desk, f, colleague_chat):
    """Ken, who asked, not Carol, the ticket's contact."""
    boss = f.make_engineer(display_name="Alex Boss", is_supervisor=True)
    client.force_login(boss.user)
    html = client.get(reverse("hud_supervisor"), **HTMX).content.decode()
    dana_row = html.split(f'data-engineer-id="{desk.dana.pk}"')[1].split("</tr>")[0]
    assert f'Ken Adams <span class="muted">(#{desk.ticket.pk})</span>' in dana_row and "Carol" not in dana_row
    sam_row = html.split(f'data-engineer-id="{desk.sam.pk}"')[1].split("</tr>")[0]
    assert 'data-col="clients"><span class="muted">–</span>' in sam_row


def test_an_engineer_asked_into_the_chat_is_told_whom_it_is_with(client, desk, colleague_chat):
    """The invitation card names Ken, who is in the chat, on the HUD page and in the live fragment."""
    from chat import fragments, screens

    room = colleague_chat["room"]
    services.invite_engineer(room_id=room.pk, by=desk.dana, engineer=desk.sam, transfer=False)
    client.force_login(desk.sam.user)
    card = client.get(reverse("hud")).content.decode().split(f'id="room-invitation-{room.pk}"')[1].split("</p>")[0]
    assert f"You are invited to a chat with Ken Adams on ticket #{desk.ticket.pk} " in card
    live = fragments.room_invitation(screens.room_invitation(engineer=desk.sam, room_id=room.pk))
    assert "with Ken Adams on ticket" in live
