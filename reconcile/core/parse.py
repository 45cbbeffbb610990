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
    start, end = values["current_period_start"], values["current_period_end"]
    (start, end), recs, prices = _with_items(values["id"], start, end, items)
    values["current_period_start"], values["current_period_end"] = start, end
    return SubscriptionRec(**values, items=recs), prices


def subscription_key(obj: dict, items: Iterable[dict]) -> tuple[tuple, tuple[ItemRec, ...]]:
    """What ``parse_subscription`` reads, without the subscription's record: its key (the id and its
    fields, in the record's order, its period resolved) and its items' records; ``BadObject``
    where parsing raises it, with the same reason."""
    key = list(SUBSCRIPTIONS.key_of(obj))
    (key[_START], key[_END]), recs, _ = _with_items(key[0], key[_START], key[_END], items)
    return tuple(key), recs


def _with_items(sid: str, start, end, items: Iterable[dict]) -> tuple[tuple, tuple[ItemRec, ...], list[dict]]:
    """A subscription's period and item records (sorted by id), given the items' objects, and the
    price objects they embed."""
    parsed = [parse_item(item) for item in items]
    recs = (parsed[0][0],) if len(parsed) == 1 else tuple(sorted((item for item, _ in parsed), key=_by_id))
    period, recs = periods.resolve(sid, start, end, recs)
    return period, recs, [price for _, price in parsed if price is not None]


_by_id = attrgetter("id")
# where a subscription's period sits in its key (the id first, then the fields)
_START = 1 + SUBSCRIPTIONS.names.index("current_period_start")
_END = 1 + SUBSCRIPTIONS.names.index("current_period_end")


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
    "subscription_key",
    "parse_feature",
]
