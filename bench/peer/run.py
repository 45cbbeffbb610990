"""Drive drf-stripe-subscription 1.2.2 the way its docs say, counting its SQL statements.

Run with the peer's own interpreter (``.peer-venv/bin/python bench/peer/run.py ...``), never with
reconcile's: the peer needs stripe-python < 15 and imports nothing of reconcile.

    run.py migrate
    run.py pull --out result.json
    run.py users --file users.json     # create Django users [{"username", "email"}] (the migration test)
    run.py links --out links.json      # the peer's customer-to-user links, {customer_id: user_id}

``pull`` calls ``update_stripe_products`` once (it reads one page of products and one of prices:
that is all the command can do), then ``update_stripe_customers --limit 100 --starting_after ID``
and ``update_stripe_subscriptions --limit 100 --starting_after ID`` page after page until Stripe
says ``has_more: false``. The peer does not print the next cursor, so the wrapper reads it from
the list responses as they pass (``stripe.Customer.list`` / ``stripe.Subscription.list`` are
wrapped to look at the answer; nothing is changed). A page whose command fails is recorded with
its error and the next page is still tried, so one bad object does not hide the rest.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_PAGES = 20_000  # a bound on the page loops, far above any benchmark size


def peak_rss_mib() -> float:
    """Peak RSS of this process: VmHWM (per address space), else ru_maxrss."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class StatementCounter:
    """A ``connection.execute_wrapper``: counts statements by their first keyword."""

    def __init__(self) -> None:
        self.kinds: Counter = Counter()

    def __call__(self, execute, sql, params, many, context):
        word = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"
        self.kinds[word] += 1
        return execute(sql, params, many, context)

    def snapshot(self) -> dict:
        return dict(self.kinds)


def _diff(after: dict, before: dict) -> dict:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) - before.get(k, 0)}


def _pattern(text: str) -> str:
    """Ids and list positions replaced, so that one kind of error reads the same on every page."""
    text = re.sub(r"\bdata\.\d+\.", "data.N.", text)
    text = re.sub(r"\.\d+\.", ".N.", text)
    return re.sub(r"\b(cus|sub|price|prod|si)_[A-Za-z0-9]+", r"\1_...", text)


def describe_error(exc: BaseException) -> list[str]:
    """An exception as short lines: one per kind of pydantic error (field pattern and message,
    without the offending input), else the first line of the message."""
    name = f"{type(exc).__module__}.{type(exc).__name__}"
    errors = getattr(exc, "errors", None)
    if callable(errors) and hasattr(exc, "title"):
        kinds = Counter(
            _pattern(".".join(str(p) for p in e.get("loc", ()))) + ": " + _pattern(str(e.get("msg", "")))
            for e in errors()
        )
        return [f"{name} ({exc.title}) {kind}" for kind in sorted(kinds)]
    first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
    return [f"{name}: {_pattern(first)[:300]}"]


class Cursor:
    """Remembers the last id and ``has_more`` of the latest list answer of one resource."""

    def __init__(self, cls) -> None:
        self.last_id: str | None = None
        self.has_more: bool | None = None
        self.objects = 0
        original = cls.list

        def listing(*args, **kwargs):
            answer = original(*args, **kwargs)
            data = answer["data"]
            self.last_id = data[-1]["id"] if data else None
            self.has_more = bool(answer["has_more"])
            self.objects += len(data)
            return answer

        cls.list = staticmethod(listing)

    def clear(self) -> None:
        self.last_id, self.has_more = None, None


def run_step(name: str, counter: StatementCounter, calls, sink) -> dict:
    """Run one command (one call) or one paged command (a generator of calls)."""
    from django.core.management import call_command

    before = counter.snapshot()
    started = time.perf_counter()
    errors: Counter = Counter()
    pages = failed = 0
    for args in calls():
        pages += 1
        try:
            with contextlib.redirect_stdout(sink):
                call_command(*args, stdout=sink, stderr=sink)
        except Exception as exc:  # noqa: BLE001 - every failure of the peer is a finding
            failed += 1
            for line in describe_error(exc):
                errors[line] += 1
    return {
        "step": name,
        "seconds": time.perf_counter() - started,
        "pages": pages,
        "failed_pages": failed,
        "errors": [{"error": e, "pages": n} for e, n in errors.most_common()],
        "sql": _diff(counter.snapshot(), before),
    }


def pull(out: Path) -> None:
    import django

    django.setup()
    import stripe
    from django.contrib.auth import get_user_model
    from django.db import connection
    from drf_stripe import models as m

    customers, subscriptions = Cursor(stripe.Customer), Cursor(stripe.Subscription)
    products, prices = Cursor(stripe.Product), Cursor(stripe.Price)
    counter = StatementCounter()
    sink = open(os.devnull, "w")  # noqa: SIM115 - the peer prints a line per object

    def paged(command: str, cursor: Cursor):
        def calls():
            after = None
            for _ in range(MAX_PAGES):
                cursor.clear()
                args = [command, "--limit", "100"]
                yield args + (["--starting_after", after] if after else [])
                if not cursor.has_more or cursor.last_id is None:
                    return
                after = cursor.last_id

        return calls

    steps = []
    started = time.perf_counter()
    with connection.execute_wrapper(counter):
        steps.append(run_step("update_stripe_products", counter, lambda: iter([["update_stripe_products"]]), sink))
        steps.append(run_step("update_stripe_customers", counter, paged("update_stripe_customers", customers), sink))
        steps.append(
            run_step("update_stripe_subscriptions", counter, paged("update_stripe_subscriptions", subscriptions), sink)
        )
    wall = time.perf_counter() - started
    rows = {
        "products": m.Product.objects.count(),
        "prices": m.Price.objects.count(),
        "features": m.Feature.objects.count(),
        "customers": m.StripeUser.objects.count(),
        "subscriptions": m.Subscription.objects.count(),
        "subscription_items": m.SubscriptionItem.objects.count(),
        "users": get_user_model().objects.count(),
    }
    result = {
        "wall": wall,
        "steps": steps,
        "sql": counter.snapshot(),
        "rows": rows,
        "listed": {
            "products": products.objects,
            "prices": prices.objects,
            "customers": customers.objects,
            "subscriptions": subscriptions.objects,
        },
        "peak_rss_mib": peak_rss_mib(),
        "versions": _versions(),
    }
    out.write_text(json.dumps(result, indent=1))


def _users_or_links(args: argparse.Namespace) -> int:
    """Users made before the peer's pull (so it links customers to them), or the links it made,
    read through its own models."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from drf_stripe.models import StripeUser

    if args.action == "users":
        for user in json.loads(args.file.read_text()):
            get_user_model().objects.create(username=user["username"], email=user["email"])
        return 0
    links = {row.customer_id: row.user_id for row in StripeUser.objects.all()}
    args.out.write_text(json.dumps(links, indent=1, sort_keys=True))
    return 0


def _versions() -> dict:
    from importlib.metadata import version

    return {
        name: version(name)
        for name in ("drf-stripe-subscription", "stripe", "Django", "djangorestframework", "pydantic")
    }


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.peer.settings")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("migrate", "pull", "users", "links"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--file", type=Path)
    args = parser.parse_args(argv)
    if args.action in ("users", "links"):
        return _users_or_links(args)
    if args.action == "migrate":
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        return 0
    if args.out is None:
        parser.error("pull needs --out")
    pull(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
