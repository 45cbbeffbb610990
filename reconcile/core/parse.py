"""Read Stripe's JSON objects into snapshot records: the registry's readers, plus child collections.

An object that is not what Stripe documents raises ``BadObject`` with a reason a person can act on;
the caller turns it into a skipped operation, so one odd object never stops a run.
"""

from __future__ import annotations

from collections.abc import Iterable

from .read import BadObject, feature_ids
from .registry import CUSTOMERS, ITEMS, PRICES, PRODUCTS, SUBSCRIPTIONS
from .snapshot import CustomerRec, ItemRec, PriceRec, ProductRec, SubscriptionRec


def parse_product(obj: dict, features_key: str = "features") -> ProductRec:
    values = PRODUCTS.read(obj)
    return ProductRec(**values, features=feature_ids(values["metadata"], features_key))


def parse_price(obj: dict) -> PriceRec:
    return PRICES.parse(obj)


def parse_customer(obj: dict) -> CustomerRec:
    return CUSTOMERS.parse(obj)


def parse_item(obj: dict) -> tuple[ItemRec, dict | None]:
    """An item and, when the item embeds it, its price object."""
    item = ITEMS.parse(obj)
    price = obj.get("price")
    return item, price if isinstance(price, dict) else None


def parse_subscription(obj: dict, items: Iterable[dict]) -> tuple[SubscriptionRec, list[dict]]:
    """A subscription from its object and its complete item list (embedded page plus overflow pages).

    Periods come from the subscription where Stripe puts them there (API versions before
    2025-03-31) and otherwise from its items: the earliest start and the latest end.
    Returns the record and the price objects its items embed.
    """
    values = SUBSCRIPTIONS.read(obj)
    parsed = [parse_item(item) for item in items]
    recs = tuple(sorted((item for item, _ in parsed), key=lambda i: i.id))
    if values["current_period_start"] is None:
        starts = [i.current_period_start for i in recs if i.current_period_start is not None]
        values["current_period_start"] = min(starts) if starts else None
    if values["current_period_end"] is None:
        ends = [i.current_period_end for i in recs if i.current_period_end is not None]
        values["current_period_end"] = max(ends) if ends else None
    return SubscriptionRec(**values, items=recs), [price for _, price in parsed if price is not None]


__all__ = [
    "BadObject",
    "feature_ids",
    "parse_customer",
    "parse_item",
    "parse_price",
    "parse_product",
    "parse_subscription",
]
