"""End to end under a real WSGI server: gunicorn serves the demo project on loopback; the fake
Stripe (a test double) applies 300 scripted mutations and delivers their webhooks shuffled and
partly duplicated; afterwards ``pull_stripe --check`` finds the database equal to Stripe."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from reconcile.testing.fakestripe import FakeStripe, serve
from reconcile.testing.generate import generate_account
from reconcile.testing.mutations import apply_mutations
from reconcile.testing.webhooks import register
from tests.helpers.site import BACKENDS, database, gunicorn, manage

SECRET = "whsec_" + "site" * 4  # a fake, built in code
LOG_SUMMARY = (
    "import json; from django.db.models import Count, Sum; from reconcile.events.models import StripeEvent as E; "
    "print(json.dumps([dict(E.objects.values_list('outcome').annotate(Count('id'))), E.objects.count(), "
    "E.objects.aggregate(n=Sum('deliveries'))['n']]))"
)


def deliver_until_accepted(sender, events, rounds: int = 4) -> Counter:
    """Like Stripe: what was not answered 2xx is sent again."""
    statuses: Counter = Counter()
    pending = list(events)
    for _ in range(rounds):
        sender.pending = pending
        done = sender.deliver(shuffle=True, seed=len(pending), concurrency=4)
        statuses.update(d.status for d in done)
        failed = {d.event_id for d in done if d.status != 200}
        pending = [e for e in events if e["id"] in failed]
        if not pending:
            break
    assert not pending, f"still refused after {rounds} rounds: {len(pending)}"
    return statuses


@pytest.mark.parametrize("backend", BACKENDS)
def test_300_mutations_delivered_shuffled_and_duplicated_leave_the_database_equal_to_stripe(backend, tmp_path):
    fake = FakeStripe(generate_account(40, seed=3, n_products=5))
    with serve(fake) as stripe_server, database(backend, tmp_path) as url:
        api = stripe_server.url
        assert manage(url, api, "migrate", "-v", "0").returncode == 0
        assert manage(url, api, "pull_stripe").returncode == 0
        workers = {"workers": 2, "threads": 4} if backend == "postgres" else {}
        with gunicorn(url, api, STRIPE_WEBHOOK_SECRETS=SECRET, **workers) as site:
            sender = register(fake, site + "/stripe/webhook/", SECRET)
            apply_mutations(fake, 300, seed=3)  # a seed whose script also needs redeliveries
            events = list(sender.pending)
            sender.pending = []
            first = sender.deliver  # shuffled, 30% delivered twice
            sender.pending = events
            done = first(shuffle=True, duplicate=0.3, seed=7, concurrency=4)
            assert len(done) > len(events) > 300
            refused = [e for e in events if e["id"] in {d.event_id for d in done if d.status != 200}]
            resent = deliver_until_accepted(sender, refused)
        log = manage(url, api, "shell", "-v", "0", "-c", LOG_SUMMARY)
        outcomes, rows, deliveries = json.loads(log.stdout.splitlines()[-1])
        assert rows == len(events) and deliveries == len(done) + sum(resent.values())
        assert set(outcomes) <= {"applied", "stale", "duplicate"} and outcomes["applied"] > 200, outcomes
        check = manage(url, api, "pull_stripe", "--check", "-v", "2")
        assert check.returncode == 0, check.stdout + check.stderr
        assert check.stdout.endswith("No changes detected.\n") or "No changes detected" in check.stdout
