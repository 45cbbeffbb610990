"""One run at a time: a second writing run fails at once while one is applying, on SQLite (a file
lock beside the database) and PostgreSQL (an advisory lock). Real ``manage.py`` processes against
the fake Stripe (a test double on loopback); the first one is held mid-fetch, lock taken, on cue."""

from __future__ import annotations

import os
import signal
import time
from contextlib import ExitStack

import pytest

from reconcile.db.lock import BUSY
from reconcile.testing.fakestripe import FakeStripe, serve
from tests.conftest import DEMO_PLAN, FAKE_KEY, demo_data
from tests.helpers.procs import GatedFake, child_database_url, row_counts, start_command, wait_for_first_request

pytestmark = pytest.mark.django_db(transaction=True)


def finish(child, timeout: float = 60.0) -> tuple[int, str, str]:
    try:
        out, err = child.communicate(timeout=timeout)
    except BaseException:
        child.kill()
        child.communicate()
        raise
    return child.returncode, out, err


@pytest.fixture
def servers():
    with ExitStack() as stack:

        def start(fake: FakeStripe) -> str:
            server = serve(fake)
            stack.callback(server.stop)
            if isinstance(fake, GatedFake):
                stack.callback(fake.release)  # runs first: lets held requests end before the server stops
            return server.url

        yield start


def test_a_second_run_fails_at_once_while_one_applies_and_a_dry_run_still_works(tmp_path, servers):
    database = child_database_url(tmp_path)
    held = GatedFake(demo_data())
    held_url = servers(held)
    free = FakeStripe(demo_data())
    free_url = servers(free)

    first = start_command(database, held_url, FAKE_KEY, "pull_stripe")
    try:
        wait_for_first_request(held, first)  # the lock is taken before the first request
        started = time.monotonic()
        second = start_command(database, free_url, FAKE_KEY, "pull_stripe")
        dry = start_command(database, free_url, FAKE_KEY, "pull_stripe", "--dry-run")
        check = start_command(database, free_url, FAKE_KEY, "update_stripe_products", "--check")
        code, out, err = finish(second)
        assert first.poll() is None, "the first run ended before the second one tried"
        assert code == 2, (out, err)
        assert f"CommandError: {BUSY}" in err
        assert BUSY.startswith("Another reconcile run is applying to this database right now.")
        assert out == ""
        assert time.monotonic() - started < 30
        dry_code, dry_out, dry_err = finish(dry)
        assert dry_code == 0, dry_err
        assert dry_out.splitlines()[-1] == DEMO_PLAN and "Applied" not in dry_out
        check_code, check_out, check_err = finish(check)
        assert check_code == 1, check_err  # drift found, not "busy"
        assert first.poll() is None, "the first run ended before the dry runs were done"
        assert set(row_counts(database).values()) == {0}  # neither wrote
    finally:
        held.release()
    code, out, err = finish(first)
    assert code == 0, err
    assert "Applied: " in out

    third = start_command(database, free_url, FAKE_KEY, "pull_stripe")
    code, out, err = finish(third)
    assert code == 0, err
    assert out.endswith("No changes detected (reported only: 0 orphaned, 1 skipped).\n")
    counts = row_counts(database)
    assert counts["reconcile_syncrun"] == 1 and counts["reconcile_subscription"] == 8


def test_the_failing_run_does_not_call_stripe(tmp_path, servers):
    database = child_database_url(tmp_path)
    held = GatedFake(demo_data())
    held_url = servers(held)
    untouched = FakeStripe(demo_data())
    untouched_url = servers(untouched)
    first = start_command(database, held_url, FAKE_KEY, "update_stripe_customers")
    try:
        wait_for_first_request(held, first)
        code, _, err = finish(start_command(database, untouched_url, FAKE_KEY, "update_stripe_subscriptions"))
        assert code == 2 and BUSY in err
        assert untouched.requests == []
    finally:
        held.release()
    assert finish(first)[0] == 0


def test_a_killed_run_releases_the_lock(tmp_path, servers):
    database = child_database_url(tmp_path)
    held = GatedFake(demo_data())
    held_url = servers(held)
    free_url = servers(FakeStripe(demo_data()))
    first = start_command(database, held_url, FAKE_KEY, "pull_stripe")
    try:
        wait_for_first_request(held, first)
        os.kill(first.pid, signal.SIGKILL)
        finish(first)
    finally:
        held.release()
    assert first.returncode == -signal.SIGKILL
    assert set(row_counts(database).values()) == {0}
    code, out, err = finish(start_command(database, free_url, FAKE_KEY, "pull_stripe"))
    assert code == 0, err
    assert "Applied: " in out
