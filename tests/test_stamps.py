"""Stamps: the fetch's times by (model, id), one dict per model behind a mapping's interface."""

from __future__ import annotations

import sys
from datetime import datetime, timezone

from reconcile.core.snapshot import Stamps

T0 = datetime(2025, 12, 31, tzinfo=timezone.utc)
T1 = datetime(2026, 1, 1, tzinfo=timezone.utc)
T2 = datetime(2026, 1, 2, tzinfo=timezone.utc)


def test_stamps_behave_as_the_dict_of_tuple_keys_they_replace():
    plain = {("Product", "prod_1"): T1, ("Subscription", "sub_1"): T2, ("Subscription", "sub_2"): T1}
    stamps = Stamps(plain)
    assert dict(stamps) == plain and stamps == plain and len(stamps) == 3
    assert stamps[("Subscription", "sub_1")] == T2
    assert stamps.get(("Price", "price_1")) is None and stamps.get(("Price", "price_1"), T2) == T2
    assert stamps.get(("Product", "prod_2"), T1) == T1
    assert ("Product", "prod_1") in stamps and ("Product", "sub_1") not in stamps and "prod_1" not in stamps
    assert stamps.setdefault(("Product", "prod_1"), T2) == T1
    assert stamps.setdefault(("Price", "price_1"), T2) == T2
    del stamps[("Subscription", "sub_2")]
    assert sorted(stamps.items()) == [
        (("Price", "price_1"), T2),
        (("Product", "prod_1"), T1),
        (("Subscription", "sub_1"), T2),
    ]


def test_a_stamp_costs_no_tuple_of_its_own():
    ids = [f"sub_{i:06d}" for i in range(10_000)]
    stamps, plain = Stamps(), {}
    for oid in ids:
        stamps[("Subscription", oid)] = T1
        plain[("Subscription", oid)] = T1
    held = sum(map(sys.getsizeof, stamps._tables.values())) + sys.getsizeof(stamps._tables)
    tuples = sum(sys.getsizeof(key) for key in plain)
    assert held <= sys.getsizeof(plain) + 1_000  # the same one table, and no tuples besides
    assert tuples >= 10_000 * 56  # what the keys of the plain dict add


def test_a_fetchs_stamps_are_read_from_its_records_and_a_time_set_by_key_wins():
    from reconcile.core.snapshot import ProductRec

    def product(oid: str) -> ProductRec:
        return ProductRec(id=oid, name="P", description=None, active=True, metadata={})

    stamped, unstamped = product("prod_1"), product("prod_2")
    object.__setattr__(stamped, "fetched_at", T1)  # what the fetch does as it keeps a record
    stamps = Stamps(records={"Product": {"prod_1": stamped, "prod_2": unstamped}})
    assert stamps.get(("Product", "prod_1")) == T1 and ("Product", "prod_1") in stamps
    assert stamps.get(("Product", "prod_2"), T2) == T2 and ("Product", "prod_2") not in stamps
    assert dict(stamps) == {("Product", "prod_1"): T1} and len(stamps) == 1
    assert stamps.setdefault(("Product", "prod_2"), T2) == T2  # a row found absent, say
    stamps[("Product", "prod_1")] = T2
    assert dict(stamps) == {("Product", "prod_1"): T2, ("Product", "prod_2"): T2}
    # the stamp is no part of the record's value: equal records, one encoding, no change shown
    assert stamped == product("prod_1")
    assert "fetched_at" not in repr(stamped)


def test_a_plans_stamps_hold_only_the_times_its_records_do_not():
    """``runner.stamps``: a create or update reads its time off its record (the apply does), so
    the plan's stamps keep no reference to the fetch's dicts of records and hold only the times
    of rows no record of the plan gives: a customer linked or given a user, a subscription whose
    items are recreated, a row marked deleted (the time the listing began)."""
    from reconcile.core.plan import Create, CreateUser, LinkUser, Operations, Plan, RecreateItems, Update
    from reconcile.core.snapshot import CustomerRec, ProductRec, Snapshot, SubscriptionRec
    from reconcile.runner import plan_times, stamps

    def fetched(record, at):
        object.__setattr__(record, "fetched_at", at)
        return record

    new = fetched(ProductRec(id="prod_1", name="P", description=None, active=True, metadata={}), T1)
    gone = ProductRec(id="prod_2", name="Q", description=None, active=True, metadata={}, deleted=True)  # ours
    customers = {cid: fetched(CustomerRec(id=cid, email=None, name=None), T2) for cid in ("cus_1", "cus_2", "cus_3")}
    times = ("current_period_start", "current_period_end", "cancel_at", "canceled_at", "ended_at")
    times += ("trial_start", "trial_end", "created")
    sub = SubscriptionRec(
        id="sub_1",
        customer_id="cus_1",
        status="active",
        cancel_at_period_end=False,
        metadata={},
        **dict.fromkeys(times),
    )
    sub = fetched(sub, T1)
    remote = Snapshot(
        products={"prod_1": new},
        customers=customers,
        subscriptions={"sub_1": sub},
        fetched_at=Stamps(
            records={"Product": {"prod_1": new}, "StripeUser": customers, "Subscription": {"sub_1": sub}}
        ),
        listed_at=T0,
    )
    plan = Plan(
        operations=(
            Create("Product", "prod_1", new),
            Update("Product", "prod_2", gone, ()),
            LinkUser("cus_1", 7, "a@example.com"),
            CreateUser("cus_2", (("email", "b@example.com"),), also_link=("cus_3",)),
            RecreateItems("sub_1", (), ()),
        )
    )
    found = stamps(plan, remote)
    assert found._records == {}
    assert dict(found) == {
        ("Product", "prod_2"): T0,
        ("StripeUser", "cus_1"): T2,
        ("StripeUser", "cus_2"): T2,
        ("StripeUser", "cus_3"): T2,
        ("Subscription", "sub_1"): T1,
    }
    # a plan file gets every write's time, the records' own included
    assert plan_times(plan, found) == {**dict(found), ("Product", "prod_1"): T1}
    # a time set by key wins over the record's own, and a plan's creates held as records are found
    remote.fetched_at[("Product", "prod_1")] = T0
    assert stamps(plan, remote)[("Product", "prod_1")] == T0
    first_pull = Plan(operations=Operations([new]))
    assert dict(stamps(first_pull, remote)) == {("Product", "prod_1"): T0}
    del remote.fetched_at[("Product", "prod_1")]
    assert dict(stamps(first_pull, remote)) == {}
