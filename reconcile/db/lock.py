"""One run at a time: a PostgreSQL advisory lock, or an exclusive file lock beside a SQLite database.

Both are non-blocking: a second run fails at once with ``ConcurrentRunError`` instead of waiting.
Both are released when the holder ends, even when it is killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

from django.db import connections

from ..errors import ConcurrentRunError

LOCK_KEY = zlib.crc32(b"reconcile.sync")  # a stable 32-bit advisory lock id
BUSY = "Another reconcile run is applying to this database right now. Wait for it to finish, then run again."


_IN_PROCESS = threading.Lock()  # an in-memory SQLite database lives in one process only


def _lock_path(alias: str) -> Path | None:
    """The lock file beside a SQLite database file; None for an in-memory database."""
    conn = connections[alias]
    name = str(conn.settings_dict.get("NAME") or "")
    if conn.is_in_memory_db():
        return None
    if name.startswith("file:"):
        name = name[5:].split("?", 1)[0]
    return Path(name).with_name(Path(name).name + ".reconcile.lock")


@contextlib.contextmanager
def run_lock(alias: str = "default") -> Iterator[None]:
    conn = connections[alias]
    if conn.vendor == "postgresql":
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
            if not cursor.fetchone()[0]:
                raise ConcurrentRunError(BUSY)
        try:
            yield
        finally:
            with conn.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
        return
    path = _lock_path(alias)
    if path is None:
        if not _IN_PROCESS.acquire(blocking=False):
            raise ConcurrentRunError(BUSY)
        try:
            yield
        finally:
            _IN_PROCESS.release()
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConcurrentRunError(BUSY) from None
        yield
    finally:
        os.close(fd)
