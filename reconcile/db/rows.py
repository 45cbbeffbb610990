"""Reading whole tables fast: ``values_list`` rows with cheaper converters where Django's are slow.

A no-op pull of a large account reads every stored row. Measured under cProfile, loading the
200,000 objects (and 166,000 items) of the N=100,000 bench account took 6.5 s, 2.9 s of it in
Django's SQLite datetime converter: the sqlite3 module already hands Django a naive datetime (the
backend registers a ``timestamp`` converter), and under ``USE_TZ`` all that is left is attaching
the connection's time zone, which Django does through a settings lookup and ``make_aware`` per
value. Here that is one ``replace``, done once per distinct value (billing periods and a page's
sync time repeat) and shared. JSON columns holding ``{}`` or ``[]`` (most metadata and tiers) get a
new empty dict or list without the decoder. Every other column keeps Django's own converters, and
a ``None`` is never passed to a converter (each maps it to ``None``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from itertools import chain
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.models import DateTimeField, JSONField
from django.db.models.sql.constants import MULTI

_CACHE_LIMIT = 100_000  # distinct datetimes remembered per read; beyond, the cache starts again


def values(queryset, chunk_size: int) -> Iterator[tuple]:
    """The rows of ``queryset.values_list(...)``, equal to what Django returns, read in chunks
    (a server-side cursor on PostgreSQL)."""
    connection = connections[queryset.db]
    compiler = queryset.query.get_compiler(queryset.db)
    chunked = not connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS")
    results = compiler.execute_sql(MULTI, chunked_fetch=chunked, chunk_size=chunk_size)
    columns = [selected[0] for selected in compiler.select[: compiler.col_count]]
    plan = []
    for position, (converters, expression) in compiler.get_converters(columns).items():
        fast = _fast(expression, connection)
        plan.append((position, fast or _django(converters, expression, connection)))
    rows = chain.from_iterable(results)
    return map(_row_function(len(columns), plan), rows) if plan else map(tuple, rows)


def _row_function(width: int, plan: list[tuple[int, Callable[[Any], Any]]]) -> Callable[[Any], tuple]:
    """One row's conversion as a straight-line function (as the registry's record makers): a loop
    over the converted columns and a list per row cost a fifth of a large load."""
    env = {f"convert_{position}": convert for position, convert in plan}
    converted = {position for position, _ in plan}
    values = [
        f"(None if row[{i}] is None else convert_{i}(row[{i}]))" if i in converted else f"row[{i}]"
        for i in range(width)
    ]
    exec(f"def row_function(row):\n    return ({', '.join(values)},)\n", env)  # noqa: S102
    return env["row_function"]


def _django(converters: list, expression, connection) -> Callable[[Any], Any]:
    if len(converters) == 1:
        (only,) = converters
        return lambda value: only(value, expression, connection)

    def convert(value):
        for converter in converters:
            value = converter(value, expression, connection)
        return value

    return convert


def _json(field, expression, connection) -> Callable[[Any], Any]:
    """Most JSON columns hold ``{}`` (metadata, currency options) or ``[]`` (tiers): a new empty
    dict or list for those, without the decoder; anything else through Django's ``from_db_value``."""
    empty = {"{}": dict, "[]": list}
    from_db_value = field.from_db_value

    def to_python(value):
        make = empty.get(value) if type(value) is str else None
        return make() if make is not None else from_db_value(value, expression, connection)

    return to_python


def _fast(expression, connection) -> Callable[[Any], Any] | None:
    """A faster converter with the same result, where one exists."""
    field = getattr(expression, "output_field", None)
    if type(field) is JSONField and field.decoder is None:
        return _json(field, expression, connection)
    if connection.vendor != "sqlite" or not settings.USE_TZ or type(field) is not DateTimeField:
        return None
    seen: dict[datetime, datetime] = {}
    zone = connection.timezone  # what Django's converter makes a naive value aware in (UTC unless set)
    django_converter = connection.ops.convert_datetimefield_value

    def to_datetime(value):
        found = seen.get(value)
        if found is None:
            if type(value) is not datetime or value.tzinfo is not None:
                return django_converter(value, expression, connection)
            if len(seen) >= _CACHE_LIMIT:
                seen.clear()
            found = seen[value] = value.replace(tzinfo=zone)
        return found

    return to_datetime
