"""On PostgreSQL a statement the ORM runs again and again is prepared once per connection."""

import pytest
from django.db import connection

from chat import selectors
from deskchat.settings import prepared_statements


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_read_run_again_and_again_is_prepared_on_its_connection(f):
    """Planning the dialog's joined reads cost PostgreSQL more than running them: prepared, it plans once."""
    contact = f.make_contact()
    for _ in range(6):
        selectors.active_room_for_contact(contact=contact)
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any("chat_chatparticipant" in statement for statement in prepared), prepared


def test_a_threshold_of_zero_turns_preparing_off_for_poolers_that_cannot_keep_them():
    assert prepared_statements(5) == {"server_side_binding": True, "prepare_threshold": 5}
    assert prepared_statements(0) == {}
