"""The fetch's threads kept on one CPU, on Linux: they take turns on one interpreter lock.

Only one thread runs Python at a time; the page threads give the lock up at every socket call and
the listing threads take it back to parse. When those threads sit on different CPUs, each handover
wakes a thread on the other CPU, which then finds the page it parses in the first CPU's cache.
Measured on a no-op re-pull at N=100,000 against the fake Stripe on loopback (2 CPUs, three runs
each, alternated): the fetch took 4.33-4.55 s with its threads on one CPU and 5.10-5.37 s without,
the process's CPU time falling by as much, and its voluntary context switches from about 30,000 to
11,700. What runs outside the lock (the kernel's socket work, TLS decryption) then shares that CPU:
small beside the parsing, and where Stripe's rate limit sets the pace the threads mostly wait.

The CPU is the one the run's thread is on when the fetch starts; each pool thread pins itself as it
starts (``os.sched_setaffinity`` sets the calling thread's affinity on Linux), and the pools' threads
end with the fetch, so the rest of the process is not held to it (a thread one of them started
would inherit it: reconcile's start none). The system cannot move them off a CPU that something
else keeps busy while they run. ``RECONCILE["FETCH_ON_ONE_CPU"]``
set to False leaves the threads where the system puts them.
"""

from __future__ import annotations

import os
from collections.abc import Callable


def current_cpu() -> int | None:
    """The CPU this thread last ran on (``/proc/thread-self/stat``'s 39th field), or None where the
    system does not tell."""
    try:
        with open("/proc/thread-self/stat", "rb") as stat:
            text = stat.read()
        # fields after the command name, which is in parentheses and may hold spaces: state is the 3rd
        return int(text.rsplit(b")", 1)[1].split()[39 - 3])
    except (OSError, ValueError, IndexError):
        return None


def one_cpu() -> Callable[[], None] | None:
    """An initializer for the fetch's thread pools that keeps each of their threads on the CPU the
    caller is on now; None when threads cannot be pinned here (no ``sched_setaffinity``, a single
    allowed CPU, no CPU number)."""
    setaffinity = getattr(os, "sched_setaffinity", None)
    if setaffinity is None:
        return None
    try:
        allowed = os.sched_getaffinity(0)
    except OSError:
        return None
    cpu = current_cpu()
    if cpu is None or cpu not in allowed or len(allowed) < 2:
        return None

    def pin() -> None:
        # never raises: a pool whose initializer raises is broken, and the fetch with it
        try:
            setaffinity(0, {cpu})
        except OSError:
            pass

    return pin
