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
