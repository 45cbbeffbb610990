"""Multi-row INSERT statements (COPY on PostgreSQL) built from plain tuples, for the apply's large inserts.

Django's ``bulk_create`` sends the same statements but prepares every value through several
layers per field (pre_save, get_db_prep_save, the compiler's placeholders) and needs a model
instance per row: at 100,000 subscriptions that is most of a first pull's time. Here each
column's adapter is looked up once, values go straight from snapshot records into the parameter
list, and the statement is the one Django would write: one per batch, through Django's cursor (so
it is logged, counted and inside the caller's transaction).

On SQLite each batch is one ``executemany`` of a single-row INSERT (sqlite3 runs the prepared
statement over the rows in C). On PostgreSQL the rows go in with one ``COPY ... FROM STDIN`` per
call (psycopg 3's copy support):
no statement to parse per batch, no placeholder per value, one stream for the whole table. It
runs through Django's execute wrappers and query log too, so it is counted as one statement.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta, timezone
from itertools import islice
from typing import Any

from django.conf import settings
from django.db import connections, models, router
from django.db.backends.base.operations import BaseDatabaseOperations

ZERO = timedelta(0)


def batches(rows: Iterable, size: int) -> Iterable[list]:
    it = iter(rows)
    while chunk := list(islice(it, size)):
        yield chunk


def adapter(field: models.Field, connection, copy: bool = False) -> Callable[[Any], Any] | None:
    """What turns a record's value into the column's parameter; None: the value goes as it is.
    ``copy``: for PostgreSQL's COPY, whose text format takes JSON as its text."""
    kind = field.get_internal_type()
    if copy and kind in ("DateTimeField", "JSONField") and _django_postgresql(connection, kind, field):
        # Django's PostgreSQL adapters return a datetime unchanged (psycopg formats it in C) and
        # wrap JSON in Jsonb(json.dumps): COPY takes the datetime as it is and the JSON as that text
        # ({} and [], most rows' metadata and tiers, without a call). 0.6 s of a profiled first
        # pull at N=100,000.
        return None if kind == "DateTimeField" else _json_text
    if kind == "DateTimeField":
        adapt = connection.ops.adapt_datetimefield_value
        if connection.vendor == "sqlite" and settings.USE_TZ:
            # Django's own adapter, without a settings lookup and two helper calls per value; a UTC
            # value (every one parsed from Stripe) into a UTC connection (Django's default) needs
            # no time zone arithmetic, which costs more than the rest of the insert's work.
            tz = connection.timezone
            utc_connection = is_utc(tz)

            def adapt(value):
                offset = value.utcoffset()
                if offset is None:
                    return str(value)
                if offset == ZERO and utc_connection:
                    return value.replace(tzinfo=None).isoformat(" ")
                return str(value.astimezone(tz).replace(tzinfo=None))

        seen: dict = {}  # timestamps repeat (a page's fetch time, billing periods): adapt each once

        def adapt_datetime(value):
            if value is None:
                return None
            done = seen.get(value)
            if done is None:
                if len(seen) > 50_000:
                    seen.clear()
                done = seen[value] = adapt(value)
            return done

        return adapt_datetime
    if kind == "JSONField":
        prep = field.get_db_prep_value
        if field.encoder is None and type(connection.ops).adapt_json_value is BaseDatabaseOperations.adapt_json_value:
            # json.dumps, as Django's, but not for the empty values most rows hold (metadata {},
            # tiers []): 200,000 calls on a first pull
            empty = {dict: "{}", list: "[]"}

            def adapt_json(value):
                text = empty.get(type(value)) if not value else None
                return text if text is not None else prep(value, connection)

            return adapt_json
        return lambda value: prep(value, connection)
    return None


_EMPTY_JSON = {dict: "{}", list: "[]"}


def _json_text(value):
    text = _EMPTY_JSON.get(type(value)) if not value else None
    return text if text is not None else json.dumps(value)  # None: JSON null, as Jsonb(None)


def _django_postgresql(connection, kind: str, field: models.Field) -> bool:
    """The connection's adapter for ``kind`` is Django's own PostgreSQL one (not a subclass's)."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    ops = type(connection.ops)
    if kind == "DateTimeField":
        return ops.adapt_datetimefield_value is DatabaseOperations.adapt_datetimefield_value
    return field.encoder is None and ops.adapt_json_value is DatabaseOperations.adapt_json_value


def insert(model: type[models.Model], columns: Sequence[str], rows: Iterable[tuple], batch_size: int = 500) -> int:
    """Insert ``rows`` (tuples in the order of ``columns``, field names or attnames); return the count."""
    connection = connections[router.db_for_write(model)]
    meta = model._meta
    fields = [meta.get_field(name) for name in columns]
    copy = connection.vendor == "postgresql" and _psycopg3()
    adapters = [adapter(field, connection, copy) for field in fields]
    quote = connection.ops.quote_name
    head = f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) VALUES "
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    limit = connection.features.max_query_params or 65_535  # None: no limit but the protocol's (PostgreSQL)
    per_statement = max(1, min(batch_size, limit // len(fields)))
    if copy:
        rows = iter(rows)
        first = next(rows, None)
        if first is None:
            return 0  # no statement for no rows, as with INSERT
        rows = itertools.chain((first,), rows)
        columns_sql = ", ".join(quote(f.column) for f in fields)
        return _copy(connection, f"COPY {quote(meta.db_table)} ({columns_sql}) FROM STDIN", adapters, rows)
    count = 0
    adapted = [(i, adapt) for i, adapt in enumerate(adapters) if adapt]  # most columns go as they are
    width = len(fields)
    if connection.vendor == "sqlite":
        # One prepared single-row INSERT run over the batch by sqlite3's executemany, in C: a
        # multi-row VALUES list of 500 rows costs Django a regular expression over its whole text
        # (%s to ?) and SQLite a new statement to compile, per batch.
        epoch = _epoch_columns(fields, connection)
        converters: dict[tuple[int, ...], Callable[[tuple], tuple]] = {}
        with connection.cursor() as cursor:
            for batch in batches(rows, batch_size):
                whole, params = _sqlite_params(batch, width, adapted, epoch, converters)
                statement = head + "(" + ", ".join(_EPOCH if i in whole else "%s" for i in range(width)) + ")"
                cursor.executemany(statement, params)
                count += len(batch)
        return count
    with connection.cursor() as cursor:
        for batch in batches(rows, per_statement):
            params: list = []
            extend = params.extend
            for row in batch:
                if len(row) != width:
                    raise ValueError(f"a row of {len(row)} values for {width} columns")
                if adapted:
                    row = list(row)
                    for i, adapt in adapted:
                        row[i] = adapt(row[i])
                extend(row)
            cursor.execute(head + ", ".join([one] * len(batch)), params)
            count += len(batch)
    return count


def _sqlite_params(
    batch: list[tuple], width: int, adapted: list, epoch: tuple[int, ...], converters: dict
) -> tuple[tuple[int, ...], list]:
    """A batch's parameters, and its datetime columns sent as Unix times (``_EPOCH``).

    The columns whose first value is a whole UTC second (or None) are taken to be whole in every
    row, and each row goes through one function compiled for that (``_converter``), which checks
    each such value as it converts it: a row of a first pull's subscriptions has ten datetime
    columns, and a pass over the batch per column to check them, then a call per value to adapt
    it, were a third of the Python side of the inserts. A value that is not a whole UTC second
    sends the batch the general way: columns whole in every row, each value adapted by a call."""
    first = batch[0]
    if len(first) == width:
        whole = tuple(i for i in epoch if _whole_utc_second(first[i]))
        convert = converters.get(whole)
        if convert is None:
            convert = converters[whole] = _converter(width, adapted, whole)
        try:
            return whole, list(map(convert, batch))
        except _NotWhole:
            pass
    whole = tuple(i for i in epoch if all(map(_whole_utc_second, (row[i] for row in batch))))
    plan = [(i, _unix if i in whole else adapt) for i, adapt in adapted]
    return whole, [_adapted(row, width, plan) for row in batch]


class _NotWhole(Exception):
    """A datetime that is not a whole UTC second where the batch's first row had one."""


def _converter(width: int, adapted: list, whole: tuple[int, ...]) -> Callable[[tuple], tuple]:
    """A row's parameters as one straight-line function (as the registry's record makers): the
    ``whole`` columns as Unix times (``_unix``), after a check that raises ``_NotWhole``; the
    other adapted columns through their adapter (None included, as ``_adapted`` does)."""
    adapters = dict(adapted)
    env: dict[str, Any] = {"NotWhole": _NotWhole, "datetime": datetime, "UTC": timezone.utc}
    env.update((f"adapt_{i}", adapt) for i, adapt in adapters.items())
    names = [f"v{i}" for i in range(width)]
    body = [
        f"    if len(row) != {width}:\n        raise ValueError(f'a row of {{len(row)}} values for {width} columns')\n",
        f"    {', '.join(names)}, = row\n",
    ]
    values = []
    for i, name in enumerate(names):
        if i in whole:
            body.append(
                f"    if {name} is not None and (type({name}) is not datetime or {name}.microsecond"
                f" or {name}.tzinfo is not UTC):\n        raise NotWhole\n"
            )
            values.append(f"None if {name} is None else int({name}.timestamp())")
        elif i in adapters:
            values.append(f"adapt_{i}({name})")
        else:
            values.append(name)
    exec(f"def convert(row):\n{''.join(body)}    return ({', '.join(values)},)\n", env)  # noqa: S102
    return env["convert"]


def _adapted(row: tuple, width: int, adapted: list) -> tuple | list:
    if len(row) != width:
        raise ValueError(f"a row of {len(row)} values for {width} columns")
    if not adapted:
        return row
    row = list(row)
    for i, adapt in adapted:
        row[i] = adapt(row[i])
    return row


# SQLite's own formatting of a Unix time is Django's text for a whole-second UTC datetime
# ("2024-05-01 12:00:00"): formatting it in C costs a third of Python's isoformat, which was the
# largest part of a first pull's inserts. Stripe's timestamps are whole seconds; a batch whose
# column holds a fraction of a second (a page's sync time) or another zone keeps Django's text.
_EPOCH = "datetime(%s, 'unixepoch')"


def _epoch_columns(fields: Sequence[models.Field], connection) -> tuple[int, ...]:
    if not (settings.USE_TZ and is_utc(connection.timezone)):
        return ()
    return tuple(i for i, field in enumerate(fields) if field.get_internal_type() == "DateTimeField")


def is_utc(tz) -> bool:
    """Whether a connection's time zone is UTC (no offset, no daylight saving)."""
    sample = datetime(2000, 1, 1)
    return tz.utcoffset(sample) == ZERO and tz.dst(sample) in (ZERO, None)


def _whole_utc_second(value) -> bool:
    if value is None:
        return True
    if type(value) is not datetime or value.microsecond:
        return False
    return value.tzinfo is timezone.utc or value.utcoffset() == ZERO


def _unix(value):
    return None if value is None else int(value.timestamp())


def _psycopg3() -> bool:
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return is_psycopg3


def _copy(connection, sql: str, adapters: list, rows: Iterable[tuple]) -> int:
    """One COPY of every row, through Django's cursor wrappers (execute_wrapper, the query log)."""
    count = 0

    def run(sql, params, many, context):
        nonlocal count
        connection.validate_no_broken_transaction()
        with connection.wrap_database_errors, context["cursor"].cursor.copy(sql) as copy:
            write = copy.write_row
            adapted = [(i, adapt) for i, adapt in enumerate(adapters) if adapt]
            if adapted:
                for row in rows:
                    row = list(row)
                    for i, adapt in adapted:
                        row[i] = adapt(row[i])
                    write(row)
                    count += 1
            else:
                for row in rows:
                    write(row)
                    count += 1

    with connection.cursor() as cursor:
        debug = getattr(cursor, "debug_sql", None)
        with debug(sql, None) if debug else contextlib.nullcontext():
            cursor._execute_with_wrappers(sql, None, False, executor=run)
    return count
