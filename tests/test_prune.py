"""A pull drops records equal to their stored row as their page is read (reconcile/core/prune.py)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from reconcile.conf import get_config
from reconcile.core.prune import pruner
from reconcile.core.snapshot import CustomerRec, PriceRec, ProductRec, Snapshot, SubscriptionRec
from reconcile.core.users import UserDirectory
from reconcile.db.local import load_local
from reconcile.models import StripeUser
from reconcile.stripe.remote import fetch_remote
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
    unchanged = pruner(stored, UserDirectory(), create_users=False)
    assert unchanged("Price", PRICE)
    assert unchanged("Subscription", SUB)
    assert not unchanged("Price", PriceRec(**{**_fields(PRICE), "nickname": "new"}))
    assert not unchanged("Subscription", SubscriptionRec(**{**_fields(SUB), "id": "sub_2"}))  # not stored
    # a product is complete only once its Entitlements features are attached: never dropped
    product = ProductRec(id="prod_1", name="P", description=None, active=True, metadata={})
    assert not pruner(Snapshot(products={"prod_1": product}), None, False)("Product", product)


def test_an_unlinked_customer_stays_while_the_users_pass_may_act_on_it():
    stored = Snapshot(customers={"cus_1": CUSTOMER})
    # nobody has the email and no users are created: nothing to do for it
    assert pruner(stored, UserDirectory(), create_users=False)("StripeUser", CUSTOMER)
    # a user with the email (in any case) exists now: it may be linked
    directory = UserDirectory(by_email={"ann@example.com": (7,)})
    assert not pruner(stored, directory, create_users=False)("StripeUser", CUSTOMER)
    # users are created for customers: it may get one
    assert not pruner(stored, UserDirectory(), create_users=True)("StripeUser", CUSTOMER)
    # linked already: dropped (the link stays)
    linked = Snapshot(customers={"cus_1": CustomerRec(**{**_fields(CUSTOMER), "user_id": 7})})
    assert pruner(linked, directory, create_users=True)("StripeUser", CUSTOMER)


@pytest.mark.django_db
def test_a_re_pull_keeps_only_what_changed(start_fake):
    account = generate_account(300, seed=5, n_products=4)
    fake = start_fake(account)
    assert run("pull_stripe").code == 0
    changed = account["customers"][3]["id"]
    fake.update("customers", changed, name="Renamed")
    stored = load_local(("products", "customers", "subscriptions"))
    remote = fetch_remote(
        get_config(), ("products", "customers", "subscriptions"), prune=pruner(stored, UserDirectory(), False)
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


def _fields(record) -> dict:
    return {name: getattr(record, name) for name in record.__dataclass_fields__}
