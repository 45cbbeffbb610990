"""Read Stripe's JSON objects into snapshot records, checking every field's type on the way.

An object that is not what Stripe documents raises ``BadObject`` with a reason a person can act on;
the caller turns it into a skipped operation, so one odd object never stops a run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from .currencies import ISO_4217
from .snapshot import CustomerRec, ItemRec, PriceRec, ProductRec, SubscriptionRec

INTERVALS = frozenset({"day", "week", "month", "year"})
STATUSES = frozenset(
    {"incomplete", "incomplete_expired", "trialing", "active", "past_due", "canceled", "unpaid", "paused"}
)
_FEATURE_SPLIT = re.compile(r"[\s,]+")
_MISSING = object()


class BadObject(ValueError):
    """A Stripe object with a field of an unexpected type or value."""


def _get(obj: dict, key: str, kind: type | tuple[type, ...], *, nullable: bool = False, optional: bool = False):
    value = obj.get(key, _MISSING)
    if value is _MISSING:
        if optional:
            return None
        raise BadObject(f"field {key!r} is missing")
    if value is None:
        if nullable or optional:
            return None
        raise BadObject(f"field {key!r} is null")
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise BadObject(f"field {key!r} should be {names}, got {type(value).__name__} {_short(value)}")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _text(obj: dict, key: str, *, nullable: bool = True, max_length: int = 255) -> str | None:
    value = _get(obj, key, str, nullable=nullable, optional=nullable)
    if value is not None and max_length and len(value) > max_length:
        raise BadObject(f"field {key!r} is longer than {max_length} characters")
    return value


def timestamp(value: Any, key: str = "timestamp") -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadObject(f"field {key!r} should be a Unix timestamp, got {_short(value)}")
    try:
        return datetime.fromtimestamp(value, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise BadObject(f"field {key!r} is out of range: {value}") from None


def _ts(obj: dict, key: str) -> datetime | None:
    return timestamp(obj.get(key), key)


def _metadata(obj: dict) -> dict:
    value = _get(obj, "metadata", dict, optional=True)
    if value is None:
        return {}
    for k, v in value.items():
        if not isinstance(v, str):
            raise BadObject(f"metadata {k!r} should be a string, got {_short(v)}")
    return dict(value)


def _id_of(value: Any, key: str) -> str:
    """A reference: an id string, or an expanded object carrying one."""
    if isinstance(value, dict):
        value = value.get("id")
    if not isinstance(value, str) or not value:
        raise BadObject(f"field {key!r} should be an id or an object with an id, got {_short(value)}")
    return value


def _object_id(obj: Any, expected: str) -> str:
    if not isinstance(obj, dict):
        raise BadObject(f"expected a {expected} object, got {type(obj).__name__}")
    value = obj.get("id")
    if not isinstance(value, str) or not value:
        raise BadObject(f"a {expected} object without an id")
    kind = obj.get("object")
    if kind is not None and kind != expected:
        raise BadObject(f"expected a {expected} object, got {kind!r}")
    return value


object_id = _object_id  # for the fetch, which checks a subscription's id before listing its items


def feature_ids(metadata: dict, key: str) -> tuple[str, ...]:
    """Feature ids listed in a product's metadata, separated by spaces or commas; empty tokens ignored."""
    value = metadata.get(key)
    if not value:
        return ()
    ids = {token for token in _FEATURE_SPLIT.split(value) if token}
    for token in ids:
        if len(token) > 255:
            raise BadObject(f"metadata {key!r} names a feature id longer than 255 characters")
    return tuple(sorted(ids))


def parse_product(obj: dict, features_key: str = "features") -> ProductRec:
    pid = _object_id(obj, "product")
    metadata = _metadata(obj)
    return ProductRec(
        id=pid,
        name=_text(obj, "name", nullable=False),
        description=_get(obj, "description", str, nullable=True, optional=True),
        active=_get(obj, "active", bool),
        metadata=metadata,
        features=feature_ids(metadata, features_key),
    )


def parse_price(obj: dict) -> PriceRec:
    pid = _object_id(obj, "price")
    currency = _get(obj, "currency", str).lower()
    if currency not in ISO_4217:
        raise BadObject(f"currency {currency!r} is not an ISO 4217 code")
    recurring = _get(obj, "recurring", dict, nullable=True, optional=True)
    frequency = None
    if recurring is not None:
        interval = _get(recurring, "interval", str)
        count = _get(recurring, "interval_count", int)
        if interval not in INTERVALS or count < 1:
            raise BadObject(f"recurring interval {interval!r} x {count} is not one Stripe documents")
        frequency = f"{interval}_{count}"
    amount = _get(obj, "unit_amount", int, nullable=True, optional=True)
    if amount is not None and abs(amount) >= 2**63:
        raise BadObject("unit_amount is out of range")
    return PriceRec(
        id=pid,
        product_id=_id_of(obj.get("product"), "product"),
        amount=amount,
        currency=currency,
        frequency=frequency,
        active=_get(obj, "active", bool),
        nickname=_text(obj, "nickname"),
    )


def parse_customer(obj: dict) -> CustomerRec:
    cid = _object_id(obj, "customer")
    if obj.get("deleted") is True:
        raise BadObject("the customer is deleted in Stripe")
    return CustomerRec(id=cid, email=_text(obj, "email"), name=_text(obj, "name"))


def parse_item(obj: dict) -> tuple[ItemRec, dict | None]:
    """An item and, when the item embeds it, its price object."""
    iid = _object_id(obj, "subscription_item")
    price = obj.get("price")
    quantity = _get(obj, "quantity", int, nullable=True, optional=True)
    if quantity is not None and not 0 <= quantity < 2**31:
        raise BadObject(f"item {iid}: quantity {quantity} is out of range")
    item = ItemRec(
        id=iid,
        price_id=_id_of(price, "price"),
        quantity=quantity,
        current_period_start=_ts(obj, "current_period_start"),
        current_period_end=_ts(obj, "current_period_end"),
    )
    return item, price if isinstance(price, dict) else None


def parse_subscription(obj: dict, items: Iterable[dict]) -> tuple[SubscriptionRec, list[dict]]:
    """A subscription from its object and its complete item list (embedded page plus overflow pages).

    Periods come from the subscription where Stripe puts them there (API versions before
    2025-03-31) and otherwise from its items: the earliest start and the latest end.
    Returns the record and the price objects its items embed.
    """
    sid = _object_id(obj, "subscription")
    status = _get(obj, "status", str)
    if status not in STATUSES:
        raise BadObject(f"status {status!r} is not one Stripe documents")
    parsed = [parse_item(item) for item in items]
    recs = tuple(sorted((item for item, _ in parsed), key=lambda i: i.id))
    start, end = _ts(obj, "current_period_start"), _ts(obj, "current_period_end")
    if start is None:
        starts = [i.current_period_start for i in recs if i.current_period_start is not None]
        start = min(starts) if starts else None
    if end is None:
        ends = [i.current_period_end for i in recs if i.current_period_end is not None]
        end = max(ends) if ends else None
    rec = SubscriptionRec(
        id=sid,
        customer_id=_id_of(obj.get("customer"), "customer"),
        status=status,
        current_period_start=start,
        current_period_end=end,
        cancel_at=_ts(obj, "cancel_at"),
        cancel_at_period_end=bool(_get(obj, "cancel_at_period_end", bool, optional=True)),
        canceled_at=_ts(obj, "canceled_at"),
        ended_at=_ts(obj, "ended_at"),
        trial_start=_ts(obj, "trial_start"),
        trial_end=_ts(obj, "trial_end"),
        created=_ts(obj, "created"),
        metadata=_metadata(obj),
        items=recs,
    )
    return rec, [price for _, price in parsed if price is not None]
