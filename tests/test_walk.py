"""Concurrent walks of a list return exactly what a sequential walk returns."""

from __future__ import annotations

import pytest

from reconcile.conf import get_config
from reconcile.stripe.remote import fetch_remote
from reconcile.testing.generate import generate_account

RESOURCES = ("products", "customers", "subscriptions")


def records(snapshot):
    return (snapshot.products, snapshot.prices, snapshot.customers, snapshot.subscriptions, snapshot.complete)


@pytest.fixture
def slow_account(start_fake):
    account = generate_account(700, seed=21)
    return account, start_fake(account, latency=0.16)


def test_a_split_walk_equals_a_sequential_walk(slow_account, reconcile_settings):
    account, fake = slow_account
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "CONCURRENCY": 1}
    sequential = fetch_remote(get_config(), RESOURCES)
    plain = len(fake.requests)
    assert not any("created[gte]" in r.query or "created[lt]" in r.query for r in fake.requests)
    fake.reset_requests()
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "CONCURRENCY": 8, "RATE_LIMIT": 25.0}
    concurrent = fetch_remote(get_config(), RESOURCES)
    assert records(concurrent) == records(sequential)
    assert len(concurrent.customers) == sum(not c.get("deleted") for c in account["customers"])
    split = [r for r in fake.requests if "created[lt]" in r.query]
    assert split, "the walk never split"
    assert len(fake.requests) <= 3 * plain  # a split costs a partial page per part, never a runaway


@pytest.mark.parametrize(
    ("latency", "rate", "concurrency", "expected"),
    [(0.005, 10_000, 8, 1), (0.1, 100, 8, 1), (0.3, 25, 8, 8), (0.2, 25, 8, 5), (0.3, 25, 4, 4), (0.3, 2, 8, 1)],
)
def test_a_walk_splits_only_when_latency_not_the_rate_limit_is_what_binds(latency, rate, concurrency, expected):
    from types import SimpleNamespace

    from reconcile.stripe.walk import parallelism

    fetcher = SimpleNamespace(latency=latency, config=SimpleNamespace(rate_limit=rate, concurrency=concurrency))
    assert parallelism(fetcher) == expected


def test_the_token_bucket_spaces_requests_per_endpoint_and_in_all():
    from reconcile.stripe.fetch import TokenBucket

    now = [0.0]
    slept = []
    bucket = TokenBucket(rate=10, total=15, clock=lambda: now[0], sleep=slept.append)
    for _ in range(3):
        bucket.take("customers")
    bucket.take("prices")
    assert slept == pytest.approx([0.1, 0.2, 0.2 + 1 / 15])  # prices waits for the account-wide slot


def test_split_parts_are_disjoint_and_cover_the_rest():
    from datetime import datetime, timezone

    from reconcile.stripe.fetch import Page
    from reconcile.stripe.walk import Part, split

    page = Page(
        [{"id": f"cus_{i}", "created": 2_000_000_000 - 10 * i} for i in range(100)], True, datetime.now(timezone.utc)
    )
    parts = split(Part(), page, 4)
    assert parts[0] == Part(2_000_000_000 - 990 - 950, None, "cus_99")
    assert [(p.gte, p.lt) for p in parts[1:]] == [
        (2_000_000_000 - 990 - 950 * 2, 2_000_000_000 - 990 - 950),
        (2_000_000_000 - 990 - 950 * 3, 2_000_000_000 - 990 - 950 * 2),
        (None, 2_000_000_000 - 990 - 950 * 3),
    ]
    assert split(Part(), page, 1) == [Part(None, None, "cus_99")]
    assert split(Part(gte=2_000_000_000 - 1000), page, 4) == [Part(2_000_000_000 - 1000, None, "cus_99")]
