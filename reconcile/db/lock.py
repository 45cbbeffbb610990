"""One run at a time: a PostgreSQL advisory lock, a MySQL/MariaDB named lock (``GET_LOCK``), or an
exclusive file lock beside a SQLite database.

All are non-blocking: a second run fails at once with ``ConcurrentRunError`` instead of waiting.
All are released when the holder ends, even when it is killed (the server drops a session's locks
when its connection closes; the kernel drops a dead process's ``flock``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

from django.db import connections

from ..errors import ConcurrentRunError, ReconcileError

LOCK_KEY = zlib.crc32(b"reconcile.sync")  # a stable 32-bit advisory lock id
BUSY = "Another reconcile run is applying to this database right now. Wait for it to finish, then run again."


_IN_PROCESS = threading.Lock()  # an in-memory SQLite database lives in one process only


def lock_file_for(name: str) -> Path | None:
    """The lock file beside a SQLite database file; None for an in-memory database.

    Keyed on the resolved file, so that a symlink or a relative path to the same database takes
    the same lock.
    """
    if not name or name == ":memory:" or "mode=memory" in name:
        return None
    if name.startswith("file:"):
        name = name[5:].split("?", 1)[0]
    path = Path(name).resolve()
    return path.with_name(path.name + ".reconcile.lock")


def mysql_lock_name(database: str) -> str:
    """MySQL's named locks are server-wide, not per database: the name carries the database's
    name (hashed: names are capped at 64 characters)."""
    return "reconcile.sync:" + hashlib.sha256(database.encode()).hexdigest()[:40]


@contextlib.contextmanager
def _server_lock(alias: str, acquire: str, release: str, key) -> Iterator[None]:
    conn = connections[alias]
    with conn.cursor() as cursor:
        cursor.execute(acquire, [key])
        if not cursor.fetchone()[0]:
            raise ConcurrentRunError(BUSY)
    try:
        yield
    finally:
        with conn.cursor() as cursor:
            cursor.execute(release, [key])
            cursor.fetchall()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ReconcileError(
            f"Cannot create the lock file {path} ({exc.strerror}): reconcile keeps it beside the SQLite "
            "database so that two runs never apply at once. Make that directory writable, or run with "
            "--dry-run or --check, which take no lock."
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConcurrentRunError(BUSY) from None
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def run_lock(alias: str = "default") -> Iterator[None]:
    conn = connections[alias]
    if conn.vendor == "postgresql":
        with _server_lock(alias, "SELECT pg_try_advisory_lock(%s)", "SELECT pg_advisory_unlock(%s)", LOCK_KEY):
            yield
        return
    if conn.vendor == "mysql":
        name = mysql_lock_name(str(conn.settings_dict.get("NAME") or ""))
        with _server_lock(alias, "SELECT GET_LOCK(%s, 0)", "SELECT RELEASE_LOCK(%s)", name):
            yield
        return
    path = lock_file_for(str(conn.settings_dict.get("NAME") or ""))
    if path is None:
        if not _IN_PROCESS.acquire(blocking=False):
            raise ConcurrentRunError(BUSY)
        try:
            yield
        finally:
            _IN_PROCESS.release()
        return
    with file_lock(path):
        yield
