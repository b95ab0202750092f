"""The chat records in the admin: shown whole, changed only through chat/services.py."""

import pytest
from django.urls import reverse

from chat import services

pytestmark = pytest.mark.django_db


def test_a_room_page_shows_its_participants_and_transcript_read_only(admin_client, f):
    """An administrator reads who was in a chat and what was said, and cannot edit or add to it."""
    engineer = f.make_engineer(display_name="Dana Reyes")
    f.make_queue(is_default=True, members=[engineer])
    contact = f.make_contact(first_name="Olive", last_name="Ours", company=f.make_company(chat="allow"))
    request = services.request_chat(contact=contact, ticket=f.make_ticket(contact=contact))
    room = services.answer_request(engineer=engineer, request_id=request.pk)
    services.send_message(room_id=room.pk, user=contact.user, body="<b>printer</b> is on fire")

    html = admin_client.get(reverse("admin:chat_chatroom_change", args=[room.pk])).content.decode()

    assert "Olive Ours" in html and "Dana Reyes" in html
    assert "&lt;b&gt;printer&lt;/b&gt; is on fire" in html
    assert 'name="messages-0-body"' not in html  # read-only: no form fields for the transcript
    response = admin_client.post(reverse("admin:chat_chatroom_change", args=[room.pk]), {"state": "ended"})
    assert response.status_code == 403
    room.refresh_from_db()
    assert room.is_active


# --- Engineers keep their own message templates in the admin ----------------------------------


@pytest.fixture
def templates(f):
    from chat.models import MessageTemplate

    dana = f.make_engineer(display_name="Dana Reyes")
    sam = f.make_engineer(display_name="Sam Okafor")
    return {
        "dana": dana,
        "sam": sam,
        "shared": MessageTemplate.objects.create(kind="greeting", name="Shared hello", body="Hi"),
        "danas": MessageTemplate.objects.create(kind="greeting", name="Dana's hello", body="Hey", owner=dana),
        "sams": MessageTemplate.objects.create(kind="farewell", name="Sam's bye", body="Bye", owner=sam),
    }


def test_an_engineers_admin_link_leads_to_their_own_templates(client, templates):
    """The Admin link is there, and the admin index lists the templates, not "nothing to edit"."""
    client.force_login(templates["dana"].user)
    page = client.get(reverse("hud")).content.decode()
    assert f'href="{reverse("admin:index")}"' in page
    index = client.get(reverse("admin:index")).content.decode()
    assert "You don’t have permission to view or edit anything" not in index
    assert reverse("admin:chat_messagetemplate_changelist") in index
    listing = client.get(reverse("admin:chat_messagetemplate_changelist")).content.decode()
    assert "Dana&#x27;s hello" in listing and "Shared hello" in listing and "Sam&#x27;s bye" not in listing
    assert client.get(reverse("admin:accounts_company_changelist")).status_code == 403


def test_a_template_an_engineer_adds_is_their_own(client, templates):
    from chat.models import MessageTemplate

    client.force_login(templates["dana"].user)
    response = client.post(
        reverse("admin:chat_messagetemplate_add"),
        {"kind": "farewell", "name": "My bye", "body": "Bye {client_first_name}", "owner": templates["sam"].pk},
    )
    assert response.status_code == 302
    assert MessageTemplate.objects.get(name="My bye").owner == templates["dana"]


def test_an_engineer_may_not_change_shared_or_a_colleagues_templates(client, templates):
    """A colleague's is not even listed (404); a shared one is read-only (403 on a post)."""
    client.force_login(templates["dana"].user)
    own = reverse("admin:chat_messagetemplate_change", args=[templates["danas"].pk])
    assert client.post(own, {"kind": "greeting", "name": "Dana's hi", "body": "Hey there"}).status_code == 302
    sams = reverse("admin:chat_messagetemplate_change", args=[templates["sams"].pk])
    assert client.get(sams).status_code == 302  # the admin's "does not exist" redirect to its index
    shared = reverse("admin:chat_messagetemplate_change", args=[templates["shared"].pk])
    assert client.post(shared, {"kind": "greeting", "name": "Mine", "body": "x"}).status_code == 403
    delete = reverse("admin:chat_messagetemplate_delete", args=[templates["shared"].pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    templates["shared"].refresh_from_db()
    templates["sams"].refresh_from_db()
    assert templates["shared"].name == "Shared hello" and templates["sams"].name == "Sam's bye"


def test_a_staff_user_with_nothing_to_manage_gets_no_admin_link(client, f):
    """A link to an empty admin is a dead end, so it is not shown."""
    engineer = f.make_engineer(display_name="Nora Noperms")
    engineer.user.groups.clear()
    client.force_login(engineer.user)
    assert f'href="{reverse("admin:index")}"' not in client.get(reverse("hud")).content.decode()


def test_the_admin_writes_moments_in_the_one_format_in_the_viewers_time_zone(admin_client, f):
    """A request's time reads "Dec 2, 2026 06:12" in Berlin, as on the portal, not "Dec. 2, 2026, 5:12 a.m."."""
    from datetime import UTC, datetime

    from chat.models import ChatRequest
    from deskchat.timefmt import TIME_ZONE_COOKIE

    f.make_queue(is_default=True, members=[f.make_engineer()])
    contact = f.make_contact(company=f.make_company(chat="allow"))
    request = services.request_chat(contact=contact, ticket=f.make_ticket(contact=contact))
    ChatRequest.objects.filter(pk=request.pk).update(
        requested_at=datetime(2026, 12, 2, 5, 12, tzinfo=UTC), expires_at=datetime(2026, 12, 2, 5, 17, tzinfo=UTC)
    )
    admin_client.cookies[TIME_ZONE_COOKIE] = "Europe/Berlin"

    listing = admin_client.get(reverse("admin:chat_chatrequest_changelist")).content.decode()
    page = admin_client.get(reverse("admin:chat_chatrequest_change", args=[request.pk])).content.decode()

    assert "Dec 2, 2026 06:12" in listing and "a.m." not in listing
    assert "Dec 2, 2026 06:17" in page  # the page shows when it expires
