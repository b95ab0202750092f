"""Count the SQL a piece of code runs, requests included."""

from contextlib import contextmanager

from django.db import connection


@contextmanager
def statements_run():
    """Collect every SQL statement run on the default connection while the block runs.

    Django's CaptureQueriesContext reads the debug query log, which the request_started signal
    empties at the start of every request: around a test client's request it sees nothing.
    """
    seen: list[str] = []
    with connection.execute_wrapper(lambda execute, sql, *rest: seen.append(sql) or execute(sql, *rest)):
        yield seen
