"""The load generator sends what the browsers send (issue 14), held against one real chat in two browsers.

One story in headless Chromium records every frame the portal page and the HUD send (Join Chat,
the question typed while waiting, Answer, messages both ways, typing, read reports, a reload that
reconnects and syncs, Leave on both sides); then bench/loadgen.py's `story` runs the same chat
with its own client and engineer tabs against the same server. The test fails when a page sent a
kind of frame (by `action`) that the generator's tab of the same side never sends, or one whose
fields differ, and when the generator opens a socket otherwise than the pages do: `sync` first,
naming the rooms it has with their last seq, and what was never acknowledged right after it.
"""

import asyncio
import json
import threading

import pytest
from playwright.sync_api import expect

from bench import loadgen
from chat.models import ChatRequest, ChatRoom
from tests.browser.test_portal_chat import (
    WAIT,
    answer_in_hud,
    client_messages,
    client_page,
    client_send,
    dock,
    hud_page,
    session,
    staff_send,
)
from tests.chat.wsutil import session_cookie

pytestmark = pytest.mark.browser

# htmx's ws extension adds the request headers to every form it sends; hud.js removes them and the
# server ignores them. They are htmx's, not a field of the protocol.
HTMX_ONLY = {"HEADERS"}


def record_sockets(page) -> list[list[dict]]:
    """Record the JSON frames the page sends, one list per socket it opens (a reload opens another)."""
    sockets: list[list[dict]] = []

    def on_socket(ws):
        frames: list[dict] = []
        sockets.append(frames)
        ws.on("framesent", lambda payload: frames.append(json.loads(payload)) if isinstance(payload, str) else None)

    page.on("websocket", on_socket)
    return sockets


def fields(frames) -> dict[str, set[frozenset]]:
    """Map each action to the sets of field names its frames carried."""
    found: dict[str, set[frozenset]] = {}
    for frame in frames:
        found.setdefault(frame["action"], set()).add(frozenset(frame) - HTMX_ONLY)
    return found


def by_connection(log: list[tuple[int, dict]]) -> list[list[dict]]:
    """Split a generator tab's log into the frames of each connection, in order."""
    connections: dict[int, list[dict]] = {}
    for number, frame in log:
        connections.setdefault(number, []).append(frame)
    return [connections[n] for n in sorted(connections)]


def browser_chat(browser, live_server_url, desk) -> tuple[list[list[dict]], list[list[dict]]]:
    """Drive one chat through both pages; return the frames each sent, per socket."""
    staff = hud_page(browser, live_server_url)
    hud = staff.page
    hud_sockets = record_sockets(hud)
    hud.reload()  # the HUD's socket is opened again, now recorded
    expect(hud.locator("#hud-connection")).to_have_attribute("data-state", "live", timeout=WAIT)
    client = client_page(browser, live_server_url)
    page = client.page
    client_sockets = record_sockets(page)
    page.goto(f"{live_server_url}/tickets/{desk.ticket.pk}/")
    expect(dock(page)).to_have_attribute("data-conn", "open", timeout=WAIT)

    page.get_by_role("button", name="Join Chat").click()
    expect(dock(page)).to_have_attribute("data-view", "waiting", timeout=WAIT)
    page.fill("#chat-input", "Outlook asks for my password again")  # typed while waiting: a draft
    request = ChatRequest.objects.get(contact=desk.contact, state=ChatRequest.State.WAITING)
    expect(hud.locator(f"#hud-queue li[data-request-id='{request.pk}'] .queue-draft")).to_contain_text(
        "Outlook asks", timeout=WAIT
    )
    answer_in_hud(hud, request.pk)
    expect(dock(page)).to_have_attribute("data-view", "chatting", timeout=WAIT)
    room = ChatRoom.objects.get(request=request)
    client_send(page, "Hello, it is Outlook again")
    staff_send(hud, room.pk, "Hi Olive, let us look at it.")
    expect(client_messages(page).filter(has_text="let us look")).to_have_count(1, timeout=WAIT)

    page.reload()  # a reconnect: the page syncs with the seq it shows
    expect(dock(page)).to_have_attribute("data-conn", "open", timeout=WAIT)
    expect(dock(page)).to_have_attribute("data-view", "chatting", timeout=WAIT)
    client_send(page, "Still there after the reload")
    staff_send(hud, room.pk, "Yes, still here.")
    expect(client_messages(page).filter(has_text="still here")).to_have_count(1, timeout=WAIT)
    page.wait_for_timeout(1500)  # read reports are coalesced over a second

    page.get_by_role("button", name="Leave the chat").click()
    expect(dock(page)).to_have_attribute("data-view", "ended", timeout=WAIT)
    session(hud, room.pk).get_by_role("button", name="Leave", exact=True).click()
    expect(session(hud, room.pk)).to_have_attribute("data-state", "closed", timeout=WAIT)
    page.wait_for_timeout(1500)
    assert client.errors == [] and staff.errors == []
    client.close()
    staff.close()
    return client_sockets, hud_sockets


def generator_chat(live_server_url, contact, engineer, ticket) -> dict:
    """Run the generator's story against the server, in a thread: Playwright's loop holds this one."""
    ws_url = live_server_url.replace("http://", "ws://")

    def cookie(user) -> str:
        return session_cookie(user).decode().removeprefix("sessionid=")

    tabs = (
        {"url": ws_url + "/ws/chat/", "cookie": cookie(contact.user)},
        {"url": ws_url + "/ws/hud/", "cookie": cookie(engineer.user)},
    )
    outcome: dict = {}

    def run():
        try:
            outcome["sent"] = asyncio.run(loadgen.story(*tabs, ticket_id=ticket.pk, chat_s=2.5))
        except BaseException as error:  # noqa: BLE001 - raised again in the test's thread
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(120)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["sent"]


def assert_opens_like_a_page(connections: list[list[dict]], side: str) -> None:
    """Each connection starts with sync; a reconnect names its rooms with their seqs, then re-sends."""
    assert connections and all(frames and frames[0]["action"] == "sync" for frames in connections), side
    earlier: set[str] = set()
    for number, frames in enumerate(connections):
        resent = [f for f in frames if f["action"] == "send" and f["client_msg_id"] in earlier]
        assert frames[1 : 1 + len(resent)] == resent, f"{side}: re-sends come right after the sync"
        if number:
            assert any(seq > 0 for seq in frames[0]["rooms"].values()), f"{side}: the reconnect names its seqs"
        earlier |= {f["client_msg_id"] for f in frames if f["action"] == "send"}


def test_the_generator_sends_every_kind_of_frame_the_browsers_send(browser, live_server_url, desk, f):
    """Every action a page sent, the generator's tab of that side sends too, with the same fields, and
    both open their sockets the same way: sync first (with the seqs it has after a reconnect)."""
    client_sockets, hud_sockets = browser_chat(browser, live_server_url, desk)
    # The generator's client is another contact, so the browser's chat leaves nothing in its way.
    gene = f.make_contact(username="gene", first_name="Gene", last_name="Rator", company=desk.company)
    sent = generator_chat(live_server_url, gene, desk.dana, f.make_ticket(contact=gene, summary="Bench"))

    for side, page_sockets, log in (
        ("client", client_sockets, sent["client"]),
        ("engineer", hud_sockets, sent["engineer"]),
    ):
        page_frames = [frame for frames in page_sockets for frame in frames]
        generator_frames = [frame for _, frame in log]
        page_fields, generator_fields = fields(page_frames), fields(generator_frames)
        missing = sorted(set(page_fields) - set(generator_fields))
        assert missing == [], f"the {side} page sends {missing}, the load generator's {side} never does"
        for action, shapes in page_fields.items():
            assert shapes <= generator_fields[action], (
                f"{side} {action}: page {shapes}, generator {generator_fields[action]}"
            )
        assert all(frames[0]["action"] == "sync" for frames in page_sockets if frames), f"{side} page opens with sync"
        assert_opens_like_a_page(by_connection(log), side)
    # The reload: the page's second socket named the room with the seq it showed, as the generator's does.
    assert len(client_sockets) == 2 and any(seq > 0 for seq in client_sockets[1][0]["rooms"].values())
