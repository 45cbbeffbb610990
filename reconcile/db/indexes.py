"""A large load into an empty SQLite table, with its plain indexes made after the rows.

SQLite keeps an index up to date row by row. A first pull inserts subscriptions in id order, so
their index on the customer's id takes each row at a random place in its B-tree, and the items'
index on their subscription's id the same; with SQLite's default page cache (2 MiB), every such
insert reads and writes pages out of cache. Making such an index once the rows are in sorts them
instead. Loading the rows of the N=100,000 bench account's customers, subscriptions and items
into empty tables in one transaction: 4.3-4.9 s with the indexes, 3.0-3.3 s with them dropped
before and made again after (three runs each; at 10,000 customers 0.22 against 0.20 s).

Only what cannot change the outcome is deferred: indexes made by ``CREATE INDEX`` (Django's
``db_index`` and ``ForeignKey`` indexes, a project's own ``Index``), never a unique index or a
primary key, so that a duplicate is refused where it is inserted, as it would be otherwise. Each
index is made again from the exact statement that made it (``sqlite_master``), partial and
expression indexes included. The drop and the making are in the caller's transaction: if the load
fails, the rollback restores the indexes with the table. Other databases, tables that hold rows
and loads under ``MIN_ROWS`` are left as they are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import connections, router

MIN_ROWS = 10_000  # below this many new rows, keeping the indexes costs no more


@contextlib.contextmanager
def deferred(model, rows: int) -> Iterator[list[str]]:
    """Inside, ``model``'s table without its plain indexes (the names, yielded) when it is an
    empty SQLite table about to get at least ``MIN_ROWS`` rows; they are made again on leaving
    without an error (with one, the transaction's rollback brings them back)."""
    connection = connections[router.db_for_write(model)]
    table = model._meta.db_table
    if connection.vendor != "sqlite" or rows < MIN_ROWS or not connection.in_atomic_block:
        yield []
        return
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {quote(table)})")
        if cursor.fetchone()[0]:
            plain = []
        else:
            cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s", [table])
            plain = [(name, sql) for name, sql in cursor.fetchall() if _plain(sql)]
        for name, _ in plain:
            cursor.execute(f"DROP INDEX {quote(name)}")
    yield [name for name, _ in plain]
    with connection.cursor() as cursor:
        for _, sql in plain:
            cursor.execute(sql)


def _plain(sql: str | None) -> bool:
    """An index made by ``CREATE INDEX``: not unique, not a primary key's or a constraint's own
    (those have no statement of their own in ``sqlite_master``)."""
    return sql is not None and " ".join(sql.split()[:2]).upper() == "CREATE INDEX"
