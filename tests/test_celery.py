"""WEBHOOK_QUEUE = "celery" with a REAL Celery worker and Redis (not eager mode): the endpoint
verifies, stores the event and answers at once; the worker applies it. Events stored but never
processed (a lost task, a dead worker) are picked up by the periodic task."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from reconcile.testing.fakestripe import FakeStripe, serve
from reconcile.testing.generate import generate_account
from reconcile.testing.mutations import apply_mutations
from reconcile.testing.webhooks import register
from tests.helpers.site import (
    BACKENDS,
    REDIS_URL,
    call_task,
    celery_worker,
    database,
    event_outcomes,
    flush_redis,
    gunicorn,
    manage,
    redis_available,
    wait_for,
)

pytestmark = pytest.mark.skipif(not redis_available(), reason="no Redis on 127.0.0.1:6379 (.ci/run starts one)")
SECRET = "whsec_" + "queue" * 3  # a fake, built in code
QUEUED = {"STRIPE_WEBHOOK_SECRETS": SECRET, "RECONCILE_WEBHOOK_QUEUE": "celery", "CELERY_BROKER_URL": REDIS_URL}


@contextlib.contextmanager
def pulled(fake: FakeStripe, backend: str, tmp_path, label: str) -> Iterator[tuple[str, str]]:
    """An empty Redis database, ``fake`` served, a fresh migrated database pulled from it: (its URL, the fake's)."""
    flush_redis()
    with serve(fake) as stripe_server, database(backend, tmp_path, label) as url:
        api = stripe_server.url
        assert manage(url, api, "migrate", "-v", "0").returncode == 0
        assert manage(url, api, "pull_stripe").returncode == 0
        yield url, api


@pytest.mark.parametrize("backend", BACKENDS)
def test_webhooks_are_stored_answered_at_once_and_applied_by_a_worker(backend, tmp_path):
    fake = FakeStripe(generate_account(20, seed=5, n_products=4))
    with pulled(fake, backend, tmp_path, "celery") as (url, api):
        with gunicorn(url, api, **QUEUED) as site, celery_worker(url, api, **QUEUED):
            sender = register(fake, site + "/stripe/webhook/", SECRET)
            apply_mutations(fake, 60, seed=2)
            events = len(sender.pending)
            done = sender.deliver(shuffle=True, duplicate=0.2, seed=3, concurrency=4)
            assert {d.status for d in done} == {200}
            wait_for(lambda: sum(event_outcomes(url).values()) == events, what="every event stored")
            wait_for(lambda: "pending" not in event_outcomes(url), what="the worker to process every event")
            # an ordering the worker could not settle (a subscription before its deleted customer) is
            # failed, and retried like Stripe's redelivery would
            manage(url, api, "stripe_events", "retry")
        assert set(event_outcomes(url)) <= {"applied", "stale", "duplicate"}
        check = manage(url, api, "pull_stripe", "--check", "-v", "2")
        assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("backend", BACKENDS[-1:])
def test_events_whose_task_was_lost_are_picked_up_by_the_periodic_task(backend, tmp_path):
    fake = FakeStripe(generate_account(10, seed=6, n_products=3))
    with pulled(fake, backend, tmp_path, "lost") as (url, api):
        with gunicorn(url, api, **QUEUED) as site:  # no worker yet: the tasks wait in Redis
            sender = register(fake, site + "/stripe/webhook/", SECRET)
            apply_mutations(fake, 15, seed=4)
            assert {d.status for d in sender.deliver()} == {200}
        assert set(event_outcomes(url)) == {"pending"}
        flush_redis()  # the queued tasks are lost (a broker restart without persistence)
        with celery_worker(url, api, **QUEUED):
            call_task(url, api, "reconcile.tasks.process_pending_events", older_than=0)
            wait_for(lambda: "pending" not in event_outcomes(url), what="the pending events to be processed")
        assert manage(url, api, "pull_stripe", "--check").returncode == 0
