"""Reading whole tables fast: ``values_list`` rows with cheaper converters where Django's are slow.

A no-op pull of a large account reads every stored row. Measured under cProfile, loading the
200,000 objects (and 166,000 items) of the N=100,000 bench account took 6.5 s, 2.9 s of it in
Django's SQLite datetime converter: the sqlite3 module already hands Django a naive datetime (the
backend registers a ``timestamp`` converter), and under ``USE_TZ`` all that is left is attaching
the connection's time zone, which Django does through a settings lookup and ``make_aware`` per
value. Here, on SQLite in UTC, each datetime column is read as its text and made an aware
datetime by one ``fromisoformat`` (the sqlite3 module's own converter and the ``replace`` that
made its result aware were 8.7% of a no-op's interpreter time); elsewhere it is one ``replace``.
Either is done once per distinct value (billing periods and a page's sync time repeat) and shared
where the rows outlive the read. JSON columns holding ``{}`` or ``[]`` (most metadata and tiers) get a
new empty dict or list without the decoder. Every other column keeps Django's own converters, and
a ``None`` is never passed to a converter (each maps it to ``None``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.models import DateTimeField, JSONField
from django.db.models.expressions import Col

from .bulk import is_utc

CACHE_LIMIT = 100_000  # distinct datetimes remembered per read; beyond, the cache starts again


def values(queryset, chunk_size: int, *, cache_limit: int = CACHE_LIMIT) -> Iterator[tuple]:
    """The rows of ``queryset.values_list(...)``, equal to what Django returns, read in chunks
    (a server-side cursor on PostgreSQL, as ``QuerySet.iterator`` reads them). ``cache_limit``:
    the distinct datetimes each column remembers (shared by the rows that hold them), 0 for none,
    when the rows do not outlive the read."""
    connection = connections[queryset.db]
    compiler = queryset.query.get_compiler(queryset.db)
    sql, params = compiler.as_sql()
    columns = [selected[0] for selected in compiler.select[: compiler.col_count]]
    sql, as_text = _datetimes_as_text(sql, compiler, columns, connection)
    plan = []
    caches: list[dict] = []  # the datetime converters' memory of values, let go when the read ends
    for position, (converters, expression) in compiler.get_converters(columns).items():
        if position in as_text:
            fast = _from_text(expression, connection, caches, cache_limit)
        else:
            fast = _fast(expression, connection, caches, cache_limit)
        plan.append((position, fast or _django(converters, expression, connection)))
    convert = _row_function(len(columns), plan) if plan else tuple
    chunked = not connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS")
    cursor = connection.chunked_cursor() if chunked else connection.cursor()
    try:
        _c_timestamps(connection, cursor)
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(chunk_size):
            yield from map(convert, rows)
    finally:
        cursor.close()
        for cache in caches:  # else it lives until the collector finds the converter's cycle
            cache.clear()


def _datetimes_as_text(sql: str, compiler, columns: list, connection) -> tuple[str, frozenset[int]]:
    """On SQLite in UTC, the SELECT with each datetime column read as its stored text (``+col``,
    SQLite's no-op operator, has no declared type, so the sqlite3 module runs no converter on it),
    and those columns' positions. The module's converter decodes the bytes and parses them through
    Django's ``parse_datetime``, and the value is then made aware: 8.7% of a no-op re-pull's
    interpreter time at N=100,000 (py-spy), where one ``fromisoformat`` of the text with its UTC
    offset gives the same aware datetime. Anything else (another time zone, a SELECT that is not
    a plain list of columns) reads as before."""
    if connection.vendor != "sqlite" or not settings.USE_TZ or not is_utc(connection.timezone):
        return sql, frozenset()
    quote = connection.ops.quote_name
    try:  # Django's (expression, (sql, params), alias) per selected column
        compiled = [
            (text, f" AS {quote(alias)}" if alias else "") for _, (text, _), alias in compiler.select[: len(columns)]
        ]
    except (TypeError, ValueError):  # another Django's shape: read as before
        return sql, frozenset()
    head = "SELECT " + ", ".join(text + alias for text, alias in compiled) + " FROM "
    positions = frozenset(
        i
        for i, column in enumerate(columns)
        if type(column) is Col and type(getattr(column, "output_field", None)) is DateTimeField
    )
    if not positions or not sql.startswith(head):
        return sql, frozenset()
    select = ", ".join(("+" if i in positions else "") + text + alias for i, (text, alias) in enumerate(compiled))
    return "SELECT " + select + " FROM " + sql[len(head) :], positions


def _from_text(expression, connection, caches: list[dict], cache_limit: int) -> Callable[[Any], Any]:
    """A datetime column read as its text (``_datetimes_as_text``): Django stores a naive UTC
    ``YYYY-MM-DD HH:MM:SS[.ffffff]``; text in another shape goes through Django's converter."""
    django_converter = connection.ops.convert_datetimefield_value
    parse = datetime.fromisoformat

    def aware(value):
        try:
            return parse(value + "+00:00")
        except (TypeError, ValueError):
            return django_converter(value, expression, connection)

    return _remembered(aware, caches, cache_limit)


def _c_timestamps(connection, cursor) -> None:
    """On this cursor, psycopg's own timestamptz loader, which psycopg runs in C.

    Django registers a subclass of it (to attach the connection's time zone), and psycopg runs a
    subclass in Python: 2.0 of the 3.3 s of loading the N=100,000 bench account on PostgreSQL went
    into it. psycopg's loader gives the same instant (in the session's time zone, which Django sets
    to the connection's), with psycopg's tzinfo object instead of Django's: equal values, equal
    comparisons."""
    if connection.vendor != "postgresql" or not settings.USE_TZ:
        return
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    if is_psycopg3:
        from psycopg.types.datetime import TimestamptzLoader

        cursor.cursor.adapters.register_loader("timestamptz", TimestamptzLoader)


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


def _fast(expression, connection, caches: list[dict], cache_limit: int) -> Callable[[Any], Any] | None:
    """A faster converter with the same result, where one exists (its cache, if any, added to
    ``caches``)."""
    field = getattr(expression, "output_field", None)
    if type(field) is JSONField and field.decoder is None:
        return _json(field, expression, connection)
    if connection.vendor != "sqlite" or not settings.USE_TZ or type(field) is not DateTimeField:
        return None
    zone = connection.timezone  # what Django's converter makes a naive value aware in (UTC unless set)
    django_converter = connection.ops.convert_datetimefield_value

    def aware(value):
        if type(value) is not datetime or value.tzinfo is not None:
            return django_converter(value, expression, connection)
        return value.replace(tzinfo=zone)

    return _remembered(aware, caches, cache_limit)


def _remembered(convert: Callable[[Any], Any], caches: list[dict], cache_limit: int) -> Callable[[Any], Any]:
    """``convert``, remembering up to ``cache_limit`` distinct values' results (0: none), so that
    the rows holding one value share one result; the memory is added to ``caches``."""
    if not cache_limit:
        return convert
    seen: dict = {}
    caches.append(seen)

    def remembered(value):
        found = seen.get(value)
        if found is None:
            if len(seen) >= cache_limit:
                seen.clear()
            found = seen[value] = convert(value)
        return found

    return remembered
