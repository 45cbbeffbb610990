"""No lost writes: a webhook handler that writes a row (``synced_at=now()``) after the run fetched
that row's Stripe page keeps its write. The race is reproduced deterministically by wrapping the
runner's steps: the "webhook" writes right after the fetch (before the local load: the diff skips
the row) or right before the apply (the apply reports a conflict). Stripe is the project's fake
Stripe (a test double on loopback)."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from django.db import IntegrityError
from django.utils import timezone

from reconcile import runner
from reconcile.models import Price, Product, StripeUser, Subscription, SubscriptionItem, SyncRun
from tests.conftest import run

pytestmark = pytest.mark.django_db

KEPT = "the stored row was written after Stripe's page was fetched; kept the newer row"


def webhook_before(monkeypatch, name: str, write) -> None:
    """Run ``write()`` (the webhook) just before ``runner.<name>`` runs."""
    original = getattr(runner, name)

    def wrapped(*args, **kwargs):
        write()
        return original(*args, **kwargs)

    monkeypatch.setattr(runner, name, wrapped)


@pytest.fixture
def synced(fake_stripe):
    assert run("pull_stripe").code == 0
    fake_stripe.update("products", "prod_DemoStarter01", name="Starter 2027")
    fake_stripe.update("prices", "price_DemoStarterMo", nickname="Starter monthly (2027)")
    return fake_stripe


def rename_starter_by_webhook() -> None:
    Product.objects.filter(id="prod_DemoStarter01").update(name="Starter (from a webhook)", synced_at=timezone.now())


def test_a_row_written_after_the_fetch_and_before_the_load_is_kept_and_reported_by_the_diff(synced, monkeypatch):
    webhook_before(monkeypatch, "load_local", rename_starter_by_webhook)
    result = run("update_stripe_products")
    assert result.code == 0, result.err
    assert f"  ! skip Product prod_DemoStarter01: {KEPT}\n" in result.out
    assert "conflict" not in result.out
    assert Product.objects.get(id="prod_DemoStarter01").name == "Starter (from a webhook)"
    assert Price.objects.get(id="price_DemoStarterMo").nickname == "Starter monthly (2027)"  # the rest applies


def test_a_row_written_after_the_diff_and_before_the_apply_is_kept_and_reported_as_a_conflict(synced, monkeypatch):
    webhook_before(monkeypatch, "apply_plan", rename_starter_by_webhook)
    result = run("update_stripe_products")
    assert result.code == 0, result.err
    assert "  ~ update Product prod_DemoStarter01: name\n" in result.out  # the plan did not know yet
    applied = result.out[result.out.index("Applied: ") :]
    assert f"\n  ! conflict Product prod_DemoStarter01: {KEPT}\n" in applied
    assert Product.objects.get(id="prod_DemoStarter01").name == "Starter (from a webhook)"
    assert Price.objects.get(id="price_DemoStarterMo").nickname == "Starter monthly (2027)"
    audit = SyncRun.objects.latest()
    assert audit.outcome == "applied with conflicts"
    assert audit.report["conflicts"] == [{"model": "Product", "id": "prod_DemoStarter01", "reason": KEPT}]


def test_a_subscription_written_by_a_webhook_keeps_its_items_too(synced, monkeypatch):
    sub = copy.deepcopy(synced.get("subscriptions", "sub_DemoBob0000001"))
    sub["items"]["data"][0]["quantity"] = 7
    synced.upsert("subscriptions", sub)
    synced.cancel_subscription("sub_DemoBob0000001", at=1_790_000_000)

    def webhook():
        Subscription.objects.filter(id="sub_DemoBob0000001").update(status="past_due", synced_at=timezone.now())

    webhook_before(monkeypatch, "load_local", webhook)
    result = run("update_stripe_subscriptions")
    assert result.code == 0, result.err
    assert f"  ! skip Subscription sub_DemoBob0000001: {KEPT}\n" in result.out
    assert Subscription.objects.get(id="sub_DemoBob0000001").status == "past_due"
    assert SubscriptionItem.objects.get(subscription_id="sub_DemoBob0000001").quantity == 1


# -- rows the webhook creates after the local load -------------------------------------------------


def new_customer(fake) -> None:
    fake.upsert(
        "customers",
        {
            **fake.get("customers", "cus_DemoBob0000001"),
            "id": "cus_NewViaWebhook1",
            "email": "new@example.com",
            "name": "From Stripe",
            "created": 1_780_000_000,
        },
    )


@pytest.mark.parametrize("when", ["newer", "older", "unset"])
def test_a_customer_created_by_a_webhook_before_the_apply_does_not_crash_the_run(synced, monkeypatch, when):
    new_customer(synced)

    def webhook():  # "newer": written now, after the page was fetched
        stamp = {"newer": timezone.now(), "older": timezone.now() - timedelta(days=1)}.get(when)
        StripeUser.objects.create(
            customer_id="cus_NewViaWebhook1", email="hook@example.com", name="Hook", synced_at=stamp
        )

    webhook_before(monkeypatch, "apply_plan", webhook)
    try:
        result = run("update_stripe_customers")
    except IntegrityError as exc:
        pytest.fail(f"the apply tried to insert the row the webhook created: {exc!r}")
    assert result.code == 0, result.err
    assert "  + create StripeUser cus_NewViaWebhook1 (From Stripe)\n" in result.out
    row = StripeUser.objects.get(customer_id="cus_NewViaWebhook1")
    if when == "newer":
        assert (row.email, row.name) == ("hook@example.com", "Hook")
        assert f"  ! conflict StripeUser cus_NewViaWebhook1: {KEPT}\n" in result.out
    else:  # the webhook's row is older than Stripe's page (or unstamped): Stripe's values win
        assert (row.email, row.name) == ("new@example.com", "From Stripe")
        assert "conflict" not in result.out
    # a later run fetches a newer page than the webhook's write: then Stripe's values are the newer ones
    assert run("update_stripe_customers", "--check").code == (1 if when == "newer" else 0)


def new_subscription(fake) -> dict:
    sub = copy.deepcopy(fake.get("subscriptions", "sub_DemoBob0000001"))
    sub.update(id="sub_NewViaWebhook1", created=1_780_000_000)
    sub["items"]["data"] = [
        dict(item, id=f"si_NewViaWebhook{n}", subscription="sub_NewViaWebhook1", quantity=n)
        for n, item in enumerate([sub["items"]["data"][0]] * 2, start=1)
    ]
    fake.upsert("subscriptions", sub)
    return sub


@pytest.mark.parametrize("when", ["newer", "older"])
def test_a_subscription_and_items_created_by_a_webhook_before_the_apply_do_not_crash_the_run(synced, monkeypatch, when):
    sub = new_subscription(synced)
    price = sub["items"]["data"][0]["price"]["id"]

    def webhook():
        stamp = timezone.now() if when == "newer" else timezone.now() - timedelta(days=1)
        Subscription.objects.create(
            id="sub_NewViaWebhook1", stripe_user_id="cus_DemoBob0000001", status="incomplete", synced_at=stamp
        )
        SubscriptionItem.objects.create(
            id="si_NewViaWebhook1", subscription_id="sub_NewViaWebhook1", price_id=price, quantity=9, synced_at=stamp
        )

    webhook_before(monkeypatch, "apply_plan", webhook)
    try:
        result = run("pull_stripe")
    except IntegrityError as exc:
        pytest.fail(f"the apply tried to insert a row the webhook created: {exc!r}")
    assert result.code == 0, result.err
    assert "  + create Subscription sub_NewViaWebhook1\n" in result.out
    stored = Subscription.objects.get(id="sub_NewViaWebhook1")
    items = dict(SubscriptionItem.objects.filter(subscription_id="sub_NewViaWebhook1").values_list("id", "quantity"))
    if when == "newer":
        assert stored.status == "incomplete" and items == {"si_NewViaWebhook1": 9}
        assert f"  ! conflict Subscription sub_NewViaWebhook1: {KEPT}\n" in result.out
    else:
        assert stored.status == sub["status"] and items == {"si_NewViaWebhook1": 1, "si_NewViaWebhook2": 2}
        assert "conflict" not in result.out
    # everything else was applied either way
    assert Product.objects.get(id="prod_DemoStarter01").name == "Starter 2027"
