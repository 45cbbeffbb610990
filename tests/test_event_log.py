"""The event log: read-only admin with filters, retry of failed events, pending pickup, retention."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from reconcile.events.models import StripeEvent
from reconcile.models import Product
from reconcile.testing.fakestripe import Fault
from tests.conftest import run
from tests.test_webhooks import SECRET, last_event, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def hooks(fake_stripe, reconcile_settings):
    reconcile_settings.RECONCILE = {
        **reconcile_settings.RECONCILE,
        "WEBHOOK_SECRETS": SECRET,
        "WEBHOOK_MODE": "refetch",
        "MAX_RETRIES": 0,
    }
    assert run("pull_stripe").code == 0
    return fake_stripe


@pytest.fixture
def staff() -> Client:
    user = get_user_model().objects.create_superuser("admin", "admin@example.org", "pw")
    client = Client()
    client.force_login(user)
    return client


def failed_event(fake) -> dict:
    fake.update("products", "prod_DemoStarter01", name="After the outage")
    fake.inject(Fault("status", "/v1/products", status=503))
    answer = post(last_event(fake))
    assert answer.status_code == 500 and answer.json()["outcome"] == "failed"
    return last_event(fake)


def test_a_failed_event_is_logged_with_the_error_and_retried_by_command(hooks):
    event = failed_event(hooks)
    row = StripeEvent.objects.get(id=event["id"])
    assert row.outcome == "failed" and "Stripe kept failing on GET /v1/products/prod_DemoStarter01" in row.error
    result = run("stripe_events", "retry")
    assert result.code == 0 and result.out == "Processed: 1 applied.\n"
    assert Product.objects.get(id="prod_DemoStarter01").name == "After the outage"
    row.refresh_from_db()
    assert (row.outcome, row.attempts, row.error) == ("applied", 2, "")
    assert run("stripe_events", "retry").out == "Processed: nothing to do.\n"


def test_stripe_redelivering_a_failed_event_processes_it_again(hooks):
    event = failed_event(hooks)
    assert post(event).json() == {"id": event["id"], "outcome": "applied"}


def test_pending_events_are_picked_up_again(hooks):
    hooks.update("products", "prod_DemoStarter01", name="Queued")
    event = last_event(hooks)
    from reconcile.events.log import receive

    receive(event)  # stored, then the process died before processing it
    StripeEvent.objects.update(received_at=datetime.now(timezone.utc) - timedelta(minutes=5))
    result = run("stripe_events", "process-pending")
    assert result.out == "Processed: 1 applied.\n"
    assert Product.objects.get(id="prod_DemoStarter01").name == "Queued"


def test_prune_deletes_entries_older_than_the_retention(hooks, reconcile_settings):
    hooks.update("products", "prod_DemoStarter01", name="A")
    post(last_event(hooks))
    hooks.update("products", "prod_DemoStarter01", name="B")
    post(last_event(hooks))
    StripeEvent.objects.filter(id=hooks.recorder.events[-2]["id"]).update(
        received_at=datetime.now(timezone.utc) - timedelta(days=31)
    )
    assert run("stripe_events", "prune").out == "Deleted 1 event log entries older than 30 days.\n"
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "EVENT_RETENTION_DAYS": 0}
    assert run("stripe_events", "prune").out == "Deleted 1 event log entries older than 0 days.\n"


def test_admin_lists_filters_and_shows_events_read_only(hooks, staff):
    hooks.update("products", "prod_DemoStarter01", name="<b>Shown</b>")
    post(last_event(hooks))
    failed_event(hooks)
    url = reverse("admin:reconcile_stripeevent_changelist")
    page = staff.get(url)
    assert page.status_code == 200 and page.content.count(b"product.updated") >= 2
    failed = staff.get(url, {"outcome__exact": "failed"}).content.decode()
    assert "After the outage" not in failed and failed.count('class="field-outcome">failed') == 1
    assert staff.get(url, {"type__exact": "invoice.paid"}).content.decode().count("field-outcome") == 0
    row = StripeEvent.objects.filter(outcome="applied").get()
    detail = staff.get(reverse("admin:reconcile_stripeevent_change", args=[quote(row.id)])).content.decode()
    assert "update Product prod_DemoStarter01: name" in detail and "&lt;b&gt;Shown&lt;/b&gt;" in detail
    assert "<b>Shown</b>" not in detail
    assert staff.get(reverse("admin:reconcile_stripeevent_add")).status_code == 403
    assert staff.post(reverse("admin:reconcile_stripeevent_delete", args=[row.id])).status_code == 403
    assert json.loads(json.dumps(row.report))["summary"]["update"] == 1
