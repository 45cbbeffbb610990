"""Issue 12: every field stores what Stripe means. Each case of the issue, through a real run against
the fake Stripe (a test double on loopback), then the account with every shape at once, stored
exactly, with a second pull that plans nothing."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from decimal import Decimal

import pytest
import stripe

from reconcile.core.amounts import describe_row
from reconcile.models import Feature, Price, ProductFeature, StripeUser, Subscription, SubscriptionItem
from reconcile.testing.generate import generate_account
from tests.conftest import demo_data, run
from tests.helpers.dbstate import expected_state, stored_state
from tests.stripe_state import stored_subscriptions

pytestmark = pytest.mark.django_db


def ts(value: int) -> datetime:
    return datetime.fromtimestamp(value, tz=timezone.utc)


def price_like(fake, source: str, new_id: str, **fields) -> dict:
    """A copy of a stored price under a new id with ``fields`` changed, added to the fake."""
    price = {**copy.deepcopy(fake.get("prices", source)), "id": new_id, **fields}
    price.pop("currency_options", None)
    return fake.upsert("prices", price)


def subscribe(fake, sid: str, price: dict, **changes) -> dict:
    """Bob's subscription's single item now on ``price`` (and the subscription ``changes``)."""
    sub = copy.deepcopy(fake.get("subscriptions", sid))
    sub["items"]["data"][0]["price"] = price
    sub.update(changes)
    return fake.upsert("subscriptions", sub)


# -- prices -------------------------------------------------------------------------------------


def test_a_sub_cent_price_keeps_its_exact_decimal_amount(fake_stripe):
    price_like(fake_stripe, "price_DemoStarterMo", "price_HalfCent", unit_amount=None, unit_amount_decimal="0.5")
    assert run("pull_stripe").code == 0
    price = Price.objects.get(id="price_HalfCent")
    assert (price.amount, price.unit_amount_decimal, price.billing_scheme) == (None, Decimal("0.5"), "per_unit")
    assert describe_row(price) == "0.005 USD per unit"  # not "tiered / custom"


def test_every_decimal_place_is_kept_on_every_database(fake_stripe):
    # 16 significant digits: a float (SQLite's NUMERIC affinity) would round it and plan it again forever
    price_like(fake_stripe, "price_DemoStarterMo", "price_Long", unit_amount=None,
               unit_amount_decimal="1000.123456789012")
    assert run("pull_stripe").code == 0
    assert Price.objects.get(id="price_Long").unit_amount_decimal == Decimal("1000.123456789012")
    assert Price.objects.filter(unit_amount_decimal=Decimal("1000.123456789012")).count() == 1
    assert run("pull_stripe", "--check").code == 0


def test_a_package_price_is_per_package_not_per_unit(fake_stripe):
    price_like(fake_stripe, "price_DemoStarterMo", "price_Pack10", unit_amount=1000, unit_amount_decimal="1000",
               transform_quantity={"divide_by": 10, "round": "up"})
    assert run("pull_stripe").code == 0
    price = Price.objects.get(id="price_Pack10")
    assert (price.transform_divide_by, price.transform_round) == (10, "up")
    assert describe_row(price) == "10.00 USD per package of 10 (rounded up)"


def test_a_tiered_price_keeps_its_tiers_and_mode(fake_stripe):
    assert run("pull_stripe").code == 0
    price = Price.objects.get(id="price_DemoTeamTier1")
    assert (price.billing_scheme, price.tiers_mode, price.amount) == ("tiered", "graduated", None)
    assert price.tiers == [
        {"up_to": 5, "unit_amount": 1200, "unit_amount_decimal": "1200", "flat_amount": None,
         "flat_amount_decimal": None},
        {"up_to": None, "unit_amount": 1000, "unit_amount_decimal": "1000", "flat_amount": None,
         "flat_amount_decimal": None},
    ]
    assert describe_row(price) == "graduated tiers: 12.00 USD per unit for units 1-5, then 1 more tier"
    listed = [r for r in fake_stripe.requests if r.path == "/v1/prices"]
    assert all(r.query["expand[0]"] == "data.tiers" and r.query["expand[1]"] == "data.currency_options"
               for r in listed) and len(listed) == 2  # the expansion costs no request


def test_a_customer_chosen_amount(fake_stripe):
    price_like(fake_stripe, "price_DemoTeamSetup", "price_Donate", unit_amount=None, unit_amount_decimal=None,
               custom_unit_amount={"maximum": None, "minimum": 500, "preset": 2000})
    assert run("pull_stripe").code == 0
    price = Price.objects.get(id="price_Donate")
    assert price.custom_unit_amount == {"minimum": 500, "maximum": None, "preset": 2000}
    assert (price.type, price.interval) == ("one_time", None)
    assert describe_row(price) == "customer chooses (min 5.00 USD, preset 20.00 USD)"


def test_a_eur_subscription_on_a_usd_price_with_a_eur_option(fake_stripe):
    option = {"custom_unit_amount": None, "tax_behavior": "exclusive", "unit_amount": 900, "unit_amount_decimal": "900"}
    starter = fake_stripe.update("prices", "price_DemoStarterMo", currency_options={
        "usd": {**option, "unit_amount": 900, "tax_behavior": "unspecified"}, "eur": {**option, "unit_amount": 850,
                                                                                     "unit_amount_decimal": "850"}})
    subscribe(fake_stripe, "sub_DemoBob0000001", starter, currency="eur")
    assert run("pull_stripe").code == 0
    price = Price.objects.get(id="price_DemoStarterMo")
    assert price.currency == "usd"
    assert price.currency_options == {"eur": {"unit_amount": 850, "unit_amount_decimal": "850",
                                              "tax_behavior": "exclusive", "custom_unit_amount": None, "tiers": []}}
    assert Subscription.objects.get(id="sub_DemoBob0000001").currency == "eur"
    assert describe_row(price) == "9.00 USD per unit; 8.50 EUR per unit"
    assert run("pull_stripe", "--check").code == 0


def test_intervals_usage_type_lookup_key_and_tax_behavior(fake_stripe):
    fake_stripe.update("prices", "price_DemoStarterMo", recurring={
        "interval": "week", "interval_count": 2, "meter": "mtr_1", "usage_type": "metered", "trial_period_days": None})
    assert run("pull_stripe").code == 0
    price = Price.objects.get(id="price_DemoStarterMo")
    assert (price.frequency, price.interval, price.interval_count, price.usage_type) == ("week_2", "week", 2, "metered")
    assert (price.lookup_key, price.tax_behavior, price.type) == ("starter_monthly", "unspecified", "recurring")


# -- subscriptions ------------------------------------------------------------------------------


def test_items_on_different_periods_are_noted_not_skipped(fake_stripe):
    sub = copy.deepcopy(fake_stripe.get("subscriptions", "sub_DemoAlice00001"))
    first, second = sub["items"]["data"][0], sub["items"]["data"][1]
    second["current_period_start"], second["current_period_end"] = first["current_period_start"], first[
        "current_period_start"] + 7 * 86400
    fake_stripe.upsert("subscriptions", sub)
    result = run("pull_stripe")
    assert result.code == 0
    stored = Subscription.objects.get(id="sub_DemoAlice00001")
    # the period of the item that renews first, which is one item's real period: not a made-up span
    assert (stored.current_period_start, stored.current_period_end) == (
        ts(second["current_period_start"]), ts(second["current_period_end"]))
    note = next(line for line in result.out.splitlines() if line.startswith("  ? Subscription sub_DemoAlice00001"))
    assert note.startswith("  ? Subscription sub_DemoAlice00001: its items bill on 2 different periods (")
    assert note.endswith(f"the subscription's period is that of item {second['id']}, the first to renew, and each "
                         "item keeps its own")
    assert "! skip Subscription sub_DemoAlice00001" not in result.out
    items = dict(SubscriptionItem.objects.filter(subscription_id=stored.id).values_list("id", "current_period_end"))
    assert items[first["id"]] == ts(first["current_period_end"]) and items[second["id"]] == stored.current_period_end
    again = run("pull_stripe")
    assert again.out.splitlines()[-1].startswith("No changes detected") and "? Subscription" not in again.out


def test_an_item_that_ends_before_it_starts_is_skipped_with_the_reason(fake_stripe):
    assert run("pull_stripe").code == 0
    before = stored_subscriptions()["sub_DemoBob0000001"]
    sub = copy.deepcopy(fake_stripe.get("subscriptions", "sub_DemoBob0000001"))
    item = sub["items"]["data"][0]
    item["current_period_end"] = item["current_period_start"] - 86400
    fake_stripe.upsert("subscriptions", sub)
    result = run("pull_stripe")
    assert result.code == 0
    assert (
        f"  ! skip Subscription sub_DemoBob0000001: item {item['id']} has an impossible billing period: it ends "
        f"({ts(item['current_period_end']):%Y-%m-%dT%H:%M:%SZ}) before it starts "
        f"({ts(item['current_period_start']):%Y-%m-%dT%H:%M:%SZ})"
    ) in result.out
    assert stored_subscriptions()["sub_DemoBob0000001"] == before  # the stored row is left as it was


def test_currency_collection_cancellation_and_paused_collection(fake_stripe):
    fake_stripe.update("subscriptions", "sub_DemoBob0000001", collection_method="send_invoice", days_until_due=30,
                       pause_collection={"behavior": "mark_uncollectible", "resumes_at": 1775000000})
    fake_stripe.update("subscriptions", "sub_DemoFrank00001", cancellation_details={
        "comment": None, "feedback": "too_expensive", "reason": "payment_failed"})
    assert run("pull_stripe").code == 0
    bob = Subscription.objects.get(id="sub_DemoBob0000001")
    assert (bob.currency, bob.collection_method, bob.pause_collection_behavior, bob.pause_collection_resumes_at) == (
        "usd", "send_invoice", "mark_uncollectible", ts(1775000000))
    assert Subscription.objects.get(id="sub_DemoFrank00001").cancellation_reason == "payment_failed"
    assert Subscription.objects.get(id="sub_DemoCarol00001").currency == "eur"


def test_customer_metadata(fake_stripe):
    fake_stripe.update("customers", "cus_DemoAlice00001", metadata={"crm_id": "C42"})
    assert run("pull_stripe").code == 0
    assert StripeUser.objects.get(customer_id="cus_DemoAlice00001").metadata == {"crm_id": "C42"}
    fake_stripe.update("customers", "cus_DemoAlice00001", metadata={})
    assert "~ update StripeUser cus_DemoAlice00001: metadata" in run("pull_stripe").out


# -- API versions -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2025-02-24.acacia", "2024-06-20"])
def test_the_same_account_under_an_old_and_a_new_api_version_stores_the_same_periods(
    start_fake, reconcile_settings, version
):
    fake = start_fake()
    assert run("pull_stripe").code == 0
    new = stored_subscriptions()
    assert {r.version for r in fake.requests} == {stripe.api_version}  # stripe-python's pinned version
    fake.reset_requests()
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "API_VERSION": version}
    result = run("pull_stripe")
    assert result.out.splitlines()[-1].startswith("No changes detected"), result.out
    assert {r.version for r in fake.requests} == {version}
    assert stored_subscriptions() == new


def test_an_unknown_api_version_is_refused_with_stripes_message(start_fake, reconcile_settings):
    start_fake()
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "API_VERSION": "2099-01-01"}
    result = run("update_stripe_products")
    assert result.code == 2
    assert "Invalid Stripe API version: 2099-01-01" in result.err
    assert Price.objects.count() == 0


# -- features -----------------------------------------------------------------------------------


def feature_rows() -> dict:
    return {f.id: (f.lookup_key, f.name) for f in Feature.objects.all()}


def links() -> dict:
    out: dict[str, list] = {}
    for product_id, feature_id in ProductFeature.objects.values_list("product_id", "feature_id"):
        out.setdefault(product_id, []).append(feature_id)
    return {k: sorted(v) for k, v in out.items()}


METADATA_LINKS = {
    "prod_DemoPro000001": ["feat_audit", "feat_export", "feat_sso"],
    "prod_DemoTeam00001": ["feat_priority_support", "feat_seats"],
}
ENTITLEMENT_LINKS = {
    "prod_DemoPro000001": ["feat_DemoAudit00001", "feat_DemoSso000001"],
    "prod_DemoTeam00001": ["feat_DemoSeats00001"],
}
ENTITLEMENTS = {
    "feat_DemoSso000001": ("sso", "Single sign-on"),
    "feat_DemoAudit00001": ("audit", "Audit log"),
    "feat_DemoSeats00001": ("seats", "Extra seats"),
    "feat_DemoReports001": ("legacy_reports", "Legacy reports"),
}


def paths(fake) -> dict[str, int]:
    seen: dict[str, int] = {}
    for r in fake.requests:
        seen[r.path] = seen.get(r.path, 0) + 1
    return seen


def test_features_come_from_the_metadata_key_by_default(fake_stripe):
    assert run("update_stripe_products").code == 0
    assert links() == METADATA_LINKS
    assert feature_rows() == {f: (None, None) for ids in METADATA_LINKS.values() for f in ids}
    assert paths(fake_stripe) == {"/v1/products": 2, "/v1/prices": 2}  # no Entitlements request


def test_entitlements_features_keep_lookup_key_and_name_in_p_plus_one_requests(start_fake, reconcile_settings):
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "FEATURES_SOURCE": "entitlements"}
    fake = start_fake()
    assert run("update_stripe_products").code == 0
    assert links() == ENTITLEMENT_LINKS
    assert feature_rows() == ENTITLEMENTS
    products = len(demo_data()["products"])
    per_product = {f"/v1/products/{p['id']}/features": 1 for p in demo_data()["products"]}
    # the features listed once, then each product's attachments: ceil(F/100) + P requests
    assert paths(fake) == {"/v1/products": 2, "/v1/prices": 2, "/v1/entitlements/features": 1, **per_product}
    assert len(per_product) == products == 4
    fake.reset_requests()
    assert run("update_stripe_products").out.endswith("No changes detected.\n")
    fake.update("features", "feat_DemoSso000001", name="SAML single sign-on")
    assert "~ update Feature feat_DemoSso000001: name" in run("update_stripe_products").out
    assert feature_rows()["feat_DemoSso000001"] == ("sso", "SAML single sign-on")


def test_both_sources_union_metadata_and_entitlements(start_fake, reconcile_settings):
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "FEATURES_SOURCE": "both"}
    start_fake()
    assert run("update_stripe_products").code == 0
    assert links() == {pid: sorted(METADATA_LINKS[pid] + ENTITLEMENT_LINKS[pid]) for pid in METADATA_LINKS}
    assert run("update_stripe_products", "--check").code == 0


def test_an_account_without_features_costs_one_request(start_fake, reconcile_settings):
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "FEATURES_SOURCE": "entitlements"}
    data = {k: v for k, v in demo_data().items() if k not in ("features", "product_features")}
    fake = start_fake(data)
    assert run("update_stripe_products").code == 0
    assert paths(fake) == {"/v1/products": 2, "/v1/prices": 2, "/v1/entitlements/features": 1}
    assert links() == {} and feature_rows() == {}


def test_a_features_source_that_is_not_one_of_the_three_is_refused(start_fake, reconcile_settings):
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "FEATURES_SOURCE": "tags"}
    start_fake()
    result = run("update_stripe_products")
    assert result.code == 2
    assert "FEATURES_SOURCE" in result.err and "'metadata', 'entitlements', 'both'" in result.err


# -- every shape at once ------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["metadata", "entitlements"])
def test_an_account_with_every_shape_is_stored_exactly_and_a_second_pull_plans_nothing(
    start_fake, reconcile_settings, source
):
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "FEATURES_SOURCE": source}
    account = generate_account(400, seed=12)
    fake = start_fake(account)
    first = run("pull_stripe")
    assert first.code == 0, first.err
    assert "! skip" not in first.out
    expected = expected_state(account)
    if source == "entitlements":
        attached: dict[str, list] = {}
        for a in account["product_features"]:
            attached.setdefault(a["product"], []).append(a["entitlement_feature"])
        products = expected["products"]
        expected["products"] = {pid: {**e, "features": sorted(attached.get(pid, []))} for pid, e in products.items()}
    assert stored_state() == expected
    subs = account["subscriptions"]
    mixed = [s["id"] for s in subs if len({i["current_period_end"] for i in s["items"]["data"]}) > 1]
    assert mixed and all(f"? Subscription {sid}: its items bill on 2 different periods" in first.out for sid in mixed)
    overflow = sum(len(s["items"]["data"]) > 10 for s in account["subscriptions"])
    seen = paths(fake)
    assert overflow and seen["/v1/subscription_items"] == overflow
    per_product = sum(n for path, n in seen.items() if path.endswith("/features") and path.startswith("/v1/products/"))
    if source == "entitlements":  # ceil(F/100) + P requests for the features
        assert (seen["/v1/entitlements/features"], per_product) == (1, len(account["products"]))
    else:
        assert "/v1/entitlements/features" not in seen and per_product == 0
    second = run("pull_stripe")
    assert second.out.endswith("No changes detected.\n"), second.out


def test_a_product_whose_features_cannot_be_read_is_skipped_with_the_reason(start_fake, reconcile_settings):
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "FEATURES_SOURCE": "entitlements"}
    data = demo_data()
    broken = {"id": "prodft_Broken", "object": "product_feature", "product": "prod_DemoTeam00001",
              "entitlement_feature": "feat_NotInTheAccount", "livemode": False}
    data["product_features"].append(broken)
    start_fake(data)
    result = run("update_stripe_products")
    assert result.code == 0
    assert ("  ! skip Product prod_DemoTeam00001: a product feature of prod_DemoTeam00001 without its feature's id"
            in result.out)
    assert links() == {"prod_DemoPro000001": ENTITLEMENT_LINKS["prod_DemoPro000001"]}  # the rest is applied


def test_a_saved_plan_of_every_shape_applies_exactly(start_fake, tmp_path):
    account = generate_account(120, seed=5)
    start_fake(account)
    plan_path = str(tmp_path / "plan.json")
    assert run("pull_stripe", "--plan-out", plan_path).code == 0
    assert Price.objects.count() == 0
    applied = run("pull_stripe", "--apply-plan", plan_path)
    assert applied.code == 0, applied.err
    assert stored_state() == expected_state(account)  # decimals, tiers, options through the file
    assert run("pull_stripe", "--check").code == 0
