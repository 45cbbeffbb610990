"""Rough edges a new user hit (issue 11), each pinned by a test that failed before its fix."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request

import pytest
from django.contrib.auth import get_user_model

from reconcile.checks import check_settings
from tests.helpers.procs import child_env

from .conftest import FAKE_KEY, ROOT, run


@pytest.mark.django_db
def test_the_applied_line_counts_and_words_as_the_plan_line(fake_stripe, reconcile_settings):
    reconcile_settings.RECONCILE = {
        **reconcile_settings.RECONCILE,
        "USER_CREATE_DEFAULTS_ATTRIBUTE_MAP": {"username": "email", "email": "email"},
    }
    get_user_model().objects.create(username="alice", email="alice.smith@example.com")
    get_user_model().objects.create(username="carol", email="carol@example.org")
    plan = run("pull_stripe", "--dry-run").out.splitlines()[-1]
    assert plan == (
        "Plan: 32 to create, 0 to update, 0 item sets to recreate, 2 users to link, 3 users to create, "
        "0 orphaned, 1 skipped."
    )
    applied = run("pull_stripe").out.splitlines()[-1]
    assert re.fullmatch(
        r"Applied: 32 created, 0 updated, 0 item sets recreated, 2 users linked, 3 users created in \d+\.\ds\.", applied
    )


def test_a_failed_system_check_exits_2_not_the_drift_code(tmp_path):
    """manage.py pull_stripe --check with a publishable key: the system checks stop it, exit 2."""
    env = child_env(f"sqlite:///{tmp_path / 'db.sqlite3'}", "http://127.0.0.1:9", "pk_test_" + "x" * 12)
    for command in (["pull_stripe", "--check"], ["update_stripe_customers"], ["reconcile_import_drf_stripe"]):
        done = subprocess.run(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 2, (command, done.stderr)
        assert "reconcile.E005" in done.stderr and "publishable key" in done.stderr


def test_a_user_map_without_the_required_unique_field_is_refused_at_start_up(settings):
    settings.RECONCILE = {"USER_CREATE_DEFAULTS_ATTRIBUTE_MAP": {"first_name": "email"}}
    errors = check_settings()
    assert [e.id for e in errors] == ["reconcile.E011"]
    assert errors[0].msg == (
        "USER_CREATE_DEFAULTS_ATTRIBUTE_MAP does not set 'username', a unique field of auth.User: "
        "creating users would fail."
    )
    assert errors[0].hint == "Map it to a customer attribute, e.g. {'username': 'email'}."
    settings.RECONCILE = {"USER_CREATE_DEFAULTS_ATTRIBUTE_MAP": {"username": "email", "first_name": "name"}}
    assert check_settings() == []


def _cli(tmp_path, *args: str, key: str | None = None, base: str = "http://127.0.0.1:9"):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "RECONCILE_", "DJANGO_", "DATABASE"))}
    env.update(PYTHONPATH=str(ROOT), STRIPE_API_BASE=base)
    if key is not None:
        env["STRIPE_API_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "reconcile.cli", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_standalone_cli_without_a_key_creates_nothing_and_names_its_own_setting(tmp_path):
    done = _cli(tmp_path, "pull", "--dry-run")
    assert done.returncode == 2
    assert done.stderr == (
        "Error: No Stripe API key is set. Set the environment variable STRIPE_API_KEY "
        "(export STRIPE_API_KEY=sk_test_...), or give --settings MODULE to use your Django project's settings.\n"
    )
    assert list(tmp_path.iterdir()) == []  # no reconcile.sqlite3, no reconcile.sqlite3.key


def test_standalone_cli_refuses_a_publishable_key_without_calling_stripe(tmp_path, start_fake):
    fake = start_fake()
    from django.conf import settings

    base = settings.RECONCILE["API_BASE"]
    publishable = "pk_test_" + "Q" * 20
    done = _cli(tmp_path, "pull", "--dry-run", key=publishable, base=base)
    assert done.returncode == 2
    assert "publishable key (pk_...)" in done.stderr and "STRIPE_API_KEY" in done.stderr
    assert publishable not in done.stderr + done.stdout
    assert fake.requests == [] and list(tmp_path.iterdir()) == []
    ok = _cli(tmp_path, "products", "--dry-run", key=FAKE_KEY, base=base)
    assert ok.returncode == 0, ok.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reconcile.sqlite3", "reconcile.sqlite3.key"]


def test_the_installed_cli_serves_the_packaged_demo_from_any_directory(tmp_path):
    cmd = [sys.executable, "-m", "reconcile.cli", "fake-stripe", "--port", "0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    try:
        line = proc.stdout.readline()
        match = re.fullmatch(r"fake Stripe \(a test double\) serving (.+) on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        assert match.group(1).endswith(os.path.join("reconcile", "testing", "data", "demo"))
        request = urllib.request.Request(
            match.group(2) + "/v1/customers?limit=100", headers={"Authorization": f"Bearer {FAKE_KEY}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert len(json.loads(response.read())["data"]) == 7  # the demo's 8 customers, one deleted
    finally:
        proc.terminate()
        proc.wait(timeout=10)
