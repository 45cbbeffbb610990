"""A run turns the cyclic garbage collector off while it runs and leaves it as it found it
(``runner.no_cyclic_collection``: the collector freed next to nothing in a large run)."""

from __future__ import annotations

import gc

import pytest

import reconcile.runner as runner
from reconcile.testing.fakestripe import Fault
from tests.conftest import run

pytestmark = pytest.mark.django_db


@pytest.fixture
def seen_during_fetch(monkeypatch):
    """Whether the collector was on when the run fetched, recorded each time."""
    seen: list[bool] = []
    fetch = runner.fetch_remote

    def recording(*args, **kwargs):
        seen.append(gc.isenabled())
        return fetch(*args, **kwargs)

    monkeypatch.setattr(runner, "fetch_remote", recording)
    return seen


@pytest.fixture
def collector_on():
    was_on = gc.isenabled()
    gc.enable()
    yield
    if not was_on:
        gc.disable()


def test_a_pull_runs_without_the_collector_and_turns_it_back_on(fake_stripe, seen_during_fetch, collector_on):
    assert run("pull_stripe").code == 0
    assert seen_during_fetch == [False]
    assert gc.isenabled()


def test_a_pull_that_fails_turns_it_back_on_too(fake_stripe, seen_during_fetch, collector_on):
    fake_stripe.inject(Fault("status", path_prefix="/v1/subscriptions", status=400))
    assert run("pull_stripe").code == 2
    assert seen_during_fetch == [False]
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off(fake_stripe, seen_during_fetch):
    was_on = gc.isenabled()
    gc.disable()
    try:
        assert run("pull_stripe").code == 0
        assert not gc.isenabled()
    finally:
        if was_on:
            gc.enable()
    assert seen_during_fetch == [False]


def tracked(obj) -> bool:
    """Whether the collector's generations hold ``obj`` (a frozen object is in none of them)."""
    return any(o is obj for o in gc.get_objects())


def test_what_another_part_of_the_process_froze_stays_frozen(fake_stripe, collector_on):
    marker = [object()]
    gc.freeze()  # as a server does before it forks
    try:
        assert not tracked(marker)
        assert run("pull_stripe").code == 0
        assert not tracked(marker)
    finally:
        gc.unfreeze()
    assert tracked(marker)


def test_the_run_leaves_nothing_frozen_behind(fake_stripe, collector_on):
    assert run("pull_stripe").code == 0
    assert gc.get_freeze_count() == 0


def test_the_objects_a_run_leaves_alive_do_not_wait_for_a_young_pass(collector_on):
    """Turned back on, the collector does not start with a pass over everything the run made."""
    thresholds = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # Python's defaults
    passes: list[int] = []

    def started(phase, info):
        if phase == "start":
            passes.append(info["generation"])

    gc.callbacks.append(started)
    try:
        with runner.no_cyclic_collection():
            made = [[] for _ in range(5_000)]  # a run's records, alive after it
        more = [[] for _ in range(100)]  # what the process does next
    finally:
        gc.callbacks.remove(started)
        gc.set_threshold(*thresholds)
    assert (len(made), len(more), passes) == (5_000, 100, [])
