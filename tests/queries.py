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


@contextmanager
def rows_written():
    """Collect how many rows each INSERT, UPDATE or DELETE run on the default connection changed."""
    written: list[int] = []

    def count(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.lstrip().split(None, 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            written.append(context["cursor"].rowcount)
        return result

    with connection.execute_wrapper(count):
        yield written
