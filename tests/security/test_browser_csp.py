"""One browser story: hostile text renders inert in a real Chromium, and the CSP blocks inline script.

A client opens a ticket whose summary, notes and live chat hold the payloads (the chat arrives over
the websocket and htmx swaps it in); an engineer opens the HUD with those payloads in the queue and
a session. No dialog opens and no payload runs. Then script injected into the page by hand is
refused by the Content-Security-Policy, which has no 'unsafe-inline' for scripts.
"""

import pytest

from tests.conftest import login

from .conftest import PAYLOADS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def hostile(browser_passwords, evil):
    return evil


def _watch(page, dialogs, violations):
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => {"
        " (window.__csp = window.__csp || []).push(e.violatedDirective); });"
    )


def _pwned(page) -> bool:
    return page.evaluate("() => !!(document.body.dataset.pwned || window.__pwned)")


def test_payloads_stay_inert_and_the_csp_blocks_inline_script(browser, live_server_url, hostile):
    """Portal page, chat dock (websocket) and HUD show the payloads as text; injected inline script is refused."""
    dialogs, violations = [], []
    client = browser.new_context().new_page()
    _watch(client, dialogs, violations)
    login(client, live_server_url, "evil")
    response = client.goto(f"{live_server_url}/tickets/{hostile['ticket'].pk}/")
    policy = response.headers["content-security-policy"]
    script_src = next(part for part in policy.split(";") if part.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    assert "'unsafe-inline'" not in next((p for p in policy.split(";") if p.strip().startswith("default-src")), "")

    # The live chat arrives over the socket; wait until its messages are swapped in.
    live = hostile["live"].pk
    client.locator(f"#room-{live}-messages li[data-seq]").first.wait_for(timeout=15_000)
    text = client.locator("body").inner_text()
    assert PAYLOADS[0] in text, "the script payload shows as text"
    assert client.locator("img[src='x'], iframe, svg[onload]").count() == 0
    assert dialogs == [] and not _pwned(client)

    # Script a payload could only run by injecting markup: the CSP refuses it even when it gets in.
    client.evaluate(
        "() => document.body.insertAdjacentHTML('beforeend',"
        " '<img src=x onerror=\"document.body.dataset.pwned=1\"><script>window.__pwned=1</script>')"
    )
    client.wait_for_timeout(500)
    assert not _pwned(client)
    assert client.evaluate("() => (window.__csp || []).length") > 0, "the CSP reported the blocked handler"

    # The engineer's HUD: the waiting request in the queue, the live session with its template menu.
    staff = browser.new_context().new_page()
    _watch(staff, dialogs, violations)
    login(staff, live_server_url, "dana")
    staff.locator("#hud-queue").wait_for(timeout=15_000)
    staff.locator(f"[data-room='{live}'] li[data-seq]").first.wait_for(state="attached", timeout=15_000)
    staff.locator("#hud-queue .queue-item").first.wait_for(state="attached", timeout=15_000)
    staff.wait_for_timeout(500)
    assert PAYLOADS[2] in staff.locator("#hud-queue").text_content()  # the waiting ticket's summary
    assert PAYLOADS[0] in staff.locator(f"#session-{live}").text_content()  # the live chat's messages
    assert staff.locator("img[src='x'], iframe, svg[onload]").count() == 0
    staff.goto(f"{live_server_url}/tickets/{hostile['ticket'].pk}/?tab=history")
    staff.wait_for_timeout(300)
    assert dialogs == [] and not _pwned(staff)
    client.context.close()
    staff.context.close()
