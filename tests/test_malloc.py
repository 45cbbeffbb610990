"""glibc's malloc as a run sets it (reconcile/malloc.py), read back from glibc itself: the arenas
``malloc_stats`` reports, and the blocks ``mallinfo2`` counts as mapped on their own."""

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
ARENAS = """
import sys, threading, ctypes
from reconcile.malloc import tune
limit = None if sys.argv[1] == "none" else int(sys.argv[1])
print(tune(arena_max=limit).get("arena_max"), flush=True)
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

# A 4 MiB block, mapped on its own, freed: glibc then raises its mmap threshold to 4 MiB, unless
# the threshold was set. Then ten blocks of 150 KB (a page of subscriptions' JSON) are held:
# mallinfo2's hblks counts those mapped on their own (freed, each goes back to the system).
MAPPED = """
import sys, ctypes
from reconcile.malloc import tune
limit = None if sys.argv[1] == "none" else int(sys.argv[1])
print(tune(mmap_threshold=limit).get("mmap_threshold"), flush=True)
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
before = libc.mallinfo2().hblks
big = bytearray(4 << 20)
del big
held = [bytearray(150_000) for _ in range(10)]
print(libc.mallinfo2().hblks - before)
"""

pytestmark = pytest.mark.skipif(glibc() is None, reason="these are glibc's settings")


def _run(script: str, limit: str, **env: str) -> tuple[list[str], str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    environ.update(env, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", script, limit], env=environ, capture_output=True, text=True, timeout=60, check=True
    )
    return proc.stdout.split(), proc.stderr


def _arenas(limit: str, **env: str) -> tuple[str, int]:
    out, err = _run(ARENAS, limit, **env)
    return out[0], sum(line.startswith("Arena ") for line in err.splitlines())


def test_without_a_cap_each_thread_gets_an_arena():
    assert _arenas("none") == ("None", 7)


def test_a_capped_process_shares_two_arenas_among_its_threads():
    assert _arenas("2") == ("2", 2)


def test_the_environment_wins_over_the_setting():
    # glibc read MALLOC_ARENA_MAX=3 at start; the setting's 2 is not applied on top of it
    assert _arenas("2", MALLOC_ARENA_MAX="3") == ("None", 3)


def test_response_sized_blocks_stay_mapped_on_their_own_with_a_fixed_threshold():
    assert _run(MAPPED, "none")[0] == ["None", "0"]  # glibc moved its threshold above them
    assert _run(MAPPED, "131072")[0] == ["131072", "10"]
    assert _run(MAPPED, "131072", MALLOC_MMAP_THRESHOLD_="4194304")[0] == ["None", "0"]
