"""Real ``manage.py`` child processes against the fake Stripe (a test double on loopback).

On PostgreSQL and MySQL/MariaDB a child uses the very test database the test uses (the test must be
``django_db(transaction=True)`` so that both sides see committed rows). On SQLite the test database
lives in memory, which no other process can open, so a child gets a migrated SQLite file of its own.
"""

from __future__ import annotations

import atexit
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

from django.db import connection

from reconcile.testing.fakestripe import FakeStripe
from tests.helpers.site import ROOT, env_for

_template: Path | None = None


def _sqlite_template() -> Path:
    """A migrated SQLite file, made once per test session and copied for each test."""
    global _template
    if _template is None:
        directory = Path(tempfile.mkdtemp(prefix="reconcile-child-db-"))
        atexit.register(shutil.rmtree, directory, True)
        path = directory / "template.sqlite3"
        done = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
            cwd=ROOT,
            env=child_env(f"sqlite:///{path}", "http://127.0.0.1:9", "sk_test_unused0"),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        _template = path
    return _template


def child_database_url(tmp_path: Path) -> str:
    """The DATABASE_URL for child processes of this test."""
    if connection.vendor == "postgresql":
        s = connection.settings_dict
        auth = quote(s["USER"] or "postgres") + (f":{quote(s['PASSWORD'])}" if s.get("PASSWORD") else "")
        return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
    if connection.vendor == "mysql":
        s = connection.settings_dict
        auth = quote(s["USER"] or "root") + (f":{quote(s['PASSWORD'])}" if s.get("PASSWORD") else "")
        return f"mysql://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 3306}/{s['NAME']}"
    path = tmp_path / "child.sqlite3"
    shutil.copy(_sqlite_template(), path)
    return f"sqlite:///{path}"


def child_env(database_url: str, api_base: str, api_key: str) -> dict[str, str]:
    return env_for(database_url, api_base, api_key=api_key)


def start_command(database_url: str, api_base: str, api_key: str, *args: str) -> subprocess.Popen:
    """Start ``manage.py <args>`` in a child process; read its output with ``communicate()``."""
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=child_env(database_url, api_base, api_key),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def row_counts(database_url: str) -> dict[str, int]:
    """Rows per reconcile table and auth_user, read the way the child wrote them."""
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
            names = [
                n
                for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                if n.startswith("reconcile_") or n == "auth_user"
            ]
            return {n: db.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0] for n in names}
    from tests.helpers.dbstate import tracked_models

    return {m._meta.db_table: m.objects.count() for m in tracked_models()}


class GatedFake(FakeStripe):
    """A fake Stripe that holds every request until ``release()``: a run blocked mid-fetch, on cue."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.arrived = threading.Event()
        self._gate = threading.Event()

    def record(self, method, path, query, version=None) -> None:
        super().record(method, path, query, version)
        self.arrived.set()
        self._gate.wait(60)

    def release(self) -> None:
        self._gate.set()


def wait_for_first_request(fake: GatedFake, child: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not fake.arrived.wait(0.05):
        if child.poll() is not None:
            out, err = child.communicate()
            raise AssertionError(f"the child ended (exit {child.returncode}) before fetching:\n{out}\n{err}")
        if time.monotonic() > deadline:
            raise AssertionError("the child sent no request in time")
