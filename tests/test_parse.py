"""Reading Stripe's own example objects (fixtures3.json) and odd ones: no database, no network."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from reconcile.core.parse import BadObject, feature_ids, parse_customer, parse_price, parse_product, parse_subscription
from reconcile.core.read import NO_METADATA
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


def sane(item: dict, start: int = 1_767_225_600, end: int = 1_769_904_000) -> dict:
    """Stripe's example item with a real period (its own is a placeholder that ends before it starts)."""
    return item | {"current_period_start": start, "current_period_end": end}


def test_stripe_subscription_takes_periods_from_items():
    obj = stripe_fixture("subscription")
    items = [sane(i) for i in obj["items"]["data"]]
    rec, prices = parse_subscription(obj, items)
    assert rec.current_period_start == ts(items[0]["current_period_start"])
    assert rec.current_period_end == ts(items[0]["current_period_end"])
    assert [i.id for i in rec.items] == ["si_QXhVnC2h0Jczwc"]
    assert rec.items[0].price_id == "price_1PgafmB7WZ01zgkW6dKueIc5"
    assert [p["id"] for p in prices] == ["price_1PgafmB7WZ01zgkW6dKueIc5"]
    assert (rec.status, rec.customer_id, rec.canceled_at) == (obj["status"], "cus_QXg1o8vcGmoR32", ts(1234567890))


def test_records_share_one_string_for_a_value_that_many_objects_repeat():
    """A decoder makes new strings per object: the readers return the one string of the documented
    value (status, collection method, currency) and intern ids that few objects are referred to by
    many (an item's price), so 100,000 subscriptions do not hold 100,000 copies of each."""
    first, second = stripe_fixture("subscription"), stripe_fixture("subscription")
    second["currency"] = "USD"  # read lower-cased, and still the shared string
    items = [[sane(i) for i in obj["items"]["data"]] for obj in (first, second)]
    assert first["status"] is not second["status"]  # two decodings: two strings each
    assert items[0][0]["price"]["id"] is not items[1][0]["price"]["id"]
    a, _ = parse_subscription(first, items[0])
    b, _ = parse_subscription(second, items[1])
    assert (a.status, a.collection_method, a.currency) == ("active", "charge_automatically", "usd")
    assert a.status is b.status and a.collection_method is b.collection_method and a.currency is b.currency
    assert a.items[0].price_id is b.items[0].price_id == "price_1PgafmB7WZ01zgkW6dKueIc5"
    assert a.customer_id is not b.customer_id  # one per customer: not worth a shared table


def test_records_without_metadata_share_one_empty_dict():
    """An empty dict per record was 12 MiB of a first pull at N=100,000. The shared one must stay
    empty: tests/conftest.py checks it after every test (pulls, applies, webhooks included)."""
    first, second = stripe_fixture("customer"), stripe_fixture("customer")
    first["metadata"], second["metadata"] = {}, None
    a, b = parse_customer(first), parse_customer(second)
    assert a.metadata == {} and a.metadata is b.metadata is NO_METADATA
    second["metadata"] = {"plan": "gold"}
    c = parse_customer(second)
    assert c.metadata == {"plan": "gold"} and c.metadata is not second["metadata"]  # a copy of its own


def test_an_impossible_period_is_refused_with_the_reason():
    obj = stripe_fixture("subscription")  # Stripe's example item ends (2000) before it starts (2030)
    with pytest.raises(BadObject) as caught:
        parse_subscription(obj, obj["items"]["data"])
    assert str(caught.value) == (
        "item si_QXhVnC2h0Jczwc has an impossible billing period: it ends (2000-12-08T15:02:53Z) "
        "before it starts (2030-02-06T01:08:38Z)"
    )
    legacy = obj | {"current_period_start": 20, "current_period_end": 10}
    with pytest.raises(BadObject, match="subscription sub_.* ends .* before it starts"):
        parse_subscription(legacy, [])


def test_items_on_different_periods_give_the_period_of_the_first_to_renew():
    obj = stripe_fixture("subscription")
    first = stripe_fixture("subscription_item") | {"id": "si_a", "current_period_start": 100, "current_period_end": 500}
    second = first | {"id": "si_b", "current_period_start": 50, "current_period_end": 400}
    rec, _ = parse_subscription(obj, [first, second])
    # not a made-up (50, 500) that no item has: si_b's, which renews first
    assert (rec.current_period_start, rec.current_period_end) == (ts(50), ts(400))
    assert [(i.id, i.current_period_end) for i in rec.items] == [("si_a", ts(500)), ("si_b", ts(400))]


def test_older_api_versions_keep_periods_on_the_subscription():
    item = {k: v for k, v in stripe_fixture("subscription_item").items() if not k.startswith("current_period")}
    obj = stripe_fixture("subscription") | {"current_period_start": 10, "current_period_end": 20}
    rec, _ = parse_subscription(obj, [item])
    assert (rec.current_period_start, rec.current_period_end) == (ts(10), ts(20))
    # their items bill on that one period: the stored items hold it too, as with later versions
    assert (rec.items[0].current_period_start, rec.items[0].current_period_end) == (ts(10), ts(20))


@pytest.mark.parametrize(
    ("resource", "change", "message"),
    [
        ("product", {"metadata": "not a dict"}, "field 'metadata' should be dict, got str"),
        ("product", {"metadata": {"features": 5}}, "metadata 'features' should be a string"),
        ("product", {"active": "yes"}, "field 'active' should be bool"),
        ("product", {"name": None}, "field 'name' is null"),
        ("price", {"unit_amount": "2000"}, "field 'unit_amount' should be int"),
        ("price", {"recurring": {"interval": "fortnight", "interval_count": 1}}, "recurring interval 'fortnight'"),
        ("price", {"unit_amount_decimal": "0.1234567890123"}, "more than 12 decimal places"),
        ("price", {"unit_amount_decimal": 5}, "field 'unit_amount_decimal' should be a decimal string"),
        ("price", {"transform_quantity": {"divide_by": 10, "round": "sideways"}}, "transform_quantity.round"),
        ("price", {"tiers": [{"up_to": "ten"}]}, "field 'tiers[0].up_to' should be an integer"),
        ("price", {"currency_options": {"eur": {"unit_amount": 1.5}}}, "currency_options.eur.unit_amount"),
        ("subscription", {"collection_method": "barter"}, "collection_method 'barter'"),
        ("subscription", {"pause_collection": {"behavior": "void", "resumes_at": "soon"}}, "pause_collection"),
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
        "subscription": lambda o: parse_subscription(o, [sane(i) for i in o["items"]["data"]]),
    }[resource]
    with pytest.raises(BadObject, match=re.escape(message)):
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
