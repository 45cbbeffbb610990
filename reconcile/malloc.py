"""glibc's malloc, set for a run: its threads share a few arenas, and response bodies go back to
the system when freed.

Arenas: glibc gives every new thread that allocates an arena of its own, up to eight per core.
The page threads of a fetch each allocate and free the bodies of their responses there, and a
freed block inside an arena stays with the process: measured with ``MALLOC_ARENA_MAX=2`` in the
environment, a first pull of N=100,000 peaked at 257 MiB instead of 283 and a no-op at 153 MiB
instead of 175, in the same time. Python objects themselves come from pymalloc, under the
interpreter's lock, so the threads hardly ever contend for an arena.

The mmap threshold: a block of 128 KiB or more (a page of 100 subscriptions is about 150 KB of
JSON) is mapped on its own and unmapped when freed, but glibc raises that threshold to the size of
each such block freed, so from the first page on the bodies were carved from the arenas instead,
where freed ones stay. A fixed threshold keeps glibc from moving it: first pull 197-206
to 196 MiB, no-op 159-162 to 151-152 MiB, for about 2% of the time (three runs each, alternated;
each fresh mapping is paged in).

``mallopt`` sets both from inside the process; glibc reads them when a thread next needs an
arena or a block, so a run sets them before its threads start. They are settings of the whole
process, kept after the run: ``RECONCILE["MALLOC_ARENA_MAX"]`` and
``RECONCILE["MALLOC_MMAP_THRESHOLD"]`` set to None leave the process as it is, and glibc's own
environment variables (``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_``) win over them.
"""

from __future__ import annotations

import ctypes
import os

# name: (mallopt's parameter in glibc's malloc.h, glibc's environment variable for it)
OPTIONS = {
    "arena_max": (-8, "MALLOC_ARENA_MAX"),
    "mmap_threshold": (-3, "MALLOC_MMAP_THRESHOLD_"),
}

_set: dict[str, int] = {}  # what this process was given here


def glibc() -> ctypes.CDLL | None:
    """The C library, when it is glibc (musl and macOS have neither setting)."""
    try:
        os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError, AttributeError):
        return None
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def tune(**values: int | None) -> dict[str, int]:
    """Set each of ``OPTIONS`` given a value (None: leave it) unless the environment sets it;
    what this process has been given here, by name."""
    wanted = {
        name: value
        for name, value in values.items()
        if value is not None and OPTIONS[name][1] not in os.environ and _set.get(name) != value
    }
    libc = glibc() if wanted else None
    if libc is not None:
        for name, value in wanted.items():
            if libc.mallopt(OPTIONS[name][0], int(value)) == 1:  # mallopt returns 1 on success
                _set[name] = value
    return dict(_set)
