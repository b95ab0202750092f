"""Twin tests: a hand-written statement and its plain ORM reference agree over generated data.

Every statement in an app's sql.py has a twin in tests/<app>/test_sql.py: a reference written
with the ORM alone, as plainly as possible, and a hypothesis test that builds a small world of
rows, runs both from the same rows, and asserts the same outcome (a result, or a refusal). The
suite runs on SQLite and on PostgreSQL, so each twin holds on both.

Each generated world is built inside a savepoint that is rolled back, and each side of the twin
runs in a savepoint of its own, so a write by one side is never seen by the other.
"""

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Modest, so the twins add seconds, not minutes, to each run. The function-scoped fixture is
# pytest-django's database: every example rolls back what it wrote, so sharing it is safe.
twin_settings = settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# A fixed moment in the past to place generated times around (microseconds on purpose: SQLite
# compares times as text, so the digits after the second count).
BASE_TIME = timezone.now().replace(microsecond=250_000) - timedelta(days=1)

# Offsets from BASE_TIME: equal to it, just before and after it, and a little further out.
offsets = st.sampled_from(
    [timedelta(0), timedelta(microseconds=1), timedelta(microseconds=-1), timedelta(seconds=1), timedelta(seconds=-30)]
)


@dataclass(frozen=True)
class Refused:
    """An outcome that is a refusal; `reason` names it (a constraint, a code), never a message."""

    reason: str


@contextmanager
def rolled_back():
    """Run the block in a savepoint, then undo everything it wrote."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def outcome(run: Callable[[], object], refused: Callable[[Exception], Refused] | None = None) -> object:
    """Return what `run` returns, in a savepoint that is rolled back.

    `refused` turns an expected exception into a Refused outcome (after the savepoint rolled
    back), and raises anything else again.
    """
    try:
        with rolled_back():
            return run()
    except Exception as error:
        if refused is None:
            raise
        return refused(error)


def assert_twins(
    statement: Callable[[], object],
    reference: Callable[[], object],
    refused: Callable[[Exception], Refused] | None = None,
) -> object:
    """Assert the hand-written statement and its ORM reference have the same outcome from the same rows; return it."""
    ours = outcome(statement, refused)
    theirs = outcome(reference, refused)
    assert ours == theirs, f"hand-written: {ours!r}\nORM reference: {theirs!r}"
    return ours
