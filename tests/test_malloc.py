"""The malloc arena cap a run sets (reconcile/malloc.py), counted by glibc's own ``malloc_stats``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconcile.malloc import glibc

ROOT = Path(__file__).resolve().parent.parent

# Six threads, alive at once, each allocating a block from glibc's malloc (over pymalloc's 512
# bytes, under malloc's mmap threshold): glibc gives each new thread an arena of its own while
# the limit allows. malloc_stats() prints one "Arena N:" paragraph per arena to stderr.
SCRIPT = """
import sys, threading, ctypes
from reconcile.malloc import cap_arenas
limit = None if sys.argv[1] == "none" else int(sys.argv[1])
print(cap_arenas(limit), flush=True)
barrier = threading.Barrier(7)
held = []
def work():
    held.append(bytearray(1 << 16))
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(6)]
for t in threads:
    t.start()
barrier.wait()
ctypes.CDLL(None).malloc_stats()
for t in threads:
    t.join()
"""

pytestmark = pytest.mark.skipif(glibc() is None, reason="malloc arenas are glibc's")


def _arenas(limit: str, **env: str) -> tuple[str, int]:
    environ = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    environ.update(env, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, limit], env=environ, capture_output=True, text=True, timeout=60, check=True
    )
    return proc.stdout.strip(), sum(line.startswith("Arena ") for line in proc.stderr.splitlines())


def test_without_a_cap_each_thread_gets_an_arena():
    assert _arenas("none") == ("None", 7)


def test_a_capped_process_shares_two_arenas_among_its_threads():
    assert _arenas("2") == ("2", 2)


def test_the_environment_wins_over_the_setting():
    # glibc read MALLOC_ARENA_MAX=3 at start; the setting's 2 is not applied on top of it
    assert _arenas("2", MALLOC_ARENA_MAX="3") == ("None", 3)
