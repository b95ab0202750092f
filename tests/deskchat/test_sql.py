"""deskchat/sql.py, the toolkit for hand-written SQL, and the rule that such SQL lives only in */sql.py."""

import re
from pathlib import Path
from typing import NamedTuple

import pytest
from django.apps import apps
from django.db import IntegrityError, NotSupportedError, connection, transaction

from accounts.models import GlobalPermissions
from chat.models import ChatMessage, ChatRoom
from deskchat.sql import Statement, named, violates

ROOT = Path(__file__).resolve().parents[2]
APPS = ("accounts", "chat", "tickets", "deskchat")
# What only a hand-written statement needs: a cursor, a raw query, or SQL spliced into the ORM.
RAW_SQL = re.compile(r"\bcursor\(|\.raw\(|\bRawSQL\b|\.extra\(|\.execute\(")


def allowed_to_write_sql(path: Path) -> bool:
    """Return whether a module may hold hand-written SQL: an app's sql.py, a migration, the health
    probe, and the async connections (deskchat/adb.py runs statements for deskchat.sql and sets
    each connection's time zone with Django's own statement)."""
    relative = path.relative_to(ROOT)
    return (
        relative.name == "sql.py"
        or "migrations" in relative.parts
        or relative in (Path("deskchat/health.py"), Path("deskchat/adb.py"))
    )


def modules_with_raw_sql() -> list[str]:
    """Return every `path:line` of the apps where SQL is written by hand outside the allowed modules."""
    found = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if allowed_to_write_sql(path):
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if RAW_SQL.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return found


def test_hand_written_sql_lives_only_in_the_apps_sql_modules():
    """No cursor or raw SQL outside */sql.py, the migrations, deskchat/health.py and deskchat/adb.py."""
    assert modules_with_raw_sql() == []


def test_the_guard_sees_each_kind_of_raw_sql():
    """The guard's pattern catches a cursor, .raw(), RawSQL, .extra() and a bare execute."""
    for line in (
        "with connection.cursor() as c:",
        "Contact.objects.raw('SELECT 1')",
        "annotate(x=RawSQL('1', []))",
        "qs.extra(where=['1=1'])",
        "c.execute('SELECT 1')",
    ):
        assert RAW_SQL.search(line), line
    assert not RAW_SQL.search("connection.execute_wrapper(hook)")


def test_the_sql_modules_name_no_table_by_hand():
    """Tables are named through the models (`{ChatRoom}`), so no sql.py spells a table's name."""
    tables = {model._meta.db_table for model in apps.get_models()}
    modules = [ROOT / app / "sql.py" for app in APPS if (ROOT / app / "sql.py").exists()]
    assert len(modules) >= 3  # accounts, chat and the toolkit itself
    for path in modules:
        source = path.read_text()
        spelled = sorted(table for table in tables if re.search(rf"\b{re.escape(table)}\b", source))
        assert spelled == [], f"{path.relative_to(ROOT)} names {spelled}"


# --- Statements -------------------------------------------------------------------------------


class Pair(NamedTuple):
    b: int
    a: int


class Flags(NamedTuple):
    on: bool
    maybe: bool | None
    count: int


def test_a_statement_names_tables_and_columns_through_the_models():
    """`{ChatRoom}` is the room's table and `{ChatRoom.request}` its foreign key's column, quoted."""
    statement = Statement(Pair, (ChatRoom,), any="SELECT {ChatRoom.request}, {ChatRoom.last_seq} FROM {ChatRoom}")
    q = connection.ops.quote_name
    assert statement.sql() == f"SELECT {q('request_id')}, {q('last_seq')} FROM {q('chat_chatroom')}"


def test_a_renamed_table_renames_the_statement_and_the_text_is_built_once(monkeypatch):
    """The text follows the model's db_table, and is built once per vendor (later renames don't reach it)."""
    monkeypatch.setattr(ChatRoom._meta, "db_table", "renamed_room")
    statement = Statement(Pair, (ChatRoom,), any="SELECT 1 FROM {ChatRoom}")
    assert statement.sql() == f"SELECT 1 FROM {connection.ops.quote_name('renamed_room')}"
    monkeypatch.setattr(ChatRoom._meta, "db_table", "renamed_again")
    assert "renamed_room" in statement.sql()


@pytest.mark.django_db
def test_each_vendor_gets_its_own_text():
    """A statement may say a thing differently on PostgreSQL and SQLite; each runs its own."""
    statement = Statement(Pair, (), postgresql="SELECT 1 AS a, 2 AS b", sqlite="SELECT 3 AS a, 4 AS b")
    expected = Pair(a=1, b=2) if connection.vendor == "postgresql" else Pair(a=3, b=4)
    assert statement.fetch_one({}) == expected
    assert statement.fetch_all({}) == [expected]


def test_a_statement_without_a_text_for_this_vendor_is_refused():
    """Asking for a statement this database has no text for says so, rather than running another's."""
    other = "sqlite" if connection.vendor == "postgresql" else "postgresql"
    statement = Statement(Pair, (), **{other: "SELECT 1 AS a, 2 AS b"})
    assert statement.supported() is False
    with pytest.raises(NotSupportedError):
        statement.sql()


def test_rows_become_named_results_by_column_name_not_position():
    """Columns fill the fields of the same name, whatever their order; a stray or missing one raises."""
    assert named(Pair, ["a", "b"], (1, 2)) == Pair(a=1, b=2)
    with pytest.raises(TypeError):
        named(Pair, ["a", "c"], (1, 2))
    with pytest.raises(TypeError):
        named(Pair, ["a"], (1,))


def test_boolean_fields_get_booleans_whatever_the_backend_hands_back():
    """SQLite's 1 and 0 become True and False in fields annotated bool; a None and an int stay as they are."""
    assert named(Flags, ["on", "maybe", "count"], (1, None, 1)) == (True, None, 1)
    flags = named(Flags, ["on", "maybe", "count"], (0, 1, 1))
    assert (flags.on, flags.maybe, type(flags.count)) == (False, True, int)
    assert type(flags.maybe) is bool


# --- Refusals ---------------------------------------------------------------------------------


def integrity_error(create) -> IntegrityError:
    """Return the IntegrityError that `create` raises, after its savepoint has rolled back."""
    with pytest.raises(IntegrityError) as refused, transaction.atomic():
        create()
    return refused.value


@pytest.fixture
def message(f):
    """A message in a room, seq 1, sent as client_msg_id "m1"."""
    ticket = f.make_ticket()
    room = ChatRoom.objects.create(
        ticket=ticket,
        request=ticket.chat_requests.create(contact=ticket.contact, expires_at="2030-01-01T00:00:00Z"),
    )
    return ChatMessage.objects.create(room=room, seq=1, author=ticket.contact.user, body="hi", client_msg_id="m1")


@pytest.mark.django_db
def test_a_unique_refusal_is_recognised_by_its_constraint_and_no_other(message):
    """A second seq 1 breaks unique_room_seq; it is not read as a repeated client_msg_id."""
    error = integrity_error(
        lambda: ChatMessage.objects.create(
            room=message.room, seq=1, author=message.author, body="x", client_msg_id="m2"
        )
    )
    assert violates(error, ChatMessage, "unique_room_seq", room=message.room, seq=1)
    assert not violates(
        error, ChatMessage, "unique_client_msg_id", room=message.room, author=message.author, client_msg_id="m2"
    )


@pytest.mark.django_db
def test_a_partial_unique_refusal_is_recognised_by_its_constraint(message):
    """A repeated client_msg_id breaks the partial unique_client_msg_id (an index on PostgreSQL)."""
    error = integrity_error(
        lambda: ChatMessage.objects.create(
            room=message.room, seq=2, author=message.author, body="x", client_msg_id="m1"
        )
    )
    assert violates(
        error, ChatMessage, "unique_client_msg_id", room=message.room, author=message.author, client_msg_id="m1"
    )
    assert not violates(error, ChatMessage, "unique_room_seq", room=message.room, seq=2)


@pytest.mark.django_db
def test_a_check_refusal_is_recognised_by_its_constraint():
    """A second global settings row breaks global_permissions_singleton."""
    error = integrity_error(lambda: GlobalPermissions.objects.create(pk=2))
    assert violates(error, GlobalPermissions, "global_permissions_singleton", pk=2)


@pytest.mark.django_db
def test_an_integrity_error_of_no_named_constraint_is_not_misread(message):
    """A missing body (NOT NULL) is no unique constraint's refusal, even where the values would clash."""
    error = integrity_error(
        lambda: ChatMessage.objects.create(room=message.room, seq=1, author=message.author, body=None)
    )
    assert not violates(error, ChatMessage, "unique_room_seq", room=message.room, seq=1)


def test_a_constraint_the_model_does_not_have_is_a_programming_error():
    """A misspelt constraint name fails loudly instead of never matching."""
    with pytest.raises(KeyError):
        violates(IntegrityError(), ChatMessage, "unique_room_sequence")
