"""The administrator's console: every page renders, and contacts show their effective chat permission."""

import re

import pytest
from django.contrib import admin
from django.urls import reverse

from accounts.models import Access, Company, Contact, ContactPermission, Engineer, GlobalFeature, GlobalPermissions
from accounts.permissions import CHAT, CREATE_TICKET
from chat.models import ChatQueue
from tests.queries import statements_run
from tickets.models import Board, Ticket, TimeEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser(f):
    return f.make_user(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def objects(f):
    """One saved object of each model whose change page we open."""
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    engineer = f.make_engineer()
    contact = f.make_contact()
    ticket = f.make_ticket(contact=contact, board=f.make_board())
    f.make_note(ticket=ticket, text="A public remark")
    f.make_note(ticket=ticket, author=engineer.user, text="A staff-only remark", internal=True)
    start = timezone.now()
    entry = TimeEntry.objects.create(
        ticket=ticket, engineer=engineer, started=start, ended=start + timedelta(minutes=30), hours=Decimal("0.5")
    )
    return {
        Company: contact.company,
        Contact: contact,
        Engineer: engineer,
        Ticket: ticket,
        Board: ticket.board,
        TimeEntry: entry,
        GlobalPermissions: GlobalPermissions.load(),
        ChatQueue: f.make_queue(members=[engineer]),
    }


def test_admin_index_renders(admin_client):
    """The admin's front page lists the desk's models."""
    response = admin_client.get(reverse("admin:index"))

    html = response.content.decode()
    assert response.status_code == 200
    for name in ("Companies", "Contacts", "Engineers", "Tickets", "Global client permissions"):
        assert name in html


MAIN_MODELS = [Company, Contact, Engineer, Ticket, Board, TimeEntry, ChatQueue]


@pytest.mark.parametrize("model", MAIN_MODELS, ids=lambda m: m.__name__)
def test_changelist_and_change_pages_render(admin_client, objects, model):
    """Each registered model's list, change page and add page render for a superuser."""
    if not admin.site.is_registered(model):
        pytest.skip(f"{model.__name__} is not registered in the admin (yet)")
    obj = objects[model]

    assert admin_client.get(admin_url(model, "changelist")).status_code == 200
    assert admin_client.get(admin_url(model, "change", obj.pk)).status_code == 200
    assert admin_client.get(admin_url(model, "add")).status_code == 200


def test_every_registered_model_changelist_renders(admin_client, objects):
    """No admin page is left broken, including ones registered after this test was written."""
    for model in admin.site._registry:
        response = admin_client.get(admin_url(model, "changelist"), follow=True)
        assert response.status_code == 200, model


def test_admin_search_works_on_each_searchable_model(admin_client, objects):
    """Every search box in the admin answers without error."""
    for model, model_admin in admin.site._registry.items():
        if model_admin.search_fields and model is not GlobalPermissions:
            response = admin_client.get(admin_url(model, "changelist"), {"q": "1"})
            assert response.status_code == 200, model


def test_global_permissions_changelist_redirects_to_the_single_row(admin_client):
    """There is one global row; its list goes straight to its page, creating it if needed."""
    GlobalPermissions.objects.all().delete()

    response = admin_client.get(admin_url(GlobalPermissions, "changelist"))

    assert response.status_code == 302
    assert response["Location"] == admin_url(GlobalPermissions, "change", 1)
    assert GlobalPermissions.objects.filter(pk=1).exists()


def test_global_permissions_page_shows_the_two_steps(admin_client):
    """The page reads as "turn the switch on, then enable Chat for all users"."""
    settings = GlobalPermissions.load()
    GlobalFeature.objects.create(settings=settings, feature=CHAT, enabled=True)

    html = admin_client.get(admin_url(GlobalPermissions, "change", settings.pk)).content.decode()

    step1 = html.index("Step 1: master switch")
    step2 = html.index("Step 2: features for all contacts")
    assert step1 < step2
    assert "apply global configuration" in html.lower()
    assert '<option value="chat" selected>Chat</option>' in html


def test_global_permissions_cannot_be_added_or_deleted(admin_client):
    """The one row is edited, never added or removed."""
    settings = GlobalPermissions.load()

    assert admin_client.get(admin_url(GlobalPermissions, "add")).status_code == 403
    assert admin_client.get(admin_url(GlobalPermissions, "delete", settings.pk)).status_code == 403


def test_global_permissions_page_saves_the_switch_and_features(admin_client, f):
    """Turning the switch on and enabling Chat for all contacts from the page lets contacts chat."""
    settings = GlobalPermissions.load()
    contact = f.make_contact()
    data = {
        "master_switch": "on",
        "features-TOTAL_FORMS": "1",
        "features-INITIAL_FORMS": "0",
        "features-MIN_NUM_FORMS": "0",
        "features-MAX_NUM_FORMS": "1000",
        "features-0-feature": CHAT,
        "features-0-enabled": "on",
    }

    response = admin_client.post(admin_url(GlobalPermissions, "change", settings.pk), data)

    assert response.status_code == 302
    settings.refresh_from_db()
    assert settings.master_switch is True
    assert GlobalFeature.objects.get(feature=CHAT).enabled is True
    html = admin_client.get(admin_url(Contact, "change", contact.pk)).content.decode()
    assert "Allowed (by global)" in html


def test_permission_inlines_offer_only_registered_features(admin_client, f):
    """A feature name that is not registered is refused by the admin's inline form."""
    contact = f.make_contact()
    data = contact_change_data(contact, [("teleport", "allow")])

    response = admin_client.post(admin_url(Contact, "change", contact.pk), data)

    assert response.status_code == 200  # the form comes back with the error
    assert "Select a valid choice" in response.content.decode()
    assert not ContactPermission.objects.exists()


def contact_change_data(contact, permissions) -> dict:
    data = {
        "user": contact.user_id,
        "company": contact.company_id,
        "phone": contact.phone,
        "permissions-TOTAL_FORMS": str(len(permissions)),
        "permissions-INITIAL_FORMS": "0",
        "permissions-MIN_NUM_FORMS": "0",
        "permissions-MAX_NUM_FORMS": "1000",
    }
    for n, (feature, access) in enumerate(permissions):
        data[f"permissions-{n}-feature"] = feature
        data[f"permissions-{n}-access"] = access
    return data


def test_contact_page_inline_permissions_save(admin_client, f):
    """An administrator allows one contact to chat from the contact's Permissions section."""
    contact = f.make_contact(company=f.make_company(chat=Access.DENY))

    response = admin_client.post(
        admin_url(Contact, "change", contact.pk),
        contact_change_data(contact, [(CHAT, "allow"), (CREATE_TICKET, "deny")]),
    )

    assert response.status_code == 302
    assert dict(contact.permissions.values_list("feature", "access")) == {CHAT: "allow", CREATE_TICKET: "deny"}


def test_company_page_has_a_permissions_section_and_its_contacts(admin_client, f):
    """The company page shows its Permissions inline and lists its contacts."""
    company = f.make_company(name="Contoso Dental", chat=Access.DENY)
    f.make_contact(company=company, first_name="Fiona", last_name="Lee")

    html = admin_client.get(admin_url(Company, "change", company.pk)).content.decode()

    assert "Permissions (override the global settings for this company)" in html
    assert '<option value="deny" selected>Deny</option>' in html
    assert "Fiona" in html


@pytest.mark.parametrize(
    "company_access, contact_access, master, expected",
    [
        (Access.ALLOW, None, False, "Allowed (by company)"),
        (Access.DENY, Access.ALLOW, False, "Allowed (by contact)"),
        (Access.ALLOW, Access.DENY, True, "Denied (by contact)"),
        (None, None, True, "Allowed (by global)"),
        (None, None, False, "Denied (by default)"),
    ],
    ids=["company", "contact-allows", "contact-denies", "global", "default"],
)
def test_contact_list_and_page_show_the_effective_chat_permission(
    admin_client, f, company_access, contact_access, master, expected
):
    """Both the contact list and the contact page say whether the contact may chat and which level decided."""
    f.enable_chat_globally(enabled=True, master_switch=master)
    contact = f.make_contact(company=f.make_company(chat=company_access), chat=contact_access)

    listing = admin_client.get(admin_url(Contact, "changelist")).content.decode()
    page = admin_client.get(admin_url(Contact, "change", contact.pk)).content.decode()

    assert "Chat (effective)" in listing
    assert re.search(rf'<td class="field-effective_chat">{re.escape(expected)}</td>', listing)
    assert "Effective chat permission" in page
    assert expected in page


def test_contact_changelist_query_count_does_not_grow_with_contacts(admin_client, f):
    """The effective-permission column costs no query per row: 3 contacts and 30 cost the same."""
    f.enable_chat_globally(enabled=True)
    url = admin_url(Contact, "changelist")

    def add_contacts(count):
        for n in range(count):
            company = f.make_company(chat=[Access.ALLOW, Access.DENY, None][n % 3])
            f.make_contact(company=company, chat=[None, Access.ALLOW, Access.DENY][n % 3])

    def count_queries() -> tuple[int, str]:
        with statements_run() as statements:
            response = admin_client.get(url)
        assert response.status_code == 200
        return len(statements), response.content.decode()

    add_contacts(3)
    few, html = count_queries()
    assert html.count('class="field-effective_chat"') == 3
    add_contacts(27)
    many, html = count_queries()
    assert html.count('class="field-effective_chat"') == 30

    assert many == few


def test_contact_search_finds_by_name_email_and_company(admin_client, f):
    """The contact list's search box finds contacts by name, email, username and company."""
    fiona = f.make_contact(
        first_name="Fiona", last_name="Lee", company=f.make_company(name="Fabrikam Legal"), username="fiona"
    )
    f.make_contact(first_name="Ken", last_name="Adams", company=f.make_company(name="Contoso Dental"), username="ken")
    url = admin_url(Contact, "changelist")

    for query in ("Fiona", "lee", "fiona@example.com", "Fabrikam"):
        html = admin_client.get(url, {"q": query}).content.decode()
        assert admin_url(Contact, "change", fiona.pk) in html, query
        assert "Adams" not in html, query


def test_contact_list_filters_by_company(admin_client, f):
    """The company filter narrows the contact list."""
    fiona = f.make_contact(first_name="Fiona", last_name="Lee")
    ken = f.make_contact(first_name="Ken", last_name="Adams")

    html = admin_client.get(admin_url(Contact, "changelist"), {"company__id__exact": fiona.company_id}).content.decode()

    assert admin_url(Contact, "change", fiona.pk) in html
    assert admin_url(Contact, "change", ken.pk) not in html


def test_ticket_and_company_search(admin_client, f):
    """Tickets are found by number, summary or company; companies by name."""
    vpn = f.make_ticket(company=f.make_company(name="Northwind Freight"), summary="VPN drops")
    f.make_ticket(company=f.make_company(name="Contoso Dental"), summary="Printer jams")

    for query in (str(vpn.pk), "VPN", "Northwind"):
        html = admin_client.get(admin_url(Ticket, "changelist"), {"q": query}).content.decode()
        assert "VPN drops" in html and "Printer jams" not in html, query
    html = admin_client.get(admin_url(Company, "changelist"), {"q": "northwind"}).content.decode()
    assert "Northwind Freight" in html and "Contoso Dental" not in html


def test_ticket_page_shows_notes_including_internal(admin_client, objects):
    """The ticket's admin page lists its notes, internal ones too."""
    html = admin_client.get(admin_url(Ticket, "change", objects[Ticket].pk)).content.decode()

    assert "A public remark" in html and "A staff-only remark" in html


def test_admin_is_closed_to_contacts_and_anonymous_users(client, f):
    """Only staff reach the admin; others are sent to the admin login."""
    url = admin_url(Contact, "changelist")
    assert client.get(url).status_code == 302

    client.force_login(f.make_contact().user)
    response = client.get(url)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
