"""The fake Stripe: a test double of the Stripe API on loopback. It never contacts Stripe.

Library use::

    fake = FakeStripe.from_dir(DEMO_FIXTURES)            # or FakeStripe(generate_account(250))
    with serve(fake) as server:
        client = stripe.StripeClient("sk_test_123", base_addresses={"api": server.url})

Command line::

    python -m reconcile.testing.fakestripe --port 12111          # the demo account shipped in the package
    python -m reconcile.testing.fakestripe mutate http://127.0.0.1:12111 update products prod_x '{"name": "New"}'
    python -m reconcile.testing.fakestripe mutate URL delete customers cus_x
    python -m reconcile.testing.fakestripe mutate URL cancel subscriptions sub_x
    python -m reconcile.testing.fakestripe mutate URL requests
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from .server import RunningServer, is_loopback, mask_key, serve
from .store import RESOURCES, FakeStripe, Fault, RequestRecord
from .webhooks import register

# The demo account (8 customers, 4 products, ...), shipped inside the package so that an installed
# `reconcile fake-stripe` serves it from any directory.
DEMO_FIXTURES = Path(__file__).resolve().parent / "data" / "demo"

__all__ = [
    "DEMO_FIXTURES",
    "RESOURCES",
    "FakeStripe",
    "Fault",
    "RequestRecord",
    "RunningServer",
    "mask_key",
    "serve",
    "main",
]


def _serve_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m reconcile.testing.fakestripe",
        description="Serve a fake Stripe API (a test double) on loopback from Stripe-shaped JSON fixtures. "
        "Subcommand 'mutate URL ...' changes a running fake's data.",
    )
    p.add_argument(
        "--fixtures",
        default=str(DEMO_FIXTURES),
        help="directory with products/prices/customers/subscriptions.json (default: the packaged demo account)",
    )
    p.add_argument("--host", default="127.0.0.1", help="loopback address only (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=12111)
    p.add_argument("--latency", type=float, default=0.0, help="seconds slept per request")
    p.add_argument("--rate-limit", type=float, default=None, help="requests/second per endpoint")
    p.add_argument(
        "--account-rate-limit", type=float, default=None, help="requests/second for the whole account (token bucket)"
    )
    p.add_argument("--api-key", default=None, help="accept only this key (default: any sk_/rk_ key)")
    p.add_argument("--items-page-size", type=int, default=10)
    p.add_argument(
        "--webhook-url",
        default=None,
        help="deliver an event per mutation to this loopback URL, signed with $FAKE_STRIPE_WEBHOOK_SECRET",
    )
    p.add_argument("--webhook-mode", choices=("auto", "queue"), default="auto", help="send at once, or on 'deliver'")
    p.add_argument(
        "--in-container",
        action="store_true",
        help="allow a non-loopback --host, for a private container network only (docker compose)",
    )
    return p


def _mutate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m reconcile.testing.fakestripe mutate",
        description="Change the data of a running fake Stripe (a test double).",
    )
    p.add_argument("url", help="base URL of the fake, e.g. http://127.0.0.1:12111")
    sub = p.add_subparsers(dest="action", required=True)
    upd = sub.add_parser("update", help="shallow-merge JSON fields into an object")
    upd.add_argument("resource", choices=RESOURCES)
    upd.add_argument("id")
    upd.add_argument("fields", help='JSON object, e.g. \'{"name": "New"}\'')
    ups = sub.add_parser("upsert", help="insert or replace a whole object given as JSON")
    ups.add_argument("resource", choices=RESOURCES)
    ups.add_argument("object")
    rem = sub.add_parser("remove", help="remove an object as if it never existed")
    rem.add_argument("resource", choices=RESOURCES)
    rem.add_argument("id")
    dele = sub.add_parser("delete", help="delete a customer (its live subscriptions are canceled)")
    dele.add_argument("resource", choices=["customers"])
    dele.add_argument("id")
    can = sub.add_parser("cancel", help="cancel a subscription now")
    can.add_argument("resource", choices=["subscriptions"])
    can.add_argument("id")
    sub.add_parser("requests", help="print how many requests the fake has received")
    hook = sub.add_parser("webhook", help="deliver an event per later mutation to a loopback URL")
    hook.add_argument("target", help="e.g. http://127.0.0.1:8000/stripe/webhook/ (secret: $FAKE_STRIPE_WEBHOOK_SECRET)")
    hook.add_argument("--mode", choices=("auto", "queue"), default="auto")
    dlv = sub.add_parser("deliver", help="send the queued webhooks (see --webhook-url)")
    dlv.add_argument("fields", nargs="?", default="{}", help='JSON: {"shuffle": true, "duplicate": 0.2, "seed": 1}')
    return p


def mutate(
    url: str, action: str, resource: str | None = None, obj_id: str | None = None, payload: str | None = None
) -> dict:
    """Call a control endpoint of a running fake; returns its JSON answer."""
    base = url.rstrip("/")
    if action == "requests":
        request = urllib.request.Request(f"{base}/_fake/requests")
    elif action in ("webhook", "deliver"):  # JSON bodies: register a webhook URL, deliver queued events
        request = urllib.request.Request(
            f"{base}/_fake/{'webhooks' if action == 'webhook' else 'deliver'}",
            data=(payload or "{}").encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
    else:
        path = "/".join(p for p in (action, resource, obj_id) if p)
        body = json.dumps(json.loads(payload)).encode() if payload else b"{}"
        request = urllib.request.Request(
            f"{base}/_fake/{path}", data=body, method="POST", headers={"Content-Type": "application/json"}
        )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["mutate"]:
        args = _mutate_parser().parse_args(args_list[1:])
        payload = getattr(args, "fields", None) or getattr(args, "object", None)
        if args.action == "deliver":
            args.resource = args.id = None
        if args.action == "webhook":
            secret = os.environ.get("FAKE_STRIPE_WEBHOOK_SECRET", "")
            if not secret:
                print("mutate webhook needs the signing secret in $FAKE_STRIPE_WEBHOOK_SECRET", file=sys.stderr)
                return 2
            payload = json.dumps({"url": args.target, "secret": secret, "mode": args.mode})
        try:
            result = mutate(args.url, args.action, getattr(args, "resource", None), getattr(args, "id", None), payload)
        except urllib.error.HTTPError as error:
            print(f"fake Stripe answered {error.code}: {error.read().decode()}", file=sys.stderr)
            return 1
        print(json.dumps(result, indent=2))
        return 0
    if args_list[:1] == ["serve"]:
        args_list = args_list[1:]
    parser = _serve_parser()
    args = parser.parse_args(args_list)
    if not is_loopback(args.host) and not args.in_container:
        parser.error(f"refusing to serve on non-loopback host {args.host!r}: the fake Stripe is a local test double")
    fake = FakeStripe.from_dir(
        args.fixtures,
        api_key=args.api_key,
        latency=args.latency,
        rate_limit=args.rate_limit,
        items_page_size=args.items_page_size,
        account_rate_limit=args.account_rate_limit,
    )
    if args.webhook_url:
        secret = os.environ.get("FAKE_STRIPE_WEBHOOK_SECRET", "")
        if not secret:
            parser.error("--webhook-url needs the signing secret in $FAKE_STRIPE_WEBHOOK_SECRET")
        register(fake, args.webhook_url, secret, args.webhook_mode)
    server = serve(fake, args.host, args.port, allow_any_host=args.in_container)
    print(f"fake Stripe (a test double) serving {args.fixtures} on {server.url}", flush=True)
    try:
        server._thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
