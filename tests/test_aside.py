"""A re-pull reads the stored rows' fingerprints in a forked child while it fetches
(reconcile/db/aside.py). Where a fork is not safe the run reads them itself; a child that fails
costs time, never a result; the parent's own connection is never touched by the child.

The child opens its own connection, so the tests that fork need a database another connection
sees: PostgreSQL or MariaDB, outside a test transaction (the SQLite test database is in memory;
the benchmark's test runs re-pulls on a SQLite file in processes of their own, tests/test_bench.py).
The fake Stripe runs in a process of its own too: a thread of the fake in this process would
rule the fork out."""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback

import pytest
from django.db import connection

from bench.fakeproc import FakeProcess
from reconcile.db import aside
from reconcile.db.aside import can_fork, read_aside
from reconcile.models import Product
from reconcile.runner import Options, execute
from tests.conftest import FAKE_KEY

ALL = ("products", "customers", "subscriptions")
server_database = pytest.mark.skipif(
    connection.vendor == "sqlite", reason="the SQLite test database is in memory: a child's connection cannot see it"
)


def test_no_fork_beside_another_thread():
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert can_fork() == "other threads are running"
        assert read_aside(lambda: iter(()), then=print) is None
    finally:
        stop.set()
        other.join()


@pytest.mark.django_db
def test_no_fork_inside_a_transaction():
    connection.ensure_connection()
    assert can_fork() == "a transaction is open on 'default'"


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's test database is in memory")
def test_no_fork_on_a_sqlite_database_in_memory(monkeypatch):
    monkeypatch.setattr(aside.threading, "active_count", lambda: 1)  # threads earlier tests left are not this test's
    connection.ensure_connection()
    assert can_fork() == "'default' is a SQLite database in memory"


@pytest.fixture
def alone():
    """This test's thread alone in the process, as a command's is: a thread another test left
    (a fake's server thread stopping) is waited for, a few seconds at most."""
    deadline = time.monotonic() + 10
    while threading.active_count() > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    frames = sys._current_frames()
    others = {
        t.name: "".join(traceback.format_stack(frames[t.ident])[-3:])
        for t in threading.enumerate()
        if t.ident in frames and t is not threading.current_thread()
    }
    assert can_fork() in (None, "a transaction is open on 'default'"), others


def _backend() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()" if connection.vendor == "postgresql" else "SELECT CONNECTION_ID()")
        return cursor.fetchone()[0]


@server_database
@pytest.mark.django_db(transaction=True)
def test_parts_arrive_in_order_from_a_connection_of_the_childs_own(alone):
    Product.objects.create(id="prod_a", name="A")
    mine = _backend()

    def parts():
        yield "products", Product.objects.count()
        yield "backend", _backend(), os.getpid()

    got: list = []
    pending = read_aside(parts, then=got.append)
    assert pending is not None and pending.result() is True, pending.why
    assert got[0] == ("products", 1)
    assert got[1][1] != mine and got[1][2] != os.getpid()  # another connection, another process
    assert pending.child_private_mib > 0
    # this process's connection is the one it had, and still answers
    assert _backend() == mine and Product.objects.get().name == "A"


@server_database
@pytest.mark.django_db(transaction=True)
def test_a_child_that_fails_says_why_and_leaves_this_connection_alone(alone):
    mine = _backend()

    def broken():
        yield 1
        raise ValueError("no table here")

    got: list = []
    pending = read_aside(broken, then=got.append)
    assert pending is not None and pending.result() is False
    assert pending.why == "ValueError: no table here" and got == [1]
    assert _backend() == mine


@server_database
@pytest.mark.django_db(transaction=True)
def test_a_part_this_process_cannot_take_stops_the_read_and_the_child_is_reaped(alone):
    def parts():
        for _ in range(50):
            yield "x" * 100_000  # more than a pipe holds: the child is still writing when the read stops

    def refuse(part):
        raise ValueError("not this part")

    pending = read_aside(parts, then=refuse)
    assert pending is not None and pending.result() is False
    assert pending.why == "ValueError: not this part"
    with pytest.raises(ChildProcessError):  # waited for already: no zombie left
        os.waitpid(pending._pid, os.WNOHANG)


@pytest.fixture(scope="module")
def fake_process():
    with FakeProcess(300, 11) as fake:
        yield fake


def _pull(settings, url: str, *, in_child: bool, dry_run: bool = False):
    settings.RECONCILE = {"API_KEY": FAKE_KEY, "API_BASE": url, "READ_STORED_IN_CHILD": in_child}
    options = Options(command="pull_stripe", resources=ALL, dry_run=dry_run)
    aside.last_read = None
    outcome = execute(options, _Sink(), _Sink())
    return outcome, aside.last_read


class _Sink:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


@server_database
@pytest.mark.django_db(transaction=True)
def test_a_re_pull_that_reads_aside_plans_what_one_reading_in_process_plans(settings, fake_process, alone):
    first, read = _pull(settings, fake_process.url, in_child=True)
    assert read is None and first.plan.writes  # a first pull: nothing stored to read
    noop, read = _pull(settings, fake_process.url, in_child=True, dry_run=True)
    assert read is not None and read.why is None and not noop.plan.operations
    assert fake_process.call("drift", fraction=0.05, seed=3)["updates"] > 0
    aside_plan, read = _pull(settings, fake_process.url, in_child=True, dry_run=True)
    assert read is not None and read.why is None
    own_plan, read = _pull(settings, fake_process.url, in_child=False, dry_run=True)
    assert read is None
    assert list(aside_plan.plan.operations) == list(own_plan.plan.operations) and aside_plan.plan.operations
    applied, _ = _pull(settings, fake_process.url, in_child=True)
    assert applied.applied
    assert not _pull(settings, fake_process.url, in_child=True, dry_run=True)[0].plan.operations


@server_database
@pytest.mark.django_db(transaction=True)
def test_when_the_child_fails_the_run_reads_the_rows_itself(settings, fake_process, monkeypatch, alone):
    import reconcile.runner as runner

    parent, real = os.getpid(), runner.fingerprint_tables

    def fails_in_the_child(*args):
        if os.getpid() != parent:
            raise RuntimeError("the child cannot read")
        yield from real(*args)

    _pull(settings, fake_process.url, in_child=True)
    monkeypatch.setattr(runner, "fingerprint_tables", fails_in_the_child)
    noop, read = _pull(settings, fake_process.url, in_child=True, dry_run=True)
    assert read.why == "RuntimeError: the child cannot read"
    assert not noop.plan.operations
