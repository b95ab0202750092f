"""In a browser: an engineer locked out at the portal meets the same friendly page at the admin, and no HUD."""

import pytest

from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _sign_in(page, url, username, password):
    page.goto(url)
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.locator("form [type=submit]").click()
    page.wait_for_load_state("networkidle")


def test_a_portal_lockout_holds_at_the_admin_and_the_hud(browser, live_server_url, browser_passwords, f, screenshot):
    """Five wrong passwords at the portal, then the right one at /admin/login/: the 429 page says how long to wait."""
    f.make_engineer(display_name="Dana Reyes", username="dana")
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    for _ in range(5):
        _sign_in(page, f"{live_server_url}/accounts/login/", "dana", "not-her-password")
    alert = page.locator("[data-error=locked_out]")
    assert "try again in 15 minutes" in alert.inner_text()
    screenshot(page, "1-portal-locked")

    response = page.goto(f"{live_server_url}/admin/login/?next=/admin/")
    assert response.status == 200
    page.fill("#id_username", "DANA")  # capitals: the same account (fullwidth too: test_lockout.py)
    page.fill("#id_password", PASSWORD)
    with page.expect_response(lambda r: r.url.startswith(f"{live_server_url}/admin/login/")) as answer:
        page.locator("form [type=submit]").click()
    assert answer.value.status == 429
    page.wait_for_load_state("networkidle")
    assert "Too many failed sign-in attempts" in page.locator("[data-error=locked_out]").inner_text()
    assert page.locator("#id_username").input_value() == "DANA"
    screenshot(page, "2-admin-locked")

    page.goto(f"{live_server_url}/hud/")
    assert "/accounts/login/" in page.url
    page.context.close()
