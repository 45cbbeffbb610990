"""The webhook endpoint: signatures, each handled type, duplicates, order, deletions, references.

Events come from the fake Stripe (a test double): each mutation records the event Stripe would
send; the test posts it to the endpoint through Django's test client.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone

import pytest
import stripe
from django.test import Client

from reconcile.events.models import StripeEvent
from reconcile.models import Price, Product, StripeUser, Subscription, SubscriptionItem
from reconcile.testing.webhooks import sign
from tests.conftest import demo_data, run

pytestmark = pytest.mark.django_db
SECRET = "whsec_" + "tests" * 3  # a fake, built in code
OLD_SECRET = "whsec_" + "older" * 3
URL = "/stripe/webhook/"


@pytest.fixture
def hooks(fake_stripe, reconcile_settings):
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "WEBHOOK_SECRETS": [SECRET]}
    assert run("pull_stripe").code == 0
    fake_stripe.reset_requests()
    return fake_stripe


def post(event: dict | bytes, *, secret: str = SECRET, header: str | None = None, client: Client | None = None):
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    signature = sign(body, secret) if header is None else header
    return (client or Client()).post(URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature)


def last_event(fake) -> dict:
    return fake.recorder.events[-1]


def in_sync() -> bool:
    return run("pull_stripe", "--check").code == 0


# -- signatures ----------------------------------------------------------------------------------


def test_a_valid_signature_is_accepted_and_agrees_with_stripe_python(hooks):
    hooks.update("products", "prod_DemoStarter01", name="Starter 2")
    event = last_event(hooks)
    body = json.dumps(event).encode()
    header = sign(body, SECRET)
    assert stripe.Webhook.construct_event(body, header, SECRET)["id"] == event["id"]  # the fake signs as Stripe
    answer = post(body, header=header)
    assert answer.status_code == 200 and answer.json() == {"id": event["id"], "outcome": "applied"}
    assert Product.objects.get(id="prod_DemoStarter01").name == "Starter 2"


@pytest.mark.parametrize(
    "kind",
    ["missing", "malformed", "no_v1", "wrong_secret", "tampered", "expired", "replayed", "future_garbage", "not_utf8"],
)
def test_every_kind_of_bad_signature_gets_400_and_changes_nothing(hooks, kind):
    hooks.update("products", "prod_DemoStarter01", name="Starter 2")
    event = last_event(hooks)
    body = json.dumps(event).encode()
    t = int(time.time())
    headers = {
        "missing": "",
        "malformed": "garbage",
        "no_v1": f"t={t}",
        "wrong_secret": sign(body, "whsec_" + "other" * 3),
        "tampered": sign(body.replace(b"Starter 2", b"Starter 3"), SECRET),
        "expired": sign(body, SECRET, t - 301),
        "replayed": sign(body, SECRET, t - 3600),  # a captured request sent again an hour later
        "future_garbage": f"t=abc,v1={'0' * 64}",
        "not_utf8": None,
    }
    if kind == "not_utf8":
        body = body + b"\xff"
        answer = post(body, header=sign(body, SECRET))
    else:
        answer = post(body, header=headers[kind])
    assert answer.status_code == 400
    assert StripeEvent.objects.count() == 0
    assert Product.objects.get(id="prod_DemoStarter01").name != "Starter 2"


def test_rotated_secrets_both_verify_and_a_header_with_two_v1_passes(hooks, reconcile_settings):
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "WEBHOOK_SECRETS": [SECRET, OLD_SECRET]}
    hooks.update("products", "prod_DemoStarter01", name="A")
    assert post(last_event(hooks), secret=OLD_SECRET).status_code == 200
    hooks.update("products", "prod_DemoStarter01", name="B")
    body = json.dumps(last_event(hooks)).encode()
    t = int(time.time())
    both = f"{sign(body, 'whsec_' + 'retired' * 2, t)},v1={sign(body, SECRET, t).split('v1=')[1]}"
    assert post(body, header=both).status_code == 200
    assert Product.objects.get(id="prod_DemoStarter01").name == "B"


def test_get_is_405_big_bodies_413_and_csrf_does_not_apply(hooks, reconcile_settings):
    assert Client().get(URL).status_code == 405
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "WEBHOOK_MAX_BYTES": 1000}
    hooks.update("products", "prod_DemoStarter01", name="x" * 2000)
    assert post(last_event(hooks)).status_code == 413
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "WEBHOOK_MAX_BYTES": 1_000_000}
    hooks.update("products", "prod_DemoStarter01", name="Starter 3")
    assert post(last_event(hooks), client=Client(enforce_csrf_checks=True)).status_code == 200


def test_a_body_that_is_not_an_event_is_400(hooks):
    assert post(b'{"hello": 1}').status_code == 400
    assert post(b"not json").status_code == 400


def test_logs_at_info_name_no_secret_nor_email(hooks, caplog):
    caplog.set_level(logging.INFO, logger="reconcile")
    caplog.set_level(logging.INFO)
    hooks.update("customers", "cus_DemoCarol00001", email="carol.secret@example.org")
    assert post(last_event(hooks)).status_code == 200
    post(last_event(hooks), secret="whsec_" + "wrong" * 3)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "customer.updated: applied" in text and "signature mismatch" in text
    assert "carol" not in text and SECRET not in text and "whsec_" not in text


# -- each handled type ---------------------------------------------------------------------------


def new_product(fake, pid="prod_NewOne0000001"):
    product = {**demo_data()["products"][0], "id": pid, "name": "New one", "created": int(time.time())}
    fake.upsert("products", product)
    return product


def test_product_created_updated_deleted(hooks):
    new_product(hooks)
    assert post(last_event(hooks)).json()["outcome"] == "applied"
    hooks.update("products", "prod_NewOne0000001", description="Now described")
    assert post(last_event(hooks)).json()["outcome"] == "applied"
    hooks.remove("products", "prod_NewOne0000001")
    assert last_event(hooks)["type"] == "product.deleted"
    assert post(last_event(hooks)).json()["outcome"] == "applied"
    row = Product.objects.get(id="prod_NewOne0000001")
    assert row.deleted is True and row.description == "Now described"
    assert in_sync()  # a pull after the webhooks plans nothing


def test_price_created_updated_deleted(hooks):
    price = {**demo_data()["prices"][0], "id": "price_NewOne000001", "nickname": "new"}
    hooks.upsert("prices", price)
    hooks.update("prices", "price_NewOne000001", nickname="renamed", active=False)
    # a price is always read from Stripe (its payload lacks tiers): the first event brings it up to date,
    # so the second changes nothing. Whether it is "duplicate" (the row already holds its state) or
    # "stale" (the row was stamped after the event's second) depends on where the clock's second
    # boundary falls between the two mutations, so either is right; what it must not do is apply.
    first, second = (post(e).json()["outcome"] for e in hooks.recorder.events[-2:])
    assert first == "applied" and second in ("duplicate", "stale")
    assert Price.objects.get(id="price_NewOne000001").nickname == "renamed"
    hooks.remove("prices", "price_NewOne000001")
    assert post(last_event(hooks)).json()["outcome"] == "applied"
    assert Price.objects.get(id="price_NewOne000001").deleted is True
    assert in_sync()


def test_customer_created_updated_deleted(hooks):
    hooks.upsert("customers", {**demo_data()["customers"][0], "id": "cus_NewOne00000001", "email": "n@x.io"})
    hooks.update("customers", "cus_NewOne00000001", name="Nina")
    for event in hooks.recorder.events[-2:]:
        assert post(event).json()["outcome"] == "applied"
    hooks.delete_customer("cus_DemoCarol00001")
    events = [e for e in hooks.recorder.events if e["type"] in ("customer.deleted", "customer.subscription.deleted")]
    for event in events:
        assert post(event).status_code == 200
    assert StripeUser.objects.get(customer_id="cus_NewOne00000001").name == "Nina"
    carol = StripeUser.objects.get(customer_id="cus_DemoCarol00001")
    assert carol.deleted is True and carol.subscriptions.get().status == "canceled"
    assert in_sync()


@pytest.mark.parametrize(
    "change,kind",
    [
        ({"status": "paused"}, "customer.subscription.paused"),
        ({"cancel_at_period_end": True}, "customer.subscription.updated"),
        (
            {"status": "canceled", "canceled_at": 1_790_000_000, "ended_at": 1_790_000_000},
            "customer.subscription.deleted",
        ),
    ],
)
def test_subscription_events(hooks, change, kind):
    hooks.update("subscriptions", "sub_DemoAlice00001", **change)
    assert last_event(hooks)["type"] == kind
    assert post(last_event(hooks)).json()["outcome"] == "applied"
    if kind.endswith("paused"):
        hooks.update("subscriptions", "sub_DemoAlice00001", status="active")
        assert last_event(hooks)["type"] == "customer.subscription.resumed"
        assert post(last_event(hooks)).json()["outcome"] == "applied"
    assert in_sync()


def test_trial_will_end_and_pending_update_types_are_handled(hooks):
    # The pull's rows are made older than the event's second, so that the first event is applied
    # from its payload whatever the clock: a pull in the event's own second would have it re-fetched,
    # and a re-fetch that ends in the next second would rightly make the second event stale.
    long_ago = datetime(2020, 1, 1, tzinfo=timezone.utc)
    Subscription.objects.filter(id="sub_DemoAlice00001").update(synced_at=long_ago)
    SubscriptionItem.objects.filter(subscription_id="sub_DemoAlice00001").update(synced_at=long_ago)
    hooks.update("subscriptions", "sub_DemoAlice00001", trial_end=1_900_000_000)
    event = {**last_event(hooks), "id": "evt_TrialWillEnd0001", "type": "customer.subscription.trial_will_end"}
    assert post(event).json()["outcome"] == "applied"
    event = {**event, "id": "evt_PendingApplied1", "type": "customer.subscription.pending_update_applied"}
    assert post(event).json()["outcome"] == "duplicate"  # nothing left to write
    assert Subscription.objects.get(id="sub_DemoAlice00001").trial_end.timestamp() == 1_900_000_000


def test_other_types_are_200_and_recorded_as_ignored(hooks):
    event = {"id": "evt_Invoice00000001", "object": "event", "type": "invoice.paid", "created": int(time.time())}
    event["data"] = {"object": {"id": "in_1", "object": "invoice"}}
    assert post(event).json() == {"id": "evt_Invoice00000001", "outcome": "ignored"}
    assert StripeEvent.objects.get().outcome == "ignored"
    assert hooks.requests == []


# -- delivery: duplicates, order, references -----------------------------------------------------


def test_a_redelivered_event_is_200_and_changes_nothing(hooks):
    hooks.update("products", "prod_DemoStarter01", name="Once")
    event = last_event(hooks)
    assert post(event).json()["outcome"] == "applied"
    Product.objects.filter(id="prod_DemoStarter01").update(name="changed locally")
    assert post(event).json() == {"id": event["id"], "outcome": "duplicate"}
    assert Product.objects.get(id="prod_DemoStarter01").name == "changed locally"
    row = StripeEvent.objects.get()
    assert (row.deliveries, row.attempts, row.outcome) == (2, 1, "applied")


def test_an_older_event_after_a_newer_one_is_stale(hooks):
    clock = iter([1_800_000_000, 1_800_000_005])
    hooks.recorder.clock = lambda: next(clock)
    hooks.update("products", "prod_DemoStarter01", name="First")
    hooks.update("products", "prod_DemoStarter01", name="Second")
    first, second = hooks.recorder.events[-2:]
    assert post(second).json()["outcome"] == "applied"
    assert post(first).json()["outcome"] == "stale"
    assert Product.objects.get(id="prod_DemoStarter01").name == "Second"
    assert hooks.requests == []  # payload mode: no request to Stripe


def test_two_events_in_one_second_out_of_order_are_resolved_by_a_refetch(hooks):
    second = int(time.time())
    hooks.recorder.clock = lambda: second
    hooks.update("products", "prod_DemoStarter01", name="First")
    hooks.update("products", "prod_DemoStarter01", name="Second")
    first, second = hooks.recorder.events[-2:]
    assert post(second).json()["outcome"] == "applied"
    post(first)  # same second as the stored row: its order is unknown, so the product is re-fetched
    assert Product.objects.get(id="prod_DemoStarter01").name == "Second"
    # fetched again once the second was over: the first answer could predate the stored row
    assert {r.path for r in hooks.requests} == {"/v1/products/prod_DemoStarter01"}


def test_refetch_mode_reads_the_object_from_stripe(hooks, reconcile_settings):
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "WEBHOOK_MODE": "refetch"}
    hooks.update("products", "prod_DemoStarter01", name="Old payload")
    event = last_event(hooks)
    hooks.update("products", "prod_DemoStarter01", name="Current")
    assert post(event).json()["outcome"] == "applied"
    assert Product.objects.get(id="prod_DemoStarter01").name == "Current"
    assert [r.path for r in hooks.requests] == ["/v1/products/prod_DemoStarter01"]


def test_a_subscription_of_an_unknown_customer_and_price_fetches_them_first(hooks):
    customer = {**demo_data()["customers"][0], "id": "cus_Unknown0000001", "email": "u@x.io"}
    hooks.upsert("customers", customer)
    product = new_product(hooks, "prod_Unknown000001")
    price = {**demo_data()["prices"][0], "id": "price_Unknown00001", "product": product["id"]}
    hooks.upsert("prices", price)
    sub = json.loads(json.dumps(demo_data()["subscriptions"][0]))
    sub.update(id="sub_Unknown0000001", customer=customer["id"])
    for item in sub["items"]["data"]:
        item.update(id=item["id"] + "x", subscription=sub["id"], price=price)
    sub["items"]["data"] = sub["items"]["data"][:1]
    hooks.upsert("subscriptions", sub)
    hooks.reset_requests()
    assert post(last_event(hooks)).json()["outcome"] == "applied"  # only the subscription's event
    assert Subscription.objects.get(id="sub_Unknown0000001").stripe_user_id == customer["id"]
    assert Price.objects.get(id=price["id"]).product_id == product["id"]
    # the price is retrieved (an item's embedded price lacks its tiers), then its product and the customer
    assert sorted(r.path for r in hooks.requests) == [
        "/v1/customers/cus_Unknown0000001",
        "/v1/prices/price_Unknown00001",
        "/v1/products/prod_Unknown000001",
    ]


def test_a_subscription_whose_customer_is_deleted_and_unknown_fails_with_the_reason(hooks):
    customer = {**demo_data()["customers"][0], "id": "cus_Gone000000001", "deleted": True}
    hooks.upsert("customers", customer)
    sub = json.loads(json.dumps(demo_data()["subscriptions"][0]))
    sub.update(id="sub_Orphaned000001", customer=customer["id"])
    sub["items"]["data"] = []
    hooks.upsert("subscriptions", sub)
    answer = post(last_event(hooks))
    assert answer.status_code == 500 and answer.json()["outcome"] == "failed"
    row = StripeEvent.objects.get(id=last_event(hooks)["id"])
    assert row.error == "its customer cus_Gone000000001 is deleted in Stripe and is not stored"
    assert not Subscription.objects.filter(id="sub_Orphaned000001").exists()
