"""The sign-in lockout (django-axes): every sign-in form, keyed on the account and the address.

After LOGIN_FAILURE_LIMIT failures for one account from one address, that account is refused from
that address, with the right password too, at the portal's /accounts/login/ and the admin's
/admin/login/ alike, until LOGIN_LOCKOUT_SECONDS after the latest failure.
"""

import urllib.parse
import urllib.request
from datetime import timedelta
from http.cookiejar import CookieJar

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.utils import timezone

from tests.conftest import ROOT, daphne_environment
from tests.factories import PASSWORD
from tests.servers import DaphneServer

PORTAL, ADMIN = "/accounts/login/", "/admin/login/"
ADDRESS = "203.0.113.7"


def sign_in(path, username, password, *, client=None, address=ADDRESS, **headers):
    client = client or Client()
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address, **headers)


def signed_in(response) -> bool:
    return response.status_code == 302 and "_auth_user_id" in response.wsgi_request.session


@pytest.mark.django_db
def test_twenty_wrong_passwords_at_the_admin_then_the_right_one_is_refused(world):
    """The admin's sign-in is counted like the portal's: after the limit even the right password gets 429."""
    answers = [sign_in(ADMIN, "dana", f"guess-{n}").status_code for n in range(20)]
    assert answers[:4] == [200] * 4 and set(answers[4:]) == {429}
    response = sign_in(ADMIN, "dana", PASSWORD)
    assert response.status_code == 429 and not signed_in(response)
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert int(response["Retry-After"]) > 0


@pytest.mark.django_db
def test_locked_out_at_the_portal_means_locked_out_at_the_admin_and_the_hud(world):
    """An engineer locked out on the portal cannot sign in at the admin, so cannot open the HUD either."""
    for _ in range(5):
        sign_in(PORTAL, "dana", "wrong")
    browser = Client()
    response = sign_in(ADMIN, "dana", PASSWORD, client=browser)
    assert response.status_code == 429 and not signed_in(response)
    hud = browser.get("/hud/")
    assert hud.status_code == 302 and "/accounts/login/" in hud["Location"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", [PORTAL, ADMIN])
@pytest.mark.parametrize("spelling", ["ｎｉｎａ", "NINA", " nina ", "Nina"])
def test_look_alike_spellings_do_not_get_past_a_lockout(world, f, path, spelling):
    """While nina is locked out, fullwidth letters, capitals or spaces with her password do not sign in."""
    f.make_engineer(display_name="Nina Patel", username="nina")  # staff, so the admin would let her in
    for _ in range(5):
        sign_in(PORTAL, "nina", "wrong")
    response = sign_in(path, spelling, PASSWORD)
    assert response.status_code == 429 and not signed_in(response)
    # And that refused try wiped nothing: her own spelling is still refused.
    assert sign_in(path, "nina", PASSWORD).status_code == 429


@pytest.mark.django_db
@pytest.mark.parametrize("path", [PORTAL, ADMIN])
def test_every_spelling_counts_towards_one_lockout(world, f, path):
    """Failures typed as NINA, ｎｉｎａ and nina add up on the account, so spreading them over spellings buys nothing."""
    f.make_engineer(display_name="Nina Patel", username="nina")
    for spelling in ["NINA", "ｎｉｎａ", " Nina", "nina "]:
        assert sign_in(path, spelling, "wrong").status_code == 200
    assert sign_in(path, "nina", "wrong").status_code == 429
    assert list(AccessAttempt.objects.values_list("username", flat=True).distinct()) == ["nina"]


@pytest.mark.django_db
def test_accounts_differing_only_in_case_each_keep_their_own_lockout(world, f):
    """Seven accounts spelled nina, Nina, NINA …: each exact spelling is its own account's key, however
    many there are, and a spelling no account has is keyed in lower case, with the failures of all
    the others. The exact one was made last, so an unordered lookup of a few matches misses it."""
    from accounts.signin import canonical_username

    spellings = ["nina", "Nina", "NINA", "nINA", "niNA", "NIna", "NinA"]
    for name in spellings:
        f.make_contact(company=world["ours"], username=name)
    for name in spellings:
        assert canonical_username(None, {"username": name}) == name
    assert canonical_username(None, {"username": "ｎＩｎＡ"}) == "nina"  # nInA: no such account, so lower case
    for _ in range(5):
        sign_in(PORTAL, "NinA", "wrong")
    assert sign_in(PORTAL, "NinA", PASSWORD).status_code == 429
    assert signed_in(sign_in(PORTAL, "Nina", PASSWORD))  # another account: not locked out


@pytest.mark.django_db
def test_repeated_failures_lock_the_account_out_with_minutes_to_wait(world, settings):
    """After LOGIN_FAILURE_LIMIT failures the portal answers 429 and says how many minutes to wait."""
    settings.LOGIN_FAILURE_LIMIT = 3
    for _ in range(2):
        response = sign_in(PORTAL, "carol", "wrong")
        assert response.status_code == 200 and "locked_out" not in response.content.decode()
    assert sign_in(PORTAL, "carol", "wrong").status_code == 429
    response = sign_in(PORTAL, "carol", PASSWORD)
    body = response.content.decode()
    assert response.status_code == 429 and not signed_in(response)
    assert 'data-error="locked_out"' in body and "try again in 15 minutes" in body
    assert 'value="carol"' in body  # the form keeps the name typed


@pytest.mark.django_db
def test_the_lockout_is_per_account_and_address(world):
    """Another address, or another account from the same address, still signs in."""
    for _ in range(5):
        sign_in(PORTAL, "carol", "wrong")
    assert signed_in(sign_in(PORTAL, "carol", PASSWORD, address="198.51.100.1"))
    assert signed_in(sign_in(PORTAL, "ken", PASSWORD))


@pytest.mark.django_db
def test_the_lockout_ends_after_the_window(world, settings):
    """LOGIN_LOCKOUT_SECONDS after the latest failure, the account signs in again."""
    settings.LOGIN_LOCKOUT_SECONDS = 60
    for _ in range(5):
        sign_in(PORTAL, "carol", "wrong")
    assert sign_in(PORTAL, "carol", PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(seconds=61))
    assert signed_in(sign_in(PORTAL, "carol", PASSWORD))


@pytest.mark.django_db
def test_a_refused_try_during_a_lockout_does_not_restart_the_wait(world, settings):
    """Trying again while locked out neither counts nor moves the end of the lockout."""
    for _ in range(5):
        sign_in(PORTAL, "carol", "wrong")
    before = AccessAttempt.objects.get()
    for _ in range(3):
        assert sign_in(PORTAL, "carol", PASSWORD).status_code == 429
    after = AccessAttempt.objects.get()
    assert (after.attempt_time, after.failures_since_start) == (before.attempt_time, 5)


@pytest.mark.django_db
def test_a_successful_sign_in_clears_the_failures(world):
    """Two typos, then success: the count starts again from zero."""
    for _ in range(2):
        sign_in(PORTAL, "carol", "wrong")
    assert signed_in(sign_in(PORTAL, "carol", PASSWORD))
    assert not AccessAttempt.objects.exists()
    for _ in range(4):
        assert sign_in(PORTAL, "carol", "wrong").status_code == 200


@pytest.mark.django_db
def test_the_lockout_can_be_turned_off(world, settings):
    """With axes off (LOGIN_FAILURE_LIMIT=0 at start: test_settings.py) nothing is counted and nobody refused."""
    settings.AXES_ENABLED = False
    for _ in range(10):
        assert sign_in(PORTAL, "carol", "wrong").status_code == 200
    assert signed_in(sign_in(PORTAL, "carol", PASSWORD))
    assert not AccessAttempt.objects.exists()


@pytest.mark.django_db
def test_the_lockout_message_is_escaped_and_keeps_the_username(world, settings):
    """The page shows the username typed (escaped) so the user sees which account is paused."""
    settings.LOGIN_FAILURE_LIMIT = 1
    response = sign_in(PORTAL, "<script>alert(1)</script>", "x")
    body = response.content.decode()
    assert response.status_code == 429
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;" in body


@pytest.mark.django_db
def test_the_admin_lists_the_lockouts_and_deleting_one_lifts_it(world, f):
    """Admins see axes' access attempts; deleting the account's record lets it sign in again."""
    for _ in range(5):
        sign_in(PORTAL, "carol", "wrong")
    admin = Client()
    admin.force_login(f.make_user(username="root", is_staff=True, is_superuser=True))
    listing = admin.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200 and "carol" in listing.content.decode()
    attempt = AccessAttempt.objects.get(username="carol")
    admin.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
    assert signed_in(sign_in(PORTAL, "carol", PASSWORD))


# --- The address: only a header the deployment names --------------------------------------


@pytest.mark.django_db
def test_a_spoofed_forwarded_for_does_not_change_the_address_by_default(world):
    """With no TRUSTED_PROXY_HEADER, X-Forwarded-For and X-Real-IP are ignored: a guesser cannot rotate them."""
    for n in range(5):
        sign_in(PORTAL, "carol", "wrong", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}", HTTP_X_REAL_IP=f"10.1.0.{n}")
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == [ADDRESS]
    assert sign_in(PORTAL, "carol", PASSWORD, HTTP_X_FORWARDED_FOR="10.9.9.9").status_code == 429


@pytest.mark.django_db
def test_a_trusted_proxy_header_gives_the_address(world, settings):
    """With TRUSTED_PROXY_HEADER=X-Real-IP the proxy's header is the address, and no other header is."""
    settings.TRUSTED_PROXY_HEADER = "X-Real-IP"
    sign_in(PORTAL, "carol", "wrong", HTTP_X_REAL_IP="192.0.2.44", HTTP_X_FORWARDED_FOR="10.0.0.1")
    sign_in(PORTAL, "ken", "wrong", HTTP_X_REAL_IP="not an address")
    assert sorted(AccessAttempt.objects.values_list("username", "ip_address")) == [
        ("carol", "192.0.2.44"),
        ("ken", ADDRESS),
    ]


class ServeScript(DaphneServer):
    """daphne started the way production starts it: scripts/serve, on the test database."""

    def __init__(self, **extra_env):
        super().__init__(daphne_environment(**extra_env))
        self.env.update(PORT=str(self.port), DAPHNE=str(ROOT / ".venv" / "bin" / "daphne"))

    def command(self) -> list[str]:
        return [str(ROOT / "scripts" / "serve")]


@pytest.mark.multiprocess
@pytest.mark.parametrize("trusted", ["", "X-Real-IP"])
def test_scripts_serve_reads_a_proxy_header_only_when_one_is_named(transactional_db, world, trusted):
    """Through scripts/serve, a made-up X-Forwarded-For is ignored; a named header is the address axes records."""
    if not (ROOT / ".venv" / "bin" / "daphne").exists():
        pytest.skip("no .venv/bin/daphne")
    server = ServeScript(TRUSTED_PROXY_HEADER=trusted).start()
    try:
        jar = CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        assert opener.open(server.url + PORTAL, timeout=10).status == 200
        token = next(cookie.value for cookie in jar if cookie.name == "csrftoken")
        data = urllib.parse.urlencode({"username": "carol", "password": "wrong", "csrfmiddlewaretoken": token})
        post = urllib.request.Request(
            server.url + PORTAL, data=data.encode(), headers={"X-Forwarded-For": "10.6.6.6", "X-Real-IP": "192.0.2.9"}
        )
        assert opener.open(post, timeout=10).status == 200
    finally:
        server.stop()
    expected = "192.0.2.9" if trusted else "127.0.0.1"
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == [expected]
