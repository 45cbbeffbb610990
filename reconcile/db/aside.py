"""A read of the database in a child process, while this one fetches (``read_aside``).

A re-pull reads every stored row's fingerprint before it compares Stripe's pages with them: at
N=100,000 about a fifth of a no-op's time, spent on one core while the other waited (the fetch is
Python work on one interpreter, and the fake Stripe of the benchmark, or Stripe, answers from
elsewhere). A forked child reads the rows instead, on its own connection, while this process
starts fetching, and sends the result back through a pipe.

Fingerprints are ``hash`` values, and a ``str``'s hash is salted per interpreter: only a child
made by ``fork`` (which shares the salt) can make fingerprints this process can compare. So the
read goes aside only where forking is safe and sees what this process would see:

- on Linux (``os.fork``; macOS's system libraries do not support a fork without an exec);
- with one thread in the process (a fork copies only the calling thread; a lock another thread
  held would stay held in the child);
- with no transaction open on any connection (a new connection would not see its writes), and no
  SQLite database in memory (a new connection would open another one).

Elsewhere, or when the child fails for any reason, the caller reads in its own process
(``Pending.result`` returns None), so a child's failure costs time, never a result. The child
never touches the connections it inherited (their sockets are the parent's): it keeps them
referenced, so that no finalizer closes them, opens its own, and leaves with ``os._exit``.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from django.db import connections

_INHERITED: list = []  # in a child: the parent's connections, never closed (their sockets are shared)
last_read: Pending | None = None  # the latest read sent aside (the benchmark reports its child's memory)


def can_fork() -> str | None:
    """None when a read may go to a forked child, else why not."""
    if sys.platform != "linux" or not hasattr(os, "fork"):
        return "not on Linux"
    if threading.active_count() != 1:
        return "other threads are running"
    for connection in connections.all(initialized_only=True):
        if connection.in_atomic_block:
            return f"a transaction is open on {connection.alias!r}"
        if connection.vendor == "sqlite" and connection.is_in_memory_db():
            return f"{connection.alias!r} is a SQLite database in memory"
    return None


class Pending:
    """A child's parts, read by a thread of this process as each arrives (the wait is outside the
    interpreter's lock), each handed to ``then``."""

    def __init__(self, pid: int, fd: int, then: Callable[[Any], None], failed: Callable[[], None] | None) -> None:
        self._pid, self._fd, self._then, self._failed = pid, fd, then, failed
        self._ok = False
        self.child_private_mib: float | None = None  # the child's own memory (not shared), its highest
        # this process's peak RSS (VmHWM) once the child has ended: with ``child_private_mib``, a
        # bound on what both held at once while the child lived
        self.peak_at_end_mib: float | None = None
        self.why: str | None = None  # why the child did not send every part
        self._thread = threading.Thread(target=self._read, name="reconcile-read-aside", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        status = None
        try:
            with os.fdopen(self._fd, "rb") as pipe:
                while header := pipe.read(_HEADER.size):
                    kind, size = _HEADER.unpack(header)
                    value = pickle.loads(pipe.read(size))
                    if kind == _PART:
                        self._then(value)
                    elif kind == _END:
                        self._ok, self.child_private_mib = True, value
                    else:
                        self.why = str(value)
        except Exception as exc:  # noqa: BLE001 - any failure here means: read in this process instead
            self._ok, self.why = False, f"{type(exc).__name__}: {exc}"
        finally:
            # reaped in every case: with the pipe closed early, the child ends on its next write
            with contextlib.suppress(ChildProcessError):
                status = os.waitstatus_to_exitcode(os.waitpid(self._pid, 0)[1])
            self.peak_at_end_mib = _status_mib("VmHWM")
        if self._ok and status not in (0, None):
            self._ok, self.why = False, f"the child exited with {status}"
        elif not self._ok and self.why is None:
            self.why = "the child ended before its last part"
        if not self._ok and self._failed is not None:
            self._failed()

    def result(self) -> bool:
        """Wait for the child: True when every part arrived (and went to ``then``), else False
        (``why`` says why)."""
        self._thread.join()
        return self._ok


_HEADER = struct.Struct("<BQ")  # a message's kind and its pickle's size
_PART, _END, _ERROR = 1, 2, 3


def read_aside(
    read: Callable[..., Iterable[Any]],
    *args: Any,
    then: Callable[[Any], None],
    failed: Callable[[], None] | None = None,
) -> Pending | None:
    """Each part that ``read(*args)`` yields, read in a forked child and handed to ``then`` in this
    process as it arrives (on the thread that reads them; ``failed`` is called there if the child
    fails); None where a fork is not safe (``can_fork``)."""
    if can_fork() is not None:
        return None
    r, w = os.pipe()
    pid = os.fork()
    if pid:
        global last_read
        os.close(w)
        last_read = Pending(pid, r, then, failed)
        return last_read
    os.close(r)  # the child, from here to its os._exit
    status = 1
    try:
        with os.fdopen(w, "wb") as pipe:
            try:
                _own_connections()
                most = _private_mib()
                for part in read(*args):
                    most = max(most, _private_mib())  # highest with a part made, as it leaves
                    _send(pipe, _PART, part)
                    del part  # sent: let it go before the next is read
                _close_own_connections()
                _send(pipe, _END, max(most, _private_mib()))
                status = 0
            except BaseException as exc:  # noqa: BLE001 - reported to the parent, which reads again itself
                _send(pipe, _ERROR, f"{type(exc).__name__}: {exc}")
    finally:
        os._exit(status)


def _send(pipe, kind: int, value: Any) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    pipe.write(_HEADER.pack(kind, len(data)))
    pipe.write(data)
    pipe.flush()


def _own_connections() -> None:
    """Make each initialised connection open a new one at its next query, keeping the inherited
    one referenced (and so never closed: closing a PostgreSQL connection sends its server a
    Terminate on the parent's socket)."""
    for connection in connections.all(initialized_only=True):
        _INHERITED.append(connection.connection)
        connection.connection = None


def _close_own_connections() -> None:
    for connection in connections.all(initialized_only=True):
        with contextlib.suppress(Exception):
            connection.close()


def _status_mib(field: str) -> float | None:
    """A memory figure of this process from /proc/self/status, in MiB (None where there is none)."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    found = next((line for line in lines if line.startswith(f"{field}:")), None)
    return int(found.split()[1]) / 1024 if found else None


def _private_mib() -> float:
    """This process's own memory (pages not shared with its parent), in MiB, from smaps_rollup
    (0 where there is none)."""
    try:
        text = Path("/proc/self/smaps_rollup").read_text()
    except OSError:
        return 0.0
    kib = sum(int(line.split()[1]) for line in text.splitlines() if line.startswith(("Private_Clean", "Private_Dirty")))
    return kib / 1024
