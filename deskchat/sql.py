"""The toolkit for hand-written SQL: names from the models, named results, refusals by code.

Each app keeps every statement it writes by hand in its own `sql.py` (accounts/sql.py,
chat/sql.py), as a `Statement`. A statement's text is a template that names tables and columns
through the models (`{ChatRoom}` is the room table, `{ChatRoom.last_seq}` its column), so a
renamed table or column changes the SQL with it. The text is built once per database vendor, on
first use, and may differ between vendors. Its rows come back as the statement's named result,
matched by the columns' names, never by position.

A refusal by the database is recognised by what it says in codes, never by its message text:
the SQLSTATE and constraint name on PostgreSQL, the error name on SQLite (see `violates`).
Every statement has a twin test (tests/<app>/test_sql.py) against a plain ORM reference.
"""

import functools
import sqlite3
import typing
from collections.abc import Iterable, Mapping
from types import NoneType

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, NotSupportedError, connections

from . import adb

UNIQUE_VIOLATION = "23505"  # PostgreSQL's SQLSTATE for a unique constraint or index
CHECK_VIOLATION = "23514"
# sqlite3's names (Python 3.11+: sqlite_errorname) for the same two refusals.
SQLITE_UNIQUE = "SQLITE_CONSTRAINT_UNIQUE"
SQLITE_CHECK = "SQLITE_CONSTRAINT_CHECK"


class _ModelNames:
    """Format as a model's quoted table name; its attributes are its fields' quoted column names."""

    def __init__(self, model, quote):
        self._model, self._quote = model, quote

    def __format__(self, spec: str) -> str:
        return self._quote(self._model._meta.db_table)

    def __getattr__(self, field_name: str) -> str:
        return self._quote(self._model._meta.get_field(field_name).column)


class Statement:
    """One hand-written statement: its text per vendor, the models it names, and its named result.

    `texts` maps a vendor (`connection.vendor`: "postgresql", "sqlite") to a template, or "any"
    to one template for every vendor. A template is formatted with one entry per model, named
    after the model's class: `{Contact}` and `{Contact.company}` (a foreign key's column).
    Parameters are named (`%(contact)s`), which both backends accept.
    """

    def __init__(self, result: type[tuple], models: Iterable, **texts: str):
        self.result = result
        self._models = tuple(models)
        self._texts = texts
        self._sql: dict[str, str] = {}

    def supported(self, using: str = DEFAULT_DB_ALIAS) -> bool:
        """Return whether the statement has a text for this database's vendor."""
        vendor = adb.vendor(using)
        return vendor in self._texts or "any" in self._texts

    def sql(self, using: str = DEFAULT_DB_ALIAS) -> str:
        """Return the statement's text for this database's vendor, built on first use."""
        vendor = adb.vendor(using)  # not connections[using] on every call: see adb.vendor
        if vendor not in self._sql:
            connection = connections[using]
            template = self._texts.get(vendor, self._texts.get("any"))
            if template is None:
                raise NotSupportedError(f"{self.result.__name__} has no statement for {vendor}")
            names = {model.__name__: _ModelNames(model, connection.ops.quote_name) for model in self._models}
            self._sql[vendor] = template.format_map(names)
        return self._sql[vendor]

    def fetch_one(self, params: Mapping, *, using: str = DEFAULT_DB_ALIAS):
        """Run the statement and return its first row as the named result, or None without one."""
        with connections[using].cursor() as cursor:
            cursor.execute(self.sql(using), params)
            row = cursor.fetchone()
            return None if row is None else named(self.result, [column[0] for column in cursor.description], row)

    async def fetch_one_async(self, params: Mapping, *, using: str = DEFAULT_DB_ALIAS):
        """Run the statement on one of the event loop's connections (deskchat.adb), in autocommit.

        Return its first row as the named result, or None without one. Errors are Django's, as
        from fetch_one.
        """
        async with adb.connection(using) as conn:
            cursor = await conn.execute(self.sql(using), params)
            row = await cursor.fetchone()
            return None if row is None else named(self.result, [column[0] for column in cursor.description], row)

    def fetch_all(self, params: Mapping, *, using: str = DEFAULT_DB_ALIAS) -> list:
        """Run the statement and return every row as the named result."""
        with connections[using].cursor() as cursor:
            cursor.execute(self.sql(using), params)
            columns = [column[0] for column in cursor.description]
            return [named(self.result, columns, row) for row in cursor.fetchall()]


def named(result: type[tuple], columns: list[str], row) -> tuple:
    """Build the named result from a row, matching columns to fields by name.

    A column the result lacks, or a field no column fills, raises TypeError at once, so the SQL and
    its result cannot drift apart by position. SQLite hands booleans back as 0 and 1: a field
    annotated `bool` (or `bool | None`) gets a bool on every vendor.
    """
    values = dict(zip(columns, row, strict=True))
    for field in _bool_fields(result):
        if values.get(field) is not None:
            values[field] = bool(values[field])
    return result(**values)


@functools.cache
def _bool_fields(result: type) -> tuple[str, ...]:
    hints = typing.get_type_hints(result)
    return tuple(name for name, hint in hints.items() if hint is bool or set(typing.get_args(hint)) == {bool, NoneType})


# --- Refusals -------------------------------------------------------------------------------


def sqlstate(error: Exception) -> str | None:
    """Return the SQLSTATE PostgreSQL gave a database error (None on other databases)."""
    return getattr(error.__cause__, "sqlstate", None)


def raised(error: Exception, code: str) -> bool:
    """Return whether a database error carries this SQLSTATE, such as a function's own `ERRCODE`."""
    return sqlstate(error) == code


def violates(error: Exception, model, constraint_name: str, *, using: str = DEFAULT_DB_ALIAS, **values) -> bool:
    """Return whether an IntegrityError broke the model's constraint of this name.

    `values` are the refused row's values of the constraint's fields (and its condition's). On
    PostgreSQL the error names the constraint (`diag.constraint_name`, an index's name for a
    partial unique constraint). SQLite names only the kind (`sqlite_errorname`); its message lists
    columns, which is text, so the constraint itself is asked whether the values break it
    (`validate`: for a unique constraint, one query for a clashing row, only on this rare path).
    So on SQLite, a refusal by another constraint of values that would also break this one reads
    as this one's. Call once the transaction the error broke has rolled back (its atomic block or
    savepoint has exited).
    """
    constraint = {c.name: c for c in model._meta.constraints}[constraint_name]  # a KeyError names a typo
    cause = error.__cause__
    diag = getattr(cause, "diag", None)
    if diag is not None:
        return sqlstate(error) in (UNIQUE_VIOLATION, CHECK_VIOLATION) and diag.constraint_name == constraint_name
    if isinstance(cause, sqlite3.IntegrityError) and cause.sqlite_errorname in (SQLITE_UNIQUE, SQLITE_CHECK):
        try:
            constraint.validate(model, model(**values), using=using)
        except ValidationError:
            return True
    return False
