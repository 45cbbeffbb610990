"""Tests of the synthetic account generator and the demo fixtures (data for the fake Stripe)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from reconcile.testing.fakestripe import DEMO_FIXTURES, FakeStripe
from reconcile.testing.generate import add_months, generate_account, main, period_around, write_account

ROOT = Path(__file__).resolve().parent.parent
FIXTURES3 = Path("/work/shared/stripe-openapi/fixtures3.json")
REQUIRED = {
    "products": {"id", "object", "name", "description", "active", "created", "updated", "metadata",
                 "default_price", "livemode"},
    "prices": {"id", "object", "active", "currency", "product", "unit_amount", "unit_amount_decimal",
               "billing_scheme", "tiers_mode", "recurring", "type", "nickname", "created", "metadata",
               "livemode", "lookup_key"},
    "customers": {"id", "object", "email", "name", "created", "metadata", "livemode", "phone",
                  "description", "address"},
    "subscriptions": {"id", "object", "customer", "status", "created", "start_date", "cancel_at",
                      "cancel_at_period_end", "canceled_at", "ended_at", "trial_start", "trial_end",
                      "metadata", "items", "billing_cycle_anchor", "currency", "livemode"},
}
ITEM_REQUIRED = {"id", "object", "price", "quantity", "subscription", "created", "current_period_start",
                 "current_period_end", "metadata"}
SINGULAR = {"products": "product", "prices": "price", "customers": "customer", "subscriptions": "subscription"}
ID_RE = {"products": r"prod_[A-Za-z0-9]+", "prices": r"price_[A-Za-z0-9]+",
         "customers": r"cus_[A-Za-z0-9]+", "subscriptions": r"sub_[A-Za-z0-9]+"}


@pytest.fixture(scope="module")
def stripe_shapes() -> dict[str, dict]:
    if not FIXTURES3.exists():
        pytest.skip("fixtures3.json not available")
    return json.loads(FIXTURES3.read_text())["resources"]


@pytest.fixture(scope="module")
def big() -> dict[str, list[dict]]:
    return generate_account(1000, seed=11)


INCLUDABLE = {"tiers", "currency_options"}  # price fields Stripe shows only when expanded: not in fixtures3


def check_shapes(account: dict[str, list[dict]], shapes: dict[str, dict]) -> None:
    for feature in account.get("features", []):
        assert set(feature) == set(shapes["entitlements.feature"])
    for resource in SINGULAR:
        objs = account[resource]
        truth = set(shapes[SINGULAR[resource]]) | (INCLUDABLE if resource == "prices" else set())
        for obj in objs:
            if obj.get("deleted"):
                assert obj == {"id": obj["id"], "object": "customer", "deleted": True}
                continue
            assert set(obj) <= truth, (resource, set(obj) - truth)
            assert REQUIRED[resource] <= set(obj), (resource, REQUIRED[resource] - set(obj))
            assert obj["object"] == SINGULAR[resource]
    price_keys = set(shapes["price"])
    for sub in account["subscriptions"]:
        assert "current_period_start" not in sub and "current_period_end" not in sub
        assert set(sub["items"]) == {"object", "data", "has_more", "url"}
        for item in sub["items"]["data"]:
            metered = item["price"]["recurring"]["usage_type"] == "metered"  # a metered item has no quantity
            assert ITEM_REQUIRED - ({"quantity"} if metered else set()) <= set(item) <= set(shapes["subscription_item"])
            assert set(item["price"]) <= price_keys | INCLUDABLE
            assert item["subscription"] == sub["id"]
            if item["price"]["recurring"]:
                assert set(item["price"]["recurring"]) == set(shapes["price"]["recurring"])


def test_same_seed_same_account_other_seed_other() -> None:
    one, two = generate_account(120, seed=5), generate_account(120, seed=5)
    assert json.dumps(one) == json.dumps(two)
    assert json.dumps(generate_account(120, seed=6)) != json.dumps(one)
    assert generate_account(0)["subscriptions"] == []


def test_shapes_match_fixtures3(big: dict, stripe_shapes: dict) -> None:
    check_shapes(big, stripe_shapes)


def test_counts_ids_and_timestamps(big: dict) -> None:
    # 5 products of the basic catalog, 2 of billing shapes (one price of each shape; 13 add-ons)
    assert {k: len(v) for k, v in big.items()} == {
        "products": 7, "prices": len(big["prices"]), "customers": 1000, "subscriptions": 1000,
        "features": 7, "product_features": len(big["product_features"])}
    assert len(generate_account(10)["products"]) == 3 + 2
    assert len(generate_account(10, n_products=7)["products"]) == 7 + 2
    per_product = Counter(p["product"] for p in big["prices"])
    assert set(per_product) == {p["id"] for p in big["products"]}
    assert sorted(per_product.values())[-2:] == [8, 13]
    assert all(1 <= n <= 4 for n in sorted(per_product.values())[:-2])
    for resource in SINGULAR:
        objs = big[resource]
        assert all(re.fullmatch(ID_RE[resource], o["id"]) and len(o["id"].split("_")[1]) == 14 for o in objs)
        assert len({o["id"] for o in objs}) == len(objs)
        assert len({o["created"] for o in objs}) == len(objs)
    for resource in ("customers", "subscriptions"):
        created = [o["created"] for o in big[resource]]
        assert created == sorted(created, reverse=True)
    item_ids = [i["id"] for s in big["subscriptions"] for i in s["items"]["data"]]
    assert len(set(item_ids)) == len(item_ids) and all(i.startswith("si_") for i in item_ids)
    assert Counter(s["customer"] for s in big["subscriptions"]) == Counter(c["id"] for c in big["customers"])


def test_prices_mix(big: dict) -> None:
    prices = big["prices"]
    tiered = [p for p in prices if p["billing_scheme"] == "tiered"]
    assert tiered and all(p["unit_amount"] is None and p["unit_amount_decimal"] is None
                          and p["tiers_mode"] in ("graduated", "volume") and p["recurring"]
                          and len(p["tiers"]) == 2 and p["tiers"][-1]["up_to"] is None for p in tiered)
    one_time = [p for p in prices if p["type"] == "one_time"]
    assert one_time and all(p["recurring"] is None for p in one_time)
    assert any(not p["active"] for p in prices)
    for p in prices:
        if p["unit_amount"] is not None:
            assert p["unit_amount_decimal"] == str(p["unit_amount"])
        if p["recurring"]:
            assert (p["recurring"]["interval"], p["recurring"]["interval_count"]) in {
                ("month", 1), ("month", 3), ("month", 6), ("month", 12), ("year", 1), ("day", 14), ("week", 2)}
        assert p["currency"] in p["currency_options"]
    many = generate_account(4000, seed=2)
    assert {"usd", "eur", "gbp"} <= {p["currency"] for p in many["prices"]}
    features = [p["metadata"]["features"] for p in many["products"] if "features" in p["metadata"]]
    assert any("," in f for f in features) and any(" " in f for f in features)
    actives = {p["id"] for p in many["prices"] if p["active"]}
    for product in many["products"]:
        assert product["default_price"] is None or product["default_price"] in actives


def test_customers_emails(big: dict) -> None:
    emails = [c["email"] for c in big["customers"]]
    missing = emails.count(None)
    assert 20 <= missing <= 80  # ~5%
    present = [e for e in emails if e]
    assert any(e != e.lower() for e in present) and any(e == e.lower() for e in present)
    folded = Counter(e.lower() for e in present)
    assert any(n > 1 for n in folded.values())
    assert all(re.fullmatch(r"[^@\s]+@[^@\s]+\.[A-Za-z]+", e) for e in present)


def test_subscriptions_statuses_and_items(big: dict) -> None:
    subs = big["subscriptions"]
    statuses = Counter(s["status"] for s in subs)
    assert set(statuses) == {"active", "canceled", "trialing", "past_due", "incomplete",
                             "incomplete_expired", "unpaid", "paused"}
    assert 600 <= statuses["active"] <= 800 and 40 <= statuses["canceled"] <= 130
    prices = {p["id"]: p for p in big["prices"]}
    assert Counter(len(s["items"]["data"]) for s in subs).keys() == {1, 2, 3, 11, 12, 13}
    for sub in subs:
        if sub["status"] == "canceled":
            assert sub["canceled_at"] and sub["ended_at"] == sub["canceled_at"]
        else:
            assert sub["ended_at"] is None or sub["status"] == "incomplete_expired"
        if sub["status"] == "trialing":
            assert sub["trial_start"] < sub["trial_end"]
        price_ids = [i["price"]["id"] for i in sub["items"]["data"]]
        assert len(set(price_ids)) == len(price_ids)
        for item in sub["items"]["data"]:
            assert item["price"] == prices[item["price"]["id"]]
            assert item["price"]["recurring"] is not None
            assert sub["currency"] in item["price"]["currency_options"]
            assert item["current_period_start"] < item["current_period_end"]
            assert item.get("quantity", 1) >= 1
            assert "quantity" in item or item["price"]["recurring"]["usage_type"] == "metered"


def test_periods() -> None:
    jan31 = 1769817600  # 2026-01-31T00:00:00Z
    assert add_months(jan31, 1) == 1772236800  # 2026-02-28, clamped
    assert period_around(jan31, "month", 1, jan31 + 5 * 86400) == (jan31, 1772236800)
    start, end = period_around(1735689600, "year", 1, 1767225600)  # 2025-01-01 .. at 2026-01-01
    assert (start, end) == (1767225600, 1798761600)


def test_write_account_round_trip_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    account = generate_account(30, seed=1)
    write_account(account, tmp_path / "a")
    assert {p.name for p in (tmp_path / "a").iterdir()} == {
        "products.json", "prices.json", "customers.json", "subscriptions.json", "features.json",
        "product_features.json"}
    fake = FakeStripe.from_dir(tmp_path / "a")
    assert {r: fake.all(r) for r in account} == account
    assert main(["--customers", "30", "--seed", "1", "--out", str(tmp_path / "b")]) == 0
    assert "30 customers" in capsys.readouterr().out
    for name in ("products", "prices", "customers", "subscriptions"):
        assert (tmp_path / "a" / f"{name}.json").read_text() == (tmp_path / "b" / f"{name}.json").read_text()


def test_demo_fixtures(stripe_shapes: dict) -> None:
    demo = {r: json.loads((DEMO_FIXTURES / f"{r}.json").read_text()) for r in SINGULAR}
    check_shapes(demo, stripe_shapes)
    assert {k: len(v) for k, v in demo.items()} == {
        "products": 4, "prices": 8, "customers": 8, "subscriptions": 9}
    assert sum(not p["active"] for p in demo["products"]) == 1
    prices = {p["id"]: p for p in demo["prices"]}
    assert prices["price_DemoTeamTier1"]["unit_amount"] is None
    assert prices["price_DemoTeamSetup"]["recurring"] is None
    assert prices["price_DemoProJpy001"]["currency"] == "jpy"
    assert prices["price_DemoProQuartr"]["recurring"]["interval_count"] == 3
    assert sum(c.get("deleted", False) for c in demo["customers"]) == 1
    assert Counter(s["status"] for s in demo["subscriptions"]) == {
        "active": 4, "trialing": 1, "canceled": 2, "past_due": 1, "incomplete_expired": 1}
    assert max(len(s["items"]["data"]) for s in demo["subscriptions"]) == 3
    customers = {c["id"] for c in demo["customers"]}
    for sub in demo["subscriptions"]:
        assert sub["customer"] in customers
        for item in sub["items"]["data"]:
            assert item["price"] == prices[item["price"]["id"]]
