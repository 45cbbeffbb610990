"""End to end, the switch from drf-stripe-subscription: a database filled by drf-stripe-subscription
1.2.2 itself (in its own virtualenv, ``.peer-venv``, with stripe < 15, the benchmark's peer set-up)
from the fake Stripe, then ``reconcile_import_drf_stripe`` and ``pull_stripe`` by reconcile in
child processes on that same database: every link drf made is kept.

Runs on the database the suite runs on: a SQLite file, or a PostgreSQL database of its own beside
the test database. The first run creates ``.peer-venv`` from PyPI (cached after).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from bench.accounts import build
from bench.scenarios import Db, reset_database
from bench.sidebyside import _peer, ensure_peer_venv
from reconcile.testing.fakestripe import FakeStripe, serve
from tests.helpers.procs import child_env

from .conftest import FAKE_KEY, ROOT

N = 150  # two pages of customers and subscriptions for the peer's paged commands
SWITCHED_EMAIL = "someone.else@example.com"


def database(tmp_path: Path) -> Db:
    """A fresh database on the backend the suite runs on."""
    s = connection.settings_dict
    if connection.vendor != "postgresql":
        return Db.sqlite(tmp_path / "site.sqlite3")
    auth = quote(s["USER"] or "postgres") + (f":{quote(s['PASSWORD'])}" if s.get("PASSWORD") else "")
    return Db.postgres(f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}_drfmig")


@pytest.fixture
def site_db(tmp_path):
    """An empty database for the site being switched; a PostgreSQL one is dropped afterwards."""
    db = database(tmp_path)
    reset_database(db)
    yield db
    if db.name == "postgres":
        import psycopg

        admin = db.url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db.url.rsplit("/", 1)[1]}" WITH (FORCE)')


def manage(db: Db, api_base: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=child_env(db.url, api_base, FAKE_KEY),
        capture_output=True,
        text=True,
        timeout=300,
    )


def reconcile_links(db: Db, api_base: str) -> dict[str, int | None]:
    code = (
        "import json; from reconcile.models import StripeUser; "
        "print(json.dumps(dict(StripeUser.objects.values_list('customer_id', 'user_id'))))"
    )
    done = manage(db, api_base, "shell", "-v", "0", "-c", code)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_links_made_by_drf_stripe_subscription_survive_the_switch(tmp_path, site_db):
    ensure_peer_venv(log=lambda *_: None)
    account = build(N, seed=11, variant="peer")
    customers = account["customers"]
    shared, switched = customers[0], customers[1]
    # Users made before drf's pull: one whose email is the customer's exactly (drf links it) and
    # one with the same email in another case (so email matching alone finds two and links none);
    # and the user whose email the second customer will take later.
    users = [
        {"username": "exact", "email": shared["email"]},
        {"username": "other-case", "email": shared["email"].upper()},
        {"username": "someone", "email": SWITCHED_EMAIL},
    ]
    (tmp_path / "users.json").write_text(json.dumps(users))
    db = site_db
    fake = FakeStripe(account)
    with serve(fake) as server:
        _peer(["migrate"], db, server.url)
        _peer(["users", "--file", str(tmp_path / "users.json")], db, server.url)
        _peer(["pull", "--out", str(tmp_path / "peer.json")], db, server.url)
        _peer(["links", "--out", str(tmp_path / "links.json")], db, server.url)
        drf = json.loads((tmp_path / "links.json").read_text())
        peer = json.loads((tmp_path / "peer.json").read_text())
        assert peer["rows"]["customers"] == N and len(drf) == N, peer["steps"]
        # After the switch is decided, the second customer changes its email to another user's.
        fake.update("customers", switched["id"], email=SWITCHED_EMAIL)

        assert manage(db, server.url, "migrate", "--no-input", "-v", "0").returncode == 0
        # Without the import, email matching alone would lose both: the shared email links none,
        # the switched customer would go to the user whose email it took.
        alone = manage(db, server.url, "pull_stripe", "--dry-run")
        assert alone.returncode == 0, alone.stderr
        assert f"StripeUser {shared['id']}: 2 users share {shared['email'].lower()!r}" in alone.stdout
        assert f"link StripeUser {switched['id']} to user " in alone.stdout
        assert f"link StripeUser {switched['id']} to user {drf[switched['id']]} " not in alone.stdout
        dry = manage(db, server.url, "reconcile_import_drf_stripe")
        assert dry.returncode == 0, dry.stderr
        assert f"{N} users to link" in dry.stdout and reconcile_links(db, server.url) == {}
        applied = manage(db, server.url, "reconcile_import_drf_stripe", "--apply")
        assert applied.returncode == 0, applied.stderr
        assert f"Applied: 0 created, 0 updated, 0 item sets recreated, {N} users linked" in applied.stdout
        again = manage(db, server.url, "reconcile_import_drf_stripe", "--apply")
        assert again.returncode == 0 and again.stdout.startswith("No changes detected.")

        pulled = manage(db, server.url, "pull_stripe")
        assert pulled.returncode == 0, pulled.stderr
        assert "0 users linked" in pulled.stdout  # every customer was linked already: by the import
        assert f"StripeUser {switched['id']}: email changed from None to {SWITCHED_EMAIL!r}" not in pulled.stdout
        check = manage(db, server.url, "pull_stripe", "--check")
        assert check.returncode == 0, check.stdout
        links = reconcile_links(db, server.url)
    assert {cid: links.get(cid) for cid in drf} == drf  # every link drf made, kept
    assert links[shared["id"]] == drf[shared["id"]]  # the ambiguous email: drf's choice
    assert links[switched["id"]] == drf[switched["id"]]  # not moved to the user of its new email


@pytest.mark.parametrize("flag", [[], ["--apply"]])
def test_a_database_without_drf_tables_exits_2(site_db, flag):
    db = site_db
    assert manage(db, "http://127.0.0.1:9", "migrate", "--no-input", "-v", "0").returncode == 0
    done = manage(db, "http://127.0.0.1:9", "reconcile_import_drf_stripe", *flag)
    assert done.returncode == 2
    assert "has no table drf_stripe_stripeuser" in done.stderr and "Nothing was changed." in done.stderr
