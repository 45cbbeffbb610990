"""Webhooks arriving while pull_stripe runs, on PostgreSQL: no update is lost either way.

The pull fetches products, prices and customers, then waits (its subscriptions listing is held)
while Stripe changes and the webhooks are applied: the pull's pages are now older than the rows.
The listing is released while more webhooks arrive, so the pull's apply and the webhooks'
transactions overlap. Afterwards a pull finds the database equal to Stripe."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from reconcile.testing.fakestripe import FakeStripe, serve
from reconcile.testing.generate import generate_account
from reconcile.testing.mutations import Script
from reconcile.testing.webhooks import register
from tests.helpers.site import ROOT, database, env_for, gunicorn, manage

pytestmark = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="PostgreSQL only (row locks)"
)
SECRET = "whsec_" + "race" * 4  # a fake, built in code


class HeldSubscriptions(FakeStripe):
    """Holds the first /v1/subscriptions request until ``release()``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.arrived, self.gate = threading.Event(), threading.Event()

    def record(self, method, path, query, *rest) -> None:
        super().record(method, path, query, *rest)
        if path == "/v1/subscriptions" and not self.gate.is_set():
            self.arrived.set()
            self.gate.wait(120)

    def release(self) -> None:
        self.gate.set()


def test_webhooks_during_a_pull_lose_no_update(tmp_path):
    fake = HeldSubscriptions(generate_account(300, seed=8, n_products=6))
    fake.gate.set()
    with serve(fake) as stripe_server, database("postgres", tmp_path, "race") as url:
        api = stripe_server.url
        assert manage(url, api, "migrate", "-v", "0").returncode == 0
        assert manage(url, api, "pull_stripe").returncode == 0
        with gunicorn(url, api, workers=2, threads=4, STRIPE_WEBHOOK_SECRETS=SECRET) as site:
            sender = register(fake, site + "/stripe/webhook/", SECRET)
            script = Script(fake, seed=9)
            fake.gate.clear()
            pull = subprocess.Popen(
                [sys.executable, "manage.py", "pull_stripe"],
                cwd=ROOT,
                env=env_for(url, api),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert fake.arrived.wait(60), "the pull did not reach its subscriptions listing"
            for _ in range(60):  # Stripe changes after the pull read its pages; webhooks apply them
                getattr(script, script.rng.choice(["rename_product", "rename_price", "edit_customer"]))()
            before = sender.deliver(shuffle=True, seed=1, concurrency=4)
            fake.release()
            for _ in range(60):  # and more while the pull applies
                getattr(script, script.rng.choice(["edit_customer", "change_subscription", "rename_product"]))()
            during = sender.deliver(shuffle=True, seed=2, concurrency=8)
            out, err = pull.communicate(timeout=300)
            assert pull.returncode == 0, out + err
            # the race happened: webhooks wrote rows after the pull loaded them and read their pages.
            # The pull either found its page equal to the row it loaded before the fetch (nothing to
            # write), or met the newer row ("kept the newer row", in the plan or as a conflict).
            assert any(d.status == 200 for d in before)
            events = {e["id"]: e for e in fake.recorder.events}
            refused = [events[d.event_id] for d in before + during if d.status != 200]
            for _ in range(3):  # what was not answered 2xx is sent again, as Stripe does
                if not refused:
                    break
                sender.pending = refused
                refused = [events[d.event_id] for d in sender.deliver() if d.status != 200]
            assert not refused
        check = manage(url, api, "pull_stripe", "--check", "-v", "2")
        assert check.returncode == 0, check.stdout + check.stderr
