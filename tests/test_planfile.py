"""Reviewed plans, applied exactly: --dry-run --plan-out, then --apply-plan (like terraform plan -out)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconcile.models import Product, StripeUser, Subscription, SyncRun
from tests.conftest import demo_data, run
from tests.stripe_state import expected_subscriptions, stored_subscriptions

pytestmark = pytest.mark.django_db


@pytest.fixture
def plan_path(tmp_path):
    return str(tmp_path / "plan.json")


def test_a_saved_plan_applies_exactly_without_fetching(fake_stripe, plan_path):
    made = run("pull_stripe", "--plan-out", plan_path)
    assert made.code == 0
    assert f"Saved the plan to {plan_path}; apply it with --apply-plan {plan_path}." in made.err
    assert Product.objects.count() == 0  # --plan-out writes nothing
    saved = json.loads(open(plan_path).read())
    assert saved["report"]["summary"]["create"] == 32
    assert saved["database_fingerprint"].startswith("sha256:")
    # Stripe changes after the review: the reviewed plan is what gets applied, not Stripe's new state.
    fake_stripe.update("products", "prod_DemoStarter01", name="Renamed after review")
    requests = len(fake_stripe.requests)
    applied = run("pull_stripe", "--apply-plan", plan_path)
    assert applied.code == 0, applied.err
    assert len(fake_stripe.requests) == requests  # no Stripe call at all
    assert applied.out == made.out + applied.out.splitlines(keepends=True)[-1]
    assert Product.objects.get(id="prod_DemoStarter01").name == "Starter"
    assert stored_subscriptions() == expected_subscriptions(demo_data()["subscriptions"], skip={"sub_DemoHeidi00001"})
    run_row = SyncRun.objects.get()
    assert run_row.options["apply_plan"] == plan_path and run_row.counts["create"] == 32


def test_a_plan_is_refused_when_the_database_changed_since(fake_stripe, plan_path):
    run("pull_stripe", "--dry-run", "--plan-out", plan_path)
    StripeUser.objects.create(customer_id="cus_ManualRow0001", email="x@example.com")
    result = run("pull_stripe", "--apply-plan", plan_path)
    assert result.code == 2
    assert "The database changed since the plan in" in result.err and "Nothing was applied" in result.err
    assert (Product.objects.count(), Subscription.objects.count(), StripeUser.objects.count()) == (0, 0, 1)
    assert not SyncRun.objects.exists()


def test_a_plan_is_refused_when_users_changed_since(fake_stripe, plan_path):
    from django.contrib.auth.models import User

    run("update_stripe_customers", "--plan-out", plan_path)
    User.objects.create_user("bob", "bob.jones@example.com")
    result = run("update_stripe_customers", "--apply-plan", plan_path)
    assert result.code == 2 and "The database changed since" in result.err


@pytest.mark.parametrize(
    "edit",
    [
        lambda body: body["operations"][0].update(id="prod_Injected0001"),
        lambda body: body.update(database_fingerprint="sha256:" + "0" * 64),
        lambda body: body.pop("signature"),
        lambda body: body["report"]["summary"].update(create=0),
    ],
)
def test_an_edited_plan_file_is_refused(fake_stripe, plan_path, edit):
    run("update_stripe_products", "--plan-out", plan_path)
    body = json.loads(open(plan_path).read())
    edit(body)
    open(plan_path, "w").write(json.dumps(body))
    result = run("update_stripe_products", "--apply-plan", plan_path)
    assert result.code == 2
    assert "was edited after it was made" in result.err
    assert Product.objects.count() == 0


def test_a_signed_plan_file_of_another_version_is_a_clear_error(fake_stripe, plan_path):
    """A plan file made and signed by another version, whose records had other fields (here a
    feature planned with no record): refused with a message, nothing applied."""
    from django.core import signing

    from reconcile.core import planfile

    run("update_stripe_products", "--plan-out", plan_path)
    body = json.loads(open(plan_path).read())
    body.pop("signature")
    feature = next(op for op in body["operations"] if op["model"] == "Feature")
    feature["record"] = None
    body["signature"] = signing.Signer(salt=planfile.SALT).signature(planfile._canonical(body))
    open(plan_path, "w").write(json.dumps(body))
    result = run("update_stripe_products", "--apply-plan", plan_path)
    assert result.code == 2
    assert (
        f"The plan file {plan_path} holds an operation this version of reconcile cannot read (Create('Feature', "
        f"{feature['id']!r}) with a record of NoneType None); it was made by another version."
    ) in result.err
    assert Product.objects.count() == 0


def test_a_plan_is_applied_by_the_command_that_made_it(fake_stripe, plan_path):
    run("update_stripe_products", "--plan-out", plan_path)
    result = run("pull_stripe", "--apply-plan", plan_path)
    assert result.code == 2 and "was made by update_stripe_products" in result.err


def test_unreadable_plan_files_are_clear_errors(fake_stripe, tmp_path):
    missing = run("pull_stripe", "--apply-plan", str(tmp_path / "nope.json"))
    assert missing.code == 2 and "Cannot read the plan file" in missing.err
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    assert "is not a reconcile plan file" in run("pull_stripe", "--apply-plan", str(other)).err


def test_apply_plan_takes_no_other_mode(fake_stripe, plan_path):
    result = run("pull_stripe", "--apply-plan", plan_path, "--dry-run")
    assert result.code == 2 and "--apply-plan applies a saved plan as it is" in result.err


def test_plan_round_trip_keeps_every_operation_kind(fake_stripe, plan_path, reconcile_settings):
    from django.contrib.auth.models import User

    from reconcile.core import planfile

    reconcile_settings.RECONCILE = {
        **reconcile_settings.RECONCILE,
        "USER_CREATE_DEFAULTS_ATTRIBUTE_MAP": {"username": "email", "email": "email"},
    }
    User.objects.create_user("alice", "alice.smith@example.com")
    run("pull_stripe")
    fake_stripe.update("products", "prod_DemoStarter01", name="Starter 2", metadata={"features": "x y"})
    sub = json.loads(json.dumps(fake_stripe.get("subscriptions", "sub_DemoBob0000001")))
    sub["items"]["data"][0]["quantity"] = 9
    fake_stripe.upsert("subscriptions", sub)
    fake_stripe.remove("products", "prod_DemoLegacy001")
    fake_stripe.remove("subscriptions", "sub_DemoCarol00001")
    run("pull_stripe", "--plan-out", plan_path)
    from reconcile.conf import get_config
    from reconcile.runner import build_plan
    from reconcile.stripe.remote import Window

    built = build_plan(get_config(), ("products", "customers", "subscriptions"), Window())
    _, plan, _ = planfile.loads(Path(plan_path).read_text(), plan_path)
    assert plan.operations == built.plan.operations
    assert {op.action.key for op in plan.operations} == {"create", "update", "recreate_items", "orphan", "skip"}
