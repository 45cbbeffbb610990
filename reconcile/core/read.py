"""Readers of Stripe's JSON fields: each checks one field's type on the way in.

A value that is not what Stripe documents raises ``BadObject`` with a reason a person can act on;
the caller turns it into a skipped operation, so one odd object never stops a run. The registry
(``registry.py``) names, per record field, the reader that fills it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

from .currencies import ISO_4217

Reader = Callable[[dict], Any]

INTERVALS = frozenset({"day", "week", "month", "year"})
STATUSES = frozenset(
    {"incomplete", "incomplete_expired", "trialing", "active", "past_due", "canceled", "unpaid", "paused"}
)
_FEATURE_SPLIT = re.compile(r"[\s,]+")
_MISSING = object()


class BadObject(ValueError):
    """A Stripe object with a field of an unexpected type or value."""


def choices(allowed: Iterable[str]) -> dict[str, str]:
    """Each allowed value mapped to itself. Looking a value up both checks it and returns the one
    string every record then shares: a decoder makes a new string per object, and 100,000
    subscriptions would otherwise hold 100,000 copies of "active" and of "charge_automatically"."""
    return {value: value for value in allowed}


def documented(canonical: dict[str, str], value: Any, what: str) -> str:
    """``value`` as the shared string of ``canonical`` (``choices``); ``BadObject`` unless it is one."""
    found = canonical.get(value)
    if found is None:
        raise BadObject(f"{what} {value!r} is not one Stripe documents")
    return found


def get(obj: dict, key: str, kind: type | tuple[type, ...], *, nullable: bool = False, optional: bool = False):
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
        raise BadObject(f"field {key!r} should be {names}, got {type(value).__name__} {short(value)}")
    return value


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# Timestamps repeat (an item's period is its subscription's, read just before): made once, shared.
# Kept small: the cache outlives the run (a worker's process), and a re-pull drops the records.
_SEEN_LIMIT = 10_000
_seen: dict[int, datetime] = {}


def timestamp(value: Any, key: str = "timestamp") -> datetime | None:
    if value is None:
        return None
    if type(value) is int:
        found = _seen.get(value)
        if found is not None:
            return found
    elif not isinstance(value, int) or isinstance(value, bool):
        raise BadObject(f"field {key!r} should be a Unix timestamp, got {short(value)}")
    try:
        found = datetime.fromtimestamp(value, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise BadObject(f"field {key!r} is out of range: {value}") from None
    if len(_seen) >= _SEEN_LIMIT:
        _seen.clear()  # a dict's clear and set are atomic: list threads may call this at once
    _seen[value] = found
    return found


def object_id(obj: Any, expected: str) -> str:
    if not isinstance(obj, dict):
        raise BadObject(f"expected a {expected} object, got {type(obj).__name__}")
    value = obj.get("id")
    if not isinstance(value, str) or not value:
        raise BadObject(f"a {expected} object without an id")
    kind = obj.get("object")
    if kind is not None and kind != expected:
        raise BadObject(f"expected a {expected} object, got {kind!r}")
    return value


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


# -- readers: each returns a function of the Stripe object ---------------------------------------
def reads(key: str, kind: str, **about: Any) -> Callable[[Reader], Reader]:
    """Label a reader with the Stripe key it reads and its kind (text, flag, when, ref, ...), so
    tests that walk the registry know what value to change in Stripe for each field, and the list
    decoder which keys to keep (``stripe/decode.py``). ``also=(...)``: further top-level keys it
    reads (the list decoder keeps them too). ``json=True``: its values are dicts or lists (a JSON
    column); a fingerprint makes only those canonical (``fingerprint.key_fingerprint``)."""

    def label(fn: Reader) -> Reader:
        fn.key, fn.kind, fn.about = key, kind, about  # type: ignore[attr-defined]
        return fn

    return label


def text(key: str, *, nullable: bool = True, max_length: int = 255) -> Reader:
    """A string; ``max_length`` 0 for a TextField. A nullable text may also be absent."""

    @reads(key, "text", nullable=nullable, max_length=max_length)
    def read(obj: dict) -> str | None:
        value = get(obj, key, str, nullable=nullable, optional=nullable)
        if value is not None and max_length and len(value) > max_length:
            raise BadObject(f"field {key!r} is longer than {max_length} characters")
        return value

    return read


def flag(key: str, *, optional: bool = False) -> Reader:
    """A boolean; an optional one reads as False when absent or null."""
    if optional:
        return reads(key, "flag")(lambda obj: bool(get(obj, key, bool, optional=True)))
    return reads(key, "flag")(lambda obj: get(obj, key, bool))


def when(key: str) -> Reader:
    """A Unix timestamp as an aware UTC datetime, or None."""
    return reads(key, "when")(lambda obj: timestamp(obj.get(key), key))


def ref(key: str, *, shared: bool = False) -> Reader:
    """A reference: an id string, or an expanded object carrying one (Stripe's ``object`` ``key``).
    ``shared``: few objects are referred to by many (the prices of subscription items), so the id is
    interned and the records share one string (an interned string is freed with its last record)."""

    @reads(key, "ref", target=key)
    def read(obj: dict) -> str:
        value = obj.get(key)
        if isinstance(value, dict):
            value = value.get("id")
        if not isinstance(value, str) or not value:
            raise BadObject(f"field {key!r} should be an id or an object with an id, got {short(value)}")
        return sys.intern(value) if shared else value

    return read


def one_of(key: str, allowed: frozenset[str], *, optional: bool = False) -> Reader:
    """One of the values Stripe documents; an optional one may be absent or null."""

    canonical = choices(allowed)

    @reads(key, "one_of", allowed=allowed)
    def read(obj: dict) -> str | None:
        value = get(obj, key, str, optional=optional)
        if value is None and optional:
            return None
        return documented(canonical, value, key)

    return read


# The metadata of every record that has none: one dict, not one each (64 bytes a record; most of
# a first pull's 200,000 records have none). Records are read-only, and nothing writes into a
# record's metadata; tests/test_parse.py checks that a whole run leaves it empty.
NO_METADATA: dict = {}


@reads("metadata", "metadata", json=True)
def metadata(obj: dict) -> dict:
    value = get(obj, "metadata", dict, optional=True)
    if not value:
        return NO_METADATA
    for k, v in value.items():
        if not isinstance(v, str):
            raise BadObject(f"metadata {k!r} should be a string, got {short(v)}")
    return dict(value)


@reads("currency", "currency")
def currency(obj: dict) -> str:
    return iso_currency(get(obj, "currency", str))


def iso_currency(value: str) -> str:
    """A currency code, lower-cased as Stripe returns it; ``BadObject`` unless ISO 4217 names it."""
    code = _CURRENCIES.get(value.lower())
    if code is None:
        raise BadObject(f"currency {value.lower()!r} is not an ISO 4217 code")
    return code


_CURRENCIES = choices(ISO_4217)


@reads("recurring", "frequency")
def frequency(obj: dict) -> str | None:
    """A recurring price's ``"{interval}_{interval_count}"``; None for a one-time price."""
    recurring = get(obj, "recurring", dict, nullable=True, optional=True)
    if recurring is None:
        return None
    interval = get(recurring, "interval", str)
    count = get(recurring, "interval_count", int)
    if interval not in INTERVALS or count < 1:
        raise BadObject(f"recurring interval {interval!r} x {count} is not one Stripe documents")
    return f"{interval}_{count}"


@reads("unit_amount", "amount")
def unit_amount(obj: dict) -> int | None:
    amount = get(obj, "unit_amount", int, nullable=True, optional=True)
    if amount is not None and abs(amount) >= 2**63:
        raise BadObject("unit_amount is out of range")
    return amount


@reads("quantity", "quantity")
def quantity(obj: dict) -> int | None:
    value = get(obj, "quantity", int, nullable=True, optional=True)
    if value is not None and not 0 <= value < 2**31:
        raise BadObject(f"item {obj.get('id')}: quantity {value} is out of range")
    return value
