"""Tests of the fake Stripe (a test double on loopback; nothing here talks to Stripe)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import stripe

from reconcile.testing.fakestripe import FakeStripe, Fault, RunningServer, main, mask_key, serve
from reconcile.testing.generate import generate_account

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "reconcile" / "testing" / "data" / "demo"
KEY = "sk_test_123"


@pytest.fixture(scope="module")
def account() -> dict[str, list[dict]]:
    return generate_account(250, seed=7)


@pytest.fixture(scope="module")
def shared(account: dict[str, list[dict]]) -> Iterator[RunningServer]:
    """A read-only server on the 250-customer account (tests must not mutate it)."""
    with serve(FakeStripe(account)) as server:
        yield server


@pytest.fixture
def demo() -> Iterator[RunningServer]:
    with serve(FakeStripe.from_dir(DEMO)) as server:
        yield server


def client(server: RunningServer, key: str = KEY) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": server.url}, max_network_retries=0)


def get(
    server: RunningServer, path: str, key: str | None = KEY, method: str = "GET"
) -> tuple[int, dict[str, str], dict]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    request = urllib.request.Request(server.url + path, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def newest_first(objs: list[dict]) -> list[str]:
    return [o["id"] for o in sorted(objs, key=lambda o: (o["created"], o["id"]), reverse=True)]


def walk(server: RunningServer, path: str) -> tuple[list[str], int]:
    """Page through a list with urllib; returns ids and the number of pages."""
    ids: list[str] = []
    pages = 0
    sep = "&" if "?" in path else "?"
    url = f"{path}{sep}limit=100"
    while True:
        status, _, body = get(server, url)
        assert status == 200, body
        pages += 1
        ids += [o["id"] for o in body["data"]]
        if not body["has_more"]:
            return ids, pages
        url = f"{path}{sep}limit=100&starting_after={ids[-1]}"


# -- lists and pagination -----------------------------------------------------------------------


def test_customers_paginate_newest_first(shared: RunningServer, account: dict) -> None:
    ids, pages = walk(shared, "/v1/customers")
    assert ids == newest_first(account["customers"])
    assert (len(ids), pages) == (250, 3)
    status, headers, body = get(shared, "/v1/customers")
    assert (status, len(body["data"]), body["has_more"], body["url"], body["object"]) == (
        200,
        10,
        True,
        "/v1/customers",
        "list",
    )
    assert headers["Content-Type"] == "application/json"
    assert re.fullmatch(r"req_[A-Za-z0-9]{14}", headers["Request-Id"])


def test_ending_before_pages_backwards(shared: RunningServer, account: dict) -> None:
    expected = newest_first(account["customers"])
    _, _, body = get(shared, f"/v1/customers?limit=5&ending_before={expected[12]}")
    assert [o["id"] for o in body["data"]] == expected[7:12]
    assert body["has_more"] is True
    _, _, body = get(shared, f"/v1/customers?limit=5&ending_before={expected[3]}")
    assert ([o["id"] for o in body["data"]], body["has_more"]) == (expected[0:3], False)


def test_stripe_python_list_and_raw_request(shared: RunningServer, account: dict) -> None:
    c = client(shared)
    ids = [p.id for p in c.v1.customers.list({"limit": 100}).auto_paging_iter()]
    assert ids == newest_first(account["customers"])
    page = c.v1.products.list({"limit": 100})
    assert [p.id for p in page.data] == newest_first(account["products"])
    raw = c.raw_request("get", "/v1/products", limit=100)
    assert [p["id"] for p in json.loads(raw.body)["data"]] == newest_first(account["products"])
    ids, after = [], None
    while True:
        params = {"limit": 100, "status": "all", **({"starting_after": after} if after else {})}
        body = json.loads(c.raw_request("get", "/v1/subscriptions", **params).body)
        ids += [s["id"] for s in body["data"]]
        if not body["has_more"]:
            break
        after = ids[-1]
    assert ids == newest_first(account["subscriptions"])


def test_filters(shared: RunningServer, account: dict) -> None:
    prices = account["prices"]
    active, archived = walk(shared, "/v1/prices?active=true")[0], walk(shared, "/v1/prices?active=false")[0]
    assert active == newest_first([p for p in prices if p["active"]])
    assert archived == newest_first([p for p in prices if not p["active"]])
    assert archived  # the generator always archives some prices
    product = account["products"][0]["id"]
    assert walk(shared, f"/v1/prices?product={product}")[0] == newest_first(
        [p for p in prices if p["product"] == product]
    )
    assert walk(shared, "/v1/products?active=false")[0] == newest_first(
        [p for p in account["products"] if not p["active"]]
    )
    customer = account["customers"][5]
    assert walk(shared, f"/v1/subscriptions?customer={customer['id']}&status=all")[0] == [
        s["id"] for s in account["subscriptions"] if s["customer"] == customer["id"]
    ]
    email = customer["email"]
    assert email is not None
    assert walk(shared, f"/v1/customers?email={urllib.request.quote(email)}")[0] == [
        c["id"] for c in account["customers"] if c["email"] == email
    ]
    assert walk(shared, f"/v1/customers?email={urllib.request.quote(email.swapcase())}")[0] == [
        c["id"] for c in account["customers"] if c["email"] == email.swapcase()
    ]
    cut = account["customers"][100]["created"]
    assert walk(shared, f"/v1/customers?created[gte]={cut}")[0] == newest_first(account["customers"][:101])
    assert walk(shared, f"/v1/customers?created[lt]={cut}&created[gt]={cut - 300}")[0] == [
        account["customers"][101]["id"],
        account["customers"][102]["id"],
    ]
    assert walk(shared, f"/v1/customers?created={cut}")[0] == [account["customers"][100]["id"]]


def test_subscription_status_default_all_specific(shared: RunningServer, account: dict) -> None:
    subs = account["subscriptions"]
    hidden = {"canceled", "incomplete_expired"}
    assert walk(shared, "/v1/subscriptions")[0] == newest_first([s for s in subs if s["status"] not in hidden])
    assert walk(shared, "/v1/subscriptions?status=all")[0] == newest_first(subs)
    assert len(walk(shared, "/v1/subscriptions?status=all")[0]) == 250
    for status in ("canceled", "trialing", "incomplete_expired"):
        assert walk(shared, f"/v1/subscriptions?status={status}")[0] == newest_first(
            [s for s in subs if s["status"] == status]
        )
    assert walk(shared, "/v1/subscriptions?status=ended")[0] == newest_first([s for s in subs if s["status"] in hidden])
    status, _, body = get(shared, "/v1/subscriptions?status=bogus")
    assert (status, body["error"]["param"]) == (400, "status")


def test_subscriptions_have_periods_only_on_items(shared: RunningServer) -> None:
    _, _, body = get(shared, "/v1/subscriptions?limit=3")
    for sub in body["data"]:
        assert "current_period_start" not in sub
        assert all("current_period_start" in item for item in sub["items"]["data"])


# -- expand -------------------------------------------------------------------------------------


def test_expand_in_lists(shared: RunningServer, account: dict) -> None:
    customers = {c["id"]: c for c in account["customers"]}
    _, _, body = get(shared, "/v1/subscriptions?limit=3&expand[]=data.customer")
    for sub in body["data"]:
        assert sub["customer"] == customers[sub["customer"]["id"]]
    _, _, body = get(shared, "/v1/subscriptions?limit=3&expand[0]=data.customer&expand[1]=data.items")
    assert all(isinstance(s["customer"], dict) for s in body["data"])
    prices = {p["id"]: p for p in account["prices"]}
    _, _, body = get(shared, "/v1/products?limit=100&expand[]=data.default_price")
    for product in body["data"]:
        default = product["default_price"]
        hidden = ("tiers", "currency_options")  # Stripe shows them only when expanded themselves
        assert default is None or default == {k: v for k, v in prices[default["id"]].items() if k not in hidden}
    _, _, body = get(shared, "/v1/prices?limit=3&expand[]=data.product")
    assert [p["product"]["object"] for p in body["data"]] == ["product"] * 3


def test_expand_on_retrieve_and_depth_limit(demo: RunningServer) -> None:
    path = "/v1/subscriptions/sub_DemoAlice00001?expand[]=customer&expand[]=items.data.price.product"
    status, _, sub = get(demo, path)
    assert status == 200
    assert sub["customer"]["email"] == "Alice.Smith@Example.com"
    assert [i["price"]["product"]["name"] for i in sub["items"]["data"]] == ["Pro", "Team seats", "Starter"]
    status, _, body = get(demo, "/v1/subscriptions?expand[]=data.items.data.price.product")
    assert (status, body["error"]["param"]) == (400, "expand")
    assert body["error"]["message"].startswith("You cannot expand more than 4 levels")
    status, _, body = get(demo, "/v1/subscriptions?expand[]=customer")
    assert (status, body["error"]["param"]) == (400, "expand")
    status, _, sub = get(demo, "/v1/subscriptions/sub_DemoHeidi00001?expand[]=customer")
    assert sub["customer"] == {"id": "cus_DemoHeidi00001", "object": "customer", "deleted": True}
    sub = client(demo).v1.subscriptions.retrieve("sub_DemoBob0000001", {"expand": ["customer"]})
    assert sub.customer.email == "bob.jones@example.com"


# -- errors -------------------------------------------------------------------------------------


def test_auth_errors(shared: RunningServer) -> None:
    status, _, body = get(shared, "/v1/products", key=None)
    assert status == 401
    assert body["error"]["message"].startswith("You did not provide an API key.")
    assert get(shared, "/v1/products", key="sk_test_wrongKeyabcd")[0] == 200
    status, headers, body = get(shared, "/v1/products", key="pk_test_abcdefgh1234")
    assert (status, body) == (
        401,
        {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided: pk_test_****1234"}},
    )
    assert "Request-Id" in headers
    with pytest.raises(stripe.AuthenticationError) as info:
        client(shared, "nonsense_key").v1.products.list()
    assert info.value.http_status == 401
    live_shaped = "sk_live_" + "abcdefghXYZ9"  # built, so no live-key pattern sits in the source
    assert mask_key(live_shaped) == "sk_live_****XYZ9"


def test_api_key_must_match_when_given() -> None:
    with serve(FakeStripe({}, api_key="sk_test_right")) as server:
        assert get(server, "/v1/products", key="sk_test_right")[0] == 200
        status, _, body = get(server, "/v1/products", key="sk_test_wrongabcd")
        assert (status, body["error"]["message"]) == (401, "Invalid API Key provided: sk_test_****abcd")


def test_not_found_bad_limit_method(shared: RunningServer, account: dict) -> None:
    status, _, body = get(shared, "/v1/products/prod_x")
    assert (status, body) == (
        404,
        {
            "error": {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "param": "id",
                "message": "No such product: 'prod_x'",
            }
        },
    )
    for limit in ("0", "101", "abc"):
        status, _, body = get(shared, f"/v1/products?limit={limit}")
        assert (status, body["error"]["param"], body["error"]["type"]) == (400, "limit", "invalid_request_error")
    status, _, body = get(shared, "/v1/customers?starting_after=cus_missing")
    assert (status, body["error"]["code"], body["error"]["param"]) == (400, "resource_missing", "starting_after")
    assert get(shared, "/v1/charges")[0] == 404
    assert get(shared, "/v1/products?bogus=1")[2]["error"]["param"] == "bogus"
    assert get(shared, "/v1/products", method="POST")[0] == 405
    with pytest.raises(stripe.InvalidRequestError) as info:
        client(shared).v1.products.list({"limit": 101})
    assert (info.value.http_status, info.value.param) == (400, "limit")
    with pytest.raises(stripe.InvalidRequestError) as info:
        client(shared).v1.customers.retrieve("cus_nope")
    assert (info.value.http_status, info.value.code) == (404, "resource_missing")
    product = account["products"][0]
    assert client(shared).v1.products.retrieve(product["id"]).to_dict() == product


def test_deleted_customer(demo: RunningServer) -> None:
    ids, _ = walk(demo, "/v1/customers")
    assert "cus_DemoHeidi00001" not in ids and len(ids) == 7
    assert get(demo, "/v1/customers/cus_DemoHeidi00001")[2] == {
        "id": "cus_DemoHeidi00001",
        "object": "customer",
        "deleted": True,
    }
    assert client(demo).v1.customers.retrieve("cus_DemoHeidi00001").deleted is True


# -- subscription items -------------------------------------------------------------------------


def test_item_overflow_and_subscription_items() -> None:
    fake = FakeStripe.from_dir(DEMO, items_page_size=2)
    stored = [i["id"] for i in fake.get("subscriptions", "sub_DemoAlice00001")["items"]["data"]]
    with serve(fake) as server:
        _, _, sub = get(server, "/v1/subscriptions/sub_DemoAlice00001")
        assert [i["id"] for i in sub["items"]["data"]] == stored[:2]
        assert (sub["items"]["has_more"], sub["items"]["url"]) == (
            True,
            "/v1/subscription_items?subscription=sub_DemoAlice00001",
        )
        _, _, page = get(server, "/v1/subscription_items?subscription=sub_DemoAlice00001&limit=2")
        assert ([i["id"] for i in page["data"]], page["has_more"]) == (stored[:2], True)
        _, _, page = get(
            server, f"/v1/subscription_items?subscription=sub_DemoAlice00001&limit=2&starting_after={stored[1]}"
        )
        assert ([i["id"] for i in page["data"]], page["has_more"]) == (stored[2:], False)
        assert page["data"][0]["price"]["id"] == "price_DemoStarterMo"
        status, _, body = get(server, "/v1/subscription_items")
        assert (status, body["error"]["param"]) == (400, "subscription")
        _, _, item = get(server, f"/v1/subscription_items/{stored[2]}")
        assert (item["id"], item["quantity"], item["subscription"]) == (stored[2], 2, "sub_DemoAlice00001")
        items = client(server).v1.subscription_items.list({"subscription": "sub_DemoAlice00001"})
        assert [i.id for i in items.data] == stored
        _, _, listed = get(server, "/v1/subscriptions?limit=100")
        bob = next(s for s in listed["data"] if s["id"] == "sub_DemoBob0000001")
        assert bob["items"]["has_more"] is False


# -- faults, latency, rate limit ----------------------------------------------------------------


def test_status_faults() -> None:
    fake = FakeStripe.from_dir(DEMO)
    with serve(fake) as server:
        fake.inject(Fault("status", status=500, times=2))
        assert [get(server, "/v1/products")[0] for _ in range(3)] == [500, 500, 200]
        fake.inject(Fault("status", status=429, should_retry=False))
        status, headers, body = get(server, "/v1/products")
        assert (status, headers.get("Stripe-Should-Retry"), body["error"]["code"]) == (429, "false", "rate_limit")
        fake.inject(Fault("status", status=429))
        status, headers, _ = get(server, "/v1/products")
        assert (status, "Stripe-Should-Retry" in headers) == (429, False)
        fake.inject(Fault("status", status=503, path_prefix="/v1/customers"))
        assert get(server, "/v1/products")[0] == 200
        with pytest.raises(stripe.APIError) as info:
            client(server).v1.customers.list()
        assert info.value.http_status == 503
        assert fake.faults == []


def test_reset_not_json_truncated_sleep() -> None:
    fake = FakeStripe.from_dir(DEMO)
    with serve(fake) as server:
        c = client(server)
        fake.inject(Fault("reset"))
        with pytest.raises(stripe.APIConnectionError):
            c.v1.products.list()
        fake.inject(Fault("not_json"))
        with pytest.raises(stripe.APIError, match="Invalid response body"):
            c.v1.products.list()
        full = urllib.request.urlopen(
            urllib.request.Request(server.url + "/v1/products", headers={"Authorization": f"Bearer {KEY}"})
        ).read()
        fake.inject(Fault("truncated"))
        response = urllib.request.urlopen(
            urllib.request.Request(server.url + "/v1/products", headers={"Authorization": f"Bearer {KEY}"})
        )
        half = response.read()
        assert (response.status, int(response.headers["Content-Length"])) == (200, len(full) // 2)
        assert half == full[: len(full) // 2]
        fake.inject(Fault("sleep", delay=0.3))
        start = time.monotonic()
        assert get(server, "/v1/products")[0] == 200
        assert time.monotonic() - start >= 0.3


def test_latency() -> None:
    with serve(FakeStripe({}, latency=0.2)) as server:
        start = time.monotonic()
        get(server, "/v1/products")
        assert time.monotonic() - start >= 0.2


def test_rate_limit_per_endpoint() -> None:
    fake = FakeStripe.from_dir(DEMO, rate_limit=5)
    with serve(fake) as server:
        answers = [get(server, "/v1/customers") for _ in range(8)]
        assert [a[0] for a in answers] == [200] * 5 + [429] * 3
        assert answers[-1][2] == {
            "error": {
                "type": "invalid_request_error",
                "code": "rate_limit",
                "message": answers[-1][2]["error"]["message"],
            }
        }
        assert answers[-1][2]["error"]["message"].startswith("Request rate limit exceeded")
        assert "Stripe-Should-Retry" not in answers[-1][1]
        assert get(server, "/v1/products")[0] == 200
        assert fake.rate_limited == 3
        with pytest.raises(stripe.RateLimitError):
            client(server).v1.customers.list()
        time.sleep(1.05)
        assert get(server, "/v1/customers")[0] == 200


def test_requests_are_recorded() -> None:
    fake = FakeStripe.from_dir(DEMO)
    with serve(fake) as server:
        client(server).v1.subscriptions.list({"limit": 3, "status": "all", "expand": ["data.customer"]})
        get(server, "/v1/products?expand[]=data.default_price&expand[]=data.x")
        assert [(r.method, r.path, r.query) for r in fake.requests] == [
            ("GET", "/v1/subscriptions", {"limit": "3", "status": "all", "expand[0]": "data.customer"}),
            ("GET", "/v1/products", {"expand[]": ["data.default_price", "data.x"]}),
        ]
        fake.reset_requests()
        assert fake.requests == []


# -- mutation: helpers, control endpoints, CLI --------------------------------------------------


def test_mutation_helpers() -> None:
    fake = FakeStripe.from_dir(DEMO)
    with serve(fake) as server:
        assert get(server, "/v1/products/prod_DemoStarter01")[2]["name"] == "Starter"
        new = fake.update("products", "prod_DemoStarter01", name="Starter+")
        assert new["name"] == "Starter+"
        assert get(server, "/v1/products/prod_DemoStarter01")[2] == new
        fake.update("prices", "price_DemoStarterMo", active=False)
        _, _, sub = get(server, "/v1/subscriptions/sub_DemoDave000001")
        assert sub["items"]["data"][0]["price"]["active"] is False
        fake.remove("products", "prod_DemoLegacy001")
        assert get(server, "/v1/products/prod_DemoLegacy001")[0] == 404
        fake.upsert("products", {**new, "id": "prod_DemoNew000001", "created": 1780000000})
        assert walk(server, "/v1/products")[0][0] == "prod_DemoNew000001"
        fake.delete_customer("cus_DemoAlice00001")
        assert "cus_DemoAlice00001" not in walk(server, "/v1/customers")[0]
        _, _, sub = get(server, "/v1/subscriptions/sub_DemoAlice00001")
        assert sub["status"] == "canceled" and sub["ended_at"] == sub["canceled_at"]
        with pytest.raises(KeyError):
            fake.update("products", "prod_missing", name="x")


def test_control_endpoints_and_mutate_cli(demo: RunningServer, capsys: pytest.CaptureFixture[str]) -> None:
    url = demo.url
    assert main(["mutate", url, "update", "products", "prod_DemoPro000001", '{"name": "Pro 2"}']) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "Pro 2"
    assert get(demo, "/v1/products/prod_DemoPro000001")[2]["name"] == "Pro 2"
    assert main(["mutate", url, "cancel", "subscriptions", "sub_DemoBob0000001"]) == 0
    assert "sub_DemoBob0000001" not in walk(demo, "/v1/subscriptions")[0]
    assert main(["mutate", url, "delete", "customers", "cus_DemoCarol00001"]) == 0
    assert get(demo, "/v1/customers/cus_DemoCarol00001")[2]["deleted"] is True
    capsys.readouterr()
    assert main(["mutate", url, "requests"]) == 0
    assert json.loads(capsys.readouterr().out) == {"count": 3, "rate_limited": 0}  # /_fake/ not recorded
    assert main(["mutate", url, "update", "products", "prod_missing", "{}"]) == 1


def test_serve_refuses_non_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        serve(FakeStripe({}), host="0.0.0.0")


def test_command_line_server() -> None:
    cmd = [sys.executable, "-m", "reconcile.testing.fakestripe", "--fixtures", str(DEMO), "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.fullmatch(r"fake Stripe \(a test double\) serving (.+) on (http://127\.0\.0\.1:\d+)\n", line)
        assert match and match.group(1) == str(DEMO)
        request = urllib.request.Request(
            match.group(2) + "/v1/products?limit=100", headers={"Authorization": f"Bearer {KEY}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert len(json.loads(response.read())["data"]) == 4
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    refused = subprocess.run([*cmd[:-2], "--host", "0.0.0.0"], capture_output=True, text=True, cwd=ROOT)
    assert refused.returncode == 2 and "non-loopback" in refused.stderr
