"""update_stripe_products against the fake Stripe (a test double on loopback)."""

from __future__ import annotations

import json
import re

import pytest

from reconcile.models import Feature, Price, Product, ProductFeature
from reconcile.testing.fakestripe import Fault
from tests.conftest import demo_data, run
from tests.stripe_state import expected_prices, expected_products, stored_prices, stored_products

pytestmark = pytest.mark.django_db


def table_counts():
    return [m.objects.count() for m in (Product, Price, Feature, ProductFeature)]


def test_dry_run_prints_the_plan_and_writes_nothing(fake_stripe):
    result = run("update_stripe_products", "--dry-run")
    assert result.code == 0
    assert result.out.splitlines()[0] == "Features:"
    assert "  + create Product prod_DemoPro000001 (Pro)" in result.out
    assert result.out.endswith(
        "Plan: 17 to create, 0 to update, 0 item sets to recreate, 0 users to link, 0 users to create, "
        "0 orphaned, 0 skipped.\n"
    )
    assert table_counts() == [0, 0, 0, 0]


def test_apply_stores_every_mapped_field_then_a_second_run_plans_nothing(fake_stripe):
    first = run("update_stripe_products")
    assert first.code == 0
    assert first.out.splitlines()[-1].startswith(
        "Applied: 17 created, 0 updated, 0 item sets recreated, 0 users linked, 0 users created in "
    )
    data = demo_data()
    assert stored_products() == expected_products(data["products"])
    assert stored_prices() == expected_prices(data["prices"])
    assert Price.objects.get(id="price_DemoTeamTier1").amount is None  # tiered
    assert Price.objects.get(id="price_DemoTeamSetup").frequency is None  # one-time
    assert Price.objects.get(id="price_DemoProQuartr").frequency == "month_3"
    assert not Product.objects.get(id="prod_DemoLegacy001").active  # archived ones are fetched too
    second = run("update_stripe_products")
    assert (second.code, second.out) == (0, "No changes detected.\n")


def test_check_exits_1_on_drift_and_0_in_sync(fake_stripe):
    assert run("update_stripe_products", "--check").code == 1
    assert table_counts() == [0, 0, 0, 0]
    run("update_stripe_products")
    assert run("update_stripe_products", "--check").code == 0
    fake_stripe.update("products", "prod_DemoStarter01", name="Starter 2027")
    drift = run("update_stripe_products", "--check", "-v", "2")
    assert drift.code == 1
    assert drift.out == (
        "Products:\n"
        "  ~ update Product prod_DemoStarter01: name\n"
        "      name: 'Starter' -> 'Starter 2027'\n"
        "Plan: 0 to create, 1 to update, 0 item sets to recreate, 0 users to link, 0 users to create, "
        "0 orphaned, 0 skipped.\n"
    )
    assert Product.objects.get(id="prod_DemoStarter01").name == "Starter"


def test_feature_links_become_exactly_the_listed_set(fake_stripe):
    run("update_stripe_products")
    assert sorted(ProductFeature.objects.filter(product_id="prod_DemoPro000001").values_list("feature", flat=True)) == [
        "feat_audit",
        "feat_export",
        "feat_sso",
    ]
    fake_stripe.update("products", "prod_DemoPro000001", metadata={"features": " feat_sso,,feat_new "})
    fake_stripe.update("products", "prod_DemoTeam00001", metadata={})
    assert run("update_stripe_products").code == 0
    assert sorted(ProductFeature.objects.values_list("product_id", "feature_id")) == [
        ("prod_DemoPro000001", "feat_new"),
        ("prod_DemoPro000001", "feat_sso"),
    ]
    assert Feature.objects.filter(id="feat_audit").exists()  # features are never deleted automatically
    assert run("update_stripe_products").out == "No changes detected.\n"


def test_a_product_gone_from_stripe_is_reported_as_an_orphan_not_deleted(fake_stripe):
    run("update_stripe_products")
    fake_stripe.remove("prices", "price_DemoLegacyMo1")
    fake_stripe.remove("products", "prod_DemoLegacy001")
    result = run("update_stripe_products", "--check")
    assert result.code == 0
    assert "  - orphan Product prod_DemoLegacy001: stored here, absent from Stripe (kept)" in result.out
    assert result.out.endswith("No changes detected (reported only: 2 orphaned, 0 skipped).\n")
    assert Product.objects.filter(id="prod_DemoLegacy001").exists()


def test_json_report_follows_the_documented_schema(fake_stripe):
    report = json.loads(run("update_stripe_products", "--dry-run", "--format", "json").out)
    assert set(report) == {"schema", "in_sync", "summary", "operations", "notes", "next_cursor"}
    assert report["schema"] == "reconcile.plan/v1"
    assert report["in_sync"] is False
    assert report["summary"] == {
        "create": 17,
        "update": 0,
        "recreate_items": 0,
        "link_user": 0,
        "create_user": 0,
        "orphan": 0,
        "skip": 0,
    }
    tier = next(op for op in report["operations"] if op["id"] == "price_DemoTeamTier1")
    assert tier["action"] == "create" and tier["model"] == "Price" and tier["symbol"] == "+"
    assert {"field": "amount", "old": None, "new": None} in tier["changes"]
    assert {"field": "frequency", "old": None, "new": "month_1"} in tier["changes"]


def test_odd_objects_are_skipped_with_the_reason_and_the_rest_applies(start_fake):
    data = demo_data()
    data["prices"][0]["currency"] = "zzz"
    data["prices"][1]["unit_amount"] = "9000"
    data["products"][0]["metadata"] = {"features": 7}
    data["prices"].append(dict(data["prices"][2], id="price_Orphaned1", product="prod_NotAnywhere"))
    start_fake(data)
    result = run("update_stripe_products")
    assert result.code == 0
    assert "  ! skip Price price_DemoStarterMo: currency 'zzz' is not an ISO 4217 code" in result.out
    assert "  ! skip Price price_DemoStarterYr: field 'unit_amount' should be int, got str '9000'" in result.out
    assert "  ! skip Product prod_DemoStarter01: metadata 'features' should be a string, got 7" in result.out
    assert "  ! skip Price price_Orphaned1: its product prod_NotAnywhere is neither stored nor in Stripe" in result.out
    assert Product.objects.count() == 3 and Price.objects.count() == 6


def test_invalid_api_key_is_a_clear_error_and_writes_nothing(start_fake, reconcile_settings):
    start_fake(api_key="sk_test_TheRightKey")
    result = run("update_stripe_products")
    assert result.code == 2
    assert "Stripe rejected the API key (HTTP 401)" in result.err
    assert "RECONCILE['API_KEY']" in result.err
    assert table_counts() == [0, 0, 0, 0]


def test_missing_api_key_is_a_clear_error(reconcile_settings, monkeypatch):
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "API_KEY": ""}
    result = run("update_stripe_products")
    assert result.code == 2
    assert "No Stripe API key is set" in result.err


def test_unreachable_base_url_is_a_clear_error(reconcile_settings):
    result = run("update_stripe_products")  # http://127.0.0.1:9: nothing listens there
    assert result.code == 2
    assert re.search(
        r"Could not reach http://127.0.0.1:9 for GET /v1/(products|prices)\?active=(true|false)&limit=100 "
        r"after 4 tries",
        result.err,
    )


@pytest.mark.parametrize("kind", ["not_json", "truncated"])
def test_a_page_that_is_not_json_names_the_request(fake_stripe, kind):
    fake_stripe.inject(Fault(kind, path_prefix="/v1/prices"))
    result = run("update_stripe_products")
    assert result.code == 2
    # the active and the archived listings run at once: either may meet the fault first
    assert re.search(
        r"Stripe answered GET /v1/prices\?active=(true|false)&expand\[\]=data.tiers&expand\[\]=data.currency_options"
            r"&limit=100 with a body that is not JSON \(HTTP 200\)",
        result.err,
    )
    assert table_counts() == [0, 0, 0, 0]


def test_limit_option_is_validated(fake_stripe):
    result = run("update_stripe_customers", "--limit", "0")
    assert result.code == 2 and "--limit must be from 1 to 100" in result.err


def test_stripe_is_never_called_inside_a_transaction(fake_stripe):
    from django.db import transaction

    with transaction.atomic():
        result = run("update_stripe_products", "--dry-run")
    assert result.code == 2
    assert "does not call Stripe inside a database transaction" in result.err
    assert fake_stripe.requests == []


def test_strict_check_counts_orphans_and_skips_as_drift(fake_stripe):
    run("update_stripe_products")
    fake_stripe.remove("prices", "price_DemoLegacyMo1")
    assert run("update_stripe_products", "--check").code == 0  # an orphan: no run can fix it
    strict = run("update_stripe_products", "--check", "--strict")
    assert strict.code == 1 and "  - orphan Price price_DemoLegacyMo1" in strict.out
    misuse = run("update_stripe_products", "--strict")
    assert misuse.code == 2 and "--strict goes with --check" in misuse.err
