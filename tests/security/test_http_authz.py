"""The authorization matrix over HTTP: every page and htmx endpoint, every role.

Each row names who may use an endpoint. Everyone else is sent to sign in (302), refused (403) or
told the thing does not exist (404), and the response never contains the secrets of company A's
chat: its ticket summary, a message body, an internal note. The URLconf is walked so that a new
endpoint without a row fails `test_every_url_has_a_row`.
"""

from dataclasses import dataclass, field

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from chat.models import ChatRequest
from tickets.models import Ticket, TicketNote, TimeEntry

from .conftest import SECRET_BODY, SECRET_NOTE, SECRET_SUMMARY, user_of

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
ROLES = ["anonymous", "mallory", "ken", "eve", "carol", "dana", "sue"]
ENGINEERS = {"eve", "dana", "sue"}
COMPANY_A = {"carol", "ken"}
REFUSED = {302, 403, 404, 405}
# What each role must never read. Company A's contacts may read its ticket and their chat (the
# portal shows them on every page, error pages included), never its internal notes; engineers
# see every ticket and chat by design.
NOT_FOR = {
    "anonymous": (SECRET_SUMMARY, SECRET_BODY, SECRET_NOTE),
    "mallory": (SECRET_SUMMARY, SECRET_BODY, SECRET_NOTE),
    "ken": (SECRET_NOTE,),
    "carol": (SECRET_NOTE,),
    "eve": (),
    "dana": (),
    "sue": (),
}


@dataclass
class Row:
    name: str  # the URL name it covers
    method: str
    url: object  # world -> url
    allowed: set
    data: object = None  # world -> POST data
    htmx: bool = False
    # Roles that may open the page but must not see company A's secrets in it (a filtered list).
    filtered: set = field(default_factory=set)
    ok: tuple = (200, 302)


def _time_entry_data(world):
    return {"started": "2026-01-01T10:00:00", "ended": "2026-01-01T10:10:00", "notes": "n", "billable": "on"}


ROWS = [
    Row("tickets:list", "GET", lambda w: reverse("tickets:list"), COMPANY_A | ENGINEERS, filtered={"mallory"}),
    Row(
        "tickets:list",
        "GET",
        lambda w: reverse("tickets:list") + "?q=Zebra",
        COMPANY_A | ENGINEERS,
        htmx=True,
        filtered={"mallory"},
    ),
    Row("tickets:create", "GET", lambda w: reverse("tickets:create"), {"carol"}),
    Row(
        "tickets:create",
        "POST",
        lambda w: reverse("tickets:create"),
        {"carol"},
        data=lambda w: {"summary": "New one", "priority": "medium", "company": str(w["theirs"].pk)},
        ok=(422,),
    ),
    Row("tickets:detail", "GET", lambda w: reverse("tickets:detail", args=[w["ticket"].pk]), COMPANY_A | ENGINEERS),
    Row(
        "tickets:detail",
        "GET",
        lambda w: reverse("tickets:detail", args=[w["ticket"].pk]) + "?tab=history",
        COMPANY_A | ENGINEERS,
        htmx=True,
    ),
    Row(
        "tickets:note_add",
        "POST",
        lambda w: reverse("tickets:note_add", args=[w["ticket"].pk]),
        COMPANY_A | ENGINEERS,
        data=lambda w: {"text": "a note from the matrix"},
    ),
    Row("hud", "GET", lambda w: reverse("hud"), ENGINEERS),
    Row("hud_supervisor", "GET", lambda w: reverse("hud_supervisor"), {"sue"}),
    Row("hud_supervisor", "GET", lambda w: reverse("hud_supervisor"), {"sue"}, htmx=True),
    # Engineers see every ticket, so every chat log (chat.selectors.get_room_for_engineer).
    Row("hud_transcript", "GET", lambda w: reverse("hud_transcript", args=[w["room"].pk]), ENGINEERS),
    Row("hud_time_entry", "GET", lambda w: reverse("hud_time_entry", args=[w["room"].pk]), {"dana"}),
    Row(
        "hud_time_entry",
        "POST",
        lambda w: reverse("hud_time_entry", args=[w["room"].pk]),
        {"dana"},
        data=_time_entry_data,
        htmx=True,
    ),
    # Engineers read every ticket's time entries; only the author corrects one.
    Row(
        "tickets:time_entry",
        "GET",
        lambda w: reverse("tickets:time_entry", args=[w["ticket"].pk, w["time_entry"].pk]),
        ENGINEERS,
        htmx=True,
    ),
    Row(
        "tickets:time_entry_edit",
        "GET",
        lambda w: reverse("tickets:time_entry_edit", args=[w["ticket"].pk, w["time_entry"].pk]),
        {"dana"},
        htmx=True,
    ),
    Row(
        "tickets:time_entry_edit",
        "POST",
        lambda w: reverse("tickets:time_entry_edit", args=[w["ticket"].pk, w["time_entry"].pk]),
        {"dana"},
        data=lambda w: {"started": "Jan 1, 2026 10:00", "ended": "Jan 1, 2026 10:10", "hours": "9"},
        htmx=True,
    ),
    # Only someone who is (or was) in the chat may list whom to invite into it.
    Row("hud_invite_options", "GET", lambda w: reverse("hud_invite_options", args=[w["room"].pk]), {"dana"}, htmx=True),
    Row("hud_ticket_panel", "GET", lambda w: reverse("hud_ticket_panel", args=[w["ticket"].pk]), ENGINEERS, htmx=True),
    Row(
        "hud_ticket_chat", "GET", lambda w: reverse("hud_ticket_chat", args=[w["carl_ticket"].pk]), ENGINEERS, htmx=True
    ),
    Row(
        "hud_ticket_chat",
        "POST",
        lambda w: reverse("hud_ticket_chat", args=[w["carl_ticket"].pk]),
        ENGINEERS,
        htmx=True,
    ),
]
# Pages anyone may open: they show nothing of any company.
PUBLIC = {"home", "login", "logout", "favicon"}  # favicon: a redirect to a static file


def _names(patterns, namespace=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                continue  # the admin is covered by test_admin_is_for_superusers_only
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _names(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern):
            yield f"{namespace}{pattern.name}"


def test_every_url_has_a_row():
    """Every named URL outside the admin is either public or has a row in the matrix."""
    covered = {row.name for row in ROWS} | PUBLIC
    missing = sorted(set(_names(get_resolver().url_patterns)) - covered)
    assert not missing, f"add these URLs to the authorization matrix: {missing}"


def _request(client, world, row: Row, role: str):
    user = user_of(world, role)
    if user is not None:
        client.force_login(user)
    url = row.url(world)
    extra = HTMX if row.htmx else {}
    if row.method == "GET":
        return client.get(url, **extra)
    return client.post(url, row.data(world) if row.data else {}, **extra)


def _row_id(row: Row) -> str:
    return f"{row.method}-{row.name}{'-htmx' if row.htmx else ''}"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("row", ROWS, ids=[_row_id(r) for r in ROWS])
def test_only_allowed_roles_get_through(client, world, row, role):
    """The allowed roles succeed; everyone else gets 302/403/404 and none of company A's secrets."""
    response = _request(client, world, row, role)
    body = response.content.decode(errors="replace")
    if role in row.allowed:
        assert response.status_code in row.ok, (role, response.status_code)
        if response.status_code == 302:
            assert "/login/" not in response["Location"], "an allowed role was sent to sign in"
        return
    if role in row.filtered:
        assert response.status_code == 200
    else:
        assert response.status_code in REFUSED, (role, response.status_code)
        if role == "anonymous":
            assert response.status_code == 302 and reverse("login") in response["Location"]
    for secret in NOT_FOR[role]:
        assert secret not in body, f"{role} saw {secret!r}"


@pytest.mark.parametrize("role", ["anonymous", "mallory"])
def test_refused_writes_change_nothing(client, world, role):
    """A refused note, time entry or invitation leaves no row behind."""
    notes, entries, invitations = TicketNote.objects.count(), TimeEntry.objects.count(), ChatRequest.objects.count()
    for row in ROWS:
        if row.method == "POST" and role not in row.allowed:
            _request(client, world, row, role)
    assert (TicketNote.objects.count(), TimeEntry.objects.count(), ChatRequest.objects.count()) == (
        notes,
        entries,
        invitations,
    )


def test_a_contact_cannot_open_a_ticket_for_another_company(client, world):
    """A forged company field is refused and no ticket appears in the other company."""
    client.force_login(world["carol"].user)
    before = Ticket.objects.filter(company=world["theirs"]).count()
    response = client.post(
        reverse("tickets:create"), {"summary": "x", "priority": "medium", "company": str(world["theirs"].pk)}
    )
    assert response.status_code == 422
    assert Ticket.objects.filter(company=world["theirs"]).count() == before


@pytest.mark.parametrize("role", ["carol", "ken"])
def test_clients_never_see_internal_notes(client, world, role):
    """The internal note on company A's ticket is hidden from its own contacts, on the page and the partial."""
    client.force_login(user_of(world, role))
    page = client.get(reverse("tickets:detail", args=[world["ticket"].pk])).content.decode()
    assert SECRET_SUMMARY in page and SECRET_NOTE not in page
    for tab in ("notes", "history"):
        partial = client.get(reverse("tickets:detail", args=[world["ticket"].pk]), {"tab": tab}, **HTMX)
        assert SECRET_NOTE not in partial.content.decode()


def test_a_client_cannot_mark_a_note_internal(client, world):
    """The internal flag from a client is ignored: the note is public."""
    client.force_login(world["carol"].user)
    client.post(reverse("tickets:note_add", args=[world["ticket"].pk]), {"text": "forged", "internal": "on"})
    assert TicketNote.objects.get(text="forged").internal is False


def test_searching_the_list_does_not_reveal_other_companies(client, world):
    """Mallory searching for A's summary words or ticket number finds nothing."""
    client.force_login(world["mallory"].user)
    for query in ("Zebra", f"#{world['ticket'].pk}", "Ours"):
        body = client.get(reverse("tickets:list"), {"q": query}).content.decode()
        assert SECRET_SUMMARY not in body


ADMIN_URLS = [
    lambda w: reverse("admin:index"),
    lambda w: reverse("admin:tickets_ticket_changelist"),
    lambda w: reverse("admin:tickets_ticket_change", args=[w["ticket"].pk]),
    lambda w: reverse("admin:chat_chatroom_change", args=[w["room"].pk]),
    lambda w: reverse("admin:accounts_contact_changelist"),
]


@pytest.mark.parametrize("role", ["anonymous", "mallory", "carol", "eve", "dana"])
@pytest.mark.parametrize("url", ADMIN_URLS)
def test_admin_is_for_superusers_only(client, world, f, role, url):
    """Contacts and anonymous visitors are sent to the admin sign-in; engineers, who may keep only
    their own message templates there, are refused the rest; nobody but an admin sees company A's
    data there."""
    user = user_of(world, role)
    if user is not None:
        client.force_login(user)
    response = client.get(url(world))
    body = response.content.decode()
    assert response.status_code in (200, 302, 403)
    if response.status_code == 200:  # an engineer's index: their templates and nothing else
        assert reverse("admin:chat_messagetemplate_changelist") in body
        assert reverse("admin:tickets_ticket_changelist") not in body
        assert reverse("admin:accounts_contact_changelist") not in body
    for secret in (SECRET_SUMMARY, SECRET_BODY, SECRET_NOTE):
        assert secret not in body


def test_the_admin_shows_an_administrator_everything(client, world, f):
    """The legitimate role for the admin, a superuser, gets through."""
    admin_user = f.make_user(username="root", is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    assert SECRET_SUMMARY in client.get(reverse("admin:tickets_ticket_changelist")).content.decode()
