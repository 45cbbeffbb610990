"""Whole-table reads (reconcile/db/rows.py) give exactly what Django's ``values_list`` gives."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from reconcile.db import rows
from reconcile.db.bulk import is_utc
from reconcile.models import SyncRun

UTC = timezone.utc
WHEN = [
    datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC),
    datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
    datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2024, 5, 1, 15, 0, 0, tzinfo=ZoneInfo("Europe/Paris")),  # stored as UTC by Django
]


@pytest.mark.django_db
@pytest.mark.parametrize("cache_limit", [0, rows.CACHE_LIMIT])
def test_datetimes_read_as_django_reads_them(cache_limit):
    for i, when in enumerate(WHEN):
        SyncRun.objects.create(started_at=when, finished_at=WHEN[0], command=f"c{i}", outcome="applied")
    queryset = SyncRun.objects.values_list("id", "started_at", "finished_at", "command")
    read = list(rows.values(queryset, 2, cache_limit=cache_limit))
    assert read == list(queryset)
    assert [r[1] for r in read] == [w.astimezone(UTC) for w in sorted(WHEN, reverse=True)]  # newest first
    assert all(r[1].utcoffset().total_seconds() == 0 for r in read)


@pytest.mark.django_db
def test_on_sqlite_datetime_columns_are_read_as_text_and_the_rest_as_before():
    queryset = SyncRun.objects.values_list("id", "started_at", "command", "finished_at")
    compiler = queryset.query.get_compiler(queryset.db)
    sql, _ = compiler.as_sql()
    columns = [selected[0] for selected in compiler.select[: compiler.col_count]]
    rewritten, positions = rows._datetimes_as_text(sql, compiler, columns, connection)
    if connection.vendor != "sqlite":
        assert (rewritten, positions) == (sql, frozenset())
        return
    assert positions == {1, 3}
    assert rewritten == sql.replace(
        ' "reconcile_syncrun"."started_at" AS', ' +"reconcile_syncrun"."started_at" AS', 1
    ).replace(' "reconcile_syncrun"."finished_at" AS', ' +"reconcile_syncrun"."finished_at" AS', 1)
    assert rewritten.count("+") == 2


def test_only_a_utc_zone_reads_datetimes_as_text():
    assert is_utc(UTC)
    assert is_utc(ZoneInfo("UTC"))
    assert not is_utc(ZoneInfo("Europe/Paris"))


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's converter: only SQLite reads datetimes as text")
def test_text_in_another_shape_goes_through_djangos_converter():
    convert = rows._from_text(None, connection, [], 0)
    assert convert("2024-05-01 12:00:00") == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert convert("2024-05-01 14:00:00+02:00") == datetime(2024, 5, 1, 12, tzinfo=UTC)  # an offset of its own


@pytest.mark.django_db
def test_a_select_of_another_shape_is_read_as_before():
    queryset = SyncRun.objects.values_list("id", "started_at")
    compiler = queryset.query.get_compiler(queryset.db)
    sql, _ = compiler.as_sql()
    columns = [selected[0] for selected in compiler.select[: compiler.col_count]]
    compiler.select = [(column, "not (sql, params)") for column in columns]  # a Django to come, say
    assert rows._datetimes_as_text(sql, compiler, columns, connection) == (sql, frozenset())
    # nor is a SELECT rewritten whose text is not the plain list of its columns
    distinct = sql.replace("SELECT ", "SELECT DISTINCT ", 1)
    compiler = queryset.query.get_compiler(queryset.db)
    compiler.as_sql()
    assert rows._datetimes_as_text(distinct, compiler, columns, connection) == (distinct, frozenset())
