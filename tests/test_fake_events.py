"""The fake Stripe's events (a test double): one per mutation, /v1/events filters and pagination,
signed webhook delivery."""

from __future__ import annotations

import json

import pytest
import stripe

from reconcile.testing.fakestripe import FakeStripe, serve
from reconcile.testing.webhooks import WebhookSender, sign
from tests.conftest import FAKE_KEY, demo_data


@pytest.fixture
def fake() -> FakeStripe:
    fake = FakeStripe(demo_data())
    ticks = iter(range(1_700_000_000, 1_700_001_000))
    fake.recorder.clock = lambda: next(ticks)
    return fake


def client(server) -> stripe.StripeClient:
    return stripe.StripeClient(FAKE_KEY, base_addresses={"api": server.url})


def test_each_mutation_records_a_stripe_shaped_event(fake):
    fake.update("products", "prod_DemoStarter01", name="New name")
    fake.cancel_subscription("sub_DemoBob0000001")
    fake.delete_customer("cus_DemoCarol00001")
    fake.remove("prices", "price_DemoLegacyMo1")
    types = [e["type"] for e in fake.recorder.events]
    assert types == [
        "product.updated",
        "customer.subscription.deleted",
        "customer.deleted",
        "customer.subscription.deleted",
        "price.deleted",
    ]
    first = fake.recorder.events[0]
    assert set(first) == {
        "id",
        "object",
        "api_version",
        "created",
        "data",
        "livemode",
        "pending_webhooks",
        "request",
        "type",
    }
    assert first["id"].startswith("evt_") and first["object"] == "event" and first["livemode"] is False
    assert first["created"] == 1_700_000_000
    assert first["data"]["object"]["name"] == "New name"
    assert first["data"]["previous_attributes"] == {"name": "Starter"}
    assert "previous_attributes" not in fake.recorder.events[2]["data"]
    assert "deleted" not in fake.recorder.events[2]["data"]["object"]  # the customer as it was


def test_events_list_filters_and_paginates_like_stripe(fake):
    for i in range(5):
        fake.update("products", "prod_DemoStarter01", name=f"n{i}")
    fake.update("customers", "cus_DemoCarol00001", name="C")
    with serve(fake) as server:
        events = client(server).v1.events
        every = events.list({"limit": 100})
        assert [e.type for e in every.data][:2] == ["customer.updated", "product.updated"]  # newest first
        assert len(events.list({"type": "product.*"}).data) == 5
        assert len(events.list({"types": ["customer.updated", "price.updated"]}).data) == 1
        assert len(events.list({"created": {"gt": 1_700_000_003}}).data) == 2
        page = events.list({"limit": 2})
        assert page.has_more is True
        ids = [e.id for e in page.auto_paging_iter()]
        assert ids == [e.id for e in every.data]
        assert client(server).v1.events.retrieve(ids[0]).id == ids[0]
        with pytest.raises(stripe.InvalidRequestError):
            events.list({"types": [f"t{i}" for i in range(21)]})


def test_webhooks_are_signed_as_stripe_signs_them():
    body = json.dumps({"id": "evt_1"}).encode()
    header = sign(body, "whsec_" + "abc" * 4, 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    expected = stripe.WebhookSignature.generate_signature_header(body.decode(), "whsec_" + "abc" * 4, 1_700_000_000)
    assert header == expected


def test_a_sender_delivers_only_to_loopback():
    with pytest.raises(ValueError, match="loopback"):
        WebhookSender("http://example.com/hook", "whsec_x")
