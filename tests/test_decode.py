"""A list page is decoded into only the keys the registry's readers read (``reconcile/stripe/decode.py``),
and what a run makes of it is the same as of the whole page."""

from __future__ import annotations

import json
import typing

import pytest

from reconcile.conf import get_config
from reconcile.core.read import BadObject
from reconcile.core.registry import BY_NAME, ITEMS, PRICES, PRODUCTS, SUBSCRIPTIONS
from reconcile.stripe import fetch as fetch_module
from reconcile.stripe import walk
from reconcile.stripe.decode import decode, page_decoder, reference, schema
from reconcile.stripe.fetch import Fetcher, Page
from reconcile.stripe.remote import _Builder, _parse_subscription, fetch_remote
from reconcile.testing.generate import generate_account
from tests.conftest import stripe_fixture

ALL = ("products", "customers", "subscriptions")
LISTS = {name: f"/v1/{name}" for name in ("products", "prices", "customers", "subscriptions")}


def keys(resource) -> set[str]:
    return set(typing.get_type_hints(schema(resource)))


def page(objects: list) -> bytes:
    return json.dumps({"object": "list", "data": objects, "has_more": False, "url": "/v1/x"}).encode()


def test_a_subscription_keeps_the_keys_its_readers_read_and_nothing_else():
    sub = _fixture_subscription()
    decoded = decode(page([sub]), page_decoder("/v1/subscriptions"))["data"][0]
    assert sorted(decoded) == [
        "cancel_at", "cancel_at_period_end", "canceled_at", "cancellation_details", "collection_method",
        "created", "currency", "customer", "ended_at", "id", "items", "metadata", "object",
        "pause_collection", "status", "trial_end", "trial_start",
    ]  # fmt: skip
    item = decoded["items"]["data"][0]
    kept = ["created", "current_period_end", "current_period_start", "id", "object", "price", "quantity"]
    assert sorted(item) == kept
    price = sub["items"]["data"][0]["price"]  # of an embedded price, only what the fetch reads of it
    assert item["price"] == {key: price[key] for key in ("id", "object", "created", "product")}


class Recording(dict):
    """A Stripe object that notes every key read from it."""

    def __init__(self, data: dict, seen: set[str]) -> None:
        super().__init__(data)
        self.seen = seen

    def get(self, key, default=None):
        self.seen.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.seen.add(key)
        return super().__getitem__(key)

    def __contains__(self, key) -> bool:
        self.seen.add(key)
        return super().__contains__(key)


def _subscriptions_read(objects: list[dict]) -> dict[str, set[str]]:
    seen = {"subscriptions": set(), "items list": set(), "items": set(), "prices": set()}
    builder = _Builder(features_key="features")
    for obj in objects:
        items = [Recording(item, seen["items"]) for item in obj["items"]["data"]]
        for item in items:
            if isinstance(item.get("price"), dict):
                dict.__setitem__(item, "price", Recording(item["price"], seen["prices"]))
        listed = Recording({**obj["items"], "data": items}, seen["items list"])
        recording = Recording({**obj, "items": listed}, seen["subscriptions"])
        _parse_subscription(None, builder, recording, Page([], False, None))
    return seen


def test_every_key_a_resource_is_read_by_is_in_its_schema():
    account = generate_account(60, seed=11)
    objects = {name: account[name] for name in ("products", "prices", "customers")}
    objects["subscriptions"] = account["subscriptions"] + [_fixture_subscription()]
    objects["prices"].append(stripe_fixture("price"))
    for name, parse in (("products", _Builder("features").parse_product), ("prices", PRICES.parse)):
        seen: set[str] = set()
        for obj in objects[name]:
            parse(Recording(obj, seen))
        assert seen and seen <= keys(PRODUCTS if name == "products" else PRICES), name
    seen = set()
    for obj in objects["customers"]:
        _Builder("features").parse_customer(Recording(obj, seen))
    assert {"id", "email", "name", "metadata", "deleted"} <= seen <= keys(BY_NAME["customers"])
    read = _subscriptions_read(objects["subscriptions"])
    assert read["subscriptions"] <= keys(SUBSCRIPTIONS)
    assert read["items list"] <= {"object", "data", "has_more", "url"}
    assert read["items"] <= keys(ITEMS) and read["prices"] == {"id"}  # a price is retrieved by id if not listed
    assert set(typing.get_type_hints(reference(PRICES))) == {"id", "object", "deleted", "created", "product"}
    assert {"items", "customer", "status"} <= read["subscriptions"] and {"price", "quantity"} <= read["items"]


def _fixture_subscription() -> dict:
    """Stripe's example subscription with its example item, whose period is made possible (its
    example values are random: the period ends before it starts)."""
    item = stripe_fixture("subscription_item")
    item["current_period_end"] = item["current_period_start"] + 86_400
    sub = stripe_fixture("subscription")
    sub["items"] = {"object": "list", "data": [item], "has_more": False, "url": "/x"}
    return sub


def _records(name: str, data: list) -> list:
    if name == "subscriptions":
        builder = _Builder(features_key="features")
        page_ = Page([], False, None)
        recs = [_parse_subscription(None, builder, obj, page_) for obj in data]
        return recs + sorted((pid, price.get("product")) for pid, (price, _) in builder.embedded_prices.items())
    if name == "products":
        return [_Builder("features").parse_product(obj) for obj in data]
    return [BY_NAME[name].parse(obj) for obj in data]


@pytest.mark.parametrize("name", sorted(LISTS))
def test_the_records_are_those_of_the_whole_page(name):
    account = generate_account(300, seed=5)
    objects = account[name] + ([_fixture_subscription()] if name == "subscriptions" else [])
    body = page(objects)
    whole = json.loads(body)["data"]
    kept = decode(body, page_decoder(LISTS[name]))["data"]
    assert all(set(k) < set(w) for k, w in zip(kept, whole, strict=True))  # keys were dropped ...
    assert _records(name, kept) == _records(name, whole)  # ... and the records are the same


@pytest.mark.parametrize(
    "data",
    [
        [{"id": "cus_1", "object": "customer", "email": None}, "not an object"],
        [{"id": "cus_1", "object": "customer", "email": None, "deleted": {"odd": [1, 2]}}],
    ],
)
def test_a_page_that_does_not_fit_the_schema_is_decoded_whole(data):
    body = page(data)
    assert decode(body, page_decoder("/v1/customers")) == json.loads(body)


def test_an_item_whose_price_is_neither_an_id_nor_an_object_is_decoded_whole():
    sub = _fixture_subscription()
    sub["items"]["data"][0]["price"] = 42
    body = page([sub])
    assert decode(body, page_decoder("/v1/subscriptions")) == json.loads(body)


def test_what_msgspec_refuses_goes_to_json_and_what_is_not_json_raises():
    assert decode(b'{"data": [], "a": NaN}', page_decoder("/v1/customers"))["a"] != 0  # NaN
    assert decode(b'{"n": 123456789012345678901234567890}') == {"n": 123456789012345678901234567890}
    with pytest.raises(ValueError):
        decode(b"<html>busy</html>", page_decoder("/v1/customers"))


def test_only_list_pages_of_the_registry_have_a_schema():
    assert page_decoder("/v1/subscription_items") is not None
    assert page_decoder("/v1/events") is None and page_decoder("/v1/entitlements/features") is None


@pytest.mark.django_db
def test_a_fetched_page_holds_only_the_schemas_keys(start_fake):
    start_fake(generate_account(5, seed=2))
    fetched = Fetcher(get_config()).page("/v1/customers", {"limit": 10})
    assert fetched.data and all(set(obj) <= keys(BY_NAME["customers"]) for obj in fetched.data)
    assert all("livemode" not in obj for obj in fetched.data)


@pytest.mark.parametrize("path", [*LISTS.values(), "/v1/subscription_items"])
def test_the_keys_the_fetch_reads_are_kept(path):
    """The walk cuts a list into parts by its objects' ``created`` (without it, a latency-bound
    walk never cuts and takes one page at a time); the fetch checks ids."""
    body = page([{"id": "x_1", "object": "whatever", "created": 1_700_000_000, "livemode": False}])
    (obj,) = decode(body, page_decoder(path))["data"]
    assert walk._created(obj) == 1_700_000_000 and obj["id"] == "x_1" and "livemode" not in obj


def test_each_reader_reads_its_own_key_and_those_it_names():
    """A reader that reads a top-level key beyond its label says so (``also``), so that the list
    decoder keeps it even if no other field reads that key."""
    account = generate_account(60, seed=13)
    samples = {
        "products": account["products"],
        "prices": [*account["prices"], stripe_fixture("price")],
        "customers": account["customers"],
        "subscriptions": [*account["subscriptions"], _fixture_subscription()],
    }
    samples["items"] = [item for sub in samples["subscriptions"] for item in sub["items"]["data"]]
    for name, objects in samples.items():
        for f in BY_NAME.get(name, ITEMS).fields:
            seen: set[str] = set()
            for obj in objects:
                try:
                    f.read(Recording(obj, seen))
                except BadObject:
                    pass
            assert seen <= {f.read.key, *f.read.about.get("also", ()), "id"}, f"{name}.{f.name}"


@pytest.mark.django_db
def test_a_cut_walk_of_kept_keys_gives_the_records_of_whole_pages(start_fake, reconcile_settings, monkeypatch):
    """The whole fetch, with its lists cut into parts by ``created`` (a slow link), once with the
    schemas and once with every page decoded whole: the same snapshot."""
    account = generate_account(300, seed=21)
    fake = start_fake(account, latency=0.16)
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "CONCURRENCY": 8, "RATE_LIMIT": 25.0}
    kept = fetch_remote(get_config(), ALL)
    assert any("created[lt]" in r.query for r in fake.requests), "the walk never cut a list"
    monkeypatch.setattr(fetch_module, "page_decoder", lambda path: None)
    whole = fetch_remote(get_config(), ALL)
    for name in ("products", "prices", "customers", "subscriptions"):
        assert getattr(kept, name) == getattr(whole, name), name
    assert kept.rejected == whole.rejected and kept.complete == whole.complete
