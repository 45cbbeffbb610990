"""Deterministic synthetic Stripe accounts for the fake Stripe (a test double) and benchmarks.

Shapes follow Stripe's own fixtures3.json (current API version: billing periods live on the
subscription items only). Same arguments -> identical output.

    python -m reconcile.testing.generate --customers 1000 --seed 1 --out .bench/account
"""

from __future__ import annotations

import argparse
import calendar
import json
import random
import string
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from .catalog import product_object
from .shapes import add_billing_shapes
from .store import RESOURCES

DAY = 86_400
_ALNUM = string.ascii_letters + string.digits
STATUS_WEIGHTS = {
    "active": 70,
    "canceled": 8,
    "trialing": 6,
    "past_due": 5,
    "incomplete": 3,
    "incomplete_expired": 3,
    "unpaid": 2,
    "paused": 3,
}
CURRENCY_WEIGHTS = {"usd": 60, "eur": 15, "gbp": 10, "jpy": 5, "cad": 4, "aud": 3, "chf": 3}
INTERVALS = [("month", 1, 55), ("year", 1, 25), ("month", 3, 10), ("month", 6, 6), ("month", 12, 4)]
PRODUCT_WORDS = [
    "Starter",
    "Pro",
    "Team",
    "Business",
    "Enterprise",
    "Analytics",
    "Storage",
    "Support",
    "Seats",
    "API",
    "Reports",
    "Backup",
    "Insights",
    "Studio",
    "Cloud",
    "Edge",
]
FIRST = [
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "niaj",
    "olivia",
    "peggy",
    "rupert",
    "sybil",
    "trent",
    "victor",
    "walter",
    "zoe",
]
LAST = [
    "smith",
    "jones",
    "garcia",
    "mueller",
    "tanaka",
    "dubois",
    "rossi",
    "kowalski",
    "silva",
    "kim",
    "nguyen",
    "brown",
    "wilson",
    "lopez",
    "martin",
    "novak",
]
DOMAINS = ["example.com", "example.org", "mail.example.net", "corp.example"]


class _Ids:
    def __init__(self, rng: random.Random) -> None:
        self.rng, self.seen = rng, set()

    def __call__(self, prefix: str) -> str:
        while True:
            obj_id = prefix + "".join(self.rng.choice(_ALNUM) for _ in range(14))
            if obj_id not in self.seen:
                self.seen.add(obj_id)
                return obj_id


def _weighted(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def add_months(ts: int, months: int) -> int:
    """``ts`` plus calendar months (day clamped to the month's end), in UTC."""
    d = datetime.fromtimestamp(ts, timezone.utc)
    total = d.month - 1 + months
    year, month = d.year + total // 12, total % 12 + 1
    day = min(d.day, calendar.monthrange(year, month)[1])
    return int(d.replace(year=year, month=month, day=day).timestamp())


def period_around(anchor: int, interval: str, count: int, at: int) -> tuple[int, int]:
    """The billing period [start, end) from ``anchor`` that contains ``at``."""
    step = count * (12 if interval == "year" else 1)
    a, b = datetime.fromtimestamp(anchor, timezone.utc), datetime.fromtimestamp(at, timezone.utc)
    k = max(0, ((b.year - a.year) * 12 + b.month - a.month) // step)
    start = add_months(anchor, k * step)
    while start > at and k > 0:
        k -= 1
        start = add_months(anchor, k * step)
    while add_months(anchor, (k + 1) * step) <= at:
        k += 1
        start = add_months(anchor, k * step)
    return start, add_months(anchor, (k + 1) * step)


def _amount(rng: random.Random, currency: str) -> int:
    if currency == "jpy":
        return rng.choice([500, 980, 1200, 3000, 4800, 9800])
    return rng.choice([5, 9, 10, 15, 19, 29, 49, 99, 199]) * 100 - rng.choice([0, 1])


def _product(rng: random.Random, ids: _Ids, i: int, created: int) -> dict:
    name = PRODUCT_WORDS[i % len(PRODUCT_WORDS)] + (f" {i // len(PRODUCT_WORDS) + 1}" if i >= 16 else "")
    roll = rng.random()
    features = [f"feat_{w}" for w in rng.sample(["sso", "audit", "export", "api", "priority", "seats"], 2)]
    metadata = (
        {"features": " ".join(features)} if roll < 0.3 else {"features": ",".join(features)} if roll < 0.5 else {}
    )
    # The generator's draws stay in the order they always had, so accounts stay the same byte for byte.
    pid, active = ids("prod_"), rng.random() > 0.1
    description = rng.choice([None, f"The {name} plan"])
    return product_object(pid, name, created, active=active, description=description, metadata=metadata)


def _price(rng: random.Random, ids: _Ids, product: dict, created: int, k: int) -> dict:
    """The k-th price of the account: every 20th (from k=2) tiered, every 10th (from k=4) one-time,
    every 7th (from k=6) archived, others archived at random; prices of archived products archived."""
    currency = _weighted(rng, CURRENCY_WEIGHTS)
    interval, count, _ = rng.choices(INTERVALS, weights=[w for *_, w in INTERVALS])[0]
    one_time, tiered = k % 10 == 4, k % 20 == 2
    amount = None if tiered else _amount(rng, currency)
    return {
        "id": ids("price_"),
        "object": "price",
        "active": bool(product["active"]) and k % 7 != 6 and rng.random() > 0.08,
        "billing_scheme": "tiered" if tiered else "per_unit",
        "created": created,
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": rng.choice([None, None, None, f"{product['name'].lower().replace(' ', '_')}_{created}"]),
        "metadata": {},
        "nickname": rng.choice([None, f"{product['name']} {interval}ly"]),
        "product": product["id"],
        "recurring": None
        if one_time
        else {
            "interval": interval,
            "interval_count": count,
            "meter": None,
            "usage_type": "licensed",
            "trial_period_days": rng.choice([None, None, None, 14]),
        },
        "tax_behavior": "unspecified",
        "tiers_mode": "graduated" if tiered else None,
        "transform_quantity": None,
        "type": "one_time" if one_time else "recurring",
        "unit_amount": amount,
        "unit_amount_decimal": None if amount is None else str(amount),
    }


def _copy_price(price: dict) -> dict:
    recurring = price["recurring"]
    return {**price, "metadata": dict(price["metadata"]), "recurring": recurring and dict(recurring)}


def _email(rng: random.Random, i: int) -> tuple[str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    style = rng.random()
    local = f"{first}.{last}{i}"
    domain = rng.choice(DOMAINS)
    if style < 0.4:
        local, domain = local.title(), domain.title()
    elif style < 0.5:
        local, domain = local.upper(), domain.upper()
    return f"{first.title()} {last.title()}", f"{local}@{domain}"


def _customer(rng: random.Random, ids: _Ids, i: int, created: int, previous: list[dict]) -> dict:
    name, email = _email(rng, i)
    roll = rng.random()
    if roll < 0.05:
        email = None
    elif roll < 0.07 and previous:
        twin = rng.choice(previous)["email"]
        email = twin.swapcase() if twin and rng.random() < 0.5 else twin
    has_address = rng.random() < 0.3
    return {
        "id": ids("cus_"),
        "object": "customer",
        "address": {
            "city": "Springfield",
            "country": "US",
            "line1": f"{i} Main St",
            "line2": None,
            "postal_code": "12345",
            "state": "IL",
        }
        if has_address
        else None,
        "balance": 0,
        "created": created,
        "currency": rng.choice([None, "usd"]),
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": email,
        "invoice_prefix": "".join(rng.choice("0123456789ABCDEF") for _ in range(8)),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {},
        "name": rng.choice([name, name, name, None]),
        "next_invoice_sequence": 1,
        "phone": rng.choice([None, None, f"+1555{i % 10_000_000:07d}"]),
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def _subscription(rng: random.Random, ids: _Ids, customer: dict, created: int, pool: list[dict], now: int) -> dict:
    # The rng draws keep their order (prices, status, id, dates, items, cancel flag): same seed, same account.
    prices = _subscription_prices(rng, pool)
    status = _weighted(rng, STATUS_WEIGHTS)
    sub_id = ids("sub_")
    dates = _subscription_dates(rng, status, created, now)
    rec = prices[0]["recurring"]
    items = []
    for k, price in enumerate(prices):
        if status == "trialing":
            start, end = dates["trial_start"], dates["trial_end"]
        else:
            start, end = period_around(created, rec["interval"], rec["interval_count"], dates["reference"])
        items.append(_subscription_item(rng, ids, sub_id, price, created + k, start, end))
    dates["cancel_at_period_end"] = status == "active" and rng.random() < 0.05
    if dates["cancel_at_period_end"]:
        dates["cancel_at"] = items[0]["current_period_end"]
    return _subscription_object(sub_id, customer, created, status, dates, items)


def _subscription_prices(rng: random.Random, pool: list[dict]) -> list[dict]:
    """One price from the pool, plus up to two others of its currency and billing interval."""
    first = rng.choice(pool)
    rec = first["recurring"]
    mates = [
        p
        for p in pool
        if p is not first
        and p["currency"] == first["currency"]
        and p["recurring"]["interval"] == rec["interval"]
        and p["recurring"]["interval_count"] == rec["interval_count"]
    ]
    return [first, *rng.sample(mates, min(len(mates), rng.choice([0, 0, 0, 1, 1, 2])))]


def _subscription_dates(rng: random.Random, status: str, created: int, now: int) -> dict:
    """The status's cancel/trial timestamps and ``reference``, the moment the billing period is placed around."""
    dates = {"canceled_at": None, "ended_at": None, "trial_start": None, "trial_end": None, "cancel_at": None}
    dates["reference"] = now
    if status in ("canceled", "incomplete_expired"):
        dates["ended_at"] = dates["canceled_at"] = rng.randint(created + DAY, max(created + DAY, now - DAY))
        dates["reference"] = dates["ended_at"]
        dates["cancel_at"] = dates["canceled_at"] if rng.random() < 0.3 else None
    elif status == "trialing":
        dates["trial_start"] = max(created, now - rng.randint(1, 13) * DAY)
        dates["trial_end"] = dates["trial_start"] + 14 * DAY
    return dates


def _subscription_item(
    rng: random.Random, ids: _Ids, sub_id: str, price: dict, created: int, start: int, end: int
) -> dict:
    return {
        "id": ids("si_"),
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": created,
        "current_period_end": end,
        "current_period_start": start,
        "discounts": [],
        "metadata": {},
        "price": _copy_price(price),
        "quantity": 1 if rng.random() < 0.8 else rng.randint(2, 10),
        "subscription": sub_id,
        "tax_rates": [],
    }


def _subscription_object(sub_id: str, customer: dict, created: int, status: str, dates: dict, items: list) -> dict:
    """The subscription as Stripe returns it; ``dates`` holds its cancel and trial fields."""
    return {
        "id": sub_id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": created,
        "billing_cycle_anchor_config": None,
        "cancel_at": dates["cancel_at"],
        "cancel_at_period_end": dates["cancel_at_period_end"],
        "canceled_at": dates["canceled_at"],
        "cancellation_details": {
            "comment": None,
            "feedback": None,
            "reason": "cancellation_requested" if dates["canceled_at"] else None,
        },
        "collection_method": "charge_automatically",
        "created": created,
        "currency": items[0]["price"]["currency"],
        "customer": customer["id"],
        "days_until_due": None,
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "ended_at": dates["ended_at"],
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": {
            "object": "list",
            "data": items,
            "has_more": False,
            "url": f"/v1/subscription_items?subscription={sub_id}",
        },
        "latest_invoice": None,
        "livemode": False,
        "metadata": {},
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": created,
        "status": status,
        "test_clock": None,
        "transfer_data": None,
        "trial_end": dates["trial_end"],
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": dates["trial_start"],
    }


def generate_account(
    n_customers: int, *, seed: int = 0, n_products: int | None = None, now: int = 1_767_225_600
) -> dict[str, list[dict]]:
    """A Stripe-shaped account: products, prices, customers, one subscription per customer, and
    the billing shapes and Entitlements features of ``shapes.add_billing_shapes``."""
    rng = random.Random(seed)
    ids = _Ids(rng)
    n_prod = max(3, n_customers // 200) if n_products is None else n_products
    origin = now - 3 * 365 * DAY
    products, prices = [], []
    for i in range(n_prod):
        product = _product(rng, ids, i, origin - i * 3600)
        products.append(product)
        own = [
            _price(rng, ids, product, product["created"] + 60 * (4 - j), len(prices) + j)
            for j in range(4 if i == 0 else rng.randint(1, 4))
        ]
        actives = [p for p in own if p["active"]]
        product["default_price"] = actives[0]["id"] if actives else None
        prices.extend(own)
    pool = [p for p in prices if p["recurring"] is not None]
    if not pool and n_customers:
        raise ValueError("no recurring price generated; use more products or another seed")
    customers: list[dict] = []
    subscriptions = []
    for i in range(n_customers):
        created = now - 2 * DAY - i * 127
        customer = _customer(rng, ids, i, created, customers[-50:])
        customers.append(customer)
        subscriptions.append(_subscription(rng, ids, customer, created + 60, pool, now))
    account = {"products": products, "prices": prices, "customers": customers, "subscriptions": subscriptions}
    shapes_rng = random.Random(f"shapes-{seed}")  # its own stream: the basic catalog stays as it was
    return add_billing_shapes(account, ids=_Ids(shapes_rng), rng=shapes_rng, now=now, add_months=add_months)


def write_account(account: dict[str, list[dict]], directory: str | Path) -> Path:
    """Write ``<resource>.json`` (a JSON list) per resource into ``directory``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for resource in (r for r in RESOURCES if r in account):
        (out / f"{resource}.json").write_text(json.dumps(account.get(resource, []), indent=1) + "\n")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reconcile.testing.generate",
        description="Write a deterministic synthetic Stripe account (JSON).",
    )
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--products", type=int, default=None)
    parser.add_argument("--now", type=int, default=1_767_225_600)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    account = generate_account(args.customers, seed=args.seed, n_products=args.products, now=args.now)
    out = write_account(account, args.out)
    print(", ".join(f"{len(v)} {k}" for k, v in account.items()) + f" written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
