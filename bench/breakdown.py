"""Where a no-op re-pull's time goes, stage by stage, in a process of its own (``python -m bench.breakdown``).

Run against a database a first pull has filled and the fake Stripe (a test double) that served it.
Each stage runs alone, one after the other, on one thread, so the figures add up to what the work
costs, not what the run's threads overlap:

- **fake + loopback**: every page of every listing fetched with a bare ``http.client`` connection
  (keep-alive, no decoding): what the fake Stripe and the socket cost, the floor of any client;
- **HTTP (stripe-python)**: the same pages through reconcile's own request path (stripe-python's
  requestor, ``requests``), bodies not decoded; less the line above, the client's own cost;
- **JSON decoding**: ``json.loads`` of every body, and any faster decoder installed (orjson, msgspec);
- **parsing into records**: the decoded pages into snapshot records (``reconcile.core.parse``);
- **loading rows**: ``load_local`` (one query per model, rows into records);
- **the diff**: ``diff`` of the two snapshots (a no-op: nothing to do, every record compared).

Prints one JSON object: seconds per stage, pages, bytes.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import sys
import time
from urllib.parse import urlencode, urlsplit

LISTINGS = (
    ("/v1/products", {"active": "true"}),
    ("/v1/products", {"active": "false"}),
    ("/v1/prices", {"active": "true"}),
    ("/v1/prices", {"active": "false"}),
    ("/v1/customers", {}),
    ("/v1/subscriptions", {"status": "all"}),
)


def _has_more(body: str | bytes) -> bool:
    tail = body[-300:]
    return '"has_more":true' in (tail.decode() if isinstance(tail, bytes) else tail)


def _raw_pages(api_base: str, key: str) -> tuple[list[tuple[str, bytes]], float]:
    """Every page over one keep-alive connection, bodies as bytes; the cursor is read from the
    tail of the body (the last ``"id"`` of the data) without decoding it."""
    parts = urlsplit(api_base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    headers = {"Authorization": f"Bearer {key}"}
    bodies: list[tuple[str, bytes]] = []
    started = time.perf_counter()
    for path, params in LISTINGS:
        cursor = None
        while True:
            query = dict(params, limit=100, **({"starting_after": cursor} if cursor else {}))
            conn.request("GET", f"{path}?{urlencode(query)}", headers=headers)
            body = conn.getresponse().read()
            bodies.append((path, body))
            if not _has_more(body):
                break
            cursor = json.loads(body)["data"][-1]["id"]  # rare: one decode per page, counted below
    seconds = time.perf_counter() - started
    conn.close()
    return bodies, seconds


def _client_pages(fetcher, count: int) -> float:
    """The same pages through reconcile's request path, not decoded."""
    from reconcile.stripe.fetch import Fetcher

    assert isinstance(fetcher, Fetcher)
    requestor = fetcher._requestor
    started = time.perf_counter()
    done = 0
    for path, params in LISTINGS:
        cursor = None
        while True:
            query = dict(params, limit=100, **({"starting_after": cursor} if cursor else {}))
            body, _, _ = requestor.request_raw(
                "get", path, params=query, options={}, base_address="api", api_mode="V1", usage=["raw_request"]
            )
            done += 1
            if not _has_more(body):
                break
            cursor = json.loads(body)["data"][-1]["id"]
    assert done == count, (done, count)
    return time.perf_counter() - started


def _decoders() -> dict:
    found = {"json.loads": json.loads}
    try:
        import orjson

        found["orjson.loads"] = orjson.loads
    except ImportError:
        pass
    try:
        import msgspec

        found["msgspec.json.decode"] = msgspec.json.decode
    except ImportError:
        pass
    return found


def _parse(pages: list[tuple[str, dict]]) -> float:
    from reconcile.core.parse import parse_customer, parse_price, parse_product, parse_subscription

    started = time.perf_counter()
    for path, page in pages:
        for obj in page["data"]:
            if path == "/v1/subscriptions":
                parse_subscription(obj, obj["items"]["data"])
            elif path == "/v1/customers":
                parse_customer(obj)
            elif path == "/v1/prices":
                parse_price(obj)
            else:
                parse_product(obj)
    return time.perf_counter() - started


def breakdown() -> dict:
    from reconcile.conf import get_config
    from reconcile.core.diff import diff
    from reconcile.db.local import known_ids, load_local
    from reconcile.stripe.fetch import Fetcher
    from reconcile.stripe.remote import fetch_remote

    config = get_config()
    resources = ("products", "customers", "subscriptions")
    out: dict = {}
    bodies, out["fake + loopback (bare http.client)"] = _raw_pages(config.api_base, config.api_key)
    out["pages"] = len(bodies)
    out["bytes"] = sum(len(b) for _, b in bodies)
    fetcher = Fetcher(config)
    out["HTTP (stripe-python requestor)"] = _client_pages(fetcher, len(bodies))
    for name, decode in _decoders().items():
        best = float("inf")
        for _ in range(3):  # the best of three; each page's result dropped at once (memory stays flat)
            gc.collect()
            gc.disable()
            seconds = 0.0
            for _, body in bodies:
                started = time.perf_counter()
                decode(body)
                seconds += time.perf_counter() - started
            gc.enable()
            best = min(best, seconds)
        out[f"JSON decoding ({name})"] = best
    out["parsing into records"] = sum(_parse([(path, json.loads(body))]) for path, body in bodies)
    del bodies
    started = time.perf_counter()
    remote = fetch_remote(config, resources, known=known_ids())
    out["the whole fetch (threads, as a run does it)"] = time.perf_counter() - started
    started = time.perf_counter()
    local = load_local(resources)
    out["loading rows (load_local)"] = time.perf_counter() - started
    started = time.perf_counter()
    plan = diff(remote, local, known=known_ids())
    out["the diff"] = time.perf_counter() - started
    out["diff operations"] = len(plan.operations)
    return out


def main(argv: list[str] | None = None) -> int:
    from .ours import configure

    parser = argparse.ArgumentParser(prog="python -m bench.breakdown", description=__doc__.splitlines()[0])
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--api-base", required=True)
    args = parser.parse_args(argv)
    configure(args.db_url, args.api_base, unthrottled=True, create_users=False)
    sys.stdout.write(json.dumps(breakdown()) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
