"""The risks of issue 14, each with the decision the README's "What happens when things go wrong"
table records: privileged accounts are never linked by email by default, text from Stripe is escaped,
a live key never goes over plain http to another host, dry runs wait for a busy SQLite database and
say what happened, Ctrl-C stops a fetch at once, and progress shows the apply. Stripe is the project's
fake Stripe (a test double on loopback)."""

from __future__ import annotations

import io
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from reconcile import runner
from reconcile.core.escape import escape
from reconcile.db.lock import file_lock, lock_file_for
from reconcile.errors import ConcurrentRunError
from reconcile.models import StripeUser
from reconcile.progress import RichProgress
from reconcile.testing import server as fake_server
from reconcile.testing.fakestripe import FakeStripe, Fault, serve
from tests.conftest import FAKE_KEY, ROOT, demo_data, run
from tests.helpers.procs import GatedFake, _sqlite_template, child_env, wait_for_first_request

pytestmark = pytest.mark.django_db
User = get_user_model()


# -- privileged accounts and emails -----------------------------------------------------------------
def privileged_users() -> dict[str, object]:
    return {
        "cus_DemoAlice00001": User.objects.create_user("alice", "alice.smith@example.com", is_staff=True),
        "cus_DemoBob0000001": User.objects.create_superuser("bob", "bob.jones@example.com", "x"),
        "cus_DemoCarol00001": User.objects.create_user("carol", "carol@example.org", is_active=False),
        "cus_DemoGrace00001": User.objects.create_user("grace", "grace.kim@example.net"),
    }


def test_a_customer_is_never_linked_to_a_staff_superuser_or_inactive_account_by_email(fake_stripe):
    users = privileged_users()
    result = run("update_stripe_customers")
    assert result.code == 0, result.err
    links = dict(StripeUser.objects.values_list("customer_id", "user_id"))
    assert links["cus_DemoGrace00001"] == users["cus_DemoGrace00001"].pk
    assert [links[c] for c in ("cus_DemoAlice00001", "cus_DemoBob0000001", "cus_DemoCarol00001")] == [None] * 3
    why = "Stripe does not verify emails; set RECONCILE['LINK_PRIVILEGED_USERS'] = True to link such accounts too"
    for customer, kind in (
        ("cus_DemoAlice00001", "a staff account"),
        ("cus_DemoBob0000001", "a superuser account"),
        ("cus_DemoCarol00001", "an inactive account"),
    ):
        pk = users[customer].pk
        assert f"  ? StripeUser {customer}: not linked to user {pk}, {kind} with this email: {why}\n" in result.out
    assert run("update_stripe_customers", "--check").code == 0  # notes are not drift


def test_linking_privileged_accounts_can_be_allowed(fake_stripe, reconcile_settings):
    users = privileged_users()
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "LINK_PRIVILEGED_USERS": True}
    assert run("update_stripe_customers").code == 0
    links = dict(StripeUser.objects.values_list("customer_id", "user_id"))
    assert all(links[customer] == user.pk for customer, user in users.items())


def test_a_plan_is_refused_when_a_user_it_links_became_staff_since(fake_stripe, tmp_path):
    plan = str(tmp_path / "plan.json")
    grace = User.objects.create_user("grace", "grace.kim@example.net")
    assert run("update_stripe_customers", "--plan-out", plan).code == 0
    User.objects.filter(pk=grace.pk).update(is_staff=True)
    result = run("update_stripe_customers", "--apply-plan", plan)
    assert result.code == 2 and "The database changed since the plan" in result.err
    assert StripeUser.objects.count() == 0


# -- text from Stripe reaches the terminal escaped --------------------------------------------------
FORGED = "Evil\nNo changes detected.\x1b[2J\u202eevil\r"


def forged_account() -> dict:
    data = demo_data()
    data["products"][0]["name"] = FORGED
    data["customers"][0]["email"] = "x\n  = link StripeUser cus_Nobody to user 1@example.com"
    return data


def test_names_cannot_forge_report_lines_or_send_terminal_escapes(start_fake):
    start_fake(forged_account())
    text = run("pull_stripe", "--dry-run").out
    assert "\x1b" not in text and "\u202e" not in text and "\r" not in text
    assert "\nNo changes detected." not in text
    assert "  + create Product prod_DemoStarter01 (Evil\\nNo changes detected.\\x1b[2J\\u202eevil\\r)\n" in text
    assert "\n  = link StripeUser cus_Nobody" not in text
    markdown = run("pull_stripe", "--dry-run", "--format", "markdown").out
    assert "\x1b" not in markdown and "\nNo changes detected." not in markdown
    assert "(Evil\\nNo changes detected.\\x1b[2J\\u202eevil\\r)" in markdown
    report = json.loads(run("pull_stripe", "--dry-run", "--format", "json").out)
    created = next(op for op in report["operations"] if op["id"] == "prod_DemoStarter01")
    assert {c["field"]: c["new"] for c in created["changes"]}["name"] == FORGED  # JSON keeps the exact data


def test_server_error_messages_are_escaped(fake_stripe, monkeypatch):
    def answer(fake, path, pairs, version=None):
        return 400, json.dumps({"error": {"type": "invalid_request_error", "message": "bad\x1b]0;owned\x07 thing"}})

    monkeypatch.setattr(fake_server, "handle_get", answer)
    result = run("update_stripe_products")
    assert result.code == 2
    assert "\x1b" not in result.err and "\x07" not in result.err
    assert "(HTTP 400): bad\\x1b]0;owned\\x07 thing" in result.err


def test_escape_keeps_what_is_printable():
    assert escape("Café 👍 日本 ±") == "Café 👍 日本 ±"
    assert escape("a\tb\x00\x7f\x85\u2028\u2066\ud800") == "a\\tb\\x00\\x7f\\x85\\u2028\\u2066\\ud800"


# -- a live key over plain http ------------------------------------------------------------------
LIVE_KEY = "sk_" + "live_" + "Z" * 24  # built in code: never a live-key literal in the repository


@pytest.mark.parametrize("base", ["http://0.0.0.0:9", "http://stripe-proxy.internal:8080", "http://10.1.2.3"])
def test_a_live_key_is_never_sent_over_plain_http_to_another_host(reconcile_settings, base):
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "API_KEY": LIVE_KEY, "API_BASE": base}
    result = run("update_stripe_products", "--dry-run")
    assert result.code == 2
    assert result.err == (
        f"CommandError: RECONCILE['API_BASE'] is {base}: a live key is never sent over plain http, except to "
        "this machine (localhost, 127.0.0.1, ::1). Use https.\n"
    )


def test_a_live_key_may_go_to_a_loopback_server_and_a_test_key_anywhere(start_fake, reconcile_settings):
    fake = start_fake(FakeStripe(demo_data()))
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "API_KEY": LIVE_KEY}
    assert run("update_stripe_products", "--dry-run").code == 0
    assert len(fake.requests) == 4


# -- a busy SQLite database -----------------------------------------------------------------------
def sqlite_child(tmp_path: Path, base: str, *args: str, busy: float) -> subprocess.Popen:
    env = child_env(f"sqlite:///{tmp_path / 'busy.sqlite3'}", base, FAKE_KEY)
    env["RECONCILE_SQLITE_BUSY_TIMEOUT"] = str(busy)
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def holding_the_write_lock(tmp_path: Path) -> sqlite3.Connection:
    """Another process's writer in the middle of a commit: an EXCLUSIVE lock, readers blocked."""
    path = tmp_path / "busy.sqlite3"
    shutil.copy(_sqlite_template(), path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    return holder


def test_a_dry_run_on_a_locked_sqlite_database_says_it_was_reading_and_wrote_nothing(fake_stripe, tmp_path):
    holder = holding_the_write_lock(tmp_path)
    try:
        child = sqlite_child(tmp_path, fake_server_url(fake_stripe), "pull_stripe", "--dry-run", busy=0.2)
        out, err = child.communicate(timeout=120)
    finally:
        holder.close()
    assert child.returncode == 2, err
    assert err == (
        "CommandError: The database failed while reading (OperationalError: database is locked). Another process "
        "is writing to it and held its lock longer than RECONCILE['SQLITE_BUSY_TIMEOUT'] (0.2 s). This run "
        "writes nothing: nothing was written.\n"
    )


def test_a_dry_run_waits_for_a_busy_sqlite_database(fake_stripe, tmp_path):
    """Held for 6 s, longer than SQLite's default wait (5 s) that failed dry runs before."""
    holder = holding_the_write_lock(tmp_path)
    try:
        child = sqlite_child(tmp_path, fake_server_url(fake_stripe), "pull_stripe", "--dry-run", busy=120)
        time.sleep(6)
        assert child.poll() is None, child.communicate()
    finally:
        holder.close()
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert "Plan: 32 to create" in out


def fake_server_url(fake) -> str:
    from django.conf import settings

    return settings.RECONCILE["API_BASE"]


def test_the_run_sets_the_busy_timeout_on_sqlite(fake_stripe, reconcile_settings, monkeypatch):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite only")
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "SQLITE_BUSY_TIMEOUT": 42.5}
    seen = []
    original = runner.load_local

    def load_local(*args, **kwargs):
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout")
            seen.append(cursor.fetchone()[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(runner, "load_local", load_local)
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        before = cursor.fetchone()[0]
    assert run("pull_stripe", "--dry-run").code == 0
    assert seen == [42500]
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone()[0] == before  # restored


# -- Ctrl-C during a fetch ------------------------------------------------------------------------
def test_ctrl_c_during_a_fetch_stops_between_retries(start_fake, reconcile_settings, monkeypatch):
    """The first request fails (500) and its retry waits 5 s; Ctrl-C reaches the main thread
    meanwhile (raised where it waits for the listings, deterministically): the retry is never sent,
    the other listings never start, and the run ends as interrupted."""
    from reconcile.stripe import remote

    reconcile_settings.RECONCILE = {
        **reconcile_settings.RECONCILE,
        "RETRY_BASE_DELAY": 5.0,
        "RETRY_MAX_DELAY": 5.0,
        "CONCURRENCY": 1,
    }
    failed = threading.Event()

    class Failing(FakeStripe):
        def record(self, method, path, query, version=None):
            super().record(method, path, query, version)
            failed.set()

    original_wait = remote.wait

    def wait(*args, **kwargs):
        if failed.wait(30):
            raise KeyboardInterrupt  # what Ctrl-C raises in the main thread
        return original_wait(*args, **kwargs)

    monkeypatch.setattr(remote, "wait", wait)
    fake = start_fake(Failing(demo_data()))
    fake.inject(Fault("status", status=500, times=100))
    result = run("pull_stripe")
    assert result.code == 130
    assert result.err == "CommandError: Interrupted: nothing was written.\n"
    assert len(fake.requests) == 1


def test_ctrl_c_stops_a_real_run_with_a_message_and_exit_130(start_fake, tmp_path):
    """A real SIGINT to a ``manage.py pull_stripe`` whose requests are held, then answered 500: no
    retry (0.25 s or more later) is ever sent, and the run ends with a message, not a traceback."""
    held = GatedFake(demo_data())
    held.inject(Fault("status", status=500, times=100))
    server = serve(held)
    database = tmp_path / "child.sqlite3"
    shutil.copy(_sqlite_template(), database)
    child = subprocess.Popen(
        [sys.executable, "manage.py", "pull_stripe"],
        cwd=ROOT,
        env=child_env(f"sqlite:///{database}", server.url, FAKE_KEY),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A job started in the background by a non-interactive shell (CI) ignores SIGINT, and so
        # would the child, inheriting it: give it the default disposition a terminal gives.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        wait_for_first_request(held, child)
        child.send_signal(signal.SIGINT)
        time.sleep(1)  # the main thread takes the signal while the request is still held
        held.release()
        out, err = child.communicate(timeout=60)
    finally:
        held.release()
        if child.poll() is None:
            child.kill()
        server.stop()
    assert child.returncode == 130, err
    assert err.endswith("CommandError: Interrupted: nothing was written.\n"), err
    assert "Traceback" not in err
    # Listings start together, so a few first requests may be on their way when Ctrl-C arrives; none
    # is ever retried (without the fix: 6 tries each, 36 requests), and no page follows a first one.
    sent = Counter((r.path, str(sorted(r.query.items()))) for r in held.requests)
    assert set(sent.values()) == {1}, sent
    assert all("starting_after" not in r.query for r in held.requests)


# -- progress shows the apply ---------------------------------------------------------------------
def test_progress_shows_an_applying_phase_while_the_apply_runs(fake_stripe, monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    phases = []
    bars = []
    original_make = runner.make_progress

    def make_progress(stream, resources, wanted):
        bar = original_make(Tty(), resources, True)
        bars.append(bar)
        return bar

    original_apply = runner.apply_plan

    def apply_plan(*args, **kwargs):
        bar = bars[0]
        phases.append((bar._bar.tasks[bar._phase].description, bar._bar.live.is_started))
        return original_apply(*args, **kwargs)

    monkeypatch.setattr(runner, "make_progress", make_progress)
    monkeypatch.setattr(runner, "apply_plan", apply_plan)
    assert run("pull_stripe").code == 0
    assert phases == [("applying", True)]
    bar = bars[0]
    assert bar._bar.tasks[bar._phase].description == "done" and not bar._bar.live.is_started
    assert isinstance(bar, RichProgress)


# -- the SQLite lock is keyed on the resolved file ------------------------------------------------
def test_a_symlink_to_a_sqlite_database_takes_the_same_lock(tmp_path):
    real = tmp_path / "data" / "db.sqlite3"
    real.parent.mkdir()
    real.touch()
    link = tmp_path / "link.sqlite3"
    link.symlink_to(real)
    assert lock_file_for(str(link)) == lock_file_for(str(real)) == real.with_name("db.sqlite3.reconcile.lock")
    assert lock_file_for(f"file:{link}?mode=rw") == lock_file_for(str(real))
    with file_lock(lock_file_for(str(real))):
        with pytest.raises(ConcurrentRunError):
            with file_lock(lock_file_for(str(link))):
                pass
    assert lock_file_for(":memory:") is None and lock_file_for("file:memorydb_default?mode=memory&cache=shared") is None
