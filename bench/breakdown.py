"""Where a no-op re-pull's time goes, stage by stage, in a process of its own (``python -m bench.breakdown``).

Run against a database a first pull has filled and the fake Stripe (a test double) that served it.
Each stage runs alone, one after the other, on one thread, so the figures add up to what the work
costs, not what the run's threads overlap:

- **fake + loopback**: every page of every listing (prices expanded as a run expands them, and the
  overflow pages of subscriptions' items) fetched with a bare ``http.client`` connection
  (keep-alive, no decoding: the next cursor and the items to page are read from the body's text):
  what the fake Stripe and the socket cost, the floor of any client;
- **HTTP (stripe-python)**: the same requests through reconcile's own request path (stripe-python's
  requestor over reconcile's transport), bodies not decoded; less the line above, the client's own cost;
- **JSON decoding**: ``json.loads`` of every body, msgspec's whole decoding and reconcile's (msgspec into
  only the keys the registry reads: ``reconcile/stripe/decode.py``), and orjson when installed;
- **parsing into records**: the decoded pages into snapshot records (``reconcile.core.parse``);
- **loading rows**: ``load_local`` (one query per model, rows into records);
- **the diff**: ``diff`` of the two snapshots (a no-op: nothing to do, every record compared).

Prints one JSON object: seconds per stage, pages, bytes.

``--floor`` times the first stage alone, with no database: ``--repeat`` walks of the fake at
``--api-base``, or of one it starts (``--n``, built as the benchmark builds it, warmed); then also
the CPU seconds the fake's process spent per walk::

    python -m bench.breakdown --floor --n 100000 --repeat 5
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import os
import sys
import time
from urllib.parse import urlencode, urlsplit

from reconcile.core.registry import PRICES

EXPAND = {"expand": list(PRICES.expand)}  # what a run asks of the price lists (tiers, currency options)
LISTINGS = (
    ("/v1/products", {"active": "true"}),
    ("/v1/products", {"active": "false"}),
    ("/v1/prices", {"active": "true", **EXPAND}),
    ("/v1/prices", {"active": "false", **EXPAND}),
    ("/v1/customers", {}),
    ("/v1/subscriptions", {"status": "all"}),
)
ITEMS = "/v1/subscription_items"
# A subscription whose embedded items list has more: the fake (like Stripe) ends that list with
# has_more and the url of the rest, which names the subscription.
_MORE_ITEMS = b'"has_more":true,"url":"/v1/subscription_items?subscription='
_DECODER = json.JSONDecoder()

Request = tuple[str, dict]


def _has_more(body: str | bytes) -> bool:
    tail = body[-300:]
    return '"has_more":true' in (tail.decode() if isinstance(tail, bytes) else tail)


def _last_id(body: bytes) -> str:
    """The id of the last object in a list page's ``data``, decoding that object only: the last
    ``{`` from which one JSON value runs exactly to the ``]`` closing ``data`` starts it (the
    fields after ``data`` hold no ``]``; a ``{`` inside a string or a nested object fails the test,
    and one after a ``:`` is a field's value, not an element of a list, so it is not tried)."""
    text = body.decode()
    end = text.rindex("]")
    start = end
    while True:
        start = text.rindex("{", 0, start)
        if text[start - 1] not in ",[":
            continue
        try:
            obj, stop = _DECODER.raw_decode(text, start)
        except ValueError:
            continue
        if stop == end and isinstance(obj, dict):
            return obj["id"]


def _more_items(body: bytes) -> list[str]:
    """The subscriptions in a page whose items have more (bytes.find: a regular expression over
    every page would cost the walk more than the fake's own work on it)."""
    found, at = [], body.find(_MORE_ITEMS)
    while at >= 0:
        start = at + len(_MORE_ITEMS)
        stop = body.index(b'"', start)
        found.append(body[start:stop].decode())
        at = body.find(_MORE_ITEMS, stop)
    return found


def _query(params: dict, cursor: str | None) -> dict:
    return dict(params, limit=100, **({"starting_after": cursor} if cursor else {}))


def _url(path: str, query: dict) -> str:
    flat = [(f"{k}[]" if isinstance(v, list) else k, v) for k, v in query.items()]
    return f"{path}?{urlencode(flat, doseq=True)}"


def _raw_pages(api_base: str, key: str, keep: bool = True) -> tuple[list[tuple[str, bytes]], float, list[Request], int]:
    """Every page over one keep-alive connection, bodies as bytes (with ``keep``; else each body
    is dropped once read, as a client that decodes pages one by one frees them), the seconds it
    took, the requests sent and the bytes received. Nothing is decoded but the last object of a
    page that has more (for its cursor); a subscriptions page is followed by the item pages of its
    subscriptions whose items have more."""
    parts = urlsplit(api_base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    headers = {"Authorization": f"Bearer {key}"}
    bodies: list[tuple[str, bytes]] = []
    requests: list[Request] = []
    size = 0

    def walk(path: str, params: dict) -> None:
        nonlocal size
        cursor = None
        while True:
            query = _query(params, cursor)
            conn.request("GET", _url(path, query), headers=headers)
            body = conn.getresponse().read()
            bodies.append((path, body if keep else b""))
            requests.append((path, query))
            size += len(body)
            for sid in _more_items(body) if path == "/v1/subscriptions" else ():
                walk(ITEMS, {"subscription": sid})
            if not _has_more(body):
                break
            cursor = _last_id(body)

    started = time.perf_counter()
    for path, params in LISTINGS:
        walk(path, params)
    seconds = time.perf_counter() - started
    conn.close()
    return bodies, seconds, requests, size


def _client_pages(fetcher, requests: list[Request]) -> float:
    """The same requests through reconcile's request path, not decoded."""
    from reconcile.stripe.fetch import Fetcher

    assert isinstance(fetcher, Fetcher)
    requestor = fetcher._requestor
    started = time.perf_counter()
    for path, query in requests:
        requestor.request_raw(
            "get", path, params=query, options={}, base_address="api", api_mode="V1", usage=["raw_request"]
        )
    return time.perf_counter() - started


def _decoders() -> dict:
    """Each decoder as ``decode(path, body)``: json, any faster one installed, and reconcile's own
    (msgspec, a list page into only the keys the registry reads)."""
    from reconcile.stripe.decode import decode, page_decoder

    found = {"json.loads": lambda path, body: json.loads(body)}
    try:
        import orjson

        found["orjson.loads"] = lambda path, body: orjson.loads(body)
    except ImportError:
        pass
    import msgspec

    whole = msgspec.json.Decoder()
    found["msgspec, whole"] = lambda path, body: whole.decode(body)
    found["msgspec, the keys read: reconcile's"] = lambda path, body: decode(body, page_decoder(path))
    return found


def _parse(pages: list[tuple[str, dict]]) -> float:
    from reconcile.core.parse import parse_customer, parse_price, parse_product, parse_subscription

    started = time.perf_counter()
    for path, page in pages:
        if path == ITEMS:  # a subscription's items are parsed with it
            continue
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
    from reconcile.runner import no_cyclic_collection
    from reconcile.stripe.fetch import Fetcher
    from reconcile.stripe.remote import fetch_remote

    config = get_config()
    resources = ("products", "customers", "subscriptions")
    out: dict = {}
    bodies, out["fake + loopback (bare http.client)"], requests, out["bytes"] = _raw_pages(
        config.api_base, config.api_key
    )
    out["pages"] = len(bodies)
    fetcher = Fetcher(config)
    out["HTTP (stripe-python requestor)"] = _client_pages(fetcher, requests)
    for name, decode in _decoders().items():
        best = float("inf")
        for _ in range(3):  # the best of three; each page's result dropped at once (memory stays flat)
            gc.collect()
            gc.disable()
            seconds = 0.0
            for path, body in bodies:
                started = time.perf_counter()
                decode(path, body)
                seconds += time.perf_counter() - started
            gc.enable()
            best = min(best, seconds)
        out[f"JSON decoding ({name})"] = best
    from reconcile.stripe.decode import decode, page_decoder

    # what a run parses: each page as reconcile decodes it
    out["parsing into records"] = sum(_parse([(path, decode(body, page_decoder(path)))]) for path, body in bodies)
    del bodies
    # as a run: its collector off; unlike a run, every record is kept (no prune) and the
    # diff compares all of them, so these stages read as the cost of each part, not of a run
    with no_cyclic_collection():
        started = time.perf_counter()
        remote = fetch_remote(config, resources, known=known_ids())
        out["the whole fetch (threads, every record kept)"] = time.perf_counter() - started
        started = time.perf_counter()
        local = load_local(resources)
        out["loading rows (load_local)"] = time.perf_counter() - started
        started = time.perf_counter()
        plan = diff(remote, local, known=known_ids())
        out["the diff (every record compared)"] = time.perf_counter() - started
    out["diff operations"] = len(plan.operations)
    return out


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux's /proc), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def floor(api_base: str, repeat: int, pid: int | None = None, key: str = "sk_test_bench") -> dict:
    """``repeat`` walks of the first stage alone: seconds each, this process's CPU seconds each
    (the client's share), and the fake's when its process id is known."""
    out: dict = {"walks": [], "client_cpu": [], "fake_cpu": []}
    for _ in range(repeat):
        before, client = (_cpu_seconds(pid) if pid else None), time.process_time()
        _, seconds, requests, size = _raw_pages(api_base, key, keep=False)
        after, client = (_cpu_seconds(pid) if pid else None), time.process_time() - client
        out["walks"].append(round(seconds, 3))
        out["client_cpu"].append(round(client, 2))
        if before is not None and after is not None:
            out["fake_cpu"].append(round(after - before, 2))
        out["pages"], out["bytes"] = len(requests), size
    out["best"] = min(out["walks"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.breakdown", description=__doc__.splitlines()[0])
    parser.add_argument("--db-url")
    parser.add_argument("--api-base")
    parser.add_argument("--floor", action="store_true", help="time the bare-client walk only (no database)")
    parser.add_argument("--n", type=int, help="with --floor: start a fake Stripe of this N (seed 1)")
    parser.add_argument("--repeat", type=int, default=3, help="with --floor: walks")
    args = parser.parse_args(argv)
    if args.floor:
        if args.n:
            from .fakeproc import FakeProcess

            with FakeProcess(args.n, 1) as fake:
                fake.call("warm")
                result = {"n": args.n, **floor(fake.url, args.repeat, fake._proc.pid)}
        elif args.api_base:
            result = floor(args.api_base, args.repeat)
        else:
            parser.error("--floor needs --n or --api-base")
        sys.stdout.write(json.dumps(result) + "\n")
        return 0
    if not (args.db_url and args.api_base):
        parser.error("--db-url and --api-base are required (or --floor)")
    from .ours import configure

    configure(args.db_url, args.api_base, unthrottled=True, create_users=False)
    sys.stdout.write(json.dumps(breakdown()) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
