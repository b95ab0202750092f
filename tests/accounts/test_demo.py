"""`manage.py demo`: idempotent demo data that shows every permission level at work."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from accounts.management.commands.demo import DEMO_PASSWORD
from accounts.models import (
    Company,
    CompanyPermission,
    Contact,
    ContactPermission,
    Engineer,
    GlobalFeature,
    GlobalPermissions,
)
from accounts.permissions import CHAT, CREATE_TICKET, resolve_feature
from chat.models import ChatQueue, MessageTemplate
from tickets.models import Board, Ticket, TicketNote

pytestmark = pytest.mark.django_db

COUNTED = [
    get_user_model(),
    Company,
    Contact,
    Engineer,
    Ticket,
    TicketNote,
    Board,
    GlobalPermissions,
    GlobalFeature,
    CompanyPermission,
    ContactPermission,
    ChatQueue,
    MessageTemplate,
]


def run_demo() -> str:
    out = StringIO()
    call_command("demo", stdout=out)
    return out.getvalue()


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in COUNTED}


def chat_of(username: str) -> tuple[bool, str]:
    decision = resolve_feature(Contact.objects.get(user__username=username), CHAT)
    return decision.allowed, decision.level


def test_demo_is_idempotent():
    """Running demo twice leaves exactly the data the first run made."""
    run_demo()
    first = counts()
    run_demo()

    assert counts() == first
    assert first["Company"] >= 3 and first["Contact"] >= 4 and first["Engineer"] >= 2 and first["Ticket"] >= 4
    assert first["TicketNote"] > 0


def test_demo_prints_the_logins():
    """The output names the password and every engineer and client login."""
    output = run_demo()

    assert "Demo logins" in output
    assert DEMO_PASSWORD in output
    assert "admin" in output
    for username in get_user_model().objects.values_list("username", flat=True):
        assert username in output, username
    assert "chat allowed (by company)" in output


def test_demo_shows_each_permission_level_at_work():
    """A denied company with one allowed contact, a denied contact in an allowed company, and the global level."""
    run_demo()

    assert chat_of("carol") == (True, "company")  # Contoso Dental allows chat
    assert chat_of("ken") == (False, "contact")  # ... but Ken is denied
    assert chat_of("frank") == (False, "company")  # Fabrikam Legal denies chat
    assert chat_of("fiona") == (True, "contact")  # ... but Fiona is allowed
    assert chat_of("nina") == (True, "global")  # Northwind Freight inherits the global setting
    assert GlobalPermissions.load().master_switch is True
    contact = Contact.objects.get(user__username="nina")
    assert resolve_feature(contact, CREATE_TICKET).allowed is True


def test_demo_run_again_restores_its_permission_overrides():
    """A second run puts the demo's overrides back, so the walkthrough in the README always holds."""
    run_demo()
    ContactPermission.objects.filter(contact__user__username="ken", feature=CHAT).update(access="allow")
    assert chat_of("ken") == (True, "contact")

    run_demo()

    assert chat_of("ken") == (False, "contact")
    assert ContactPermission.objects.filter(contact__user__username="ken", feature=CHAT).count() == 1


def test_demo_tickets_have_public_and_internal_notes():
    """Each demo company has tickets, and at least one internal note exists for the staff side."""
    run_demo()

    for company in Company.objects.all():
        assert company.tickets.exists(), company
    assert TicketNote.objects.filter(internal=True).exists()
    assert TicketNote.objects.filter(internal=False).exists()


def test_demo_logins_work_in_the_portal(client):
    """A demo contact signs in with the printed password and sees their company's tickets only."""
    run_demo()

    response = client.post(reverse("login"), {"username": "carol", "password": DEMO_PASSWORD}, follow=True)

    html = response.content.decode()
    assert response.status_code == 200
    assert "Contoso Dental tickets" in html
    contoso = Ticket.objects.filter(company__name="Contoso Dental").first()
    other = Ticket.objects.exclude(company__name="Contoso Dental").first()
    assert reverse("tickets:detail", args=[contoso.pk]) in html
    assert reverse("tickets:detail", args=[other.pk]) not in html


def test_demo_engineer_reaches_the_staff_ticket_list(client):
    """A demo engineer signs in on the same page, lands on the HUD, and reaches all tickets."""
    run_demo()

    response = client.post(reverse("login"), {"username": "dana", "password": DEMO_PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("hud")

    response = client.get(reverse("tickets:list"))
    html = response.content.decode()
    assert "All tickets" in html
    for company in ("Contoso Dental", "Fabrikam Legal", "Northwind Freight"):
        assert company in html
