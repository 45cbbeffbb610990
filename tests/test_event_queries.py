"""The SQL statements one webhook event costs, pinned: the events' throughput is bounded by them.

Run as a deployment runs (autocommit, no test transaction around the request: ``transaction=True``).
The stored rows are back-dated so that each event is plainly newer than them (payload mode, no
re-fetch: an event in the pull's own second would be re-fetched, a different path).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from reconcile.models import Product, StripeUser, Subscription, SubscriptionItem
from tests.test_webhooks import hooks, last_event, post  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dated(hooks):  # noqa: F811
    past = datetime.now(timezone.utc) - timedelta(hours=1)
    for model in (Product, StripeUser, Subscription, SubscriptionItem):
        model.objects.update(synced_at=past)
    return hooks


# Per event: the log's INSERT; the row's synced_at (before any Stripe call); BEGIN; the same read
# locking the row; the rows of the object (a product: its features, its row, the features table);
# for a customer the users with its email; the lost-write guard's locked read; the UPDATE; the
# log's UPDATE; COMMIT.
CUSTOMER, PRODUCT = 10, 11
# A subscription also reads which of its references are stored, before (3) and under the lock (2),
# and its items with its row.
SUBSCRIPTION = 15


def test_a_customer_event_costs_a_fixed_number_of_statements(dated, django_assert_num_queries):
    dated.update("customers", "cus_DemoAlice00001", name="Alice B")
    with django_assert_num_queries(CUSTOMER):
        assert post(last_event(dated)).json()["outcome"] == "applied"
    assert StripeUser.objects.get(customer_id="cus_DemoAlice00001").name == "Alice B"


def test_a_product_event_costs_a_fixed_number_of_statements(dated, django_assert_num_queries):
    dated.update("products", "prod_DemoStarter01", name="Starter 2")
    with django_assert_num_queries(PRODUCT):
        assert post(last_event(dated)).json()["outcome"] == "applied"
    assert Product.objects.get(id="prod_DemoStarter01").name == "Starter 2"


def test_a_subscription_event_costs_a_fixed_number_of_statements(dated, django_assert_num_queries):
    item = dated.get("subscriptions", "sub_DemoAlice00001")["items"]["data"][0]
    dated.update("subscriptions", "sub_DemoAlice00001", cancel_at_period_end=True)
    with django_assert_num_queries(SUBSCRIPTION):
        assert post(last_event(dated)).json()["outcome"] == "applied"
    assert Subscription.objects.get(id="sub_DemoAlice00001").cancel_at_period_end is True
    assert SubscriptionItem.objects.filter(id=item["id"]).exists()


def test_a_redelivery_costs_three_statements(dated, django_assert_num_queries):
    dated.update("products", "prod_DemoStarter01", name="Once")
    event = last_event(dated)
    assert post(event).json()["outcome"] == "applied"
    with django_assert_num_queries(3):  # the refused INSERT, deliveries + 1, the stored row
        assert post(event).json()["outcome"] == "duplicate"
