"""A price's amount as Stripe means it, in words (pure): what the admin shows.

"12.00 USD per unit", "0.005 USD per unit" (half a cent, given only as ``unit_amount_decimal``),
"10.00 USD per package of 10 (rounded up)", "graduated tiers: 10.00 USD per unit for units 1-10,
then 1 more tier", "customer chooses (min 5.00 USD, max 500.00 USD, preset 20.00 USD)", and each
other currency after the price's own: "20.00 USD per unit; 19.00 EUR per unit; 17.00 GBP per unit".
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

# Stripe's zero-decimal and three-decimal currencies (https://docs.stripe.com/currencies); every other
# currency, ISK, HUF and TWD included, has two decimals in the API's minor units.
ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())
UNKNOWN = "tiered / custom"  # a row stored before reconcile kept what the amount means


def decimals(currency: str) -> int:
    code = (currency or "").lower()
    return 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2


def money(minor: int | Decimal | str, currency: str) -> str:
    """Minor units as an amount with its currency, exactly: ``1200`` USD is ``"12.00 USD"``, ``"0.5"``
    USD (half a cent) is ``"0.005 USD"``."""
    places = decimals(currency)
    value = Decimal(minor).scaleb(-places)
    text = format(value.quantize(Decimal(1).scaleb(-places)) if _fits(value, places) else value.normalize(), "f")
    return f"{text} {(currency or '').upper()}".rstrip()


def _fits(value: Decimal, places: int) -> bool:
    return value == value.quantize(Decimal(1).scaleb(-places))


def _unit(usage_type: str | None) -> str:
    return "per unit of usage" if usage_type == "metered" else "per unit"


def _per_unit(minor: Any, currency: str, price: Mapping[str, Any]) -> str:
    divide_by = price.get("transform_divide_by")
    if divide_by and divide_by > 1:
        rounding = f" (rounded {price['transform_round']})" if price.get("transform_round") else ""
        return f"{money(minor, currency)} per package of {divide_by}{rounding}"
    return f"{money(minor, currency)} {_unit(price.get('usage_type'))}"


def _tier(tier: Mapping[str, Any], currency: str, unit: str) -> str:
    parts = []
    amount = tier.get("unit_amount_decimal") if tier.get("unit_amount_decimal") is not None else tier.get("unit_amount")
    if amount is not None:
        parts.append(f"{money(amount, currency)} {unit}")
    flat = tier.get("flat_amount_decimal") if tier.get("flat_amount_decimal") is not None else tier.get("flat_amount")
    if flat is not None:
        parts.append(f"{money(flat, currency)} flat")
    return " + ".join(parts) or "free"


def _tiered(tiers: list, mode: str | None, currency: str, unit: str) -> str:
    if not tiers:
        return "tiered (its tiers were not fetched)"
    first, rest = tiers[0], len(tiers) - 1
    span = f"for units 1-{first['up_to']}" if first.get("up_to") is not None else "for any quantity"
    more = f", then {rest} more tier{'s' if rest > 1 else ''}" if rest else ""
    return f"{mode or 'tiered'} tiers: {_tier(first, currency, unit)} {span}{more}"


def _custom(custom: Mapping[str, Any], currency: str) -> str:
    bounds = [f"{name} {money(custom[key], currency)}" for key, name in
              (("minimum", "min"), ("maximum", "max"), ("preset", "preset")) if custom.get(key) is not None]
    return "customer chooses" + (f" ({', '.join(bounds)})" if bounds else "")


def _one(option: Mapping[str, Any], currency: str, price: Mapping[str, Any]) -> str | None:
    """One currency's amount; None when nothing says what it is."""
    if option.get("custom_unit_amount") is not None:
        return _custom(option["custom_unit_amount"], currency)
    if price.get("billing_scheme") == "tiered":
        unit = _unit(price.get("usage_type"))
        return _tiered(list(option.get("tiers") or []), price.get("tiers_mode"), currency, unit)
    exact = option.get("unit_amount_decimal")
    minor = exact if exact is not None else option.get("unit_amount")
    return None if minor is None else _per_unit(minor, currency, price)


def describe(price: Mapping[str, Any]) -> str:
    """The amount of a price given as its stored fields (a Price row's, or a dict of them)."""
    own = {
        "unit_amount": price.get("amount"),
        "unit_amount_decimal": price.get("unit_amount_decimal"),
        "custom_unit_amount": price.get("custom_unit_amount"),
        "tiers": price.get("tiers"),
    }
    first = _one(own, price.get("currency") or "", price)
    if first is None:
        return UNKNOWN
    others = [
        text
        for code, option in sorted((price.get("currency_options") or {}).items())
        if (text := _one(option, code, price)) is not None
    ]
    return "; ".join([first, *others])


def describe_row(row: Any) -> str:
    """``describe`` for a model instance."""
    names = ("amount", "unit_amount_decimal", "currency", "billing_scheme", "tiers_mode", "tiers", "usage_type",
             "transform_divide_by", "transform_round", "custom_unit_amount", "currency_options")
    return describe({name: getattr(row, name, None) for name in names})
