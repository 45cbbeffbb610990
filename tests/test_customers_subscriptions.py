"""update_stripe_customers, update_stripe_subscriptions and pull_stripe against the fake Stripe."""

from __future__ import annotations

import copy

import pytest
from django.contrib.auth import get_user_model

from reconcile.models import Price, Product, StripeUser, Subscription, SubscriptionItem
from reconcile.testing.fakestripe import Fault
from reconcile.testing.generate import generate_account
from tests.conftest import DEMO_PLAN, demo_data, run
from tests.helpers.dbstate import expected_state, stored_state
from tests.stripe_state import expected_customers, expected_subscriptions, stored_customers, stored_subscriptions

pytestmark = pytest.mark.django_db
User = get_user_model()


def requests_to(fake, path):
    return [r for r in fake.requests if r.path == path]


def test_every_page_of_250_customers_is_fetched_one_request_per_page(start_fake):
    account = generate_account(250, seed=3)
    fake = start_fake(account)
    result = run("update_stripe_customers")
    assert result.code == 0
    live = [c for c in account["customers"] if not c.get("deleted")]
    assert StripeUser.objects.count() == len(live)
    assert stored_customers() == expected_customers(account["customers"])
    assert len(requests_to(fake, "/v1/customers")) == -(-len(live) // 100) == 3
    assert len(fake.requests) == 3


def test_customers_link_to_users_by_email_case_insensitively_after_trimming(fake_stripe):
    alice = User.objects.create_user("alice", "alice.smith@example.com")
    grace = User.objects.create_user("grace", "Grace.Kim@Example.net")
    User.objects.create_user("s1", "shared@example.com")
    User.objects.create_user("s2", "SHARED@example.com")
    result = run("update_stripe_customers")
    assert result.code == 0
    links = dict(StripeUser.objects.values_list("customer_id", "user_id"))
    assert links["cus_DemoAlice00001"] == alice.pk
    assert links["cus_DemoGrace00001"] == grace.pk  # " grace.kim@example.net " in Stripe
    assert links["cus_DemoErin000001"] is None and links["cus_DemoFrank00001"] is None  # two users share it
    assert links["cus_DemoDave000001"] is None  # no email: kept, unlinked
    assert "? StripeUser cus_DemoErin000001: 2 users share 'shared@example.com'" in result.out
    assert "cus_DemoHeidi00001" not in links  # deleted in Stripe: absent from lists
    again = run("update_stripe_customers")
    assert again.out.endswith("No changes detected.\n")


def test_a_linked_customer_keeps_its_link_when_its_email_changes(fake_stripe):
    alice = User.objects.create_user("alice", "alice.smith@example.com")
    other = User.objects.create_user("other", "new.alice@example.com")
    run("update_stripe_customers")
    fake_stripe.update("customers", "cus_DemoAlice00001", email="new.alice@example.com")
    result = run("update_stripe_customers")
    assert "email changed from 'Alice.Smith@Example.com' to 'new.alice@example.com' in Stripe; keeps its link" in (
        result.out
    )
    row = StripeUser.objects.get(customer_id="cus_DemoAlice00001")
    assert (row.email, row.user_id) == ("new.alice@example.com", alice.pk)
    assert row.user_id != other.pk


def test_users_are_not_created_without_a_map(fake_stripe):
    run("update_stripe_customers")
    assert User.objects.count() == 0


def test_users_are_created_with_an_unusable_password_when_a_map_is_set(fake_stripe, reconcile_settings):
    reconcile_settings.RECONCILE = {
        **reconcile_settings.RECONCILE,
        "USER_CREATE_DEFAULTS_ATTRIBUTE_MAP": {"username": "email", "email": "email", "first_name": "name"},
    }
    result = run("update_stripe_customers")
    assert result.code == 0
    assert "  @ create user for StripeUser cus_DemoErin000001 and cus_DemoFrank00001" in result.out
    users = {u.username: u for u in User.objects.all()}
    assert sorted(users) == [
        "Alice.Smith@Example.com",
        "CAROL@Example.org",
        "bob.jones@example.com",
        "grace.kim@example.net",
        "shared@example.com",
    ]
    for user in users.values():
        assert not user.has_usable_password() and not user.is_staff and not user.is_superuser
    links = dict(StripeUser.objects.values_list("customer_id", "user__username"))
    assert links["cus_DemoErin000001"] == links["cus_DemoFrank00001"] == "shared@example.com"
    assert links["cus_DemoDave000001"] is None
    assert run("update_stripe_customers").out.endswith("No changes detected.\n")


def test_a_user_that_fails_validation_is_skipped_not_the_run(fake_stripe, reconcile_settings):
    User.objects.create_user("bob.jones@example.com", "someone.else@example.com")  # username taken
    fake_stripe.update("customers", "cus_DemoCarol00001", name="C" * 200)  # too long for first_name
    reconcile_settings.RECONCILE = {
        **reconcile_settings.RECONCILE,
        "USER_CREATE_DEFAULTS_ATTRIBUTE_MAP": {"username": "email", "email": "email", "first_name": "name"},
    }
    result = run("update_stripe_customers")
    assert result.code == 0
    assert (
        "  ! skip User cus_DemoBob0000001: user not created: username: a user with username "
        "'bob.jones@example.com' already exists"
    ) in result.out
    assert "  ! skip User cus_DemoCarol00001: user not created: first_name: Ensure this value has at most 150" in (
        result.out
    )
    assert StripeUser.objects.get(customer_id="cus_DemoBob0000001").user_id is None
    assert User.objects.filter(username="Alice.Smith@Example.com").exists()


def test_one_validator_checks_users_in_turn_each_on_its_own_fields():
    """The validator reuses one user instance: a failed check leaves nothing for the next, and a
    value taken earlier in the same plan is caught."""
    from reconcile.db.local import make_validator

    User.objects.create_user("taken@example.com")
    validate = make_validator({"username": "email", "first_name": "name"})
    assert validate({"username": "a@example.com", "first_name": "C" * 200}) == (
        "first_name: Ensure this value has at most 150 characters (it has 200)."
    )
    assert validate({"username": "b@example.com", "first_name": "Bo"}) is None
    assert validate({"username": "taken@example.com", "first_name": "Al"}) == (
        "username: a user with username 'taken@example.com' already exists"
    )
    assert validate({"username": "b@example.com", "first_name": None}) == (
        "username: a user with username 'b@example.com' already exists"
    )
    assert validate({"username": "not an email?", "first_name": "Di"}) == (
        "username: Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."
    )


def test_a_window_reconciles_only_that_window_and_names_the_next(start_fake):
    account = generate_account(120, seed=5)
    fake = start_fake(account)
    live = [c for c in account["customers"] if not c.get("deleted")]  # newest first, as Stripe lists
    StripeUser.objects.create(customer_id="cus_LocalOnly000001", email="x@example.com")
    cursor = live[9]["id"]
    result = run("update_stripe_customers", "-l", "50", "-s", cursor)
    assert result.code == 0
    window = [c["id"] for c in live[10:60]]
    assert set(StripeUser.objects.values_list("customer_id", flat=True)) == set(window) | {"cus_LocalOnly000001"}
    assert "- orphan" not in result.out
    assert f"More customers in Stripe: run again with --starting_after {live[59]['id']} for the next window.\n" in (
        result.out
    )
    (request,) = fake.requests
    assert request.query == {"limit": "50", "starting_after": cursor}


def test_subscriptions_of_every_status_are_listed_and_stored_field_by_field(fake_stripe):
    run("update_stripe_products")
    run("update_stripe_customers")
    result = run("update_stripe_subscriptions")
    assert result.code == 0
    data = demo_data()
    assert {r.query.get("status") for r in requests_to(fake_stripe, "/v1/subscriptions")} == {"all"}
    expected = expected_subscriptions(data["subscriptions"], skip={"sub_DemoHeidi00001"})
    assert stored_subscriptions() == expected
    statuses = dict(Subscription.objects.values_list("id", "status"))
    assert statuses["sub_DemoFrank00001"] == "canceled"
    assert statuses["sub_DemoGrace00001"] == "incomplete_expired"
    assert statuses["sub_DemoCarol00001"] == "trialing"
    assert statuses["sub_DemoDave000001"] == "past_due"
    assert SubscriptionItem.objects.filter(subscription_id="sub_DemoAlice00001").count() == 3
    assert "  ! skip Subscription sub_DemoHeidi00001: its customer cus_DemoHeidi00001 is deleted in Stripe" in (
        result.out
    )


def test_a_subscription_canceled_in_stripe_stops_being_active_locally(fake_stripe):
    run("pull_stripe")
    fake_stripe.cancel_subscription("sub_DemoBob0000001")
    result = run("pull_stripe")
    assert "  ~ update Subscription sub_DemoBob0000001: status, canceled_at, ended_at" in result.out
    sub = Subscription.objects.get(id="sub_DemoBob0000001")
    assert sub.status == "canceled" and sub.ended_at is not None


def test_subscriptions_alone_create_missing_customers_prices_and_products(fake_stripe):
    result = run("update_stripe_subscriptions")
    assert result.code == 0
    # Products come from retrieves; prices from the items' embedded price objects.
    assert Product.objects.count() == 4
    used_prices = {i["price"]["id"] for s in demo_data()["subscriptions"] for i in s["items"]["data"]}
    assert set(Price.objects.values_list("id", flat=True)) == used_prices
    assert StripeUser.objects.count() == 7
    retrieves = [r.path for r in fake_stripe.requests if r.path.count("/") == 3]
    assert "/v1/customers/cus_DemoHeidi00001" in retrieves
    assert Subscription.objects.count() == 8


def test_items_beyond_the_embedded_page_are_fetched(start_fake):
    data = demo_data()
    fake = start_fake(data, items_page_size=2)
    run("pull_stripe")
    assert SubscriptionItem.objects.filter(subscription_id="sub_DemoAlice00001").count() == 3
    item_requests = requests_to(fake, "/v1/subscription_items")
    assert [r.query["subscription"] for r in item_requests] == ["sub_DemoAlice00001"]


def test_items_are_recreated_only_when_they_differ(fake_stripe):
    run("pull_stripe")
    before = set(SubscriptionItem.objects.values_list("id", flat=True))
    sub = copy.deepcopy(fake_stripe.get("subscriptions", "sub_DemoBob0000001"))
    sub["items"]["data"][0]["quantity"] = 4
    fake_stripe.upsert("subscriptions", sub)
    result = run("pull_stripe", "-v", "2")
    assert "  ± recreate items of Subscription sub_DemoBob0000001: 1 -> 1" in result.out
    assert SubscriptionItem.objects.get(subscription_id="sub_DemoBob0000001").quantity == 4
    assert set(SubscriptionItem.objects.values_list("id", flat=True)) == before


def test_pull_stripe_is_idempotent_and_matches_stripe_on_every_field(fake_stripe):
    first = run("pull_stripe")
    assert first.code == 0
    data = demo_data()
    assert stored_state() == expected_state(data, skip_subscriptions={"sub_DemoHeidi00001"})
    second = run("pull_stripe")
    assert second.out.endswith("No changes detected (reported only: 0 orphaned, 1 skipped).\n")
    assert run("pull_stripe", "--check").code == 0


def test_dry_run_leaves_every_table_unchanged(fake_stripe):
    from django.apps import apps

    models = list(apps.get_app_config("reconcile").get_models())
    result = run("pull_stripe", "--dry-run")
    assert result.code == 0 and result.out.splitlines()[-1] == DEMO_PLAN
    assert {m.__name__: m.objects.count() for m in models} == {m.__name__: 0 for m in models}


def test_pull_stripe_applies_all_or_nothing(fake_stripe, monkeypatch):
    from reconcile.db import apply as apply_module

    def boom(self, creates, recreates):
        raise RuntimeError("database went away")

    monkeypatch.setattr(apply_module.Applier, "items", boom)
    result = run("pull_stripe")
    assert result.code == 2  # an unexpected error is exit 2, like every error, with its traceback
    assert "RuntimeError: database went away" in result.err
    assert (Product.objects.count(), StripeUser.objects.count(), Subscription.objects.count()) == (0, 0, 0)


def test_pull_stripe_fetches_everything_before_writing_anything(fake_stripe):
    fake_stripe.inject(Fault("status", path_prefix="/v1/subscriptions", status=400))
    result = run("pull_stripe")
    assert result.code == 2
    assert "Stripe refused GET /v1/subscriptions?status=all&limit=100 (HTTP 400)" in result.err
    assert (Product.objects.count(), StripeUser.objects.count()) == (0, 0)


def test_customers_recorded_by_a_subscriptions_run_are_linked_to_their_users(fake_stripe):
    bob = User.objects.create_user("bob", "Bob.Jones@example.com")
    result = run("update_stripe_subscriptions")
    assert "  = link StripeUser cus_DemoBob0000001 to user" in result.out
    assert StripeUser.objects.get(customer_id="cus_DemoBob0000001").user_id == bob.pk
