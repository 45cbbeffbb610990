"""SQL statements grow with batches, not with objects; API requests equal pages. Counts are exact
measures (not timings), so they are asserted here; timings live in `make bench`."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from reconcile.core.diff import diff
from reconcile.core.snapshot import FeatureRec, PriceRec, ProductRec, Snapshot
from reconcile.db.apply import apply_plan
from reconcile.db.local import load_local
from reconcile.testing.generate import generate_account
from tests.conftest import run

pytestmark = pytest.mark.django_db
WRITES = ("INSERT", "UPDATE", "DELETE", "COPY")


def writes(ctx: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in ctx.captured_queries if q["sql"].lstrip().upper().startswith(WRITES)]


def kinds(ctx: CaptureQueriesContext) -> dict[str, int]:
    """Statements by their first word (SELECT, INSERT, ...); an executemany ("500 times: INSERT ...")
    is one statement, pipelined in one round trip."""
    return dict(Counter(re.sub(r"^\d+ times: ", "", q["sql"]).split(None, 1)[0].upper() for q in ctx.captured_queries))


def products_snapshot(n: int, name: str = "Product") -> Snapshot:
    products = {
        f"prod_{i:05d}": ProductRec(
            id=f"prod_{i:05d}",
            name=f"{name} {i}",
            description=None,
            active=True,
            metadata={"tier": str(i % 3)},
            features=("feat_a",),
        )
        for i in range(n)
    }
    prices = {
        f"price_{i:05d}_{k}": PriceRec(
            id=f"price_{i:05d}_{k}",
            product_id=f"prod_{i:05d}",
            amount=100 * k or None,
            currency="usd",
            frequency="month_1",
            active=True,
            nickname=None,
        )
        for i in range(n)
        for k in range(3)
    }
    return Snapshot(
        products=products,
        prices=prices,
        features={"feat_a": FeatureRec(id="feat_a")},
        complete=frozenset({"products", "prices"}),
    )


def test_first_apply_of_1000_products_and_3000_prices_takes_tens_of_statements():
    remote = products_snapshot(1000)
    plan = diff(remote, load_local(["products"]))
    assert len(plan.writes) == 1 + 1000 + 3000
    with CaptureQueriesContext(connection) as ctx:
        apply_plan(plan, batch_size=500)
    # per model: one SELECT (the lost-write guard reads up to GUARD_CHUNK rows at once); per batch
    # of 500 products (2) and prices (6) one INSERT (PostgreSQL: one COPY per model); plus one INSERT
    # of features and one per batch of product-feature links (2)
    if connection.vendor == "postgresql":
        assert kinds(ctx) == {"SAVEPOINT": 1, "SELECT": 2, "INSERT": 1, "COPY": 4, "RELEASE": 1}
    else:
        assert kinds(ctx) == {"SAVEPOINT": 1, "SELECT": 2, "INSERT": 11, "RELEASE": 1}


def test_updating_1000_products_takes_tens_of_statements():
    apply_plan(diff(products_snapshot(1000), load_local(["products"])))
    plan = diff(products_snapshot(1000, name="Renamed"), load_local(["products"]))
    assert plan.summary()["update"] == 1000
    with CaptureQueriesContext(connection) as ctx:
        apply_plan(plan, batch_size=500)
    # one guard SELECT for the 1,000 rows, an UPDATE per batch of 500
    assert kinds(ctx) == {"SAVEPOINT": 1, "SELECT": 1, "UPDATE": 2, "RELEASE": 1}


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
    assert objects + items > 6000
    # under 1 statement per 100 rows written; PostgreSQL reads the large tables through server-side
    # cursors and loads each call's new rows with one COPY (SQLite: an INSERT per batch its
    # parameter limit allows)
    assert kinds(ctx) == (
        # features load like the other resources now (a cursor): one SELECT became a DECLARE;
        # (+1 SELECT, +1 INSERT: the event cursor, stored with the writes). Nothing stored before
        # the fetch: no stored row is read again after it, and the lost-write guard reads each
        # model's rows with one SELECT (GUARD_CHUNK), whose new rows go in with one COPY.
        {"DECLARE": 2, "SELECT": 10, "INSERT": 3, "COPY": 6, "SAVEPOINT": 2, "RELEASE": 2}
        if connection.vendor == "postgresql"
        # SQLite: the run's busy timeout read, set and restored (SQLITE_BUSY_TIMEOUT)
        # (everywhere +1 SELECT, +1 INSERT: the event cursor, stored with the writes)
        else {"PRAGMA": 3, "SELECT": 10, "INSERT": 20, "SAVEPOINT": 2, "RELEASE": 2}
        if connection.vendor == "sqlite"
        # MySQL/MariaDB: the run lock's SELECT GET_LOCK and SELECT RELEASE_LOCK
        else {"SELECT": 12, "INSERT": 20, "SAVEPOINT": 2, "RELEASE": 2}
    )
    # requests equal pages: each listing's page count, nothing else
    pages = {
        "/v1/products": sum(-(-sum(p["active"] == a for p in account["products"]) // 100) or 1 for a in (True, False)),
        "/v1/prices": sum(-(-sum(p["active"] == a for p in account["prices"]) // 100) or 1 for a in (True, False)),
        "/v1/customers": -(-sum(not c.get("deleted") for c in account["customers"]) // 100),
        "/v1/subscriptions": -(-len(account["subscriptions"]) // 100),
        # one page of the rest of the items for each subscription of more than 10 items
        "/v1/subscription_items": sum(len(s["items"]["data"]) > 10 for s in account["subscriptions"]),
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

    from reconcile.db.bulk import adapter
    from reconcile.models import Subscription

    adapt = adapter(Subscription._meta.get_field("created"), connection)
    values = [
        datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        datetime(2024, 1, 2, 3, 4, 5, 123, tzinfo=timezone(timedelta(hours=2))),
        datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),  # a second time: from the cache
        None,
    ]
    assert [adapt(v) for v in values] == [connection.ops.adapt_datetimefield_value(v) for v in values]


@pytest.mark.django_db
@pytest.mark.parametrize("batch_size", [1, 500])
@pytest.mark.parametrize("order", [1, -1])
def test_inserted_datetimes_read_back_as_the_orm_writes_them(batch_size, order):
    """Whole UTC seconds go to SQLite as Unix times (formatted by SQLite); a batch holding a fraction
    of a second or another zone in a column keeps Django's text: every stored value is the one the
    ORM would have stored, and reads back equal."""
    from datetime import datetime, timedelta, timezone

    from reconcile.db.bulk import insert
    from reconcile.models import StripeUser, Subscription

    StripeUser.objects.create(customer_id="cus_1")
    values = [
        datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        datetime(2024, 1, 2, 3, 4, 5, 123, tzinfo=timezone.utc),
        datetime(2024, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))),
        datetime(1000, 1, 1, tzinfo=timezone.utc),
        None,
    ]
    rows = [(f"sub_{n}", "cus_1", "active", False, {}, value, value) for n, value in enumerate(values)]
    columns = ["id", "stripe_user_id", "status", "cancel_at_period_end", "metadata", "created", "current_period_end"]
    insert(Subscription, columns, rows[::order], batch_size)  # a batch whose first row is whole, or not
    for n, value in enumerate(values):
        Subscription.objects.create(id=f"orm_{n}", stripe_user_id="cus_1", status="active", created=value)
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, created, current_period_end FROM reconcile_subscription ORDER BY id")
        stored = {oid: (created, end) for oid, created, end in cursor.fetchall()}
    for n, value in enumerate(values):
        assert stored[f"sub_{n}"] == (stored[f"orm_{n}"][0],) * 2, value
        assert Subscription.objects.get(id=f"sub_{n}").created == value


@pytest.mark.django_db
def test_a_batch_of_whole_seconds_goes_through_one_compiled_function(monkeypatch):
    """Stripe's times are whole UTC seconds: such a batch is converted row by row by one function,
    not column by column (``bulk._sqlite_params``); a row of the wrong width is still refused."""
    from datetime import datetime, timezone

    from reconcile.db import bulk
    from reconcile.models import StripeUser, Subscription

    if connection.vendor != "sqlite":
        pytest.skip("SQLite's way of inserting (PostgreSQL's is COPY)")
    general = []
    monkeypatch.setattr(bulk, "_adapted", lambda *args: general.append(args) or pytest.fail("the general way"))
    StripeUser.objects.create(customer_id="cus_1")
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    rows = [(f"sub_{n}", "cus_1", "active", False, {}, when, None) for n in range(3)]
    columns = ["id", "stripe_user_id", "status", "cancel_at_period_end", "metadata", "created", "current_period_end"]
    assert bulk.insert(Subscription, columns, rows, 500) == 3
    assert general == []
    assert list(Subscription.objects.values_list("created", "current_period_end", "metadata").distinct()) == [
        (when, None, {})
    ]
    with pytest.raises(ValueError, match="a row of 6 values for 7 columns"):
        bulk.insert(Subscription, columns, [("sub_9", "cus_1", "active", False, {}, when, None), rows[0][:6]], 500)


@pytest.mark.parametrize("value", [{}, [], {"a": 1}, [1, {"b": None}], None])
def test_bulk_adapts_json_exactly_as_django_does(value):
    from reconcile.db.bulk import adapter
    from reconcile.models import Price

    def plain(adapted):  # PostgreSQL: psycopg's Jsonb wrapper, which compares by identity
        return getattr(adapted, "obj", adapted)

    for name in ("tiers", "currency_options", "custom_unit_amount"):
        field = Price._meta.get_field(name)
        assert plain(adapter(field, connection)(value)) == plain(field.get_db_prep_value(value, connection))


@pytest.mark.django_db
def test_inserted_json_reads_back_as_the_orm_writes_it():
    """JSON goes to the database as Django's adapter would send it (on PostgreSQL, COPY takes it as
    the text json.dumps makes): every value reads back equal, whatever it holds."""
    from reconcile.db.bulk import insert
    from reconcile.models import Price, Product

    Product.objects.create(id="prod_1", name="P")
    values = [{}, [], {"a": 1, "é": 'x\n"y\\z\t'}, [1, {"b": None, "c": [2.5, True]}], {"n": "\x7f"}]
    rows = [
        (f"price_{n}", "prod_1", "usd", True, False, v, v if isinstance(v, dict) else {}, v or None)
        for n, v in enumerate(values)
    ]
    columns = ["id", "product_id", "currency", "active", "deleted", "tiers", "currency_options", "custom_unit_amount"]
    insert(Price, columns, rows, 500)
    for n, value in enumerate(values):
        price = Price.objects.get(id=f"price_{n}")
        assert price.tiers == value and price.custom_unit_amount == (value or None), value
        assert price.currency_options == (value if isinstance(value, dict) else {})
