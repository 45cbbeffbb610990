"""Reports are the product: exact text, JSON and markdown for a literal plan. No database."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from reconcile.conf import get_config
from reconcile.core import report
from reconcile.core.diff import diff
from reconcile.core.plan import (
    Change,
    Create,
    CreateUser,
    LinkUser,
    Note,
    Operations,
    Orphan,
    Plan,
    RecreateItems,
    Skip,
    Update,
    is_record,
)
from reconcile.core.report import render, render_chunks
from reconcile.core.snapshot import ItemRec, ProductRec, Snapshot
from reconcile.stripe.remote import fetch_remote
from reconcile.testing.generate import generate_account
from tests.conftest import ROOT

T = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def item(quantity: int) -> ItemRec:
    return ItemRec(id="si_1", price_id="price_1", quantity=quantity, current_period_start=T, current_period_end=T)


PLAN = Plan(
    operations=(
        Create(
            "Product", "prod_new", ProductRec(id="prod_new", name="Pro", description=None, active=True, metadata={})
        ),
        Update(
            "Product",
            "prod_old",
            None,
            (Change("name", "Old", "New"), Change("metadata", {"a": "1", "b": "2"}, {"a": "9", "c": "3"})),
        ),
        Skip("Price", "price_bad", "currency 'zzz' is not an ISO 4217 code"),
        CreateUser("cus_2", (("email", "x@y.io"), ("username", "x@y.io"))),
        LinkUser("cus_1", 7, "a@b.io"),
        Update("Subscription", "sub_1", None, (Change("status", "active", "canceled"), Change("ended_at", None, T))),
        Orphan("Subscription", "sub_gone"),
        RecreateItems("sub_1", (item(1),), (item(2),)),
    ),
    notes=(Note("StripeUser", "cus_3", "2 users share 'z@y.io' (4, 5); linked none"),),
)


def test_text_report_at_default_verbosity():
    assert render(PLAN) == (
        "Products:\n"
        "  + create Product prod_new (Pro)\n"
        "  ~ update Product prod_old: name, metadata\n"
        "Prices:\n"
        "  ! skip Price price_bad: currency 'zzz' is not an ISO 4217 code\n"
        "Users:\n"
        "  @ create user for StripeUser cus_2 (email='x@y.io', username='x@y.io')\n"
        "Customers:\n"
        "  = link StripeUser cus_1 to user 7 (a@b.io)\n"
        "Subscriptions:\n"
        "  ~ update Subscription sub_1: status, ended_at\n"
        "  - orphan Subscription sub_gone: stored here, absent from Stripe (kept)\n"
        "Subscription items:\n"
        "  ± recreate items of Subscription sub_1: 1 -> 1\n"
        "Notes:\n"
        "  ? StripeUser cus_3: 2 users share 'z@y.io' (4, 5); linked none\n"
        "Plan: 1 to create, 2 to update, 1 item sets to recreate, 1 users to link, 1 users to create, "
        "1 orphaned, 1 skipped.\n"
    )


def test_text_report_shows_field_changes_at_verbosity_2():
    lines = render(PLAN, verbosity=2).splitlines()
    assert lines[2:5] == [
        "  ~ update Product prod_old: name, metadata",
        "      name: 'Old' -> 'New'",
        "      metadata: +'c', -'b', 'a': '1' -> '9'",
    ]
    assert "      ended_at: None -> 2026-03-01T12:00:00Z" in lines
    assert "      items: ['si_1'] -> ['si_1']" in lines


def test_empty_plan_says_no_changes_detected():
    assert render(Plan()) == "No changes detected.\n"
    assert render(Plan(operations=(Orphan("Product", "prod_x"),))) == (
        "Products:\n"
        "  - orphan Product prod_x: stored here, absent from Stripe (kept)\n"
        "No changes detected (reported only: 1 orphaned, 0 skipped).\n"
    )


def test_json_report():
    report = json.loads(render(PLAN, "json"))
    assert report["schema"] == "reconcile.plan/v1" and report["in_sync"] is False
    assert report["summary"] == {
        "create": 1,
        "update": 2,
        "recreate_items": 1,
        "link_user": 1,
        "create_user": 1,
        "orphan": 1,
        "skip": 1,
    }
    assert report["operations"][0] == {
        "action": "create",
        "symbol": "+",
        "model": "Product",
        "id": "prod_new",
        "changes": [
            {"field": "name", "old": None, "new": "Pro"},
            {"field": "description", "old": None, "new": None},
            {"field": "active", "old": None, "new": True},
            {"field": "metadata", "old": None, "new": {}},
            {"field": "deleted", "old": None, "new": False},
            {"field": "features", "old": None, "new": []},
        ],
        "reason": None,
        "description": "create Product prod_new (Pro)",
    }
    assert report["operations"][5]["changes"][1] == {"field": "ended_at", "old": None, "new": "2026-03-01T12:00:00Z"}
    assert report["operations"][2]["reason"] == "currency 'zzz' is not an ISO 4217 code"
    assert report["notes"] == [
        {"model": "StripeUser", "id": "cus_3", "message": "2 users share 'z@y.io' (4, 5); linked none"}
    ]
    assert json.loads(render(Plan(), "json"))["in_sync"] is True


def test_markdown_report():
    text = render(PLAN, "markdown")
    assert text.startswith(
        "### Stripe reconcile plan\n\n"
        "**Plan: 1 to create, 2 to update, 1 item sets to recreate, 1 users to link, 1 users to create, 1 orphaned, "
        "1 skipped.**\n\n| | Action | Model | Id | Details |\n|---|---|---|---|---|\n"
        "| + | create | Product | `prod_new` | create Product prod_new (Pro) |\n"
    )
    assert "| ~ | update | Subscription | `sub_1` | status: 'active' -> 'canceled'; ended_at: None -> " in text
    assert text.endswith("Notes:\n\n- StripeUser cus_3: 2 users share 'z@y.io' (4, 5); linked none\n")
    assert render(Plan(), "markdown") == (
        "### Stripe reconcile plan\n\n**No changes detected.** The database agrees with Stripe.\n"
    )


def test_markdown_escapes_pipes():
    plan = Plan(operations=(Skip("Product", "prod_x", "name has a | pipe"),))
    assert "| name has a \\| pipe |" in render(plan, "markdown")


def test_a_text_report_goes_out_in_pieces_of_whole_lines(monkeypatch):
    """The runner writes the text report piece by piece (a report of 200,000 operations is never
    whole in memory): joined, the pieces are the report, each of CHUNK_LINES lines, escaped alike."""
    monkeypatch.setattr(report, "CHUNK_LINES", 4)
    odd = Create(
        "Product", "prod_odd", ProductRec(id="prod_odd", name="a\nb", description=None, active=True, metadata={})
    )
    plan = Plan(operations=(odd, *PLAN.operations), notes=PLAN.notes)
    pieces = list(render_chunks(plan, verbosity=2))
    assert "".join(pieces) == render(plan, verbosity=2)
    assert [piece.count("\n") for piece in pieces] == [4, 4, 4, 4, 4, 3]  # 23 lines
    assert pieces[0].startswith("Products:\n  + create Product prod_odd (a\\nb)\n")
    assert list(render_chunks(plan, "json")) == [render(plan, "json")]


def test_the_audits_json_text_is_the_json_report_made_one_operation_at_a_time():
    extra = {"conflicts": [{"model": "Product", "id": "prod_old", "reason": "kept"}]}
    for limit in (3, len(PLAN.operations), 100):
        text = report.as_json_text(PLAN, limit, extra)
        assert json.loads(text) == {**report.as_dict(PLAN, max_operations=limit), **extra}
    assert "operations_omitted" not in json.loads(report.as_json_text(PLAN, 100, {}))
    assert json.loads(report.as_json_text(PLAN, 3, {}))["operations_omitted"] == 5
    # each operation goes through ``clean`` before it is encoded, and so does the rest
    cleaned = json.loads(report.as_json_text(PLAN, 1, {}, lambda value: {**value, "cleaned": True}))
    assert cleaned["cleaned"] is True and cleaned["operations"][0]["cleaned"] is True


def test_the_audit_keeps_a_create_without_its_field_values():
    text = report.as_json_text(PLAN, 100, {}, created_values=False)
    operations = json.loads(text)["operations"]
    expected = [
        {k: v for k, v in entry.items() if not (k == "changes" and entry["action"] == "create")}
        for entry in report.as_dict(PLAN)["operations"]
    ]
    assert operations == expected
    assert operations[0] == {
        "action": "create",
        "symbol": "+",
        "model": "Product",
        "id": "prod_new",
        "reason": None,
        "description": "create Product prod_new (Pro)",
    }


def test_deepdiff_is_imported_only_to_show_a_change_of_a_dict():
    """3.6 MiB of RSS that a worker or a pull showing no such change would carry for its whole life."""
    script = (
        "import os, sys, django\n"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'demo.settings'\n"
        "django.setup()\n"
        "import reconcile.core.report, reconcile.runner, reconcile.admin\n"
        "print('deepdiff' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "False"), done.stderr


@pytest.mark.django_db
def test_a_first_pulls_creates_held_as_records_read_as_their_creates_do(start_fake):
    """A diff holds its creates as records alone (``Operations``); the report words each as its
    ``Create`` would, and counts them alike."""
    account = generate_account(80, seed=7, n_products=4)
    account["customers"][0]["name"] = "Ada\nLovelace"  # escaped in either form
    start_fake(account)
    plan = diff(fetch_remote(get_config(), ("products", "customers", "subscriptions")), Snapshot())
    assert isinstance(plan.operations, Operations)
    assert any(is_record(entry) for entry in plan.operations.entries)
    as_creates = Plan(operations=tuple(plan.operations), notes=plan.notes)
    assert render(plan) == render(as_creates)
    assert plan.summary() == as_creates.summary()
    lines = render(plan).splitlines()
    assert f"  + create StripeUser {account['customers'][0]['id']} (Ada\\nLovelace)" in lines
    assert sum(line.startswith("  + create ") for line in lines) == plan.summary()["create"] > 80
