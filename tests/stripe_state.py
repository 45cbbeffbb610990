"""An independent statement of the mapping: what each stored row must hold, read straight from
Stripe's JSON objects. Tests compare the database with it field by field."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from reconcile.models import Price, Product, ProductFeature, StripeUser, Subscription, SubscriptionItem


def _ts(value):
    return None if value is None else datetime.fromtimestamp(value, tz=timezone.utc)


def expected_products(products: list[dict]) -> dict:
    return {
        p["id"]: {
            "name": p["name"],
            "description": p.get("description"),
            "active": p["active"],
            "metadata": p.get("metadata") or {},
            "features": sorted({f for f in re.split(r"[\s,]+", (p.get("metadata") or {}).get("features", "")) if f}),
        }
        for p in products
    }


def expected_prices(prices: list[dict]) -> dict:
    out = {}
    for p in prices:
        rec = p.get("recurring")
        out[p["id"]] = {
            "product_id": p["product"] if isinstance(p["product"], str) else p["product"]["id"],
            "amount": p.get("unit_amount"),
            "currency": p["currency"].lower(),
            "frequency": f"{rec['interval']}_{rec['interval_count']}" if rec else None,
            "active": p["active"],
            "nickname": p.get("nickname"),
        }
    return out


def expected_customers(customers: list[dict]) -> dict:
    return {c["id"]: {"email": c.get("email"), "name": c.get("name")} for c in customers if not c.get("deleted")}


def expected_subscriptions(subscriptions: list[dict], skip: set[str] = frozenset()) -> dict:
    out = {}
    for s in subscriptions:
        if s["id"] in skip:
            continue
        items = s["items"]["data"]
        starts = [i["current_period_start"] for i in items if i.get("current_period_start") is not None]
        ends = [i["current_period_end"] for i in items if i.get("current_period_end") is not None]
        out[s["id"]] = {
            "stripe_user_id": s["customer"],
            "status": s["status"],
            "current_period_start": _ts(s.get("current_period_start") or (min(starts) if starts else None)),
            "current_period_end": _ts(s.get("current_period_end") or (max(ends) if ends else None)),
            "cancel_at": _ts(s.get("cancel_at")),
            "cancel_at_period_end": bool(s.get("cancel_at_period_end")),
            "canceled_at": _ts(s.get("canceled_at")),
            "ended_at": _ts(s.get("ended_at")),
            "trial_start": _ts(s.get("trial_start")),
            "trial_end": _ts(s.get("trial_end")),
            "created": _ts(s.get("created")),
            "metadata": s.get("metadata") or {},
            "items": sorted(
                (
                    i["id"],
                    i["price"]["id"],
                    i.get("quantity"),
                    _ts(i.get("current_period_start")),
                    _ts(i.get("current_period_end")),
                )
                for i in items
            ),
        }
    return out


def stored_products() -> dict:
    links: dict[str, list[str]] = {}
    for product_id, feature_id in ProductFeature.objects.values_list("product_id", "feature_id"):
        links.setdefault(product_id, []).append(feature_id)
    return {
        p["id"]: {k: p[k] for k in ("name", "description", "active", "metadata")}
        | {"features": sorted(links.get(p["id"], []))}
        for p in Product.objects.values()
    }


def stored_prices() -> dict:
    fields = ("product_id", "amount", "currency", "frequency", "active", "nickname")
    return {p["id"]: {k: p[k] for k in fields} for p in Price.objects.values()}


def stored_customers() -> dict:
    return {c["customer_id"]: {"email": c["email"], "name": c["name"]} for c in StripeUser.objects.values()}


def stored_subscriptions() -> dict:
    items: dict[str, list] = {}
    for row in SubscriptionItem.objects.values_list(
        "subscription_id", "id", "price_id", "quantity", "current_period_start", "current_period_end"
    ):
        items.setdefault(row[0], []).append(row[1:])
    out = {}
    for s in Subscription.objects.values():
        sid = s.pop("id")
        s.pop("synced_at")
        out[sid] = s | {"items": sorted(items.get(sid, []))}
    return out
