"""Properties of diff + apply over random states (hypothesis).

1. Snapshot level: random remote and local snapshots (the records of reconcile/core/snapshot.py), the
   local one stored in the database. After the apply, the database is the remote snapshot's
   projection, except rows kept (newer locally) or skipped (a missing reference) and orphans, which
   stay as they were; a second diff plans no write; diffing alone writes nothing.
2. Command level: a small random account served by the fake Stripe (a test double on loopback),
   random drift after a first sync: ``--dry-run`` and ``--check`` write nothing, the apply makes the
   database equal Stripe (orphans stay), a second run finds nothing to do.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.core.diff import diff
from reconcile.core.snapshot import CustomerRec, FeatureRec, ItemRec, PriceRec, ProductRec, Snapshot, SubscriptionRec
from reconcile.db.apply import apply_plan
from reconcile.db.local import known_ids, load_local
from reconcile.models import Feature, Price, Product, ProductFeature, StripeUser, Subscription, SubscriptionItem
from reconcile.testing.generate import generate_account
from tests.conftest import run
from tests.helpers.dbstate import clear_db, dump_db, expected_state, stored_state

pytestmark = pytest.mark.django_db

ALL = ("products", "customers", "subscriptions")
FETCHED = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)  # when the "remote" pages were requested
SYNCED = (None, FETCHED - timedelta(hours=1), FETCHED + timedelta(hours=1))  # unstamped, older, newer
PRODUCTS = [f"prod_P{i}" for i in range(4)]
PRICES = [f"price_R{i}" for i in range(5)]
CUSTOMERS = [f"cus_C{i}" for i in range(4)]
SUBSCRIPTIONS = [f"sub_S{i}" for i in range(4)]
FEATURES = ["feat_a", "feat_b", "feat_c"]

text = st.text(alphabet="abcXYZ é-", max_size=6)
maybe_text = st.none() | text
moment = st.none() | st.integers(1_600_000_000, 1_900_000_000).map(lambda s: datetime.fromtimestamp(s, timezone.utc))
metadata = st.dictionaries(st.sampled_from(["plan", "tier", "features"]), text, max_size=2)


def product(pid: str):
    features = st.lists(st.sampled_from(FEATURES), unique=True, max_size=3).map(lambda f: tuple(sorted(f)))
    return st.builds(
        ProductRec,
        id=st.just(pid),
        name=text,
        description=maybe_text,
        active=st.booleans(),
        metadata=metadata,
        features=features,
    )


def price(pid: str, products: list[str]):
    return st.builds(
        PriceRec,
        id=st.just(pid),
        product_id=st.sampled_from(products),
        amount=st.none() | st.integers(-(10**12), 10**12),
        currency=st.sampled_from(["usd", "eur", "jpy"]),
        frequency=st.none() | st.sampled_from(["month_1", "year_1", "month_3"]),
        active=st.booleans(),
        nickname=maybe_text,
    )


def customer(cid: str):
    return st.builds(CustomerRec, id=st.just(cid), email=maybe_text, name=maybe_text)


@st.composite
def subscription(draw, sid: str, customers: list[str], prices: list[str]):
    items = ()
    if prices:
        numbers = draw(st.lists(st.integers(0, 2), unique=True, max_size=3))
        items = tuple(
            ItemRec(
                id=f"si_{sid}_{n}",
                price_id=draw(st.sampled_from(prices)),
                quantity=draw(st.none() | st.integers(0, 2**31 - 1)),
                current_period_start=draw(moment),
                current_period_end=draw(moment),
            )
            for n in sorted(numbers)
        )
    return SubscriptionRec(
        id=sid,
        customer_id=draw(st.sampled_from(customers)),
        status=draw(st.sampled_from(["active", "canceled", "trialing", "past_due", "incomplete", "paused"])),
        current_period_start=draw(moment),
        current_period_end=draw(moment),
        cancel_at=draw(moment),
        cancel_at_period_end=draw(st.booleans()),
        canceled_at=draw(moment),
        ended_at=draw(moment),
        trial_start=draw(moment),
        trial_end=draw(moment),
        created=draw(moment),
        metadata=draw(metadata),
        items=items,
    )


@st.composite
def records(draw, ids: list[str], make, like: dict | None = None) -> dict:
    """Records for a random subset of ``ids``. Where ``like`` (the stored side) has the id, the record
    is usually there too, half the time an identical copy."""
    out = {}
    for oid in ids:
        if like and oid in like:
            keep, same = draw(st.integers(0, 4)) > 0, draw(st.booleans())
            if keep:
                out[oid] = like[oid] if same else draw(make(oid))
        elif draw(st.booleans()):
            out[oid] = draw(make(oid))
    return out


def mostly(known, pool: list[str]) -> list[str]:
    """Ids to refer to: what exists (listed three times: more likely) and now and then any id."""
    return sorted(known) * 3 + pool


@st.composite
def states(draw):
    """(local snapshot with synced_at, remote snapshot). The local side is consistent (it is stored);
    the remote side may refer to what neither side has."""
    lp = draw(records(PRODUCTS, product))
    lr = draw(records(PRICES, lambda i: price(i, sorted(lp)))) if lp else {}
    lc = draw(records(CUSTOMERS, customer))
    ls = draw(records(SUBSCRIPTIONS, lambda i: subscription(i, sorted(lc), sorted(lr)))) if lc else {}
    named = {f for p in lp.values() for f in p.features} | set(draw(st.lists(st.sampled_from(FEATURES), unique=True)))
    local_features = {f: FeatureRec(id=f) for f in sorted(named)}
    synced = {}
    for model, table in (("Product", lp), ("Price", lr), ("StripeUser", lc), ("Subscription", ls)):
        for oid in table:
            synced[(model, oid)] = draw(st.sampled_from(SYNCED))
    local = Snapshot(lp, lr, lc, ls, local_features, synced_at={k: v for k, v in synced.items() if v is not None})

    rp = draw(records(PRODUCTS, product, lp))
    rr = draw(records(PRICES, lambda i: price(i, mostly(rp.keys() | lp.keys(), PRODUCTS)), lr))
    rc = draw(records(CUSTOMERS, customer, lc))
    customers, prices = mostly(rc.keys() | lc.keys(), CUSTOMERS), mostly(rr.keys() | lr.keys(), PRICES)
    rs = draw(records(SUBSCRIPTIONS, lambda i: subscription(i, customers, prices), ls))
    tables = (("Product", rp), ("Price", rr), ("StripeUser", rc), ("Subscription", rs))
    remote = Snapshot(
        rp,
        rr,
        rc,
        rs,
        {f: FeatureRec(id=f) for p in rp.values() for f in p.features},
        complete=frozenset({"products", "prices", "customers", "subscriptions"}),
        fetched_at={(model, oid): FETCHED for model, table in tables for oid in table},
    )
    return local, remote


def store(local: Snapshot) -> None:
    stamp = local.synced_at.get
    Feature.objects.bulk_create([Feature(id=f) for f in sorted(local.features)])
    Product.objects.bulk_create(
        [
            Product(
                id=p.id,
                name=p.name,
                description=p.description,
                active=p.active,
                metadata=p.metadata,
                synced_at=stamp(("Product", p.id)),
            )
            for p in local.products.values()
        ]
    )
    ProductFeature.objects.bulk_create(
        [ProductFeature(product_id=p.id, feature_id=f) for p in local.products.values() for f in p.features]
    )
    Price.objects.bulk_create(
        [
            Price(
                id=r.id,
                product_id=r.product_id,
                amount=r.amount,
                currency=r.currency,
                frequency=r.frequency,
                active=r.active,
                nickname=r.nickname,
                synced_at=stamp(("Price", r.id)),
            )
            for r in local.prices.values()
        ]
    )
    StripeUser.objects.bulk_create(
        [
            StripeUser(customer_id=c.id, email=c.email, name=c.name, synced_at=stamp(("StripeUser", c.id)))
            for c in local.customers.values()
        ]
    )
    Subscription.objects.bulk_create(
        [
            Subscription(
                id=s.id,
                stripe_user_id=s.customer_id,
                status=s.status,
                current_period_start=s.current_period_start,
                current_period_end=s.current_period_end,
                cancel_at=s.cancel_at,
                cancel_at_period_end=s.cancel_at_period_end,
                canceled_at=s.canceled_at,
                ended_at=s.ended_at,
                trial_start=s.trial_start,
                trial_end=s.trial_end,
                created=s.created,
                metadata=s.metadata,
                synced_at=stamp(("Subscription", s.id)),
            )
            for s in local.subscriptions.values()
        ]
    )
    SubscriptionItem.objects.bulk_create(
        [
            SubscriptionItem(
                id=i.id,
                subscription_id=s.id,
                price_id=i.price_id,
                quantity=i.quantity,
                current_period_start=i.current_period_start,
                current_period_end=i.current_period_end,
            )
            for s in local.subscriptions.values()
            for i in s.items
        ]
    )


def projection(local: Snapshot, remote: Snapshot) -> dict:
    """What the database must hold after the apply, worked out without the diff: Stripe's record,
    unless the stored row is newer than the page (kept) or it refers to what neither side has
    (skipped); rows absent from Stripe (orphans) stay."""

    def newer(model: str, oid: str) -> bool:
        synced = local.synced_at.get((model, oid))
        return synced is not None and synced > FETCHED

    def merge(model: str, ours: dict, theirs: dict, blocked=frozenset()) -> dict:
        out = dict(ours)
        for oid, rec in theirs.items():
            if oid in blocked or (oid in ours and newer(model, oid)):
                continue
            out[oid] = rec
        return out

    products = merge("Product", local.products, remote.products)
    bad_prices = {p.id for p in remote.prices.values() if p.product_id not in products}
    prices_ok = (set(remote.prices) - bad_prices) | set(local.prices)
    customers_ok = set(remote.customers) | set(local.customers)
    bad_subs = {
        s.id
        for s in remote.subscriptions.values()
        if s.customer_id not in customers_ok or any(i.price_id not in prices_ok for i in s.items)
    }
    return {
        "products": products,
        "prices": merge("Price", local.prices, remote.prices, bad_prices),
        "customers": merge("StripeUser", local.customers, remote.customers),
        "subscriptions": merge("Subscription", local.subscriptions, remote.subscriptions, bad_subs),
        "features": {**local.features, **remote.features},
    }


def as_dict(snapshot: Snapshot) -> dict:
    return {
        "products": dict(snapshot.products),
        "prices": dict(snapshot.prices),
        "customers": dict(snapshot.customers),
        "subscriptions": dict(snapshot.subscriptions),
        "features": snapshot.features,
    }


@settings(max_examples=50, deadline=None)
@given(states(), st.integers(1, 3))
def test_after_the_apply_the_database_is_the_remote_projection_and_a_second_diff_is_empty(state, batch_size):
    local, remote = state
    clear_db()
    store(local)
    loaded = load_local(ALL)
    assert as_dict(loaded) == as_dict(local)  # the local side reads back what was stored
    assert loaded.synced_at == local.synced_at

    before = dump_db()
    plan = diff(remote, loaded, known=known_ids())
    assert dump_db() == before  # diffing (a dry run's work) writes nothing

    with transaction.atomic():
        result = apply_plan(plan, remote.fetched_at, batch_size)
    assert result.conflicts == []  # nobody else wrote in between
    after = load_local(ALL)
    assert as_dict(after) == projection(local, remote)

    again = diff(remote, after, known=known_ids())
    assert again.writes == (), [op.describe() for op in again.writes]
    assert {op.id for op in again.operations} <= {op.id for op in plan.operations}  # only skips and orphans remain
    steady = dump_db()
    with transaction.atomic():
        apply_plan(again, remote.fetched_at, batch_size)
    assert dump_db() == steady


# -- through the commands, against the fake Stripe -------------------------------------------------

DRIFTS = (
    "rename_product",
    "archive_product",
    "remove_product",
    "renickname_price",
    "reemail_customer",
    "delete_customer",
    "add_customer",
    "cancel_subscription",
    "requantify_item",
    "remove_subscription",
)


def drift(fake, kind: str, pick: int) -> None:
    def one(resource: str, live=True):
        objs = [o for o in fake.all(resource) if not (live and o.get("deleted"))]
        return objs[pick % len(objs)] if objs else None

    if kind == "rename_product" and (p := one("products")):
        fake.update("products", p["id"], name=p["name"] + " v2")
    elif kind == "archive_product" and (p := one("products")):
        fake.update("products", p["id"], active=not p["active"])
    elif kind == "remove_product" and (p := one("products")):
        for pr in fake.all("prices"):
            if pr["product"] == p["id"] and not any(
                i["price"]["id"] == pr["id"] for s in fake.all("subscriptions") for i in s["items"]["data"]
            ):
                fake.remove("prices", pr["id"])
        if not any(pr["product"] == p["id"] for pr in fake.all("prices")):
            fake.remove("products", p["id"])
    elif kind == "renickname_price" and (pr := one("prices")):
        fake.update("prices", pr["id"], nickname=f"nick {pick}")
    elif kind == "reemail_customer" and (c := one("customers")):
        fake.update("customers", c["id"], email=f"changed{pick}@example.com")
    elif kind == "delete_customer" and (c := one("customers")):
        fake.delete_customer(c["id"])
    elif kind == "add_customer":
        fake.upsert(
            "customers",
            {
                "id": f"cus_Added{pick:09d}",
                "object": "customer",
                "created": 1_790_000_000 + pick,
                "email": f"added{pick}@example.com",
                "name": f"Added {pick}",
                "metadata": {},
            },
        )
    elif kind == "cancel_subscription" and (s := one("subscriptions")):
        fake.cancel_subscription(s["id"], at=1_790_000_000 + pick)
    elif kind == "requantify_item" and (s := one("subscriptions")) and s["items"]["data"]:
        items = s["items"]["data"]
        items[pick % len(items)]["quantity"] = pick + 2
        fake.upsert("subscriptions", s)
    elif kind == "remove_subscription" and (s := one("subscriptions")):
        fake.remove("subscriptions", s["id"])


def load_account(fake, account: dict) -> None:
    for resource in ("subscriptions", "prices", "products", "customers"):
        for obj in fake.all(resource):
            fake.remove(resource, obj["id"])
    for resource, objs in account.items():
        for obj in objs:
            fake.upsert(resource, obj)
    fake.reset_requests()


@pytest.fixture
def shared_fake(start_fake, reconcile_settings):
    """One fake Stripe for all examples of a test; each example loads its own account into it."""
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "RATE_LIMIT_TOTAL": 10_000.0}
    return start_fake({})


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    customers=st.integers(0, 8),
    seed=st.integers(0, 10_000),
    first_sync=st.booleans(),
    drifts=st.lists(st.tuples(st.sampled_from(DRIFTS), st.integers(0, 50)), max_size=5),
)
def test_dry_run_and_check_write_nothing_and_the_apply_makes_the_database_equal_stripe(
    shared_fake, customers, seed, first_sync, drifts
):
    clear_db()
    load_account(shared_fake, generate_account(customers, seed=seed))
    if first_sync:
        assert run("pull_stripe").code == 0
    for kind, pick in drifts:
        drift(shared_fake, kind, pick)
    before = dump_db()
    stored_before = stored_state()

    dry = run("pull_stripe", "--dry-run", "--format", "json", "-v", "2")
    assert dry.code == 0, dry.err
    report = json.loads(dry.out)
    check = run("pull_stripe", "--check")
    assert check.code == (0 if report["in_sync"] else 1), check.err
    assert dump_db() == before

    applied = run("pull_stripe")
    assert applied.code == 0, applied.err
    skipped = {op["id"] for op in report["operations"] if op["action"] == "skip" and op["model"] == "Subscription"}
    deleted = {c["id"] for c in shared_fake.all("customers") if c.get("deleted")}
    assert skipped == {
        s["id"]
        for s in shared_fake.all("subscriptions")
        if s["customer"] in deleted and s["customer"] not in stored_before["customers"]
    }
    expected = expected_state(shared_fake, skip_subscriptions=skipped)
    stored = stored_state()
    for table, rows in expected.items():
        orphans = set(stored[table]) - set(rows)
        assert {k: stored[table][k] for k in rows} == rows, table
        assert {k: stored[table][k] for k in orphans} == {k: stored_before[table][k] for k in orphans}, table

    second = run("pull_stripe")
    assert second.code == 0 and "No changes detected" in second.out and "Applied" not in second.out, second.out
