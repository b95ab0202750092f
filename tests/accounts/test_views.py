"""Signing in and out, and the landing page that sends each role to its side."""

import pytest
from django.urls import reverse

from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def test_login_page_renders(client):
    """Clients and engineers share one sign-in page."""
    response = client.get(reverse("login"))

    assert response.status_code == 200
    assert "Clients and engineers sign in here." in response.content.decode()


def test_home_sends_anonymous_visitors_to_login(client):
    """The front page asks an anonymous visitor to sign in."""
    response = client.get(reverse("home"))

    assert response.status_code == 302
    assert response["Location"] == reverse("login")


def test_contact_signs_in_and_lands_on_their_tickets(client, f):
    """A contact's sign-in ends on their company's ticket list."""
    contact = f.make_contact(username="olive", company=f.make_company(name="Ours Ltd"))

    response = client.post(reverse("login"), {"username": "olive", "password": PASSWORD}, follow=True)

    assert response.redirect_chain[-1][0] == reverse("tickets:list")
    html = response.content.decode()
    assert "Ours Ltd tickets" in html
    assert contact.name in html  # shown in the top bar


def test_engineer_signs_in_on_the_same_page_and_reaches_the_staff_list(client, f):
    """An engineer uses the same form, lands on the Staff HUD, and reaches the list of all tickets."""
    f.make_engineer(username="dana", display_name="Dana Reyes")

    response = client.post(reverse("login"), {"username": "dana", "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("hud")

    html = client.get(reverse("tickets:list")).content.decode()
    assert "All tickets" in html
    assert "Dana Reyes" in html


def test_login_returns_to_the_page_asked_for(client, f):
    """After being sent to sign in, the user goes back to the page they wanted."""
    contact = f.make_contact(username="olive")
    ticket = f.make_ticket(contact=contact)
    wanted = reverse("tickets:detail", args=[ticket.pk])

    response = client.post(
        f"{reverse('login')}?next={wanted}", {"username": "olive", "password": PASSWORD, "next": wanted}
    )

    assert response.status_code == 302
    assert response["Location"] == wanted


def test_login_refuses_an_outside_next_url(client, f):
    """A next= pointing to another site is ignored, so the login page cannot be used to redirect away."""
    f.make_contact(username="olive")

    response = client.post(
        reverse("login"), {"username": "olive", "password": PASSWORD, "next": "https://evil.example.com/"}
    )

    assert response.status_code == 302
    assert "evil.example.com" not in response["Location"]


def test_wrong_password_shows_an_error(client, f):
    """A wrong password keeps the user on the form with a message and signs nobody in."""
    f.make_contact(username="olive")

    response = client.post(reverse("login"), {"username": "olive", "password": "wrong"})

    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_sign_out_ends_the_session(client, f):
    """Signing out (a POST) ends the session and shows the sign-in page."""
    contact = f.make_contact()
    client.force_login(contact.user)

    response = client.post(reverse("logout"))

    assert response.status_code == 302
    assert response["Location"] == reverse("login")
    assert client.get(reverse("tickets:list")).status_code == 302


def test_signed_in_user_skips_the_login_form(client, f):
    """Opening the login page while signed in goes straight to the landing page."""
    client.force_login(f.make_contact().user)

    response = client.get(reverse("login"))

    assert response.status_code == 302


def test_static_files_are_served_with_debug_off(client, settings):
    """Under daphne with DEBUG off, the stylesheet and htmx still load (WhiteNoise)."""
    assert settings.DEBUG is False
    for path in ("/static/css/deskchat.css", "/static/vendor/htmx-2.0.11.min.js"):
        response = client.get(path)
        assert response.status_code == 200, path
        b"".join(response.streaming_content if response.streaming else [response.content])


def test_portal_pages_forbid_inline_script(client, f):
    """The portal sends a Content-Security-Policy without 'unsafe-inline' for scripts."""
    client.force_login(f.make_contact().user)

    policy = client.get(reverse("tickets:list"))["Content-Security-Policy"]

    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy


def test_staff_with_a_client_login_too_get_only_the_staff_side(client, f):
    """An engineer who also has a contact profile lands on the HUD, sees every ticket under their
    display name, and never gets the client's chat dock, Join Chat or ticket form."""
    from accounts.models import Contact
    from tickets.views import CREATE_TICKET

    engineer = f.make_engineer(username="dana", display_name="Dana Reyes")
    company = f.make_company(name="Ours Ltd", chat="allow")
    contact = Contact.objects.create(user=engineer.user, company=company)
    f.make_contact(company=company).permissions.create(feature=CREATE_TICKET, access="allow")
    ticket = f.make_ticket(contact=contact, summary="Filed as a client")

    response = client.post(reverse("login"), {"username": "dana", "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("hud")
    listed = client.get(reverse("tickets:list")).content.decode()
    assert "All tickets" in listed and "Dana Reyes" in listed and "Ours Ltd tickets" not in listed
    page = client.get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert 'id="chat-dock"' not in page and "Join Chat" not in page
    assert client.get(reverse("tickets:create")).status_code == 403
