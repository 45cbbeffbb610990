"""The events benchmarks: an incremental pull against a full pull, and webhook throughput.

- Incremental: after a first pull of N customers, ``changes`` customers are renamed in the fake
  Stripe (one event each); ``pull_stripe --incremental`` is measured, then, after as many new
  changes, a full ``pull_stripe`` for comparison.
- Webhooks (PostgreSQL): gunicorn serves the demo project (2 workers x 4 threads); the fake's
  sender posts the events of scripted mutations from 8 threads at once; events/s, latency
  p50/p99, and how many updates were lost (a ``pull_stripe --check`` afterwards: its writes).
  Inline (processed in the request) and through Celery (stored, enqueued, answered; a worker of
  4 threads applies them: the time until the last is processed is measured too).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .fakeproc import FakeProcess
from .scenarios import Db, Row, measured, reset_database, run_ours

SECRET_PREFIX = "whsec_"


def incremental_scenario(n: int, seed: int, db: Db, *, changes: int = 100, log=print) -> list[Row]:
    log(f"  incremental pull: N={n:,} on {db.name}, {changes} changed customers ...")
    with FakeProcess(n, seed) as fake:
        reset_database(db)
        run_ours("migrate", db, fake.url)
        fake.call("warm")
        run_ours("pull", db, fake.url, unthrottled=True, label="incremental-setup")
        fake.call("changes", count=changes, seed=seed + 10)
        inc = measured(f"incremental pull ({changes} changed)", db, fake, n, unthrottled=True, incremental=True)
        fake.call("changes", count=changes, seed=seed + 11)
        fake.call("warm")
        full = measured(f"full pull ({changes} changed)", db, fake, n, unthrottled=True)
    return [inc, full]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else 0.0


def webhook_scenario(postgres_url: str, *, mode: str, customers: int, mutations: int, seed: int, log=print) -> dict:
    """One throughput run (``mode`` "inline" or "celery"); needs Redis for Celery."""
    import secrets
    import tempfile

    from reconcile.testing.fakestripe import FakeStripe, serve
    from reconcile.testing.generate import generate_account
    from reconcile.testing.mutations import Script
    from reconcile.testing.webhooks import register
    from tests.helpers import site

    secret = SECRET_PREFIX + secrets.token_hex(16)
    # Persistent connections, as a deployment taking webhooks has (a new PostgreSQL backend per
    # request would cost more than the event itself).
    env = {"STRIPE_WEBHOOK_SECRETS": secret, "DATABASE_CONN_MAX_AGE": "600"}
    if mode == "celery":
        env |= {"RECONCILE_WEBHOOK_QUEUE": "celery", "CELERY_BROKER_URL": site.REDIS_URL}
        site.flush_redis()
    log(f"  webhooks ({mode}): {mutations} mutations of a {customers:,}-customer account, 8 senders ...")
    fake = FakeStripe(generate_account(customers, seed=seed, n_products=10))
    import os

    os.environ.setdefault("DATABASE_URL", postgres_url)
    with serve(fake) as stripe_server, site.database("postgres", Path(tempfile.gettempdir()), f"hooks_{mode}") as url:
        api = stripe_server.url
        assert site.manage(url, api, "migrate", "-v", "0").returncode == 0
        assert site.manage(url, api, "pull_stripe").returncode == 0
        worker = site.celery_worker(url, api, concurrency=4, **env) if mode == "celery" else _null()
        with site.gunicorn(url, api, workers=2, threads=4, **env) as web, worker:
            sender = register(fake, web + "/stripe/webhook/", secret)
            script = Script(fake, seed)
            for _ in range(mutations):
                getattr(script, script.rng.choice(["edit_customer", "change_subscription", "rename_product"]))()
            events = list(sender.pending)
            started = time.perf_counter()
            done = sender.deliver(concurrency=8)
            wall = time.perf_counter() - started
            processed_wall = wall
            if mode == "celery":
                site.wait_for(lambda: "pending" not in site.event_outcomes(url), timeout=600, what="the worker")
                processed_wall = time.perf_counter() - started
            refused = [e for e in events if e["id"] in {d.event_id for d in done if d.status != 200}]
            outcomes_before_retry = site.event_outcomes(url)
            retried = 0
            for _ in range(3):
                if not refused:
                    break
                retried += len(refused)
                sender.pending = refused
                again = sender.deliver(concurrency=8)
                if mode == "celery":
                    site.wait_for(lambda: "pending" not in site.event_outcomes(url), timeout=600, what="the worker")
                refused = [e for e in refused if e["id"] in {d.event_id for d in again if d.status != 200}]
        check = site.manage(url, api, "pull_stripe", "--check", "--format", "json")
        plan = json.loads(check.stdout)
        lost = sum(plan["summary"][k] for k in ("create", "update", "recreate_items"))
    latencies = [d.seconds for d in done]
    return {
        "mode": mode,
        "customers": customers,
        "events": len(events),
        "senders": 8,
        "http_wall": wall,
        "events_per_s": len(done) / wall if wall else 0.0,
        "processed_per_s": len(events) / processed_wall if processed_wall else 0.0,
        "p50_ms": _percentile(latencies, 0.5) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "statuses": sorted({d.status for d in done}),
        "outcomes": outcomes_before_retry,
        "redelivered": retried,
        "lost": lost,
        "check_exit": check.returncode,
    }


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return None


def text_lines(rows: list[Row], hooks: list[dict]) -> list[str]:
    out = []
    for r in rows:
        out.append(
            f"  {r.scenario:<32} {r.db:<8} N={r.n:,}: {r.requests} requests "
            f"({', '.join(f'{k} {v}' for k, v in sorted(r.extra['by_endpoint'].items()))}), "
            f"{r.wall:.2f} s, {r.sql} SQL statements, applied {r.counts or 'nothing'}"
        )
    for h in hooks:
        out.append(
            f"  webhooks {h['mode']:<7} PostgreSQL, {h['events']} events, 8 senders: {h['events_per_s']:.0f} events/s "
            f"answered (p50 {h['p50_ms']:.0f} ms, p99 {h['p99_ms']:.0f} ms), {h['processed_per_s']:.0f} events/s "
            f"applied; first answers {h['statuses']}, {h['redelivered']} redelivered; lost: {h['lost']}"
        )
    return out
