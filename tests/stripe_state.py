"""An independent statement of the mapping: what each stored row must hold, read straight from
Stripe's JSON objects. Tests compare the database with it field by field."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal

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


def _dec(value) -> Decimal | None:
    return None if value is None else Decimal(value)


def _text(value) -> str | None:
    return None if value is None else format(Decimal(value).normalize(), "f")


def _tiers(tiers) -> list:
    return [
        {
            "up_to": t.get("up_to"),
            "unit_amount": t.get("unit_amount"),
            "flat_amount": t.get("flat_amount"),
            "unit_amount_decimal": _text(t.get("unit_amount_decimal")),
            "flat_amount_decimal": _text(t.get("flat_amount_decimal")),
        }
        for t in tiers or []
    ]


def _custom(value) -> dict | None:
    return None if value is None else {k: value.get(k) for k in ("minimum", "maximum", "preset")}


def _options(price: dict) -> dict:
    """Other currencies than the price's own (those are its own fields)."""
    return {
        code: {
            "unit_amount": o.get("unit_amount"),
            "unit_amount_decimal": _text(o.get("unit_amount_decimal")),
            "tax_behavior": o.get("tax_behavior"),
            "custom_unit_amount": _custom(o.get("custom_unit_amount")),
            "tiers": _tiers(o.get("tiers")),
        }
        for code, o in (price.get("currency_options") or {}).items()
        if code != price["currency"]
    }


def expected_prices(prices: list[dict]) -> dict:
    out = {}
    for p in prices:
        rec = p.get("recurring")
        transform = p.get("transform_quantity") or {}
        out[p["id"]] = {
            "product_id": p["product"] if isinstance(p["product"], str) else p["product"]["id"],
            "amount": p.get("unit_amount"),
            "currency": p["currency"].lower(),
            "frequency": f"{rec['interval']}_{rec['interval_count']}" if rec else None,
            "active": p["active"],
            "nickname": p.get("nickname"),
            "lookup_key": p.get("lookup_key"),
            "tax_behavior": p.get("tax_behavior"),
            "type": p.get("type"),
            "billing_scheme": p.get("billing_scheme"),
            "interval": rec["interval"] if rec else None,
            "interval_count": rec["interval_count"] if rec else None,
            "usage_type": rec.get("usage_type") if rec else None,
            "unit_amount_decimal": _dec(p.get("unit_amount_decimal")),
            "transform_divide_by": transform.get("divide_by"),
            "transform_round": transform.get("round"),
            "tiers_mode": p.get("tiers_mode"),
            "tiers": _tiers(p.get("tiers")),
            "currency_options": _options(p),
            "custom_unit_amount": _custom(p.get("custom_unit_amount")),
        }
    return out


def expected_customers(customers: list[dict]) -> dict:
    return {
        c["id"]: {"email": c.get("email"), "name": c.get("name"), "metadata": c.get("metadata") or {}}
        for c in customers
        if not c.get("deleted")
    }


def expected_subscriptions(subscriptions: list[dict], skip: set[str] = frozenset()) -> dict:
    out = {}
    for s in subscriptions:
        if s["id"] in skip:
            continue
        items = s["items"]["data"]
        # the period of the item that renews first (all items share it on a classic subscription)
        dated = sorted(items, key=lambda i: (i["current_period_end"], i["current_period_start"], i["id"]))
        first = dated[0] if dated else {}
        pause = s.get("pause_collection") or {}
        out[s["id"]] = {
            "stripe_user_id": s["customer"],
            "status": s["status"],
            "current_period_start": _ts(s.get("current_period_start") or first.get("current_period_start")),
            "current_period_end": _ts(s.get("current_period_end") or first.get("current_period_end")),
            "cancel_at": _ts(s.get("cancel_at")),
            "cancel_at_period_end": bool(s.get("cancel_at_period_end")),
            "canceled_at": _ts(s.get("canceled_at")),
            "ended_at": _ts(s.get("ended_at")),
            "trial_start": _ts(s.get("trial_start")),
            "trial_end": _ts(s.get("trial_end")),
            "created": _ts(s.get("created")),
            "metadata": s.get("metadata") or {},
            "currency": s.get("currency"),
            "collection_method": s.get("collection_method"),
            "cancellation_reason": (s.get("cancellation_details") or {}).get("reason"),
            "pause_collection_behavior": pause.get("behavior"),
            "pause_collection_resumes_at": _ts(pause.get("resumes_at")),
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
    return {p.pop("id"): {k: v for k, v in p.items() if k != "synced_at"} for p in Price.objects.values()}


def stored_customers() -> dict:
    return {
        c["customer_id"]: {"email": c["email"], "name": c["name"], "metadata": c["metadata"]}
        for c in StripeUser.objects.values()
    }


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
