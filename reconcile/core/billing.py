"""Readers of what a price and a subscription mean, beyond an amount per period.

Each reader checks its field against what Stripe's OpenAPI spec documents and normalises it the
same way the database gives it back: decimals as ``Decimal``, tiers and currency options as the
JSON the model stores, with a fixed set of keys. The registry (``registry.py``) names, per record
field, the reader that fills it; ``read.reads`` labels each with the Stripe key it reads.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from .currencies import ISO_4217
from .read import BadObject, Reader, choices, documented, get, iso_currency, one_of, reads, short, timestamp

PRICE_TYPES = frozenset({"one_time", "recurring"})
BILLING_SCHEMES = frozenset({"per_unit", "tiered"})
USAGE_TYPES = frozenset({"licensed", "metered"})
ROUNDS = frozenset({"up", "down"})
TIERS_MODES = frozenset({"graduated", "volume"})
TAX_BEHAVIORS = frozenset({"inclusive", "exclusive", "unspecified"})
COLLECTIONS = frozenset({"charge_automatically", "send_invoice"})
CANCELLATION_REASONS = frozenset(
    {"canceled_by_retention_policy", "cancellation_requested", "payment_disputed", "payment_failed"}
)
PAUSE_BEHAVIORS = frozenset({"keep_as_draft", "mark_uncollectible", "void"})
DECIMAL_PLACES = 12  # Stripe: "a decimal string with at most 12 decimal places"
MAX_DECIMAL = Decimal(10) ** 20  # the column holds 32 digits, 12 of them after the point


def decimal(value: Any, key: str) -> Decimal | None:
    """Stripe's decimal string (``"0.5"``) as a Decimal, or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadObject(f"field {key!r} should be a decimal string, got {short(value)}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise BadObject(f"field {key!r} is not a decimal: {short(value)}") from None
    if not number.is_finite() or abs(number) >= MAX_DECIMAL or -number.as_tuple().exponent > DECIMAL_PLACES:
        raise BadObject(f"field {key!r} has more than {DECIMAL_PLACES} decimal places or is out of range")
    return number


def _nested(key: str, inner: str, kind: type, allowed: frozenset[str] | None = None) -> Reader:
    """One value inside an optional object (``recurring.interval``); None when the object is null."""
    canonical = choices(allowed) if allowed is not None else None

    def read(obj: dict) -> Any:
        outer = get(obj, key, dict, nullable=True, optional=True)
        if outer is None:
            return None
        value = get(outer, inner, kind, nullable=True, optional=True)
        if canonical is not None and value is not None:
            value = documented(canonical, value, f"{key}.{inner}")
        if kind is int and value is not None and not 0 < value < 2**31:
            raise BadObject(f"{key}.{inner} {value} is out of range")
        return value

    return reads(key, "nested", inner=inner, allowed=allowed, type=kind.__name__)(read)


interval = _nested("recurring", "interval", str, frozenset({"day", "week", "month", "year"}))
interval_count = _nested("recurring", "interval_count", int)
usage_type = _nested("recurring", "usage_type", str, USAGE_TYPES)
transform_divide_by = _nested("transform_quantity", "divide_by", int)
transform_round = _nested("transform_quantity", "round", str, ROUNDS)
cancellation_reason = _nested("cancellation_details", "reason", str, CANCELLATION_REASONS)
pause_behavior = _nested("pause_collection", "behavior", str, PAUSE_BEHAVIORS)


@reads("pause_collection", "nested_when", inner="resumes_at")
def pause_resumes_at(obj: dict):
    outer = get(obj, "pause_collection", dict, nullable=True, optional=True)
    return None if outer is None else timestamp(outer.get("resumes_at"), "pause_collection.resumes_at")


@reads("unit_amount_decimal", "decimal")
def unit_amount_decimal(obj: dict) -> Decimal | None:
    return decimal(obj.get("unit_amount_decimal"), "unit_amount_decimal")


def _int_or_none(value: Any, key: str) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or abs(value) >= 2**63):
        raise BadObject(f"field {key!r} should be an integer, got {short(value)}")
    return value


def _tier(tier: Any, where: str) -> dict:
    if not isinstance(tier, dict):
        raise BadObject(f"{where} should be an object, got {short(tier)}")
    out = {}
    for name in ("up_to", "unit_amount", "flat_amount"):
        out[name] = _int_or_none(tier.get(name), f"{where}.{name}")
    for name in ("unit_amount_decimal", "flat_amount_decimal"):
        number = decimal(tier.get(name), f"{where}.{name}")
        out[name] = None if number is None else _plain(number)
    return out


def _plain(number: Decimal) -> str:
    """A decimal as text without exponent or trailing zeros: what the JSON column keeps."""
    text = format(number.normalize(), "f")
    return text


def _tiers(value: Any, where: str) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadObject(f"field {where!r} should be a list, got {short(value)}")
    return [_tier(t, f"{where}[{n}]") for n, t in enumerate(value)]


@reads("tiers", "tiers", json=True)
def tiers(obj: dict) -> list[dict]:
    """A tiered price's tiers, in Stripe's order ([] when Stripe sends none: only when expanded)."""
    return _tiers(obj.get("tiers"), "tiers")


def _custom(value: Any, where: str) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadObject(f"field {where!r} should be an object, got {short(value)}")
    return {k: _int_or_none(value.get(k), f"{where}.{k}") for k in ("minimum", "maximum", "preset")}


@reads("custom_unit_amount", "custom", json=True)
def custom_unit_amount(obj: dict) -> dict | None:
    return _custom(obj.get("custom_unit_amount"), "custom_unit_amount")


@reads("currency_options", "currency_options", json=True, also=("currency",))
def currency_options(obj: dict) -> dict:
    """Amounts in other currencies, by lowercase code. The price's own currency is left out (its
    amounts are the price's own fields), so a price listed without the expansion and one with it
    compare alike when it has no other currency."""
    value = get(obj, "currency_options", dict, nullable=True, optional=True) or {}
    own = str(obj.get("currency") or "").lower()
    out = {}
    for code, option in sorted(value.items()):
        code = str(code).lower()
        if code == own:
            continue
        if code not in ISO_4217 or not isinstance(option, dict):
            raise BadObject(f"currency_options has an entry {short(code)} that is not a currency's option")
        where = f"currency_options.{code}"
        behavior = option.get("tax_behavior")
        if behavior is not None and behavior not in TAX_BEHAVIORS:
            raise BadObject(f"{where}.tax_behavior {behavior!r} is not one Stripe documents")
        amount = decimal(option.get("unit_amount_decimal"), f"{where}.unit_amount_decimal")
        out[code] = {
            "unit_amount": _int_or_none(option.get("unit_amount"), f"{where}.unit_amount"),
            "unit_amount_decimal": None if amount is None else _plain(amount),
            "tax_behavior": behavior,
            "custom_unit_amount": _custom(option.get("custom_unit_amount"), f"{where}.custom_unit_amount"),
            "tiers": _tiers(option.get("tiers"), f"{where}.tiers"),
        }
    return out


def optional_one_of(key: str, allowed: frozenset[str]) -> Reader:
    """One of the values Stripe documents, or None when absent or null."""
    return one_of(key, allowed, optional=True)


@reads("currency", "currency")
def optional_currency(obj: dict) -> str | None:
    value = get(obj, "currency", str, nullable=True, optional=True)
    return None if value is None else iso_currency(value)
