"""The benchmark's data: synthetic Stripe accounts, the requests a full listing needs, and drift.

Every account comes from ``reconcile.testing.generate.generate_account`` (Stripe's shapes, current
API version). ``peer_compatible`` derives the variant that drf-stripe-subscription 1.2.2 can read
at all; it is used for the side-by-side only, by both tools, and documented in docs/benchmarks.md.
"""

from __future__ import annotations

import random
from collections import Counter
from math import ceil
from typing import Any

from reconcile.testing.generate import generate_account

PAGE = 100  # reconcile's PAGE_SIZE default and Stripe's maximum
RESOURCES = ("products", "prices", "customers", "subscriptions")
PEER_MAX_PRODUCTS = 25  # keeps products and prices within one page: the peer reads one page only


def pages(count: int, page: int = PAGE) -> int:
    """Requests to walk a list of ``count`` objects: an empty list still takes one."""
    return max(1, ceil(count / page))


def build(n: int, seed: int, variant: str = "stripe") -> dict[str, list[dict]]:
    """``stripe``: the generator's account as is; ``peer``: the peer-compatible variant."""
    if variant == "stripe":
        return generate_account(n, seed=seed)
    if variant == "peer":
        default = max(3, n // 200)
        return peer_compatible(generate_account(n, seed=seed, n_products=min(default, PEER_MAX_PRODUCTS)))
    raise ValueError(f"unknown variant {variant!r}")


def peer_compatible(account: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The same kind of account, changed only where drf-stripe-subscription 1.2.2 cannot go.

    - at most 100 products and 100 prices (it reads one page of each);
    - tiered prices get ``unit_amount`` 1000 and ``billing_scheme`` per_unit (its ``Price.price``
      column is NOT NULL);
    - every customer gets an email of its own (it links by exact email and crashes on a missing
      one or on two customers sharing one);
    - ``paused`` subscriptions become ``active`` (its status enum has no ``paused``);
    - subscriptions carry ``current_period_start`` / ``current_period_end`` (the earliest item
      start, the latest item end), the shape of API versions before 2025-03-31: the peer pins
      2020-08-27, where Stripe would render them, but the fake Stripe renders one version only.
    """
    prices = account["prices"]
    if len(account["products"]) > PAGE or len(prices) > PAGE:
        raise ValueError("the peer-compatible variant needs at most 100 products and 100 prices")
    fixed: dict[str, dict] = {}
    for price in prices:
        if price.get("unit_amount") is None:
            price.update(unit_amount=1000, unit_amount_decimal="1000", billing_scheme="per_unit", tiers_mode=None)
        fixed[price["id"]] = price
    seen: set[str] = set()
    for i, customer in enumerate(account["customers"]):
        email = customer.get("email")
        if not email or email.lower() in seen:
            email = f"customer{i}.{customer['id'][4:10].lower()}@example.com"
            customer["email"] = email
        seen.add(email.lower())
    for sub in account["subscriptions"]:
        if sub["status"] == "paused":
            sub["status"] = "active"
        items = sub["items"]["data"]
        for item in items:
            price = fixed.get(item["price"]["id"])
            if price is not None:
                item["price"] = {
                    **price,
                    "metadata": dict(price["metadata"]),
                    "recurring": price["recurring"] and dict(price["recurring"]),
                }
        sub["current_period_start"] = min(item["current_period_start"] for item in items)
        sub["current_period_end"] = max(item["current_period_end"] for item in items)
    return account


def objects(account: dict[str, list[dict]]) -> dict[str, int]:
    """What the benchmark calls objects, per resource, plus the subscription items (not objects)."""
    counts = {r: len(account.get(r, [])) for r in RESOURCES}
    counts["objects"] = sum(counts[r] for r in RESOURCES)
    counts["subscription_items"] = sum(len(s["items"]["data"]) for s in account.get("subscriptions", []))
    return counts


def expected_requests(account: dict[str, list[dict]], items_page_size: int = 10) -> dict[str, int]:
    """Requests a full ``pull_stripe`` needs when it follows its documented listing, per endpoint.

    Products and prices are listed twice (``active=true``, ``active=false``), customers once,
    subscriptions once with ``status=all``; a subscription with more items than its embedded
    page lists the rest through ``/v1/subscription_items`` (100 a page). Deleted customers are
    absent from lists. Nothing needs retrieving one by one: every reference is listed.
    """
    live = [c for c in account["customers"] if not c.get("deleted")]
    overflow = sum(
        pages(len(s["items"]["data"])) for s in account["subscriptions"] if len(s["items"]["data"]) > items_page_size
    )
    by_flag = {r: Counter(bool(o.get("active")) for o in account[r]) for r in ("products", "prices")}
    listings = {
        "products active=true": pages(by_flag["products"][True]),
        "products active=false": pages(by_flag["products"][False]),
        "prices active=true": pages(by_flag["prices"][True]),
        "prices active=false": pages(by_flag["prices"][False]),
        "customers": pages(len(live)),
        "subscriptions status=all": pages(len(account["subscriptions"])),
    }
    result: dict[str, Any] = {
        "products": listings["products active=true"] + listings["products active=false"],
        "prices": listings["prices active=true"] + listings["prices active=false"],
        "customers": listings["customers"],
        "subscriptions": listings["subscriptions status=all"],
        "subscription_items": overflow,
    }
    result["total"] = sum(result.values())
    result["listings"] = listings
    return result


def drift(fake: Any, fraction: float, seed: int) -> dict[str, int]:
    """Change ``fraction`` of the account in the fake Stripe: rename products, cancel subscriptions
    that are not canceled yet, change customers' emails (at least one of each). Deterministic."""
    rng = random.Random(seed)
    chosen: dict[str, int] = {}
    stored = {r: fake.sorted_objects(r)[0] for r in ("products", "customers", "subscriptions")}  # no copies
    products = sorted(o["id"] for o in stored["products"])
    renamed = rng.sample(products, max(1, round(len(products) * fraction)))
    for pid in renamed:
        fake.update("products", pid, name=f"Renamed {pid[-6:]}")
    chosen["products_renamed"] = len(renamed)
    subs = sorted(o["id"] for o in stored["subscriptions"] if o["status"] not in ("canceled", "incomplete_expired"))
    total_subs = len(stored["subscriptions"])
    canceled = rng.sample(subs, max(1, round(total_subs * fraction)))
    for sid in canceled:
        fake.cancel_subscription(sid, at=1_767_225_600 + 3600)
    chosen["subscriptions_canceled"] = len(canceled)
    customers = sorted(o["id"] for o in stored["customers"] if not o.get("deleted"))
    changed = rng.sample(customers, max(1, round(len(customers) * fraction)))
    for cid in changed:
        fake.update("customers", cid, email=f"changed.{cid[4:].lower()}@example.net")
    chosen["customer_emails_changed"] = len(changed)
    chosen["updates"] = sum(chosen.values())
    return chosen
