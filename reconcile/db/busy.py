"""How long a run waits for another writer's lock on a SQLite database.

SQLite has one writer at a time; while another process commits (or spills a large transaction to
disk), readers wait too. Django's default wait is 5 seconds, after which even a dry run, which only
reads, failed. A run waits ``RECONCILE['SQLITE_BUSY_TIMEOUT']`` seconds instead (60 by default),
then fails with a message that says what happened. The connection's own setting is restored after.
Other databases do not make readers wait for writers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import connections


@contextlib.contextmanager
def sqlite_busy_timeout(seconds: float, alias: str = "default") -> Iterator[None]:
    conn = connections[alias]
    if conn.vendor != "sqlite":
        yield
        return
    with conn.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        before = cursor.fetchone()[0]
        cursor.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
    try:
        yield
    finally:
        if conn.connection is not None:
            with conn.cursor() as cursor:
                cursor.execute(f"PRAGMA busy_timeout = {int(before)}")
