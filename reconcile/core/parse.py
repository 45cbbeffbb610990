"""Read Stripe's JSON objects into snapshot records: the registry's readers, plus child collections.

An object that is not what Stripe documents raises ``BadObject`` with a reason a person can act on;
the caller turns it into a skipped operation, so one odd object never stops a run.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import attrgetter

from . import periods
from .read import BadObject, feature_ids, object_id
from .registry import CUSTOMERS, FEATURES, ITEMS, PRICES, PRODUCTS, SUBSCRIPTIONS
from .snapshot import CustomerRec, FeatureRec, ItemRec, PriceRec, ProductRec, SubscriptionRec


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
    2025-03-31; its items then share that period) and otherwise from its items: see ``periods``.
    Returns the record and the price objects its items embed.
    """
    values = SUBSCRIPTIONS.read(obj)
    parsed = [parse_item(item) for item in items]
    recs = (parsed[0][0],) if len(parsed) == 1 else tuple(sorted((item for item, _ in parsed), key=_by_id))
    start, end = values["current_period_start"], values["current_period_end"]
    (start, end), recs = periods.resolve(values["id"], start, end, recs)
    values["current_period_start"], values["current_period_end"] = start, end
    return SubscriptionRec(**values, items=recs), [price for _, price in parsed if price is not None]


_by_id = attrgetter("id")


def parse_feature(obj: dict) -> FeatureRec:
    """An Entitlements feature (``entitlements.feature``)."""
    return FEATURES.parse(obj)


__all__ = [
    "BadObject",
    "feature_ids",
    "object_id",  # for the fetch, which checks a subscription's id before listing its items
    "parse_customer",
    "parse_item",
    "parse_price",
    "parse_product",
    "parse_subscription",
    "parse_feature",
]
