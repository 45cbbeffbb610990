"""pull_stripe --incremental: /v1/events since the stored cursor, the newest event per object, then
the pull's plan, report, plan file and apply; requests grow with the changes, not the account."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from reconcile.events.models import EventCursor
from reconcile.models import Product, StripeUser, Subscription
from tests.conftest import run

pytestmark = pytest.mark.django_db


def cursor() -> datetime:
    return EventCursor.objects.get().created


@pytest.fixture
def pulled(fake_stripe):
    assert run("pull_stripe").code == 0
    fake_stripe.reset_requests()
    return fake_stripe


def test_without_a_cursor_it_says_so_and_does_a_full_pull(fake_stripe):
    result = run("pull_stripe", "--incremental")
    assert result.code == 0
    assert "No event cursor is stored yet (no complete pull_stripe has run): doing a full pull instead.\n" in result.err
    assert Product.objects.count() == len(fake_stripe.all("products"))
    assert EventCursor.objects.get().source == "pull_stripe"


def test_a_complete_pull_stores_its_start_minus_the_margin(fake_stripe):
    before = datetime.now(timezone.utc)
    run("pull_stripe")
    assert before - timedelta(seconds=301) < cursor() <= datetime.now(timezone.utc) - timedelta(seconds=299)
    run("update_stripe_products")  # a partial run read no customers: it leaves the cursor alone
    assert EventCursor.objects.count() == 1


def test_a_cursor_older_than_30_days_means_a_full_pull(pulled):
    EventCursor.objects.update(created=datetime.now(timezone.utc) - timedelta(days=31))
    result = run("pull_stripe", "--incremental", "--check")
    assert "is older than Stripe's 30 days of events, so changes since may be missing: doing a full pull" in result.err
    assert any(r.path == "/v1/customers" for r in pulled.requests)


def test_changes_are_planned_from_events_with_one_request(pulled):
    pulled.update("products", "prod_DemoStarter01", name="Starter 2027")
    pulled.update("customers", "cus_DemoCarol00001", name="Carol B")
    pulled.update("customers", "cus_DemoCarol00001", name="Carol C")  # the newest event per object wins
    pulled.cancel_subscription("sub_DemoBob0000001")
    check = run("pull_stripe", "--incremental", "--check")
    assert check.code == 1
    assert check.out.splitlines()[-1] == (
        "Plan: 0 to create, 3 to update, 0 item sets to recreate, 0 users to link, 0 users to create, "
        "0 orphaned, 0 skipped."
    )
    assert [r.path for r in pulled.requests] == ["/v1/events"]
    (request,) = pulled.requests
    assert request.query["created[gt]"] == str(int(cursor().timestamp()))
    assert len([k for k in request.query if k.startswith("types[")]) == 17
    applied = run("pull_stripe", "--incremental")
    assert applied.code == 0 and "Applied: 0 created, 3 updated," in applied.out
    assert StripeUser.objects.get(customer_id="cus_DemoCarol00001").name == "Carol C"
    assert Subscription.objects.get(id="sub_DemoBob0000001").status == "canceled"
    assert run("pull_stripe", "--check").code == 0  # the database equals Stripe


def test_the_cursor_moves_with_the_writes_and_never_back(pulled):
    first = cursor()
    pulled.update("products", "prod_DemoStarter01", name="Starter 2027")
    run("pull_stripe", "--incremental", "--dry-run")
    assert cursor() == first  # a dry run stores nothing
    run("pull_stripe", "--incremental")
    assert cursor() > first
    assert run("pull_stripe", "--incremental").out == "No changes detected.\n"


def test_a_failed_apply_leaves_the_cursor_where_it_was(pulled, monkeypatch):
    first = cursor()
    pulled.update("products", "prod_DemoStarter01", name="Starter 2027")

    def broken(*args, **kwargs):
        from django.db import DatabaseError

        Product.objects.filter(id="prod_DemoStarter01").update(name="half-written")
        raise DatabaseError("disk full")

    monkeypatch.setattr("reconcile.runner.apply_plan", broken)
    assert run("pull_stripe", "--incremental").code == 2
    assert cursor() == first and Product.objects.get(id="prod_DemoStarter01").name != "half-written"


def test_requests_grow_with_the_changes(pulled):
    for i in range(150):
        pulled.update("products", "prod_DemoStarter01", metadata={"n": str(i)})
    assert run("pull_stripe", "--incremental").code == 0
    assert [r.path for r in pulled.requests] == ["/v1/events", "/v1/events"]  # 150 events: two pages
    assert Product.objects.get(id="prod_DemoStarter01").metadata == {"n": "149"}


def test_new_objects_and_deletions_arrive_through_events(pulled):
    customer = {**pulled.all("customers")[0], "id": "cus_Incremental001", "email": "inc@example.org"}
    pulled.upsert("customers", customer)
    pulled.remove("prices", "price_DemoLegacyMo1")
    result = run("pull_stripe", "--incremental", "--format", "json")
    report = json.loads(result.out)
    assert report["summary"]["create"] == 1 and report["summary"]["update"] == 1
    assert StripeUser.objects.filter(customer_id="cus_Incremental001").exists()
    from reconcile.models import Price

    assert Price.objects.get(id="price_DemoLegacyMo1").deleted is True
    assert run("pull_stripe", "--check").code == 0


def test_plan_out_and_apply_plan_work_and_move_the_cursor(pulled, tmp_path):
    first = cursor()
    pulled.update("products", "prod_DemoStarter01", name="Reviewed")
    path = str(tmp_path / "plan.json")
    made = run("pull_stripe", "--incremental", "--plan-out", path, "--format", "markdown")
    assert made.code == 0 and "Reviewed" in made.out
    assert cursor() == first
    applied = run("pull_stripe", "--apply-plan", path)
    assert applied.code == 0, applied.err
    assert Product.objects.get(id="prod_DemoStarter01").name == "Reviewed" and cursor() > first
    Product.objects.filter(id="prod_DemoStarter01").update(name="changed")
    pulled.update("products", "prod_DemoStarter01", name="Again")
    run("pull_stripe", "--incremental", "--plan-out", path)
    Product.objects.filter(id="prod_DemoStarter01").update(name="changed since")
    assert "The database changed since" in run("pull_stripe", "--apply-plan", path).err
