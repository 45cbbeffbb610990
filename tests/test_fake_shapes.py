"""What the fake Stripe (a test double on loopback) serves, checked against Stripe's own schemas
(a compact copy of the OpenAPI spec in tests/data/stripe_schemas.json), API versions, includable
price fields, the Entitlements endpoints and the billing shapes of the generator."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from reconcile.testing.fakestripe import DEMO_FIXTURES, FakeStripe, RunningServer, serve
from reconcile.testing.generate import generate_account

SCHEMAS = json.loads((Path(__file__).parent / "data" / "stripe_schemas.json").read_text())
KEY = "sk_test_123"
EXPAND_PRICES = "expand[]=data.tiers&expand[]=data.currency_options"


def validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": SCHEMAS["$defs"]})


def errors(name: str, obj: dict) -> list[str]:
    """Each error as "path: message", a nullable field's error from its non-null branch."""
    found = []
    for error in validator(name).iter_errors(obj):
        while error.context:
            branches = [e for e in error.context if e.schema != {"type": "null"}] or error.context
            error = jsonschema.exceptions.best_match(branches)
        found.append(f"{'.'.join(map(str, error.absolute_path))}: {error.message}")
    return found


def get(server: RunningServer, path: str, version: str | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {KEY}", **({"Stripe-Version": version} if version else {})}
    request = urllib.request.Request(server.url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def every(server: RunningServer, path: str, version: str | None = None) -> list[dict]:
    out: list[dict] = []
    sep = "&" if "?" in path else "?"
    while True:
        after = f"&starting_after={out[-1]['id']}" if out else ""
        status, body = get(server, f"{path}{sep}limit=100{after}", version)
        assert status == 200, body
        out += body["data"]
        if not body["has_more"]:
            return out


@pytest.fixture(scope="module")
def account() -> dict[str, list[dict]]:
    return generate_account(400, seed=3)


@pytest.fixture(scope="module")
def server(account: dict) -> Iterator[RunningServer]:
    with serve(FakeStripe(account)) as running:
        yield running


# -- schemas ------------------------------------------------------------------------------------


def test_schema_file_records_the_spec_version() -> None:
    assert SCHEMAS["x-spec"]["version"] == "2026-08-26.dahlia"
    assert set(SCHEMAS["$defs"]) >= {"product", "price", "customer", "subscription", "subscription_item"}


def test_the_checker_rejects_what_the_spec_forbids() -> None:
    sub = json.loads((DEMO_FIXTURES / "subscriptions.json").read_text())[0]
    assert errors("subscription", sub) == []
    old = {k: v for k, v in sub.items() if k not in ("billing_mode", "billing_schedules")}  # the fake before
    assert errors("subscription", old) == [
        ": 'billing_mode' is a required property", ": 'billing_schedules' is a required property"]
    assert errors("subscription", {**sub, "made_up": 1}) == [
        ": Additional properties are not allowed ('made_up' was unexpected)"]
    price = sub["items"]["data"][0]["price"]
    assert errors("price", {**price, "recurring": {**price["recurring"], "interval": "fortnight"}}) == [
        "recurring.interval: 'fortnight' is not one of ['day', 'month', 'week', 'year']"]
    assert errors("price", {**price, "transform_quantity": {"divide_by": "10", "round": "up"}}) == [
        "transform_quantity.divide_by: '10' is not of type 'integer'"]


@pytest.mark.parametrize("source", ["generated", "demo"])
def test_everything_served_matches_stripes_schemas(source: str, server: RunningServer) -> None:
    running = server if source == "generated" else serve(FakeStripe.from_dir(DEMO_FIXTURES))
    try:
        served = {
            "product": every(running, "/v1/products?active=true") + every(running, "/v1/products?active=false"),
            "price": [p for a in ("true", "false") for q in ("", f"&{EXPAND_PRICES}")
                      for p in every(running, f"/v1/prices?active={a}{q}")],
            "customer": [c for c in every(running, "/v1/customers")],
            "subscription": every(running, "/v1/subscriptions?status=all"),
        }
        overflow = [s["id"] for s in served["subscription"] if s["items"]["has_more"]]
        served["subscription_item"] = [i for sid in overflow for i in every(running, f"/v1/subscription_items?"
                                                                                     f"subscription={sid}")]
        for kind, objs in served.items():
            assert objs or kind == "subscription_item"
            for obj in objs:
                assert errors(kind, obj) == [], (kind, obj["id"])
        if source == "generated":
            assert overflow
            for kind, resource in (("price", "prices"), ("subscription", "subscriptions")):
                one = served[kind][0]["id"]
                status, obj = get(running, f"/v1/{resource}/{one}")
                assert status == 200 and errors(kind, obj) == []
    finally:
        if running is not server:
            running.stop()


def declared(cls: type) -> set[str]:
    """The attributes stripe-python's generated type declares (its OpenAPI spec, read independently)."""
    return {name for klass in cls.__mro__ for name in getattr(klass, "__annotations__", {}) if not name.isupper()}


def test_every_key_served_is_one_stripe_python_declares(server: RunningServer) -> None:
    """The second reference: stripe-python's own types, generated from Stripe's spec."""
    from stripe import Customer, Price, Product, Subscription, SubscriptionItem
    from stripe.entitlements import Feature

    samples = {
        Product: every(server, "/v1/products?active=true"),
        Price: every(server, f"/v1/prices?active=true&{EXPAND_PRICES}"),
        Customer: every(server, "/v1/customers"),
        Subscription: every(server, "/v1/subscriptions?status=all"),
        Feature: every(server, "/v1/entitlements/features"),
    }
    samples[SubscriptionItem] = [i for s in samples[Subscription] for i in s["items"]["data"]]
    for cls, objs in samples.items():
        keys = set().union(*(set(o) for o in objs))
        assert keys - declared(cls) == set(), cls.__name__


# -- API versions -------------------------------------------------------------------------------


def test_versions_put_periods_where_stripe_does(server: RunningServer, account: dict) -> None:
    stored = {s["id"]: s for s in account["subscriptions"]}
    new = every(server, "/v1/subscriptions?status=all", "2025-03-31.basil")
    old = every(server, "/v1/subscriptions?status=all", "2025-02-24.acacia")
    default = every(server, "/v1/subscriptions?status=all")
    assert new == default
    assert [s["id"] for s in old] == [s["id"] for s in new]
    for before, after in zip(old, new, strict=True):
        assert "current_period_start" not in after and "current_period_end" not in after
        first = stored[after["id"]]["items"]["data"][0]
        assert (before["current_period_start"], before["current_period_end"]) == (
            first["current_period_start"], first["current_period_end"])
        assert all("current_period_start" not in i for i in before["items"]["data"])
        assert all("current_period_end" in i for i in after["items"]["data"])
    sid = old[0]["id"]
    assert get(server, f"/v1/subscriptions/{sid}", "2024-06-20")[1]["current_period_end"] == old[0][
        "current_period_end"]
    item = new[0]["items"]["data"][0]["id"]
    assert "current_period_end" not in get(server, f"/v1/subscription_items/{item}", "2024-06-20")[1]


def test_unknown_version_gets_stripes_error(server: RunningServer) -> None:
    assert get(server, "/v1/products", "2026-12-16.endive")[0] == 200  # a later pin of the same release
    for version in ("2099-01-01", "2025-09-30.acacia", "latest", "2026-13-01.endive", "2026-11-01.fig"):
        assert get(server, "/v1/products", version) == (
            400, {"error": {"message": f"Invalid Stripe API version: {version}", "type": "invalid_request_error"}})


def test_requests_record_the_version_sent(account: dict) -> None:
    fake = FakeStripe(account)
    with serve(fake) as running:
        get(running, "/v1/products", "2024-06-20")
        get(running, "/v1/products")
    assert [r.version for r in fake.requests] == ["2024-06-20", None]


# -- prices: includable fields and shapes -------------------------------------------------------


def test_tiers_and_currency_options_only_when_expanded(server: RunningServer, account: dict) -> None:
    stored = {p["id"]: p for p in account["prices"]}
    plain = every(server, "/v1/prices?active=true")
    assert all("tiers" not in p and "currency_options" not in p for p in plain)
    expanded = every(server, f"/v1/prices?active=true&{EXPAND_PRICES}")
    for price in expanded:
        assert price["currency_options"] == stored[price["id"]]["currency_options"]
        assert price["currency"] in price["currency_options"]
        if price["billing_scheme"] == "tiered":
            assert price["tiers"] == stored[price["id"]]["tiers"] and len(price["tiers"]) == 2
        else:
            assert "tiers" not in price
    one = next(p for p in expanded if p["billing_scheme"] == "tiered")["id"]
    assert get(server, f"/v1/prices/{one}?expand[]=tiers")[1]["tiers"] == stored[one]["tiers"]
    for sub in every(server, "/v1/subscriptions?status=all"):
        assert all("tiers" not in i["price"] and "currency_options" not in i["price"] for i in sub["items"]["data"])


def test_the_generator_makes_every_billing_shape(account: dict) -> None:
    prices = account["prices"]
    intervals = {(p["recurring"]["interval"], p["recurring"]["interval_count"]) for p in prices if p["recurring"]}
    assert {("day", 14), ("week", 2), ("month", 1), ("year", 1)} <= intervals
    assert any(p["unit_amount"] is None and p["unit_amount_decimal"] == "0.5" for p in prices)
    assert any(p["transform_quantity"] == {"divide_by": 10, "round": "up"} for p in prices)
    assert any(p["custom_unit_amount"] and p["type"] == "one_time" for p in prices)
    assert {p["tiers_mode"] for p in prices if p["billing_scheme"] == "tiered"} == {"graduated", "volume"}
    assert any(set(p["currency_options"]) == {"usd", "eur", "gbp"} for p in prices)
    assert any(p["recurring"] and p["recurring"]["usage_type"] == "metered" for p in prices)
    subs = account["subscriptions"]
    sizes = Counter(len(s["items"]["data"]) for s in subs)
    assert max(sizes) > 10  # 11 to 13 items: one in every 397 subscriptions
    mixed = [s for s in subs if len({i["current_period_end"] for i in s["items"]["data"]}) > 1]
    assert mixed and all(s["billing_mode"]["type"] == "flexible" for s in mixed)
    by_price = {p["id"]: p for p in prices}
    foreign = [s for s in subs if any(by_price[i["price"]["id"]]["currency"] != s["currency"]
                                      for i in s["items"]["data"])]
    assert foreign and all(s["currency"] in by_price[i["price"]["id"]]["currency_options"]
                           for s in foreign for i in s["items"]["data"])
    assert {s["collection_method"] for s in subs} == {"charge_automatically", "send_invoice"}
    assert any(s["pause_collection"] for s in subs)
    assert any(c["metadata"] for c in account["customers"])


def test_overflow_items_page(server: RunningServer, account: dict) -> None:
    big = next(s for s in account["subscriptions"] if len(s["items"]["data"]) > 10)
    status, sub = get(server, f"/v1/subscriptions/{big['id']}")
    assert (status, len(sub["items"]["data"]), sub["items"]["has_more"]) == (200, 10, True)
    items = every(server, f"/v1/subscription_items?subscription={big['id']}")
    assert [i["id"] for i in items] == [i["id"] for i in big["items"]["data"]]


# -- Entitlements -------------------------------------------------------------------------------


def test_entitlements_features(server: RunningServer, account: dict) -> None:
    features = every(server, "/v1/entitlements/features")
    assert sorted(f["id"] for f in features) == sorted(f["id"] for f in account["features"])
    assert all(errors_free_feature(f) for f in features)
    active = every(server, "/v1/entitlements/features?archived=false")
    archived = every(server, "/v1/entitlements/features?archived=true")
    assert len(active) == 6 and [f["lookup_key"] for f in archived] == ["legacy_reports"]
    status, body = get(server, "/v1/entitlements/features?lookup_key=sso")
    assert status == 200 and [f["name"] for f in body["data"]] == ["Single sign-on"]
    status, body = get(server, f"/v1/entitlements/features/{features[0]['id']}")
    assert (status, body) == (200, features[0])
    assert get(server, "/v1/entitlements/features/feat_nope")[0] == 404
    assert get(server, "/v1/entitlements/features?archived=maybe")[1]["error"]["param"] == "archived"


def errors_free_feature(feature: dict) -> bool:
    return set(feature) == {"id", "object", "active", "livemode", "lookup_key", "metadata", "name"} and feature[
        "object"] == "entitlements.feature"


def test_product_features(server: RunningServer, account: dict) -> None:
    features = {f["id"]: f for f in account["features"]}
    attached: dict[str, list[str]] = {}
    for a in account["product_features"]:
        attached.setdefault(a["product"], []).append(a["entitlement_feature"])
    assert attached
    for product in account["products"]:
        listed = every(server, f"/v1/products/{product['id']}/features")
        assert sorted(a["entitlement_feature"]["id"] for a in listed) == sorted(attached.get(product["id"], []))
        for a in listed:
            assert set(a) == {"id", "object", "entitlement_feature", "livemode"} and a["object"] == "product_feature"
            assert a["entitlement_feature"] == features[a["entitlement_feature"]["id"]]
    assert get(server, "/v1/products/prod_nope/features")[0] == 404
    status, body = get(server, f"/v1/products/{account['products'][0]['id']}/features?limit=1")
    assert status == 200 and len(body["data"]) <= 1
