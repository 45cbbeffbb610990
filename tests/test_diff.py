"""The diff on literal snapshots: no database, no network."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from reconcile.core.diff import UserPolicy, diff
from reconcile.core.plan import Action, Change, Create, CreateUser, LinkUser, Orphan, RecreateItems, Skip, Update
from reconcile.core.snapshot import (
    CustomerRec,
    FeatureRec,
    ItemRec,
    PriceRec,
    ProductRec,
    Rejected,
    Snapshot,
    SubscriptionRec,
)
from reconcile.core.users import UserDirectory
from reconcile.stripe.remote import KnownIds

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
T1 = datetime(2026, 2, 1, tzinfo=timezone.utc)


def product(pid="prod_1", name="Pro", features=(), **kw):
    return ProductRec(
        id=pid,
        name=name,
        description=kw.get("description"),
        active=kw.get("active", True),
        metadata=kw.get("metadata", {}),
        features=features,
        deleted=kw.get("deleted", False),
    )


def price(pid="price_1", product_id="prod_1", amount=1000, **kw):
    return PriceRec(
        id=pid,
        product_id=product_id,
        amount=amount,
        currency=kw.get("currency", "usd"),
        frequency=kw.get("frequency", "month_1"),
        active=kw.get("active", True),
        nickname=kw.get("nickname"),
    )


def customer(cid, email, name, **kw):
    return CustomerRec(id=cid, email=email, name=name, **kw)


def sub(sid="sub_1", customer="cus_1", status="active", items=(), **kw):
    return SubscriptionRec(
        id=sid,
        customer_id=customer,
        status=status,
        current_period_start=T0,
        current_period_end=T1,
        cancel_at=None,
        cancel_at_period_end=False,
        canceled_at=None,
        ended_at=None,
        trial_start=None,
        trial_end=None,
        created=T0,
        metadata=kw.get("metadata", {}),
        items=tuple(items),
    )


def item(iid="si_1", price_id="price_1", quantity=1):
    return ItemRec(id=iid, price_id=price_id, quantity=quantity, current_period_start=T0, current_period_end=T1)


def test_empty_snapshots_plan_nothing():
    plan = diff(Snapshot(), Snapshot())
    assert plan.operations == () and plan.in_sync


def test_remote_only_creates_local_only_marked_deleted_when_listing_is_complete():
    remote = Snapshot(products={"prod_1": product()}, complete=frozenset({"products"}))
    local = Snapshot(products={"prod_old": product("prod_old", "Old")})
    plan = diff(remote, local)
    gone = Update("Product", "prod_old", product("prod_old", "Old", deleted=True), (Change("deleted", False, True),))
    assert plan.operations == (Create("Product", "prod_1", product()), gone)
    assert diff(remote, Snapshot(products={"prod_old": product("prod_old", "Old", deleted=True)})).writes == (
        Create("Product", "prod_1", product()),
    )


def test_subscriptions_absent_from_a_whole_listing_are_orphans():
    remote = Snapshot(complete=frozenset({"subscriptions"}))
    local = Snapshot(subscriptions={"sub_1": sub()}, customers={"cus_1": customer("cus_1", None, None)})
    assert diff(remote, local).operations == (Orphan("Subscription", "sub_1"),)


def test_a_row_written_after_the_listing_began_is_not_marked_deleted():
    remote = Snapshot(complete=frozenset({"customers"}), listed_at=T0)
    local = Snapshot(customers={"cus_1": customer("cus_1", None, None)}, synced_at={("StripeUser", "cus_1"): T1})
    (op,) = diff(remote, local).operations
    assert op.action is Action.SKIP


def test_a_windowed_listing_reports_no_orphans():
    remote = Snapshot(customers={"cus_1": customer("cus_1", "a@x.io", "A")})
    local = Snapshot(customers={"cus_2": customer("cus_2", "b@x.io", "B")})
    assert [op.action for op in diff(remote, local).operations] == [Action.CREATE]


def test_update_lists_field_changes_old_to_new():
    remote = Snapshot(products={"prod_1": product(name="Pro 2", active=False)})
    local = Snapshot(products={"prod_1": product()})
    (op,) = diff(remote, local).operations
    assert op == Update(
        "Product",
        "prod_1",
        product(name="Pro 2", active=False),
        (Change("name", "Pro", "Pro 2"), Change("active", True, False)),
    )
    assert op.describe() == "update Product prod_1: name, active"


def test_equal_records_plan_nothing():
    snap = Snapshot(products={"prod_1": product(features=("a",))}, prices={"price_1": price(amount=None)})
    stored = Snapshot(products=dict(snap.products), prices=dict(snap.prices), features={"a": FeatureRec(id="a")})
    assert diff(snap, stored).in_sync


def test_feature_links_follow_metadata_and_new_features_are_created_once():
    remote = Snapshot(
        products={"prod_1": product(features=("a", "b")), "prod_2": product("prod_2", features=("b",))},
        features={"a": FeatureRec(id="a"), "b": FeatureRec(id="b")},
    )
    local = Snapshot(
        products={"prod_1": product(features=("a",)), "prod_2": product("prod_2", features=("b",))},
        features={"a": FeatureRec(id="a")},
    )
    ops = diff(remote, local).operations
    assert ops[0] == Create("Feature", "b", FeatureRec(id="b"))
    assert ops[1].changes == (Change("features", ("a",), ("a", "b")),)
    assert len(ops) == 2


def test_a_price_whose_product_is_nowhere_is_skipped_with_the_reason():
    remote = Snapshot(prices={"price_1": price(product_id="prod_gone")})
    (op,) = diff(remote, Snapshot()).operations
    assert op == Skip("Price", "price_1", "its product prod_gone is neither stored nor in Stripe")


def test_a_price_whose_product_is_stored_but_not_fetched_is_created():
    remote = Snapshot(prices={"price_1": price()})
    plan = diff(remote, Snapshot(), known=KnownIds(products=frozenset({"prod_1"})))
    assert [op.action for op in plan.operations] == [Action.CREATE]


def test_rejected_objects_become_skips():
    remote = Snapshot(rejected=(Rejected("Price", "price_x", "currency 'zzz' is not an ISO 4217 code"),))
    assert diff(remote, Snapshot()).operations == (Skip("Price", "price_x", "currency 'zzz' is not an ISO 4217 code"),)


def test_subscription_items_are_recreated_only_when_they_differ():
    local = Snapshot(
        subscriptions={"sub_1": sub(items=[item()])},
        customers={"cus_1": customer("cus_1", None, None)},
        prices={"price_1": price()},
    )
    same = Snapshot(subscriptions={"sub_1": sub(items=[item()])})
    assert diff(same, local).in_sync
    changed = Snapshot(subscriptions={"sub_1": sub(items=[item(quantity=3), item("si_2")])})
    (op,) = diff(changed, local).operations
    assert op == RecreateItems("sub_1", (item(),), (item(quantity=3), item("si_2")))


def test_canceled_subscription_updates_its_status():
    local = Snapshot(subscriptions={"sub_1": sub()}, customers={"cus_1": customer("cus_1", None, None)})
    remote = Snapshot(subscriptions={"sub_1": sub(status="canceled")})
    (op,) = diff(remote, local).operations
    assert op.changes == (Change("status", "active", "canceled"),)


def test_subscription_of_a_deleted_unstored_customer_is_skipped():
    remote = Snapshot(subscriptions={"sub_1": sub(customer="cus_gone")}, deleted_customers=frozenset({"cus_gone"}))
    (op,) = diff(remote, Snapshot()).operations
    assert op == Skip("Subscription", "sub_1", "its customer cus_gone is deleted in Stripe and is not stored")


def test_subscription_with_an_unknown_price_is_skipped():
    remote = Snapshot(
        subscriptions={"sub_1": sub(items=[item(price_id="price_nope")])},
        customers={"cus_1": customer("cus_1", None, None)},
    )
    ops = diff(remote, Snapshot()).operations
    assert ops[-1] == Skip(
        "Subscription", "sub_1", "its items refer to prices neither stored nor in Stripe: price_nope"
    )


def test_a_row_written_after_the_page_was_fetched_is_kept():
    remote = Snapshot(products={"prod_1": product(name="Old from Stripe")}, fetched_at={("Product", "prod_1"): T0})
    local = Snapshot(products={"prod_1": product(name="New from webhook")}, synced_at={("Product", "prod_1"): T1})
    (op,) = diff(remote, local).operations
    assert op.action is Action.SKIP and "kept the newer row" in op.reason


def test_users_are_linked_case_insensitively_after_trimming():
    remote = Snapshot(customers={"cus_1": customer("cus_1", "  Alice@Example.COM ", "Alice")})
    users = UserPolicy(UserDirectory({"alice@example.com": (7,)}))
    ops = diff(remote, Snapshot(), users=users).operations
    assert ops[-1] == LinkUser("cus_1", 7, "  Alice@Example.COM ")


def test_shared_email_links_none_and_says_so():
    remote = Snapshot(customers={"cus_1": customer("cus_1", "bob@x.io", None)})
    plan = diff(remote, Snapshot(), users=UserPolicy(UserDirectory({"bob@x.io": (1, 2)})))
    assert [op.action for op in plan.operations] == [Action.CREATE]
    assert plan.notes[0].message == "2 users share 'bob@x.io' (1, 2); linked none"


def test_a_linked_customer_keeps_its_link_when_its_email_changes():
    remote = Snapshot(customers={"cus_1": customer("cus_1", "new@x.io", None)})
    local = Snapshot(customers={"cus_1": customer("cus_1", "old@x.io", None, user_id=3)})
    plan = diff(remote, local, users=UserPolicy(UserDirectory({"new@x.io": (9,)})))
    assert [op.action for op in plan.operations] == [Action.UPDATE]
    assert "keeps its link to user 3" in plan.notes[0].message


def test_users_are_created_once_per_email_when_a_map_is_set():
    remote = Snapshot(
        customers={
            "cus_1": customer("cus_1", "new@x.io", "N"),
            "cus_2": customer("cus_2", "NEW@x.io", None),
            "cus_3": customer("cus_3", None, "no email"),
        }
    )
    plan = diff(remote, Snapshot(), users=UserPolicy(create_map={"username": "email", "email": "email"}))
    creates = [op for op in plan.operations if isinstance(op, CreateUser)]
    assert creates == [CreateUser("cus_1", (("email", "new@x.io"), ("username", "new@x.io")), ("cus_2",))]


def test_invalid_new_user_is_skipped_not_the_run():
    remote = Snapshot(customers={"cus_1": customer("cus_1", "x@y.io", None)})
    policy = UserPolicy(create_map={"username": "email"}, validate=lambda fields: "username: already taken")
    ops = diff(remote, Snapshot(), users=policy).operations
    assert ops[0] == Skip("User", "cus_1", "user not created: username: already taken")


def test_operations_are_ordered_by_model_then_action_then_id():
    remote = Snapshot(
        products={"prod_b": product("prod_b"), "prod_a": product("prod_a")},
        prices={"price_1": price(product_id="prod_a")},
        customers={"cus_1": customer("cus_1", None, None)},
        subscriptions={"sub_1": sub(items=[item()])},
    )
    assert [(op.model, op.id) for op in diff(remote, Snapshot()).operations] == [
        ("Product", "prod_a"),
        ("Product", "prod_b"),
        ("Price", "price_1"),
        ("StripeUser", "cus_1"),
        ("Subscription", "sub_1"),
    ]


def test_a_create_is_its_record_alone():
    """A create keeps one reference, its record: the model and id are the record's (a first pull
    plans 200,000 creates). It compares and goes through the plan file's codec as it did
    when it kept all three."""
    import gc

    from reconcile.core.plan import from_json, to_json

    op = Create("Product", "prod_1", product())
    assert (op.model, op.id, gc.get_referents(op)) == ("Product", "prod_1", [product(), Create])  # and its type
    assert op == Create("Product", "prod_1", product())
    assert op != Create("Product", "prod_1", product(name="Other"))
    data = to_json(op)
    assert (data["type"], data["model"], data["id"], data["record"]["name"]) == ("Create", "Product", "prod_1", "Pro")
    assert from_json(json.loads(json.dumps(data))) == op
    with pytest.raises(ValueError, match=r"Create\('Price', 'prod_1'\) with a record of ProductRec 'prod_1'"):
        Create("Price", "prod_1", product())
    with pytest.raises(ValueError):
        Create("Product", "prod_2", product())
    with pytest.raises(ValueError, match=r"Create\('Feature', 'f'\) with a record of NoneType None"):
        Create("Feature", "f", None)
    with pytest.raises(AttributeError):
        op.record = product(name="Other")


def test_a_plans_creates_are_held_as_their_records_and_read_as_creates():
    """A first pull's plan keeps each create as its record alone (no 200,000 ``Create`` objects
    beside the fetch's dicts): read, it is the tuple of operations it stands for."""
    import pickle

    from reconcile.core.plan import Operations, Plan

    remote = Snapshot(
        products={"prod_b": product("prod_b"), "prod_a": product("prod_a")},
        prices={"price_1": price(product_id="prod_nowhere")},
    )
    plan = diff(remote, Snapshot())
    ops = plan.operations
    assert isinstance(ops, Operations)
    assert ops.entries == [product("prod_a"), product("prod_b"), Skip("Price", "price_1", ops[2].reason)]
    expected = (Create("Product", "prod_a", product("prod_a")), Create("Product", "prod_b", product("prod_b")), ops[2])
    assert ops == expected and expected == ops and tuple(ops) == expected and list(ops) == list(expected)
    assert (len(ops), ops[0], ops[-1], ops[:2], ops[1:]) == (3, expected[0], expected[2], expected[:2], expected[1:])
    assert repr(ops) == repr(expected) and ops + () == expected and () + ops == expected
    assert pickle.loads(pickle.dumps(ops)) == expected and type(pickle.loads(pickle.dumps(ops))) is tuple
    assert plan == Plan(operations=expected, notes=plan.notes, next_cursor=plan.next_cursor)
    # the writes leave the skip out and keep the creates as records
    assert isinstance(plan.writes, Operations) and plan.writes.entries == [product("prod_a"), product("prod_b")]
    assert [op.action for op in plan.writes] == [Action.CREATE, Action.CREATE]
    everything = diff(Snapshot(products=remote.products), Snapshot())
    assert everything.writes is everything.operations  # all write: the same sequence, not a copy
