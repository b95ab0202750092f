"""XSS: hostile text in every field a person can type renders inert everywhere it appears.

Payloads (script, attribute-breaking, SVG, markdown-ish links, template syntax) go into message
bodies, notes, contact, company and engineer names, ticket summaries and descriptions, message
templates and a callback. Every page, htmx partial, admin page and websocket fragment that shows
them is parsed: it must contain no inline script, no event-handler attribute, no javascript: URL
and no srcdoc, and each page must show at least one payload as text (so the check is not vacuous).
The chat log is served as text/plain with nosniff, so a browser never renders it as HTML.
"""

import asyncio
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.urls import reverse

from tests.chat.wsutil import client_socket, staff_socket

from .conftest import EVIL, MARKERS, PAYLOADS

ROOT = Path(__file__).resolve().parents[2]


class Inspector(HTMLParser):
    """Collect what would execute if the markup were live, and the page's visible text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = {name.lower(): value or "" for name, value in attrs}
        if tag == "script" and not attrs.get("src"):
            self.problems.append("inline <script>")
        if tag in ("iframe", "object", "embed"):
            self.problems.append(f"<{tag}>")
        for name, value in attrs.items():
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...>")
            if name == "srcdoc":
                self.problems.append(f"<{tag} srcdoc>")
            if re.match(r"\s*(javascript|vbscript|data):", value, re.I) and name in (
                "href",
                "src",
                "action",
                "formaction",
                "xlink:href",
                "hx-get",
                "hx-post",
            ):
                self.problems.append(f"<{tag} {name}={value[:30]}>")
            if name.startswith("hx-") and "/evil" in value:
                self.problems.append(f"<{tag} {name}={value}> (injected htmx attribute)")

    handle_startendtag = handle_starttag

    def handle_data(self, data):
        self.text.append(data)


def assert_inert(html: str, where: str, *, must_show: bool = True) -> None:
    inspector = Inspector()
    inspector.feed(html)
    inspector.close()
    assert not inspector.problems, f"{where}: live markup from user text: {inspector.problems}"
    if must_show:
        text = "".join(inspector.text)
        assert any(marker in text for marker in MARKERS), f"{where}: no payload was rendered, so nothing was checked"


HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.mark.django_db
def test_portal_pages_render_payloads_inert(client, evil):
    """Ticket list, search, detail (notes and chat history), the chat dock and the create form."""
    client.force_login(evil["contact"].user)
    ticket = evil["ticket"]
    pages = {
        "ticket list": client.get(reverse("tickets:list")),
        "ticket search": client.get(reverse("tickets:list"), {"q": "xss"}, **HTMX),
        "ticket detail": client.get(reverse("tickets:detail", args=[ticket.pk])),
        "notes tab": client.get(reverse("tickets:detail", args=[ticket.pk]), {"tab": "notes"}, **HTMX),
        "history tab": client.get(reverse("tickets:detail", args=[ticket.pk]), {"tab": "history"}, **HTMX),
        "note added": client.post(reverse("tickets:note_add", args=[ticket.pk]), {"text": EVIL}, **HTMX),
        "note refused": client.post(reverse("tickets:note_add", args=[ticket.pk]), {"text": EVIL * 200}, **HTMX),
        "search echo": client.get(reverse("tickets:list"), {"q": PAYLOADS[1]}),
    }
    for where, response in pages.items():
        assert response.status_code in (200, 422), where
        assert_inert(response.content.decode(), where)


@pytest.mark.django_db
def test_hud_pages_render_payloads_inert(client, evil):
    """The HUD (queue and closed sessions), ticket panel, time entry, invite options, ticket chat, supervisor."""
    client.force_login(evil["dana"].user)
    done, live, ticket = evil["done"], evil["live"], evil["ticket"]
    pages = {
        "hud": client.get(reverse("hud")),
        "ticket panel": client.get(reverse("hud_ticket_panel", args=[ticket.pk]), **HTMX),
        "time entry": client.get(reverse("hud_time_entry", args=[done.pk])),
        "time entry partial": client.get(reverse("hud_time_entry", args=[done.pk]), **HTMX),
        "time entry refused": client.post(reverse("hud_time_entry", args=[done.pk]), {"notes": EVIL}, **HTMX),
        "ticket chat": client.get(reverse("hud_ticket_chat", args=[ticket.pk]), **HTMX),
        "ticket chat post": client.post(reverse("hud_ticket_chat", args=[evil["waiting_ticket"].pk]), **HTMX),
        "supervisor": client.get(reverse("hud_supervisor")),
        "staff ticket detail": client.get(reverse("tickets:detail", args=[ticket.pk])),
        "staff ticket list": client.get(reverse("tickets:list")),
    }
    if any(p.name == "hud_invite_options" for p in __import__("chat.urls", fromlist=["urlpatterns"]).urlpatterns):
        pages["invite options"] = client.get(reverse("hud_invite_options", args=[live.pk]), **HTMX)
    for where, response in pages.items():
        assert response.status_code in (200, 422), (where, response.status_code)
        assert_inert(response.content.decode(), where, must_show=where not in ("ticket chat", "ticket chat post"))


@pytest.mark.django_db
def test_the_chat_log_is_plain_text_that_no_browser_renders(client, evil):
    """/hud/rooms/<id>/transcript/ (the copied chat log) is text/plain with nosniff: payloads stay text."""
    client.force_login(evil["dana"].user)
    response = client.get(reverse("hud_transcript", args=[evil["done"].pk]))
    assert response["Content-Type"].startswith("text/plain")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert PAYLOADS[0] in response.content.decode()  # verbatim: it is text, not markup


@pytest.mark.django_db
def test_the_transcript_note_renders_inert(client, evil):
    """The transcript filed on the ticket when the chat ended shows as an escaped internal note."""
    from tickets.models import TicketNote

    note = TicketNote.objects.filter(ticket=evil["ticket"], internal=True, text__startswith="Chat #").first()
    assert note is not None and PAYLOADS[0] in note.text
    client.force_login(evil["dana"].user)
    html = client.get(reverse("tickets:detail", args=[evil["ticket"].pk])).content.decode()
    assert_inert(html, "ticket detail with the transcript note")
    assert "&lt;script&gt;alert(&quot;xss-1&quot;)&lt;/script&gt;" in html


@pytest.mark.django_db
def test_admin_pages_render_payloads_inert(client, evil, f):
    """The admin's lists and forms for tickets, contacts, companies, engineers, rooms, templates, queues."""
    client.force_login(f.make_user(username="root", is_staff=True, is_superuser=True))
    urls = [
        reverse("admin:tickets_ticket_changelist"),
        reverse("admin:tickets_ticket_change", args=[evil["ticket"].pk]),
        reverse("admin:accounts_contact_changelist"),
        reverse("admin:accounts_contact_change", args=[evil["contact"].pk]),
        reverse("admin:accounts_company_changelist"),
        reverse("admin:accounts_engineer_changelist"),
        reverse("admin:chat_chatroom_changelist"),
        reverse("admin:chat_chatroom_change", args=[evil["done"].pk]),
        reverse("admin:chat_chatrequest_changelist"),
        reverse("admin:chat_messagetemplate_changelist"),
        reverse("admin:chat_chatqueue_changelist"),
        reverse("admin:chat_chatqueue_change", args=[evil["queue"].pk]),
        reverse("admin:tickets_ticket_delete", args=[evil["ticket"].pk]),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert_inert(response.content.decode(), url)


def test_the_inspector_catches_live_markup():
    """The checker itself flags each payload when it is not escaped (so a pass means something)."""
    for payload in PAYLOADS[:4] + PAYLOADS[5:]:
        with pytest.raises(AssertionError):
            assert_inert(f"<p>{payload}</p>", "raw payload")


def _raw_frames(socket, timeout=0.4):
    async def collect():
        frames = []
        while not await socket.communicator.receive_nothing(timeout=timeout, interval=0.01):
            frames.append(await socket.communicator.receive_from(timeout=1))
        return frames

    return collect()


@pytest.mark.django_db(transaction=True)
async def test_websocket_fragments_render_payloads_inert(evil):
    """Every fragment both sockets get: client state, rooms, messages, participants, typing, queue,
    sessions (with templates filled in), invitations, errors and notices."""
    live = evil["live"]
    client = await client_socket(evil["contact"].user)
    dana = await staff_socket(evil["dana"].user)
    sam = await staff_socket(evil["sam"].user)
    other = await client_socket(evil["other"].user)
    frames = []
    frames += await _raw_frames(client) + await _raw_frames(dana) + await _raw_frames(sam)
    await client.send(action="sync", rooms={})
    await dana.send(action="sync", rooms={str(evil["done"].pk): 0})
    await sam.send(action="sync", rooms={})
    await client.send(action="send", room_id=live.pk, body=EVIL, client_msg_id=PAYLOADS[1])
    await client.send(action="typing", room_id=live.pk, typing=True)
    await dana.send(action="send", room_id=live.pk, body=EVIL, client_msg_id="d", kind="greeting")
    await client.send(action=PAYLOADS[0])
    await client.send(action="send", room_id=live.pk, body="", client_msg_id=PAYLOADS[2])
    await sam.send(action="join", room_id=live.pk)
    await other.send(action="callback", request_id=evil["waiting"].pk, body=EVIL)
    await dana.send(action="invite_engineer", room_id=live.pk, engineer_id=evil["sam"].pk)
    await asyncio.sleep(0.3)
    for socket in (client, dana, sam, other):
        frames += await _raw_frames(socket)
    await dana.send(action="invite_contact", ticket_id=evil["callback_ticket"].pk)
    await dana.send(action="end", room_id=live.pk)
    await asyncio.sleep(0.3)
    for socket in (client, dana, sam, other):
        frames += await _raw_frames(socket)
        await socket.close()
    assert len(frames) > 10
    for frame in frames:
        assert_inert(frame, f"fragment {frame[:80]!r}", must_show=False)
    assert_inert("".join(frames), "all fragments")
    joined = "".join(frames)
    assert 'data-event="queue"' in joined and 'data-event="session"' in joined and 'data-event="messages"' in joined


def test_scripts_never_turn_text_into_markup():
    """The portal and HUD scripts write person-typed text (notification text, the copied log, drafts)
    with textContent only: no innerHTML, outerHTML, insertAdjacentHTML, document.write or eval."""
    sinks = re.compile(r"\.innerHTML\s*=|\.outerHTML\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function\(")
    for path in list((ROOT / "static").glob("chat/*.js")) + list((ROOT / "static").glob("hud/*.js")):
        hits = [line for line in path.read_text().splitlines() if sinks.search(line)]
        assert not hits, f"{path.name}: {hits}"


@pytest.mark.django_db
def test_templates_never_mark_text_safe():
    """No template turns autoescaping off or marks a value safe; person-typed text is always escaped."""
    pattern = re.compile(r"\|\s*safe\b|autoescape\s+off|\|\s*safeseq\b")
    for path in (ROOT / "templates").rglob("*.html"):
        assert not pattern.search(path.read_text()), path
    for path in list(ROOT.glob("*/fragments.py")) + list(ROOT.glob("*/views.py")) + list(ROOT.glob("*/hud_views.py")):
        assert "mark_safe" not in path.read_text(), path
