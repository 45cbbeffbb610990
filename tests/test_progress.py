"""Progress goes to stderr, only when asked or when stderr is a terminal; stdout stays the report."""

from __future__ import annotations

import io
import json

import pytest

from reconcile.progress import Progress, RichProgress, make_progress
from tests.conftest import run

pytestmark = pytest.mark.django_db


def test_forced_progress_stays_off_stdout(fake_stripe):
    result = run("pull_stripe", "--dry-run", "--format", "json", "--progress")
    report = json.loads(result.out)  # stdout is the report alone
    assert report["summary"]["create"] == 32
    assert "subscriptions" in result.err and "pages" in result.err and "objects" in result.err


def test_no_progress_and_non_terminals_stay_quiet(fake_stripe):
    assert run("pull_stripe", "--dry-run", "--no-progress").err == ""
    assert run("pull_stripe", "--dry-run").err == ""  # a StringIO is not a terminal


def test_progress_is_on_for_a_terminal_only():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert type(make_progress(io.StringIO(), ("products",), None)) is Progress
    bar = make_progress(Tty(), ("products",), None)
    assert isinstance(bar, RichProgress)
    bar.page("products", 100)
    bar.phase("applying")
    bar.close()
    assert type(make_progress(Tty(), ("products",), False)) is Progress
