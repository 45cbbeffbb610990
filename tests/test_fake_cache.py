"""The fake Stripe's list caches (a test double; nothing here talks to Stripe): a page served from
them is the page computed from scratch, every change shows in the next page, and a page costs no
scan of the list and no encoding once the caches are warm."""

from __future__ import annotations

import json
import socketserver
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from reconcile.testing import api
from reconcile.testing.api import handle_get
from reconcile.testing.generate import generate_account
from reconcile.testing.server import serve
from reconcile.testing.store import FakeStripe, dumps

HIDDEN = ("canceled", "incomplete_expired")


@pytest.fixture(scope="module")
def account() -> dict[str, list[dict]]:
    return generate_account(400, seed=11)


@pytest.fixture
def fake(account: dict[str, list[dict]]) -> FakeStripe:
    return FakeStripe(account)


def ok(fake: FakeStripe, path: str, **params: Any) -> str:
    pairs = [(k, v) for k, vs in params.items() for v in (vs if isinstance(vs, list) else [vs])]
    status, text = handle_get(fake, path, pairs)
    assert status == 200, text
    return text


def listed(text: str) -> list[str]:
    return [o["id"] for o in json.loads(text)["data"]]


def newest(fake: FakeStripe, resource: str) -> list[dict]:
    return sorted(fake.all(resource), key=lambda o: (o.get("created") or 0, o["id"]), reverse=True)


def expected_page(
    fake: FakeStripe,
    resource: str,
    keep: Callable[[dict], bool],
    limit: int,
    after: str | None = None,
    before: str | None = None,
    every: list[dict] | None = None,
) -> str:
    """The page computed from scratch: every stored object sorted newest first (``every``, when
    the caller has it), the cursor's place in that order, the objects ``keep`` keeps after (or
    before) it, encoded as the fake encodes."""
    every = newest(fake, resource) if every is None else every
    ids = [o["id"] for o in every]
    if before is not None:
        kept = [o for o in every[: ids.index(before)] if keep(o)]
        page, more = kept[-limit:], len(kept) > limit
    else:
        kept = [o for o in every[ids.index(after) + 1 if after else 0 :] if keep(o)]
        page, more = kept[:limit], len(kept) > limit
    return dumps(
        {
            "object": "list",
            "data": [fake.served(resource, o) for o in page],
            "has_more": more,
            "url": f"/v1/{resource}",
        }
    )


def visible(o: dict) -> bool:
    return not o.get("deleted")


def test_every_page_equals_the_page_computed_from_scratch(fake: FakeStripe, account: dict) -> None:
    subs = sorted(account["subscriptions"], key=lambda s: s["created"])
    low, high = subs[len(subs) // 4]["created"], subs[3 * len(subs) // 4]["created"]
    cases: list[tuple[str, dict, Callable[[dict], bool]]] = [
        ("customers", {}, visible),
        ("products", {"active": "false"}, lambda o: visible(o) and o["active"] is False),
        ("prices", {"currency": "usd"}, lambda o: visible(o) and o.get("currency") == "usd"),
        ("subscriptions", {"status": "all"}, visible),
        ("subscriptions", {}, lambda o: visible(o) and o["status"] not in HIDDEN),
        (
            "subscriptions",
            {"status": "all", "created[gte]": str(low), "created[lt]": str(high)},
            lambda o: visible(o) and low <= o["created"] < high,
        ),
        ("subscriptions", {"created": str(low)}, lambda o: o["created"] == low and o["status"] not in HIDDEN),
    ]
    for resource, params, keep in cases:
        every = newest(fake, resource)
        for _ in range(2):  # the first walk fills the caches, the second is served from them
            cursor, pages = None, 0
            while True:
                text = ok(
                    fake, f"/v1/{resource}", limit="7", **params, **({"starting_after": cursor} if cursor else {})
                )
                assert text == expected_page(fake, resource, keep, 7, cursor, every=every), (resource, params, cursor)
                pages += 1
                if not json.loads(text)["has_more"]:
                    break
                cursor = listed(text)[-1]
            assert pages == -(-max(1, sum(map(keep, account[resource]))) // 7)
        last = expected_page(fake, resource, keep, 1000, every=every)
        if json.loads(last)["data"]:
            end = json.loads(last)["data"][-1]["id"]
            text = ok(fake, f"/v1/{resource}", limit="5", ending_before=end, **params)
            assert text == expected_page(fake, resource, keep, 5, before=end, every=every)


def test_a_cursor_the_filter_does_not_keep_is_placed_by_its_order(fake: FakeStripe, account: dict) -> None:
    canceled = [s for s in account["subscriptions"] if s["status"] == "canceled"]
    assert len(canceled) > 5
    keep = lambda o: o["status"] not in HIDDEN  # noqa: E731
    for sub in canceled[:5]:
        text = ok(fake, "/v1/subscriptions", limit="4", starting_after=sub["id"])
        assert text == expected_page(fake, "subscriptions", keep, 4, after=sub["id"])
        text = ok(fake, "/v1/subscriptions", limit="4", ending_before=sub["id"])
        assert text == expected_page(fake, "subscriptions", keep, 4, before=sub["id"])


def test_expanded_and_older_version_pages_equal_those_of_a_fresh_fake(account: dict) -> None:
    warm = FakeStripe(account)
    queries = [
        ("/v1/prices", [("limit", "100"), ("expand[]", "data.tiers"), ("expand[]", "data.currency_options")], None),
        ("/v1/subscriptions", [("status", "all"), ("limit", "100")], "2024-06-20"),
        ("/v1/subscriptions", [("status", "all"), ("limit", "30"), ("expand[]", "data.items.data.price")], None),
    ]
    for path, pairs, version in queries:
        first = handle_get(warm, path, pairs, version)
        assert first == handle_get(warm, path, pairs, version) == handle_get(FakeStripe(account), path, pairs, version)
        assert first[0] == 200


def test_every_change_shows_in_the_next_page(fake: FakeStripe, account: dict) -> None:
    customers = listed(ok(fake, "/v1/customers", limit="100"))
    fake.update("customers", customers[3], name="Renamed")
    page = json.loads(ok(fake, "/v1/customers", limit="100"))
    assert page["data"][3]["name"] == "Renamed"
    assert ok(fake, "/v1/customers", limit="100") == expected_page(fake, "customers", visible, 100)

    fake.update("customers", customers[0], created=1)  # now the oldest: the last of the list
    assert listed(ok(fake, "/v1/customers", limit="100"))[:3] == customers[1:4]
    assert listed(ok(fake, "/v1/customers", limit="100", starting_after=customers[-1]))[-1] != customers[0]
    fake.upsert("customers", {**account["customers"][0], "id": "cus_brandnew", "created": 2_000_000_000})
    fake.remove("customers", customers[5])
    fake.delete_customer(customers[6])
    ids = listed(ok(fake, "/v1/customers", limit="100"))
    assert ids[0] == "cus_brandnew" and customers[5] not in ids and customers[6] not in ids
    assert handle_get(fake, "/v1/customers", [("starting_after", customers[5])])[0] == 400
    assert ok(fake, "/v1/customers", limit="100") == expected_page(fake, "customers", visible, 100)

    product = listed(ok(fake, "/v1/products", active="true", limit="100"))[0]
    fake.update("products", product, active=False)
    assert product not in listed(ok(fake, "/v1/products", active="true", limit="100"))
    assert product in listed(ok(fake, "/v1/products", active="false", limit="100"))

    sub = next(s for s in account["subscriptions"] if s["status"] == "active")
    price = sub["items"]["data"][0]["price"]["id"]
    expand = ["data.tiers", "data.currency_options"]
    ok(fake, "/v1/prices", limit="100", **{"expand[]": expand})
    ok(fake, "/v1/subscriptions", limit="100", status="all", **{"expand[]": ["data.items.data.price"]})
    fake.update("prices", price, nickname="Renamed price")
    prices = json.loads(ok(fake, "/v1/prices", limit="100", **{"expand[]": expand}))["data"]
    assert next(p for p in prices if p["id"] == price)["nickname"] == "Renamed price"
    for params in ({}, {"expand[]": ["data.items.data.price"]}):
        subs = json.loads(ok(fake, "/v1/subscriptions", limit="100", status="all", customer=sub["customer"], **params))
        shown = next(s for s in subs["data"] if s["id"] == sub["id"])
        assert shown["items"]["data"][0]["price"]["nickname"] == "Renamed price"
    item = sub["items"]["data"][0]["id"]
    items = json.loads(ok(fake, "/v1/subscription_items", subscription=sub["id"]))["data"]
    assert next(i for i in items if i["id"] == item)["price"]["nickname"] == "Renamed price"

    fake.cancel_subscription(sub["id"], at=1_800_000_000)
    assert sub["id"] not in listed(ok(fake, "/v1/subscriptions", limit="100", customer=sub["customer"]))
    ended = json.loads(ok(fake, "/v1/subscriptions", limit="100", status="canceled", customer=sub["customer"]))
    assert [(s["id"], s["canceled_at"]) for s in ended["data"] if s["id"] == sub["id"]] == [(sub["id"], 1_800_000_000)]


def test_a_warm_page_scans_nothing_and_encodes_nothing(fake: FakeStripe, monkeypatch: pytest.MonkeyPatch) -> None:
    checks = {"filter": 0, "encode": 0}
    filters, served = api._filters, FakeStripe.served

    def counting_filters(resource: str, params: dict) -> list:
        def counted(pred):
            def check(o: dict) -> bool:
                checks["filter"] += 1
                return pred(o)

            return check

        return [counted(p) for p in filters(resource, params)]

    def counting_served(self: FakeStripe, resource: str, obj: dict) -> dict:
        checks["encode"] += 1  # the fake encodes what this returns, once per object and change
        return served(self, resource, obj)

    monkeypatch.setattr(api, "_filters", counting_filters)
    monkeypatch.setattr(FakeStripe, "served", counting_served)

    def walk() -> tuple[int, int, int]:
        checks.update(filter=0, encode=0)
        cursor, pages = None, 0
        while True:
            text = ok(fake, "/v1/customers", limit="100", **({"starting_after": cursor} if cursor else {}))
            pages += 1
            if not json.loads(text)["has_more"]:
                return pages, checks["filter"], checks["encode"]
            cursor = listed(text)[-1]

    assert walk() == (4, 400, 400)  # the filter once over the list, each object encoded once
    assert walk() == (4, 0, 0)
    fake.update("customers", fake.sorted_objects("customers")[0][7]["id"], name="Changed")
    assert walk() == (4, 400, 1)  # the list is filtered again; only the changed object is encoded


def test_a_response_goes_out_in_one_write(account: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[int] = []
    write = socketserver._SocketWriter.write

    def counting(self, data) -> int:
        writes.append(len(data))
        return write(self, data)

    monkeypatch.setattr(socketserver._SocketWriter, "write", counting)
    with serve(FakeStripe(account)) as server:
        request = urllib.request.Request(
            server.url + "/v1/customers?limit=100", headers={"Authorization": "Bearer sk_test_123"}
        )
        for _ in range(3):
            with urllib.request.urlopen(request, timeout=10) as response:
                body = response.read()
    assert len(writes) == 3 and all(n > len(body) for n in writes)
