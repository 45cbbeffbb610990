"""Reading Stripe's own example objects (fixtures3.json) and odd ones: no database, no network."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from reconcile.core.parse import BadObject, feature_ids, parse_customer, parse_price, parse_product, parse_subscription
from tests.conftest import stripe_fixture


def ts(value: int) -> datetime:
    return datetime.fromtimestamp(value, tz=timezone.utc)


def test_stripe_product():
    rec = parse_product(stripe_fixture("product"))
    assert (rec.id, rec.name, rec.description, rec.active, rec.metadata, rec.features) == (
        "prod_QXg1hqf4jFNsqG",
        "T-shirt",
        "Comfortable gray cotton t-shirt",
        True,
        {},
        (),
    )


def test_stripe_price():
    rec = parse_price(stripe_fixture("price"))
    assert (rec.product_id, rec.amount, rec.currency, rec.frequency, rec.active, rec.nickname) == (
        "prod_QXg1hqf4jFNsqG",
        2000,
        "usd",
        "month_1",
        True,
        None,
    )


def test_tiered_price_has_no_amount():
    obj = stripe_fixture("price") | {"billing_scheme": "tiered", "unit_amount": None, "unit_amount_decimal": None}
    assert parse_price(obj).amount is None


def test_one_time_price_has_no_frequency_and_currency_is_lowercased():
    obj = stripe_fixture("price") | {"recurring": None, "type": "one_time", "currency": "JPY"}
    rec = parse_price(obj)
    assert (rec.frequency, rec.currency) == (None, "jpy")


def test_every_iso_currency_is_accepted_and_other_codes_are_rejected():
    for code in ("usd", "eur", "jpy", "bhd", "xof", "clf"):
        assert parse_price(stripe_fixture("price") | {"currency": code}).currency == code
    with pytest.raises(BadObject, match="currency 'zzz' is not an ISO 4217 code"):
        parse_price(stripe_fixture("price") | {"currency": "zzz"})


def test_expanded_product_reference_is_read_as_its_id():
    obj = stripe_fixture("price") | {"product": stripe_fixture("product")}
    assert parse_price(obj).product_id == "prod_QXg1hqf4jFNsqG"


def test_stripe_customer_and_deleted_customer():
    assert parse_customer(stripe_fixture("customer")).email is None
    with pytest.raises(BadObject, match="deleted"):
        parse_customer(stripe_fixture("deleted_customer"))


def test_stripe_subscription_takes_periods_from_items():
    obj = stripe_fixture("subscription")
    rec, prices = parse_subscription(obj, obj["items"]["data"])
    item = obj["items"]["data"][0]
    assert rec.current_period_start == ts(item["current_period_start"])
    assert rec.current_period_end == ts(item["current_period_end"])
    assert [i.id for i in rec.items] == ["si_QXhVnC2h0Jczwc"]
    assert rec.items[0].price_id == "price_1PgafmB7WZ01zgkW6dKueIc5"
    assert [p["id"] for p in prices] == ["price_1PgafmB7WZ01zgkW6dKueIc5"]
    assert (rec.status, rec.customer_id, rec.canceled_at) == (obj["status"], "cus_QXg1o8vcGmoR32", ts(1234567890))


def test_periods_span_all_items_earliest_start_latest_end():
    obj = stripe_fixture("subscription")
    first = stripe_fixture("subscription_item") | {"id": "si_a", "current_period_start": 100, "current_period_end": 500}
    second = first | {"id": "si_b", "current_period_start": 50, "current_period_end": 400}
    rec, _ = parse_subscription(obj, [first, second])
    assert (rec.current_period_start, rec.current_period_end) == (ts(50), ts(500))


def test_older_api_versions_keep_periods_on_the_subscription():
    obj = stripe_fixture("subscription") | {"current_period_start": 10, "current_period_end": 20}
    rec, _ = parse_subscription(obj, obj["items"]["data"])
    assert (rec.current_period_start, rec.current_period_end) == (ts(10), ts(20))


@pytest.mark.parametrize(
    ("resource", "change", "message"),
    [
        ("product", {"metadata": "not a dict"}, "field 'metadata' should be dict, got str"),
        ("product", {"metadata": {"features": 5}}, "metadata 'features' should be a string"),
        ("product", {"active": "yes"}, "field 'active' should be bool"),
        ("product", {"name": None}, "field 'name' is null"),
        ("price", {"unit_amount": "2000"}, "field 'unit_amount' should be int"),
        ("price", {"recurring": {"interval": "fortnight", "interval_count": 1}}, "recurring interval 'fortnight'"),
        ("price", {"currency": None}, "field 'currency' is null"),
        ("subscription", {"status": "weird"}, "status 'weird' is not one Stripe documents"),
        ("subscription", {"created": "yesterday"}, "field 'created' should be a Unix timestamp"),
        ("customer", {"email": ["a@b.c"]}, "field 'email' should be str"),
    ],
)
def test_odd_objects_are_rejected_with_a_reason(resource, change, message):
    obj = stripe_fixture(resource) | change
    parse = {
        "product": parse_product,
        "price": parse_price,
        "customer": parse_customer,
        "subscription": lambda o: parse_subscription(o, o["items"]["data"]),
    }[resource]
    with pytest.raises(BadObject, match=message.replace("(", r"\(")):
        parse(obj)


def test_missing_optional_fields_are_fine():
    obj = {"id": "prod_min", "object": "product", "name": "Minimal", "active": True}
    rec = parse_product(obj)
    assert (rec.description, rec.metadata) == (None, {})


@pytest.mark.parametrize(
    ("value", "ids"),
    [("a b", ("a", "b")), ("a,b", ("a", "b")), (" a , ,b  a", ("a", "b")), ("", ()), (",,", ())],
)
def test_feature_ids_split_on_spaces_or_commas(value, ids):
    assert feature_ids({"features": value}, "features") == ids
