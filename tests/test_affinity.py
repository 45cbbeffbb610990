"""The fetch's threads on one CPU (reconcile/stripe/affinity.py): pinned while they run, the caller
and the rest of the process left as they were."""

from __future__ import annotations

import os
import threading

import pytest

from reconcile.conf import get_config
from reconcile.stripe import affinity, remote
from reconcile.stripe.fetch import Fetcher
from reconcile.testing.generate import generate_account

ALL = ("products", "customers", "subscriptions")
pinnable = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2 or affinity.current_cpu() is None,
    reason="threads cannot be pinned here (not Linux, or a single CPU allowed)",
)


def fetch_seeing_affinities(monkeypatch, settings, on_one_cpu: bool) -> dict[str, set[frozenset[int]]]:
    """A concurrent fetch of a small account; the CPU sets its page and listing threads ran with."""
    settings.RECONCILE = {**settings.RECONCILE, "CONCURRENCY": 4, "FETCH_ON_ONE_CPU": on_one_cpu}
    seen: dict[str, set[frozenset[int]]] = {"stripe-page": set(), "stripe-list": set()}
    lock = threading.Lock()

    def note() -> None:
        prefix = threading.current_thread().name.rsplit("_", 1)[0]
        with lock:
            seen.setdefault(prefix, set()).add(frozenset(os.sched_getaffinity(0)))

    page, add = Fetcher.page, remote._Builder.add
    monkeypatch.setattr(Fetcher, "page", lambda self, *a: (note(), page(self, *a))[1])
    monkeypatch.setattr(remote._Builder, "add", lambda self, *a: (note(), add(self, *a))[1])
    fetched = remote.fetch_remote(get_config(), ALL)
    assert len(fetched.subscriptions) == 60
    return seen


@pinnable
@pytest.mark.django_db
def test_the_fetchs_threads_run_on_one_cpu_and_the_caller_keeps_its_own(start_fake, monkeypatch, settings):
    start_fake(generate_account(60, seed=5, n_products=2))
    before = os.sched_getaffinity(0)
    seen = fetch_seeing_affinities(monkeypatch, settings, on_one_cpu=True)
    pinned = seen["stripe-page"] | seen["stripe-list"]
    assert len(pinned) == 1 and len(next(iter(pinned))) == 1 and next(iter(pinned)) <= before
    assert seen.keys() == {"stripe-page", "stripe-list"}  # no page was read on the caller's thread
    assert os.sched_getaffinity(0) == before


@pinnable
@pytest.mark.django_db
def test_with_the_setting_off_the_threads_stay_where_the_system_puts_them(start_fake, monkeypatch, settings):
    start_fake(generate_account(60, seed=5, n_products=2))
    before = frozenset(os.sched_getaffinity(0))
    seen = fetch_seeing_affinities(monkeypatch, settings, on_one_cpu=False)
    assert seen == {"stripe-page": {before}, "stripe-list": {before}}


def test_the_cpu_number_is_read_past_a_command_name_with_spaces_and_parentheses(monkeypatch, tmp_path):
    fields = ["S"] + [str(n) for n in range(4, 39)] + ["1"] + [str(n) for n in range(40, 53)]
    stat = tmp_path / "stat"
    stat.write_bytes(b"123 (a (b) c) " + " ".join(fields).encode())
    real_open = open

    def fake_open(path, *args):
        return real_open(stat if path == "/proc/thread-self/stat" else path, *args)

    monkeypatch.setattr("builtins.open", fake_open)
    assert affinity.current_cpu() == 1


def test_nothing_is_pinned_where_the_system_cannot_tell_or_allows_one_cpu(monkeypatch):
    monkeypatch.setattr(affinity, "current_cpu", lambda: None)
    assert affinity.one_cpu() is None
    monkeypatch.setattr(affinity, "current_cpu", lambda: 0)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cpus: None, raising=False)
    assert affinity.one_cpu() is None
    monkeypatch.delattr(os, "sched_setaffinity")
    assert affinity.one_cpu() is None


def test_a_refused_pin_leaves_the_thread_running(monkeypatch):
    monkeypatch.setattr(affinity, "current_cpu", lambda: 1)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)

    def refuse(pid, cpus):
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(os, "sched_setaffinity", refuse, raising=False)
    pin = affinity.one_cpu()
    assert pin is not None
    assert pin() is None  # no exception: a pool whose initializer raises is broken
