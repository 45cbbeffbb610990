"""The standalone `reconcile` command (click), on the embedded default and on a project's settings."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from reconcile.cli import COMMANDS, main
from tests.conftest import DEMO_PLAN, FAKE_KEY, ROOT, run


def test_help_lists_every_subcommand_and_option():
    runner = CliRunner()
    top = runner.invoke(main, ["--help"])
    assert top.exit_code == 0
    for name in ("pull", "products", "customers", "subscriptions", "fake-stripe"):
        assert name in top.output
    for name in COMMANDS:
        page = runner.invoke(main, [name, "--help"]).output
        for option in ("--dry-run", "--check", "--format", "--plan-out", "--apply-plan", "--no-progress"):
            assert option in page, (name, option)
        assert ("--starting_after" in page) == (name in ("customers", "subscriptions"))


def test_cli_and_management_commands_share_every_option_and_its_help():
    from django.core.management import load_command_class

    for name, (command, _) in COMMANDS.items():
        parser = load_command_class("reconcile", command).create_parser("manage.py", command)
        ours = {a.dest: a.help for a in parser._actions if a.dest not in ("help", "version") and a.option_strings}
        theirs = {p.name: p.help for p in main.commands[name].params}
        assert {dest: ours[dest] for dest in theirs} == theirs, name
        assert set(ours) - set(theirs) == {
            "settings",
            "pythonpath",
            "traceback",
            "no_color",
            "force_color",
            "skip_checks",
        }


@pytest.mark.django_db
def test_cli_and_management_command_print_the_same_plan(fake_stripe):
    # Django is already set up here with the demo project's settings: the CLI uses them.
    result = CliRunner().invoke(main, ["pull", "--dry-run"])
    assert result.exit_code == 0
    assert result.output == run("pull_stripe", "--dry-run").out


@pytest.mark.django_db
def test_cli_exit_codes_match_the_commands(fake_stripe):
    runner = CliRunner()
    assert runner.invoke(main, ["products", "--check"]).exit_code == 1
    assert runner.invoke(main, ["products"]).exit_code == 0
    assert runner.invoke(main, ["products", "--check"]).exit_code == 0
    bad = runner.invoke(main, ["products", "--apply-plan", "/nonexistent/plan.json"])
    assert bad.exit_code == 2 and "Cannot read the plan file" in bad.output
    assert runner.invoke(main, ["customers", "--limit", "500"]).exit_code == 2  # click's usage error


EMBEDDED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from click.testing import CliRunner
    from reconcile.cli import main
    runner = CliRunner()
    results = []
    for args in json.loads(sys.argv[1]):
        r = runner.invoke(main, args)
        results.append({"code": r.exit_code, "out": r.output, "error": repr(r.exception) if r.exception and
                        not isinstance(r.exception, SystemExit) else None})
    print(json.dumps(results))
    """
)


def test_the_embedded_default_needs_no_project(fake_stripe, tmp_path, reconcile_settings):
    """A fresh process with no DJANGO_SETTINGS_MODULE: built-in settings, a SQLite file in the cwd."""
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")}
    env.update(STRIPE_API_KEY=FAKE_KEY, STRIPE_API_BASE=reconcile_settings.RECONCILE["API_BASE"], PYTHONPATH=str(ROOT))
    plan = str(tmp_path / "plan.json")
    calls = [
        ["pull", "--check"],
        ["pull", "--dry-run", "--plan-out", plan],
        ["pull", "--apply-plan", plan],
        ["pull", "--check", "--format", "json"],
        ["customers", "-l", "2", "--dry-run"],
    ]
    done = subprocess.run(
        [sys.executable, "-c", EMBEDDED_SCRIPT, json.dumps(calls)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    check, saved, applied, again, window = json.loads(done.stdout)
    assert check["code"] == 1 and check["out"].splitlines()[-1] == DEMO_PLAN
    assert saved["code"] == 0 and applied["code"] == 0, (saved, applied)
    assert "Applied: 32 created, 0 updated, 0 item sets recreated, 0 users linked, 0 users created in " in (
        applied["out"]
    )
    assert again["code"] == 0 and json.loads(again["out"])["in_sync"] is True
    assert window["code"] == 0 and "--starting_after cus_" in window["out"]
    assert (tmp_path / "reconcile.sqlite3").is_file()
    with sqlite3.connect(tmp_path / "reconcile.sqlite3") as db:  # readers never wait for the writer
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert oct((tmp_path / "reconcile.sqlite3.key").stat().st_mode & 0o777) == "0o600"
