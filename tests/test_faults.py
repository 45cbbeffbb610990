"""Trust under faults: what a run does when Stripe (here the project's fake Stripe, a test double on
loopback) or the database misbehaves. A failed run exits 2 with a message naming the request or the
setting, and leaves every table exactly as it was; a fault that clears within the retries is invisible
in the result."""

from __future__ import annotations

import os
import re
import signal

import pytest
from django.db import DatabaseError, connection

from reconcile.models import Price, Product, StripeUser, Subscription
from reconcile.stripe.fetch import Fetcher
from reconcile.testing.fakestripe import Fault, serve
from reconcile.testing.generate import generate_account
from tests.conftest import FAKE_KEY, demo_data, run
from tests.helpers.dbstate import dump_db, expected_state, stored_state
from tests.helpers.procs import GatedFake, child_database_url, row_counts, start_command, wait_for_first_request

pytestmark = pytest.mark.django_db

TRIES = 4  # MAX_RETRIES 3 in the reconcile_settings fixture: one try and three retries
HEIDI = "sub_DemoHeidi00001"  # its customer is deleted in Stripe: always skipped


def requests_to(fake, path: str) -> list:
    return [r for r in fake.requests if r.path == path]


def drift(fake) -> None:
    """Change Stripe so that a successful run would write to every table."""
    fake.update("products", "prod_DemoStarter01", name="Starter 2027")
    fake.update("prices", "price_DemoStarterMo", nickname="Starter monthly (2027)")
    fake.update("customers", "cus_DemoBob0000001", email="robert@example.com")
    fake.cancel_subscription("sub_DemoBob0000001", at=1_790_000_000)


@pytest.fixture
def synced(start_fake, reconcile_settings):
    """A database in sync with the demo account, then Stripe drifts; requests are counted from here."""
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "TIMEOUT": 0.3}
    fake = start_fake()
    assert run("pull_stripe").code == 0
    drift(fake)
    fake.reset_requests()
    return fake


@pytest.fixture
def delays(monkeypatch):
    """Record every backoff the fetcher computes: (attempt, rate_limited, seconds)."""
    seen: list[tuple[int, bool, float]] = []
    original = Fetcher._delay

    def recording(self, attempt, *, rate_limited):
        seconds = original(self, attempt, rate_limited=rate_limited)
        seen.append((attempt, rate_limited, seconds))
        return seconds

    monkeypatch.setattr(Fetcher, "_delay", recording)
    return seen


# -- 5xx, resets, timeouts ------------------------------------------------------------------------

PERSISTENT = {
    "500": (
        Fault("status", "/v1/customers", times=TRIES, status=500),
        "Stripe kept failing on {what} after 4 tries: HTTP 500 (request id req_",
    ),
    "502": (
        Fault("status", "/v1/customers", times=TRIES, status=502),
        "Stripe kept failing on {what} after 4 tries: HTTP 502 (request id req_",
    ),
    "503": (
        Fault("status", "/v1/customers", times=TRIES, status=503),
        "Stripe kept failing on {what} after 4 tries: HTTP 503 (request id req_",
    ),
    "reset": (Fault("reset", "/v1/customers", times=TRIES), "Could not reach {base} for {what} after 4 tries: "),
    "timeout": (
        Fault("sleep", "/v1/customers", times=TRIES, delay=0.8),
        "Could not reach {base} for {what} after 4 tries: ",
    ),
}


@pytest.mark.parametrize("name", list(PERSISTENT))
def test_a_fault_that_outlasts_the_retries_exits_2_naming_the_request_and_writes_nothing(
    synced, reconcile_settings, delays, name
):
    fault, message = PERSISTENT[name]
    before = dump_db()
    synced.inject(fault)
    result = run("pull_stripe")
    assert result.code == 2
    base = reconcile_settings.RECONCILE["API_BASE"]
    assert message.format(what="GET /v1/customers?limit=100", base=base) in result.err
    assert result.out == ""
    assert len(requests_to(synced, "/v1/customers")) == TRIES
    assert [attempt for attempt, _, _ in delays] == [1, 2, 3]
    assert dump_db() == before


def test_a_timeout_message_says_it_timed_out(synced):
    synced.inject(Fault("sleep", "/v1/customers", times=TRIES, delay=0.8))
    result = run("update_stripe_customers")
    assert result.code == 2
    assert re.search(
        r"Could not reach http://127\.0\.0\.1:\d+ for GET /v1/customers\?limit=100 after 4 tries: .*[Tt]imed out",
        result.err,
    ), result.err


TRANSIENT = {
    "500": Fault("status", "/v1/customers", times=TRIES - 1, status=500),
    "502": Fault("status", "/v1/customers", times=TRIES - 1, status=502),
    "503": Fault("status", "/v1/customers", times=TRIES - 1, status=503),
    "reset": Fault("reset", "/v1/customers", times=TRIES - 1),
    "timeout": Fault("sleep", "/v1/customers", times=TRIES - 1, delay=0.8),
}


@pytest.mark.parametrize("name", list(TRANSIENT))
def test_a_fault_that_clears_within_the_retries_is_invisible_in_the_result(synced, delays, name):
    synced.inject(TRANSIENT[name])
    result = run("pull_stripe")
    assert result.code == 0, result.err
    assert "Applied: " in result.out
    assert len(requests_to(synced, "/v1/customers")) == TRIES  # three failures, then the page
    assert [attempt for attempt, _, _ in delays] == [1, 2, 3]
    assert stored_state() == expected_state(synced, skip_subscriptions={HEIDI})
    assert run("pull_stripe", "--check").code == 0


def test_retries_back_off_exponentially_with_jitter(synced, reconcile_settings, delays):
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "RETRY_BASE_DELAY": 0.01, "RETRY_MAX_DELAY": 0.03}
    synced.inject(Fault("status", "/v1/customers", times=TRIES - 1, status=503))
    assert run("update_stripe_customers").code == 0
    assert [(a, limited) for a, limited, _ in delays] == [(1, False), (2, False), (3, False)]
    # base * 2 ** (attempt - 1), capped at RETRY_MAX_DELAY, times a jitter factor in [0.5, 1]
    for (attempt, _, seconds), cap in zip(delays, (0.01, 0.02, 0.03), strict=True):
        assert cap / 2 <= seconds <= cap, (attempt, seconds)


# -- 429 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("should_retry", [True, False, None], ids=["should-retry-true", "false", "no-header"])
def test_429_waits_and_completes_whatever_stripe_should_retry_says(synced, delays, should_retry):
    synced.inject(Fault("status", "/v1/subscriptions", times=2, status=429, should_retry=should_retry))
    result = run("pull_stripe")
    assert result.code == 0, result.err
    assert len(requests_to(synced, "/v1/subscriptions")) == 3
    assert [(a, limited) for a, limited, _ in delays] == [(1, True), (2, True)]
    assert stored_state() == expected_state(synced, skip_subscriptions={HEIDI})


def _windowed_account():
    account = generate_account(40, seed=11)
    live = [c for c in account["customers"] if not c.get("deleted")]
    assert len(live) == 40  # this seed deletes none
    return account


def test_the_fakes_rate_limiter_is_met_by_backoff(start_fake, reconcile_settings):
    """More requests per second than the fake allows (5 per endpoint): 429s, waits, same result."""
    reconcile_settings.RECONCILE = {
        **reconcile_settings.RECONCILE,
        "PAGE_SIZE": 4,  # ten pages of customers, several of subscriptions
        "RETRY_BASE_DELAY": 0.3,  # a 429 waits 0.3-0.6 s, then 0.6-1.2 s, then 1.2-2.4 s: past the 1 s window
        "RETRY_MAX_DELAY": 3.0,
    }
    account = _windowed_account()
    fake = start_fake(account, rate_limit=5)
    result = run("pull_stripe")
    assert result.code == 0, result.err
    assert fake.rate_limited > 0  # the limiter did answer 429
    assert stored_state() == expected_state(fake, skip_subscriptions=_skipped(account))
    assert run("pull_stripe", "--check").code == 0


def test_the_clients_own_rate_limit_keeps_under_the_fakes(start_fake, reconcile_settings):
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "PAGE_SIZE": 6, "RATE_LIMIT": 3.5}
    account = _windowed_account()
    fake = start_fake(account, rate_limit=5)
    result = run("update_stripe_customers")
    assert result.code == 0, result.err
    assert len(requests_to(fake, "/v1/customers")) == 7  # 40 customers, 6 a page: more than the fake allows a second
    assert fake.rate_limited == 0
    assert stored_state(("customers",)) == expected_state(fake, ("customers",))


def _skipped(account) -> set[str]:
    deleted = {c["id"] for c in account["customers"] if c.get("deleted")}
    return {s["id"] for s in account["subscriptions"] if s["customer"] in deleted}


# -- bodies that are not list pages ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["not_json", "truncated"])
def test_a_page_that_is_not_json_exits_2_naming_the_request(synced, kind):
    before = dump_db()
    synced.inject(Fault(kind, "/v1/subscriptions", times=TRIES))
    result = run("pull_stripe")
    assert result.code == 2
    assert "Stripe answered GET /v1/subscriptions?status=all&limit=100 with a body that is not JSON" in result.err
    assert result.out == ""
    assert dump_db() == before


# -- the key --------------------------------------------------------------------------------------


def test_a_rejected_key_exits_2_naming_the_setting(start_fake):
    fake = start_fake(demo_data(), api_key="sk_test_TheOtherKey000")
    result = run("pull_stripe")
    assert result.code == 2
    assert "Stripe rejected the API key (HTTP 401) on GET /v1/" in result.err
    assert "RECONCILE['API_KEY']" in result.err
    sent = [(r.path, sorted(r.query.items())) for r in fake.requests]
    assert sent and all(sent.count(request) == 1 for request in sent)  # a 401 is not retried
    assert dump_db() == {label: [] for label in dump_db()}


def test_a_key_of_the_wrong_shape_exits_2_naming_the_setting(start_fake, reconcile_settings):
    fake = start_fake()
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "API_KEY": "sk_test_has spaces"}
    result = run("update_stripe_products")
    assert result.code == 2
    assert "has a character no Stripe key has" in result.err and "RECONCILE['API_KEY']" in result.err
    assert fake.requests == []  # refused before any request


def test_a_key_stripe_rejects_exits_2_naming_the_setting(start_fake, reconcile_settings):
    start_fake(api_key=FAKE_KEY)
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "API_KEY": "sk_test_NotTheRightKey00"}
    result = run("update_stripe_products")
    assert result.code == 2
    assert "HTTP 401" in result.err and "RECONCILE['API_KEY']" in result.err


def test_no_key_at_all_exits_2_naming_the_setting(fake_stripe, reconcile_settings, monkeypatch):
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "API_KEY": ""}
    result = run("pull_stripe")
    assert result.code == 2
    assert "No Stripe API key is set. Check RECONCILE['API_KEY']" in result.err
    assert fake_stripe.requests == []


# -- a killed run ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_run_killed_mid_fetch_writes_nothing(tmp_path):
    database = child_database_url(tmp_path)
    fake = GatedFake(demo_data())
    server = serve(fake)
    try:
        child = start_command(database, server.url, FAKE_KEY, "pull_stripe")
        try:
            wait_for_first_request(fake, child)
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
            child.communicate()
        assert child.returncode == -signal.SIGKILL
        fake.release()
    finally:
        fake.release()
        server.stop()
    counts = row_counts(database)
    assert counts and set(counts.values()) == {0}, counts


# -- the database fails mid-apply -----------------------------------------------------------------


def test_a_database_error_mid_apply_rolls_everything_back_and_exits_2(start_fake, reconcile_settings):
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "BATCH_SIZE": 50}
    account = generate_account(150, seed=7)
    fake = start_fake(account)
    assert run("update_stripe_products").code == 0  # some state to keep
    fake.update("products", account["products"][0]["id"], name="Renamed in Stripe")
    before = dump_db()
    inserts = []

    def fail_on_second_batch(execute, sql, params, many, context):
        # the 2nd batch of new customer or subscription rows (SQLite: the customers' 2nd INSERT;
        # PostgreSQL: the customers went in with one COPY, the subscriptions' COPY fails)
        tables = [connection.ops.quote_name(t) for t in ("reconcile_stripeuser", "reconcile_subscription")]
        starts = tuple(f"{verb} {t}".upper() for t in tables for verb in ("INSERT INTO", "COPY"))
        if sql.lstrip().upper().startswith(starts):
            inserts.append(sql)
            if len(inserts) == 2:
                raise DatabaseError("injected: disk I/O error on the 2nd batch")
        return execute(sql, params, many, context)

    escaped = None
    with connection.execute_wrapper(fail_on_second_batch):
        try:
            result = run("pull_stripe")
        except DatabaseError as exc:  # the spec wants exit 2 and a message, not a traceback
            escaped, result = exc, None
    assert len(inserts) == 2  # the first batch was inserted before the failure
    assert dump_db() == before  # the product rename and the first batch were rolled back
    assert escaped is None, f"the database error escaped the command as a traceback: {escaped!r}"
    assert result.code == 2
    assert "injected: disk I/O error" in result.err
    assert re.search(r"rolled back|nothing (was )?(written|applied)|database is as it was", result.err), result.err


# -- odd objects ----------------------------------------------------------------------------------


def test_odd_objects_are_skipped_with_the_reason_and_the_rest_is_applied(start_fake):
    data = demo_data()
    customers = {c["id"]: c for c in data["customers"]}
    customers["cus_DemoCarol00001"]["email"] = 12345  # unexpected type
    products = {p["id"]: p for p in data["products"]}
    del products["prod_DemoLegacy001"]["active"]  # a required field missing
    subscriptions = {s["id"]: s for s in data["subscriptions"]}
    subscriptions["sub_DemoGrace00002"]["cancel_at_period_end"] = "no"  # unexpected type
    prices = {p["id"]: p for p in data["prices"]}
    del prices["price_DemoStarterYr"]["nickname"]  # an optional field missing: stored as NULL
    del customers["cus_DemoAlice00001"]["name"]  # an optional field missing: stored as NULL
    start_fake(data)
    result = run("pull_stripe")
    assert result.code == 0, result.err
    for line in (
        "  ! skip Product prod_DemoLegacy001: field 'active' is missing",
        "  ! skip StripeUser cus_DemoCarol00001: field 'email' should be str, got int 12345",
        "  ! skip Subscription sub_DemoGrace00002: field 'cancel_at_period_end' should be bool, got str 'no'",
    ):
        assert line in result.out, result.out
    assert "  ! skip Price price_DemoLegacyMo1: its product prod_DemoLegacy001" in result.out
    assert "  ! skip Subscription sub_DemoCarol00001: its customer cus_DemoCarol00001" in result.out
    assert not Product.objects.filter(id="prod_DemoLegacy001").exists()
    assert not StripeUser.objects.filter(customer_id="cus_DemoCarol00001").exists()
    assert not Subscription.objects.filter(id__in=["sub_DemoGrace00002", "sub_DemoCarol00001"]).exists()
    assert Price.objects.get(id="price_DemoStarterYr").nickname is None
    assert StripeUser.objects.get(customer_id="cus_DemoAlice00001").name is None
    # everything else is exactly Stripe's
    clean = {
        "products": [p for p in data["products"] if p["id"] != "prod_DemoLegacy001"],
        "prices": [p for p in data["prices"] if p["id"] != "price_DemoLegacyMo1"],
        "customers": [c for c in data["customers"] if c["id"] != "cus_DemoCarol00001"],
        "subscriptions": data["subscriptions"],
    }
    expected = expected_state(clean, skip_subscriptions={HEIDI, "sub_DemoGrace00002", "sub_DemoCarol00001"})
    assert stored_state() == expected


@pytest.mark.django_db
def test_the_sdk_path_and_the_fast_path_read_the_same(fake_stripe):
    """Without stripe-python's requestor at hand, requests go through ``raw_request``: same data,
    same errors."""
    from reconcile.conf import get_config
    from reconcile.errors import FetchError
    from reconcile.stripe.fetch import Fetcher

    fast, plain = Fetcher(get_config()), Fetcher(get_config())
    plain._requestor = None
    assert fast._requestor is not None
    for path, params in (("/v1/customers", {"limit": 3}), ("/v1/subscriptions", {"status": "all", "limit": 100})):
        assert fast.get(path, params)[0] == plain.get(path, params)[0]
    for fetcher in (fast, plain):
        with pytest.raises(FetchError, match="No such customer: 'cus_nope'"):
            fetcher.get("/v1/customers/cus_nope")
