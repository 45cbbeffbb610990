"""A pull drops records equal to their stored row as their page is read (reconcile/core/prune.py),
found equal by the row's fingerprint (reconcile/core/fingerprint.py)."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest
from django.contrib.auth import get_user_model

from reconcile.conf import get_config
from reconcile.core.fingerprint import (
    Fingerprints,
    Gathered,
    _slow,
    canonical,
    key_fingerprint,
    object_fingerprint,
    record_fingerprint,
)
from reconcile.core.parse import BadObject, parse_customer, parse_price, parse_subscription
from reconcile.core.prune import LatePruner, Pruner
from reconcile.core.registry import CUSTOMERS, PRICES, SUBSCRIPTIONS
from reconcile.core.snapshot import CustomerRec, PriceRec, ProductRec, Snapshot, SubscriptionRec
from reconcile.core.users import UserDirectory
from reconcile.db.local import fingerprint_tables, known_ids, load_fingerprints, load_local
from reconcile.models import Price, StripeUser, Subscription, SubscriptionItem
from reconcile.stripe import remote
from reconcile.stripe.remote import _Builder, fetch_remote
from reconcile.testing.generate import generate_account
from tests.conftest import run

PRICE = PriceRec(
    id="price_1", product_id="prod_1", amount=100, currency="usd", frequency=None, active=True, nickname=None
)
CUSTOMER = CustomerRec(id="cus_1", email="Ann@Example.com", name="Ann")
SUB = SubscriptionRec(
    id="sub_1", customer_id="cus_1", status="active", current_period_start=None, current_period_end=None,
    cancel_at=None, cancel_at_period_end=False, canceled_at=None, ended_at=None, trial_start=None, trial_end=None,
    created=None, metadata={},
)  # fmt: skip


def test_equal_records_are_dropped_changed_and_new_ones_kept():
    stored = Snapshot(prices={"price_1": PRICE}, subscriptions={"sub_1": SUB})
    unchanged = Pruner(Fingerprints.of(stored), UserDirectory(), create_users=False)
    assert unchanged("Price", PRICE)
    assert unchanged("Subscription", SUB)
    assert not unchanged("Price", PriceRec(**{**_fields(PRICE), "nickname": "new"}))
    assert not unchanged("Subscription", SubscriptionRec(**{**_fields(SUB), "id": "sub_2"}))  # not stored
    # a product is complete only once its Entitlements features are attached: never dropped
    product = ProductRec(id="prod_1", name="P", description=None, active=True, metadata={})
    assert not Pruner(Fingerprints.of(Snapshot(products={"prod_1": product})), None, False)("Product", product)


def test_an_unlinked_customer_stays_while_the_users_pass_may_act_on_it():
    stored = Snapshot(customers={"cus_1": CUSTOMER})
    # nobody has the email and no users are created: nothing to do for it
    assert Pruner(Fingerprints.of(stored), UserDirectory(), create_users=False)("StripeUser", CUSTOMER)
    # a user with the email (in any case) exists now: it may be linked
    directory = UserDirectory(by_email={"ann@example.com": (7,)})
    assert not Pruner(Fingerprints.of(stored), directory, create_users=False)("StripeUser", CUSTOMER)
    # users are created for customers: it may get one
    assert not Pruner(Fingerprints.of(stored), UserDirectory(), create_users=True)("StripeUser", CUSTOMER)
    # linked already: dropped (the link stays)
    linked = Snapshot(customers={"cus_1": CustomerRec(**{**_fields(CUSTOMER), "user_id": 7})})
    assert Pruner(Fingerprints.of(linked), directory, create_users=True)("StripeUser", CUSTOMER)


def test_an_object_is_sighted_unchanged_as_its_record_is_found_unchanged():
    """``Pruner.sighted`` decides from an object's fingerprint what the pruner decides from its record."""
    obj = {"id": "cus_1", "object": "customer", "email": "Ann@Example.com", "name": "Ann", "metadata": {}}
    record = parse_customer(obj)
    made = object_fingerprint(CUSTOMERS)
    cases = [
        (Snapshot(customers={"cus_1": record}), UserDirectory(), False),
        (Snapshot(customers={"cus_1": record}), UserDirectory(by_email={"ann@example.com": (7,)}), False),
        (Snapshot(customers={"cus_1": record}), UserDirectory(), True),
        (Snapshot(customers={"cus_1": CustomerRec(**{**_fields(record), "user_id": 7})}), UserDirectory(), True),
        (Snapshot(customers={"cus_1": CustomerRec(**{**_fields(record), "name": "Bo"})}), UserDirectory(), False),
        (Snapshot(), UserDirectory(), False),
    ]
    found = []
    for stored, directory, create in cases:
        prune = Pruner(Fingerprints.of(stored), directory, create)
        assert prune.sighted("StripeUser", "cus_1", made, obj) == prune("StripeUser", record)
        found.append(prune("StripeUser", record))
    assert found == [True, False, False, True, False, False]


@pytest.mark.django_db
def test_a_re_pull_keeps_only_what_changed(start_fake):
    account = generate_account(300, seed=5, n_products=4)
    fake = start_fake(account)
    assert run("pull_stripe").code == 0
    changed = account["customers"][3]["id"]
    fake.update("customers", changed, name="Renamed")
    stored = load_local(("products", "customers", "subscriptions"))
    fingerprints = load_fingerprints(("products", "customers", "subscriptions"), known_ids())
    remote = fetch_remote(
        get_config(), ("products", "customers", "subscriptions"), prune=Pruner(fingerprints, UserDirectory(), False)
    )
    assert set(remote.customers) == {changed}
    assert remote.subscriptions == {} and remote.prices == {}
    assert set(remote.products) == {p["id"] for p in account["products"]}
    assert remote.unchanged["customers"] == {c.id for c in stored.customers.values()} - {changed}
    assert remote.unchanged["subscriptions"] == set(stored.subscriptions)
    assert remote.fetched_at.keys() == {("StripeUser", changed)} | {("Product", p) for p in remote.products}
    second = run("pull_stripe")
    assert second.code == 0
    assert second.out.splitlines()[:2] == ["Customers:", f"  ~ update StripeUser {changed}: name"]
    assert StripeUser.objects.get(customer_id=changed).name == "Renamed"
    assert "No changes detected" in run("pull_stripe").out


@pytest.mark.django_db
def test_a_user_created_since_the_last_pull_is_linked_although_its_customer_did_not_change(start_fake):
    account = generate_account(50, seed=6, n_products=2)
    start_fake(account)
    assert run("pull_stripe").code == 0
    customer = next(c for c in account["customers"] if c.get("email") and not c.get("deleted"))
    user = get_user_model().objects.create(username="late", email=customer["email"].upper())
    assert run("pull_stripe").code == 0
    assert StripeUser.objects.get(customer_id=customer["id"]).user_id == user.pk


ALL = ("products", "customers", "subscriptions")


@pytest.mark.django_db
def test_a_stored_row_and_its_record_have_one_fingerprint(start_fake):
    """What the prune reads from the rows equals what it makes of the same records, for every row
    of an account with tiers, currency options, metadata, items and linked customers; and Stripe's
    records, fetched again, have their rows' fingerprints."""
    account = generate_account(300, seed=7, n_products=12)
    start_fake(account)
    get_user_model().objects.create(username="u", email=account["customers"][0]["email"])
    assert run("pull_stripe").code == 0
    read = load_fingerprints(ALL, known_ids())
    assert read == Fingerprints.of(load_local(ALL))
    assert None not in read.prices.values() and None not in read.subscriptions.values()
    assert len(read.unlinked) == len(read.customers) - 1
    remote = Fingerprints.of(fetch_remote(get_config(), ALL))
    for name in ("prices", "customers", "subscriptions"):
        assert getattr(remote, name) == getattr(read, name), name


@pytest.mark.django_db
def test_a_row_edited_in_the_database_is_compared_again(start_fake):
    account = generate_account(60, seed=8, n_products=3)
    start_fake(account)
    assert run("pull_stripe").code == 0
    sub = Subscription.objects.filter(items__isnull=False).first()
    item = sub.items.order_by("id").first()
    SubscriptionItem.objects.filter(pk=item.pk).update(quantity=item.quantity + 1)
    customer = StripeUser.objects.order_by("customer_id").first()
    StripeUser.objects.filter(pk=customer.pk).update(metadata={**customer.metadata, "x": [1, {"y": None}]})
    price = Price.objects.order_by("id").first()
    Price.objects.filter(pk=price.pk).update(nickname=(price.nickname or "") + "!")
    out = run("pull_stripe").out.splitlines()
    assert f"  ~ update StripeUser {customer.customer_id}: metadata" in out
    assert f"  ~ update Price {price.id}: nickname" in out
    count = sub.items.count()
    assert f"  ± recreate items of Subscription {sub.id}: {count} -> {count}" in out
    assert "No changes detected" in run("pull_stripe").out


def test_fingerprints_follow_equality():
    of = record_fingerprint(SUBSCRIPTIONS)
    same = SubscriptionRec(**{**_fields(SUB), "metadata": {"b": [1, {"c": 2}], "a": "x"}})
    reordered = SubscriptionRec(**{**_fields(SUB), "metadata": {"a": "x", "b": [1.0, {"c": 2}]}})
    assert same == reordered and of(same) == of(reordered)  # key order, 1 and 1.0: equal, as ==
    assert of(SUB) != of(SubscriptionRec(**{**_fields(SUB), "metadata": []}))  # {} is not []
    assert of(same) != of(SubscriptionRec(**{**_fields(SUB), "metadata": {"b": [{"c": 2}, 1], "a": "x"}}))
    odd = SubscriptionRec(**{**_fields(SUB), "metadata": {1: "x", "a": "y"}})  # keys that do not sort
    assert of(odd) is None
    assert not Pruner(Fingerprints.of(Snapshot(subscriptions={"sub_1": odd})), None, False)("Subscription", odd)
    assert canonical({"a": [{}]}) == ("\0dict", (("a", ("\0list", (("\0dict", ()),))),))
    assert canonical({}) == ("\0dict", ()) and canonical([]) == ("\0list", ())
    assert canonical([[]]) == ("\0list", (("\0list", ()),))


def _fields(record) -> dict:
    return {name: getattr(record, name) for name in record.__dataclass_fields__}


def test_a_dict_where_no_json_is_expected_gives_the_canonical_fingerprint():
    """Only fields labelled ``json=True`` are looked at for dicts and lists; a dict elsewhere (a
    row edited by hand) takes the slow way, with the fingerprint every value made canonical gives."""
    of = key_fingerprint(PRICES)
    row = ("price_1", "prod_1", 500, "usd", "month_1", True, None, *[None] * (len(PRICES.fields) - 6))
    assert of(row) == _slow(row) == hash(row)
    odd = (*row[:6], {"b": 1, "a": [2]}, *row[7:])  # the nickname column holding JSON
    assert of(odd) == _slow(odd) == hash((*row[:6], canonical({"a": [2], "b": 1}), *row[7:]))
    assert of(odd) != of(row)


def test_a_late_pruner_keeps_records_until_their_table_arrives_then_gives_each_thread_its_own():
    settled: list[bool] = []
    late = LatePruner(lambda: settled.append(True))
    product = ProductRec(id="prod_1", name="P", description=None, active=True, metadata={})
    assert late("Price", PRICE) is False and late("Product", product) is False
    other = threading.Thread(target=late, args=("Subscription", SUB))  # another listing's thread
    other.start()
    other.join()
    assert late.take() == []  # no table has come
    stored = Snapshot(prices={"price_1": PRICE}, subscriptions={"sub_1": SUB})
    late.arrive(Pruner(Fingerprints.of(stored), UserDirectory(), False), ["Price"])
    assert late("Price", PRICE) is True  # decided as it comes now
    changed = SubscriptionRec(**{**_fields(SUB), "status": "canceled"})
    assert late("Subscription", changed) is False  # its table has not come: kept, noted
    # this thread's records of the tables come, once; a product is never dropped, so never noted
    assert late.take() == [("Price", PRICE)]
    assert late.take() == []
    assert settled == []
    # the rest, every thread's, once it has settled
    assert sorted(late.take(everyone=True), key=lambda pair: pair[1].status) == [
        ("Subscription", SUB),
        ("Subscription", changed),
    ]
    assert settled == [True]


def test_the_fetch_drops_what_a_late_table_finds_unchanged():
    late = LatePruner(lambda: None)
    builder = _Builder("features", prune=late, check=lambda rec: "cannot be stored")
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    other = SubscriptionRec(**{**_fields(SUB), "id": "sub_2"})  # not stored
    for rec in (SUB, other, PRICE):
        model = "Price" if rec is PRICE else "Subscription"
        builder.add(model, getattr(builder, "prices" if rec is PRICE else "subscriptions"), lambda r: r, rec, now)
    # the same price listed again, changed: the record kept is the later one, which is not unchanged
    renamed = PriceRec(**{**_fields(PRICE), "nickname": "new"})
    builder.add("Price", builder.prices, lambda r: r, renamed, now)
    assert set(builder.subscriptions) == {"sub_1", "sub_2"} and set(builder.problems["Subscription"]) == {
        "sub_1",
        "sub_2",
    }
    stored = Fingerprints.of(Snapshot(prices={"price_1": PRICE}, subscriptions={"sub_1": SUB}))
    late.arrive(Pruner(stored, None, False), ["Price", "Subscription"])
    builder.sweep()
    assert builder.subscriptions == {"sub_2": other} and builder.prices == {"price_1": renamed}
    assert builder.unchanged["Subscription"] == {"sub_1"} and builder.unchanged["Price"] == set()
    assert builder.problems["Subscription"] == {"sub_2": "cannot be stored"}


@pytest.mark.django_db
def test_the_stored_side_read_in_parts_is_the_stored_side_read_whole(start_fake, monkeypatch):
    import reconcile.db.local as local

    start_fake(generate_account(120, seed=9, n_products=3))
    assert run("pull_stripe").code == 0
    whole = load_fingerprints(ALL, known_ids())
    monkeypatch.setattr(local, "PART_ROWS", 7)
    parts = list(fingerprint_tables(ALL, known_ids()))
    # the subscriptions first, every table in parts of at most 7 rows, each table's last part marked
    assert [name for name, *_ in parts][0] == "subscriptions"
    assert all(len(rows) <= 7 for _, rows, _, _ in parts)
    assert [name for name, _, _, last in parts if last] == [
        "subscriptions",
        "customers",
        "prices",
        "products",
        "features",
    ]
    assert Gathered.of(parts) == whole and len(whole.customers) > 7


def test_a_late_pruner_keeps_at_most_its_limit_then_waits_for_the_table():
    late = LatePruner(lambda: None, limit=2)
    stored = Snapshot(prices={"price_1": PRICE}, subscriptions={"sub_1": SUB})
    other = SubscriptionRec(**{**_fields(SUB), "id": "sub_2"})
    assert late("Subscription", other) is False and late("Price", PRICE) is False  # kept: 2
    answers: list[bool] = []
    waiting = threading.Thread(target=lambda: answers.append(late("Subscription", SUB)))
    waiting.start()
    waiting.join(0.5)
    assert waiting.is_alive() and answers == []  # a third record waits for its table
    late.arrive(Pruner(Fingerprints.of(stored), None, False), ["Subscription"])
    waiting.join(5)
    assert answers == [True]  # decided by the table that came, not kept
    # a child that failed: nothing will come before the fetch ends, so records are kept again
    bounded = LatePruner(lambda: None, limit=1)
    assert bounded("Price", PRICE) is False
    bounded.give_up()
    assert bounded("Subscription", SUB) is False
    # a cancelled fetch does not wait either
    stop = threading.Event()
    stop.set()
    assert LatePruner(lambda: None, limit=0, stop=stop)("Price", PRICE) is False


def _subscription_period_on_the_subscription(obj: dict) -> dict:
    """An API version before 2025-03-31: the period on the subscription, none on its items."""
    first = obj["items"]["data"][0]
    items = [{k: v for k, v in i.items() if not k.startswith("current_period")} for i in obj["items"]["data"]]
    return {
        **obj,
        "current_period_start": first["current_period_start"],
        "current_period_end": first["current_period_end"],
        "items": {**obj["items"], "data": items},
    }


def test_an_objects_fingerprint_is_the_fingerprint_of_the_record_it_parses_into():
    """A re-pull drops an unchanged object on its fingerprint before its record is made
    (``object_fingerprint``): for every object of an account, in both of Stripe's period shapes,
    it is the fingerprint of the record that parsing makes."""
    account = generate_account(400, seed=11, n_products=6)
    for resource, parse, objects in (
        (PRICES, parse_price, account["prices"]),
        (CUSTOMERS, parse_customer, [c for c in account["customers"] if not c.get("deleted")]),
    ):
        made, of_record = object_fingerprint(resource), record_fingerprint(resource)
        assert len(objects) > 20 and all(made(obj) == of_record(parse(obj)) for obj in objects)
    made, of_record = object_fingerprint(SUBSCRIPTIONS), record_fingerprint(SUBSCRIPTIONS)
    subscriptions = account["subscriptions"] + [
        _subscription_period_on_the_subscription(s) for s in account["subscriptions"]
    ]
    mixed = 0
    for obj in subscriptions:
        items = obj["items"]["data"]
        record = parse_subscription(obj, items)[0]
        assert made(obj, items) == of_record(record) is not None
        mixed += len({(i.current_period_start, i.current_period_end) for i in record.items}) > 1
    assert len(subscriptions) == 800 and mixed > 0  # items billing on different periods are among them


@pytest.mark.parametrize(
    ("resource", "change"),
    [
        (CUSTOMERS, {"email": 7}),
        (CUSTOMERS, {"object": "charge"}),
        (PRICES, {"currency": None}),
        (SUBSCRIPTIONS, {"status": "resting"}),
        (SUBSCRIPTIONS, {"current_period_start": 1_800_000_000, "current_period_end": 1_700_000_000}),
        (SUBSCRIPTIONS, {"items": {"object": "list", "data": [{"id": "si_1", "object": "subscription_item"}]}}),
    ],
)
def test_an_odd_object_is_refused_by_its_fingerprint_as_by_its_parsing(resource, change):
    account = generate_account(20, seed=12, n_products=2)
    obj = {**account[resource.name][0], **change}
    if resource is SUBSCRIPTIONS:
        parse, made, args = parse_subscription, object_fingerprint(resource), (obj, obj["items"]["data"])
    else:
        parse, made, args = resource.parse, object_fingerprint(resource), (obj,)
    with pytest.raises(BadObject) as parsing:
        parse(*args)
    with pytest.raises(BadObject) as fingerprinting:
        made(*args)
    assert str(fingerprinting.value) == str(parsing.value)


@pytest.mark.django_db
def test_a_no_op_re_pull_makes_no_record_of_what_it_drops(start_fake, monkeypatch):
    """Found unchanged by their fingerprints, a re-pull's subscriptions, customers and prices are
    dropped before their records are made; a changed one is parsed and kept."""
    account = generate_account(200, seed=13, n_products=4)
    fake = start_fake(account)
    assert run("pull_stripe").code == 0
    changed = account["subscriptions"][5]["id"]
    fake.update("subscriptions", changed, metadata={"plan": "gold"})
    made: list[str] = []
    monkeypatch.setattr(
        remote, "parse_subscription", lambda obj, items: made.append(obj["id"]) or parse_subscription(obj, items)
    )
    monkeypatch.setattr(remote, "parse_customer", lambda obj: made.append(obj["id"]) or parse_customer(obj))
    known = known_ids()
    prune = Pruner(load_fingerprints(ALL, known), UserDirectory(), False)
    remote_side = fetch_remote(get_config(), ALL, known=known, prune=prune)
    assert made == [changed] and set(remote_side.subscriptions) == {changed}
    assert remote_side.prices == {} and remote_side.customers == {}
    assert len(remote_side.unchanged["subscriptions"]) == len(account["subscriptions"]) - 1
