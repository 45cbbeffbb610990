"""SQL statements grow with batches, not with objects; API requests equal pages. Counts are exact
measures (not timings), so they are asserted here; timings live in `make bench`."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from reconcile.core.diff import diff
from reconcile.core.snapshot import PriceRec, ProductRec, Snapshot
from reconcile.db.apply import apply_plan
from reconcile.db.local import load_local
from reconcile.testing.generate import generate_account
from tests.conftest import run

pytestmark = pytest.mark.django_db
WRITES = ("INSERT", "UPDATE", "DELETE", "COPY")


def writes(ctx: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in ctx.captured_queries if q["sql"].lstrip().upper().startswith(WRITES)]


def products_snapshot(n: int, name: str = "Product") -> Snapshot:
    products = {
        f"prod_{i:05d}": ProductRec(f"prod_{i:05d}", f"{name} {i}", None, True, {"tier": str(i % 3)}, ("feat_a",))
        for i in range(n)
    }
    prices = {
        f"price_{i:05d}_{k}": PriceRec(
            f"price_{i:05d}_{k}", f"prod_{i:05d}", 100 * k or None, "usd", "month_1", True, None
        )
        for i in range(n)
        for k in range(3)
    }
    return Snapshot(
        products=products, prices=prices, features=frozenset({"feat_a"}), complete=frozenset({"products", "prices"})
    )


def test_first_apply_of_1000_products_and_3000_prices_takes_tens_of_statements():
    remote = products_snapshot(1000)
    plan = diff(remote, load_local(["products"]))
    assert len(plan.writes) == 1 + 1000 + 3000
    with CaptureQueriesContext(connection) as ctx:
        apply_plan(plan, batch_size=500)
    # per batch of 500: one SELECT (the lost-write guard) and one INSERT (PostgreSQL: one COPY);
    # plus the savepoint, the features and the links
    assert len(ctx.captured_queries) == 21, [q["sql"][:40] for q in ctx.captured_queries]
    assert len(writes(ctx)) == 11


def test_updating_1000_products_takes_tens_of_statements():
    apply_plan(diff(products_snapshot(1000), load_local(["products"])))
    plan = diff(products_snapshot(1000, name="Renamed"), load_local(["products"]))
    assert plan.summary()["update"] == 1000
    with CaptureQueriesContext(connection) as ctx:
        apply_plan(plan, batch_size=500)
    assert len(ctx.captured_queries) <= 10, len(ctx.captured_queries)


def test_a_no_op_run_loads_with_one_query_per_model_and_writes_nothing():
    apply_plan(diff(products_snapshot(1000), load_local(["products"])))
    with CaptureQueriesContext(connection) as ctx:
        plan = diff(products_snapshot(1000), load_local(["products"]))
        apply_plan(plan)
    assert plan.in_sync
    assert writes(ctx) == []
    assert len(ctx.captured_queries) == 4  # links, products, prices, features


def test_2000_customers_and_subscriptions_first_pull_and_no_op(start_fake):
    account = generate_account(2000, seed=11, n_products=10)
    fake = start_fake(account)
    with CaptureQueriesContext(connection) as ctx:
        first = run("pull_stripe")
    assert first.code == 0
    objects = sum(len(v) for v in account.values())
    items = sum(len(s["items"]["data"]) for s in account["subscriptions"])
    statements = len(ctx.captured_queries)
    assert objects + items > 6000
    # under 1 per 100 rows written; PostgreSQL loads each call's rows with one COPY, where SQLite
    # needs an INSERT per batch its parameter limit allows (the subscription items: 6 instead of 1)
    expected = {"sqlite": (44, 19), "postgresql": (41, 14)}.get(connection.vendor)
    if expected:
        assert (statements, len(writes(ctx))) == expected
    assert statements <= 50, statements
    # requests equal pages: each listing's page count, nothing else
    pages = {
        "/v1/products": sum(-(-sum(p["active"] == a for p in account["products"]) // 100) or 1 for a in (True, False)),
        "/v1/prices": sum(-(-sum(p["active"] == a for p in account["prices"]) // 100) or 1 for a in (True, False)),
        "/v1/customers": -(-sum(not c.get("deleted") for c in account["customers"]) // 100),
        "/v1/subscriptions": -(-len(account["subscriptions"]) // 100),
    }
    seen = {}
    for r in fake.requests:
        seen[r.path] = seen.get(r.path, 0) + 1
    assert seen == pages
    fake.reset_requests()
    with CaptureQueriesContext(connection) as ctx:
        second = run("pull_stripe")
    assert "No changes detected" in second.out.splitlines()[-1]
    assert writes(ctx) == []
    assert len(fake.requests) == sum(pages.values())


def test_bulk_adapts_datetimes_exactly_as_django_does():
    from datetime import datetime, timedelta, timezone

    from reconcile.db.bulk import _adapter
    from reconcile.models import Subscription

    adapt = _adapter(Subscription._meta.get_field("created"), connection)
    values = [
        datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        datetime(2024, 1, 2, 3, 4, 5, 123, tzinfo=timezone(timedelta(hours=2))),
        datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),  # a second time: from the cache
        None,
    ]
    assert [adapt(v) for v in values] == [connection.ops.adapt_datetimefield_value(v) for v in values]
