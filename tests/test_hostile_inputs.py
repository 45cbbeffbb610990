"""Hostile and unlucky inputs (issue 14): every error a person can meet ends with a message and exit 2,
never a traceback with exit 1 (which ``--check`` users read as drift), and nothing loops forever.
Stripe is the project's fake Stripe (a test double on loopback); some tests bend its answers the way
a broken proxy or server would, by wrapping its request handler."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import stripe
from django.core import checks

from reconcile.checks import check_settings
from reconcile.conf import get_config
from reconcile.models import Product
from reconcile.stripe.fetch import Fetcher, Page
from reconcile.stripe.walk import Part, split
from reconcile.testing import server as fake_server
from tests.conftest import FAKE_KEY, demo_data, run
from tests.helpers.site import manage

pytestmark = pytest.mark.django_db

PRODUCT_PAGES = 4  # products active=true/false, prices active=true/false: one page each


def bend(monkeypatch, answer) -> None:
    """Let ``answer(path, pairs, normal)`` rewrite the fake's answers: (status, text) or None."""
    original = fake_server.handle_get

    def handle(fake, path, pairs, version=None):
        bent = answer(path, pairs, lambda p=pairs: original(fake, path, p, version))
        return bent if bent is not None else original(fake, path, pairs, version)

    monkeypatch.setattr(fake_server, "handle_get", handle)


# -- 1. a key with a line end -----------------------------------------------------------------------
@pytest.mark.parametrize("suffix", ["\n", "\r\n", " \t"])
def test_a_key_read_from_a_file_with_its_line_end_works(start_fake, reconcile_settings, suffix):
    fake = start_fake()
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "API_KEY": FAKE_KEY + suffix}
    result = run("update_stripe_products", "--dry-run")
    assert result.code == 0, result.err
    assert len(fake.requests) == PRODUCT_PAGES  # no retries
    assert "Plan: 17 to create" in result.out


@pytest.mark.parametrize("bad", ["\n", "\x00", " ", "é", "\u2028"])
def test_a_key_with_a_character_no_stripe_key_has_is_refused_before_any_request(start_fake, reconcile_settings, bad):
    fake = start_fake()
    key = FAKE_KEY[:12] + bad + FAKE_KEY[12:]
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "API_KEY": key}
    result = run("update_stripe_products", "--dry-run")
    assert result.code == 2
    assert result.err == (
        "CommandError: The Stripe API key has a character no Stripe key has (a space, a line break or a "
        "control character?). Check RECONCILE['API_KEY'] (or DRF_STRIPE['STRIPE_API_SECRET'], or $STRIPE_API_KEY).\n"
    )
    assert fake.requests == []
    assert FAKE_KEY[8:12] not in result.err + result.out


def test_the_system_checks_refuse_a_key_with_inner_whitespace(settings):
    settings.RECONCILE = {"API_KEY": "sk_test_abc\ndef"}
    assert [e.id for e in check_settings()] == ["reconcile.E005"]
    settings.RECONCILE = {"API_KEY": "sk_test_abcdef\n"}
    assert check_settings() == []
    assert get_config().api_key == "sk_test_abcdef"


def test_network_error_text_is_redacted_before_it_is_shown(reconcile_settings):
    fetcher = Fetcher(get_config())
    exc = stripe.APIConnectionError(
        f"Unexpected error communicating with Stripe. (Network error: InvalidHeader: Invalid leading whitespace, "
        f"reserved character(s), or return character(s) in header value: 'Bearer {FAKE_KEY}\\n')"
    )
    message = str(fetcher._error(exc, "GET /v1/products", 0))
    assert FAKE_KEY not in message and FAKE_KEY[8:] not in message
    assert "Bearer sk_test_[redacted]" in message


# -- 3. the standalone CLI and the current directory ------------------------------------------------
def test_the_standalone_cli_runs_no_code_from_the_current_directory(fake_stripe, tmp_path, reconcile_settings):
    (tmp_path / "stripe.py").write_text("raise SystemExit(42)\n")
    (tmp_path / "click.py").write_text("raise SystemExit(43)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "PYTHONPATH")}
    env.update(STRIPE_API_KEY=FAKE_KEY + "\n", STRIPE_API_BASE=reconcile_settings.RECONCILE["API_BASE"])
    script = Path(sys.executable).with_name("reconcile")
    done = subprocess.run(
        [str(script), "products", "--dry-run"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "Plan: 17 to create" in done.stdout


# -- 5. tracebacks --------------------------------------------------------------------------------
def test_a_lone_surrogate_in_a_name_skips_that_product(start_fake):
    data = demo_data()
    data["products"][0]["name"] = "Starter \ud800"
    start_fake(data)
    result = run("update_stripe_products")
    assert result.code == 0, result.err
    assert (
        "  ! skip Product prod_DemoStarter01: field 'name' holds a lone surrogate (\\ud800), "
        "which no database can store as UTF-8\n" in result.out
    )
    assert Product.objects.count() == 3
    json_result = run("update_stripe_products", "--check", "--format", "json")
    assert json_result.code == 0
    assert json.loads(json_result.out)["summary"]["skip"] == 3  # the product and its two prices


def test_a_subscription_without_an_id_whose_items_have_more_pages_is_skipped(start_fake, monkeypatch):
    start_fake()
    odd = {"object": "subscription", "status": "active", "items": {"object": "list", "data": [], "has_more": True}}

    def answer(path, pairs, normal):
        if path != "/v1/subscriptions":
            return None
        status, text = normal()
        body = json.loads(text)
        body["data"].insert(0, odd)
        return status, json.dumps(body)

    bend(monkeypatch, answer)
    result = run("pull_stripe")
    assert result.code == 0, result.err
    assert "  ! skip Subscription ?: a subscription object without an id\n" in result.out


def test_a_non_object_on_a_page_cannot_break_a_split_walk():
    page = Page(["not an object", {"id": "cus_2", "created": 1_700_000_000}], True, datetime.now(timezone.utc))
    assert split(Part(), page, 4) == [Part(None, None, "cus_2")]
    page = Page([7, {"id": "cus_2", "created": 1_700_000_000}], True, datetime.now(timezone.utc))
    assert split(Part(), page, 2) == [Part(None, None, "cus_2")]


def test_a_non_object_on_a_page_is_skipped_with_the_reason(start_fake, monkeypatch):
    start_fake()

    def answer(path, pairs, normal):
        if path != "/v1/customers":
            return None
        status, text = normal()
        body = json.loads(text)
        body["data"].insert(0, ["not", "an", "object"])
        return status, json.dumps(body)

    bend(monkeypatch, answer)
    result = run("update_stripe_customers")
    assert result.code == 0, result.err
    assert "  ! skip StripeUser ?: expected a customer object, got list\n" in result.out


def test_plan_out_to_a_missing_directory_is_a_clear_error(fake_stripe, tmp_path):
    target = tmp_path / "missing" / "plan.json"
    result = run("update_stripe_products", "--plan-out", str(target))
    assert result.code == 2
    assert f"CommandError: Cannot write the plan to {target}: No such file or directory." in result.err
    assert not target.exists()


def test_plan_out_to_a_full_disk_is_a_clear_error(fake_stripe):
    result = run("update_stripe_products", "--plan-out", "/dev/full")
    assert result.code == 2
    assert "CommandError: Cannot write the plan to /dev/full: No space left on device." in result.err
    assert oct(os.stat("/dev/full").st_mode & 0o777) == "0o666"  # a device is never chmod-ed


def test_a_lock_file_that_cannot_be_created_is_a_clear_error(tmp_path, fake_stripe, reconcile_settings):
    """A SQLite database in a directory the run may not write (here /proc, read-only even for root)."""
    done = manage("sqlite:////proc/version", reconcile_settings.RECONCILE["API_BASE"], "update_stripe_products")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("CommandError: Cannot create the lock file /proc/version.reconcile.lock (")
    assert "Traceback" not in done.stderr
    assert fake_stripe.requests == []


def test_a_deeply_nested_plan_file_is_a_clear_error(fake_stripe, tmp_path):
    path = tmp_path / "plan.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    result = run("update_stripe_products", "--apply-plan", str(path))
    assert result.code == 2
    assert f"CommandError: Cannot read the plan file {path}: it is nested too deeply." in result.err


def test_an_unexpected_error_exits_2_not_1(fake_stripe, monkeypatch):
    """A bug must never read as drift under --check: exit 2, with the traceback for the report."""
    from reconcile import runner

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(runner, "diff", broken)
    result = run("update_stripe_products", "--check")
    assert result.code == 2
    assert "Traceback" in result.err and "ZeroDivisionError: a bug" in result.err
    assert result.err.endswith(
        "CommandError: reconcile failed unexpectedly (ZeroDivisionError: a bug). This is a bug: please report it "
        "with the traceback above. Nothing was written.\n"
    )


# -- 6. cursors that loop, pages that say more but hold nothing --------------------------------------
def test_a_server_that_ignores_starting_after_is_stopped_at_the_repeated_cursor(fake_stripe, monkeypatch):
    served = []

    def answer(path, pairs, normal):
        if path != "/v1/customers":
            return None
        served.append(pairs)
        status, text = normal([(k, v) for k, v in pairs if k not in ("starting_after", "limit")] + [("limit", "3")])
        body = json.loads(text)
        body["has_more"] = len(served) < 30  # a cap, so that the test ends even without the fix
        return status, json.dumps(body)

    bend(monkeypatch, answer)
    result = run("update_stripe_customers")
    assert result.code == 2, result.out
    assert len(served) == 2
    assert result.err == (
        "CommandError: Stripe answered GET /v1/customers?limit=100&starting_after=cus_DemoErin000001 with a page "
        "it had already sent (the cursor cus_DemoErin000001 came back): the list would never end. "
        "Nothing was written.\n"
    )


def test_a_windowed_run_stops_at_a_repeated_cursor_too(fake_stripe, monkeypatch):
    calls = []

    def answer(path, pairs, normal):
        if path != "/v1/customers":
            return None
        calls.append(pairs)
        return 200, json.dumps({"object": "list", "data": [{"id": "cus_Same", "object": "customer"}], "has_more": True})

    bend(monkeypatch, answer)
    assert run("update_stripe_customers", "-l", "1", "-s", "cus_Same").code == 2
    assert len(calls) == 1


def test_a_page_that_says_has_more_but_holds_nothing_is_an_error_not_a_whole_list(fake_stripe, monkeypatch):
    assert run("update_stripe_customers").code == 0

    def answer(path, pairs, normal):
        if path == "/v1/customers":
            return 200, json.dumps({"object": "list", "data": [], "has_more": True, "url": "/v1/customers"})
        return None

    bend(monkeypatch, answer)
    result = run("update_stripe_customers", "--check")
    assert result.code == 2, result.out  # not 0 with every stored customer reported as an orphan
    assert result.out == ""
    assert result.err == (
        "CommandError: Stripe answered GET /v1/customers?limit=100 with an empty page that says it has more: "
        "the list cannot be read to its end. Nothing was written.\n"
    )


# -- 7. a user-creation map without the user model's required unique field ---------------------------
def test_a_user_map_without_the_username_is_refused_at_start_up(settings):
    settings.RECONCILE = {"USER_CREATE_DEFAULTS_ATTRIBUTE_MAP": {"first_name": "email"}}
    errors = check_settings()
    assert [(e.id, e.msg) for e in errors] == [
        (
            "reconcile.E011",
            "USER_CREATE_DEFAULTS_ATTRIBUTE_MAP does not set 'username', a unique field of auth.User: creating "
            "users would fail.",
        )
    ]
    assert all(isinstance(e, checks.Error) for e in errors)
    settings.RECONCILE = {"USER_CREATE_DEFAULTS_ATTRIBUTE_MAP": {"username": "email", "first_name": "name"}}
    assert check_settings() == []
