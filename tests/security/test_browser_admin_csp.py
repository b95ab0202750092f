"""The admin runs under the Content-Security-Policy: its change list, filters, inlines and date widgets work.

Before, deskchat/middleware.py skipped /admin/, so the one place that can grant everything had no
policy at all. A violation in any of these pages would show as a `securitypolicyviolation` event or
a console error, and a broken widget as a missing element.
"""

import pytest

from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def admin_world(browser_passwords, f):
    company = f.make_company(name="Contoso Dental")
    f.make_company(name="Fabrikam Legal")
    carol = f.make_contact(company=company, first_name="Carol", username="carol")
    root = f.make_user(username="root", first_name="Ada", last_name="Admin", is_staff=True, is_superuser=True)
    return {"company": company, "carol": carol, "root": root}


def _watch(page, console):
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => {"
        " (window.__csp = window.__csp || []).push(e.violatedDirective + ' ' + e.blockedURI); });"
    )


def _violations(page, console) -> list[str]:
    reported = page.evaluate("() => window.__csp || []")
    # A missing /favicon.ico (a 404 in the console) is another issue's; CSP refusals and script errors are ours.
    return reported + [
        line for line in console if any(word in line for word in ("Content Security", "Refused", "Uncaught"))
    ]


def test_the_admin_works_under_the_csp(browser, live_server_url, admin_world, screenshot):
    """Sign in at /admin/, filter a change list, add an inline row, use the calendar and clock: no CSP violation."""
    console = []
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    _watch(page, console)
    response = page.goto(f"{live_server_url}/admin/login/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy
    page.fill("#id_username", "root")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server_url}/admin/")

    # The change list with its filter sidebar: choosing a company filters the rows.
    page.goto(f"{live_server_url}/admin/accounts/contact/")
    assert page.locator("#changelist-filter").is_visible()
    page.locator("#changelist-filter a", has_text="Contoso Dental").click()
    page.wait_for_load_state("networkidle")
    assert "company__id__exact" in page.url and page.locator("#result_list tbody tr").count() == 1
    screenshot(page, "1-change-list-filtered")

    # A change form with inlines: "Add another" (inlines.js) adds an editable row.
    page.goto(f"{live_server_url}/admin/accounts/company/{admin_world['company'].pk}/change/")
    group = page.locator("#permissions-group")
    rows_before = group.locator("tr.form-row:not(.empty-form)").count()
    group.locator(".add-row a").click()
    assert group.locator("tr.form-row:not(.empty-form)").count() == rows_before + 1
    screenshot(page, "2-change-form-inline-added")

    # Date and time widgets (DateTimeShortcuts.js) and the two-box filter (SelectFilter2.js).
    page.goto(f"{live_server_url}/admin/auth/user/{admin_world['carol'].user.pk}/change/")
    # Carol never signed in, so "Last login" (the first date widget: calendar 0, clock 0) is empty.
    assert page.locator("#id_last_login_0").input_value() == ""
    page.locator("#id_last_login_0 ~ .datetimeshortcuts a", has_text="Today").click()
    assert page.locator("#id_last_login_0").input_value() != ""
    page.locator("#calendarlink0").click()
    assert page.locator("#calendarbox0").is_visible()
    screenshot(page, "3-calendar-open")
    page.locator("#calendarbox0 .calendarnav-next").click()
    page.locator("#calendarbox0 td a").first.click()
    assert not page.locator("#calendarbox0").is_visible()
    page.locator("#clocklink0").click()
    page.locator("#clockbox0 a", has_text="Noon").click()
    assert page.locator("#id_last_login_1").input_value() == "12:00:00"
    assert page.locator("#id_user_permissions_from").is_visible()  # SelectFilter2 drew its two boxes
    page.locator("#id_user_permissions_input").fill("chat")
    assert page.locator("#id_user_permissions_from option").count() > 0
    screenshot(page, "4-user-form-widgets")
    page.click("input[name=_save]")
    page.wait_for_load_state("networkidle")
    assert page.locator(".messagelist .success").count() == 1

    assert _violations(page, console) == []
    page.context.close()
