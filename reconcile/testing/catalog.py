"""The price catalog of the billing shapes (data for the fake Stripe, a test double): one price of
each shape on a product of its own, 13 add-ons for subscriptions of many items, tiers for tiered
prices and every price's currency options. Used by ``shapes.add_billing_shapes``."""

from __future__ import annotations

import random
from collections.abc import Callable

Ids = Callable[[str], str]  # a prefix -> a new unique id
DAY = 86_400
ADDONS = 13  # prices of the add-on product: enough for subscriptions of 11 to 13 items


def tiers_for(currency: str, mode: str) -> list[dict]:
    unit = 1000 if currency != "jpy" else 1000
    if mode == "volume":
        return [_tier(5, 1500, None), _tier(None, 1200, 500)]
    return [_tier(10, unit, None), _tier(None, unit * 8 // 10, None)]


def _tier(up_to: int | None, unit: int, flat: int | None) -> dict:
    return {
        "flat_amount": flat,
        "flat_amount_decimal": None if flat is None else str(flat),
        "unit_amount": unit,
        "unit_amount_decimal": str(unit),
        "up_to": up_to,
    }


def currency_option(price: dict) -> dict:
    """The option of a price's own currency, as ``expand[]=data.currency_options`` shows it."""
    option = {
        "custom_unit_amount": price["custom_unit_amount"],
        "tax_behavior": price["tax_behavior"],
        "unit_amount": price["unit_amount"],
        "unit_amount_decimal": price["unit_amount_decimal"],
    }
    if price.get("tiers") is not None:
        option["tiers"] = price["tiers"]
    return option


def _price(ids: Ids, product: dict, created: int, **fields) -> dict:
    recurring = fields.pop("recurring", ("month", 1, "licensed"))
    amount = fields.pop("amount", None)
    price = {
        "id": ids("price_"),
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": created,
        "currency": "usd",
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": None,
        "product": product["id"],
        "recurring": None
        if recurring is None
        else {
            "interval": recurring[0],
            "interval_count": recurring[1],
            "meter": ("mtr_" + product["id"][5:]) if recurring[2] == "metered" else None,
            "usage_type": recurring[2],
            "trial_period_days": None,
        },
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "one_time" if recurring is None else "recurring",
        "unit_amount": amount,
        "unit_amount_decimal": None if amount is None else str(amount),
    }
    price.update(fields)
    return price


def _special_prices(ids: Ids, product: dict, created: int) -> dict[str, dict]:
    """One price per shape, keyed by the shape's name."""
    c = created
    return {
        "decimal": _price(ids, product, c + 1, nickname="Sub-cent per unit", unit_amount_decimal="0.5"),
        "package": _price(
            ids,
            product,
            c + 2,
            nickname="Per package of 10",
            amount=1000,
            transform_quantity={"divide_by": 10, "round": "up"},
        ),
        "custom": _price(
            ids,
            product,
            c + 3,
            nickname="Pay what you want",
            recurring=None,
            custom_unit_amount={"maximum": 50000, "minimum": 500, "preset": 2000},
        ),
        "daily": _price(ids, product, c + 4, nickname="Every 14 days", amount=300, recurring=("day", 14, "licensed")),
        "weekly": _price(ids, product, c + 5, nickname="Every 2 weeks", amount=700, recurring=("week", 2, "licensed")),
        "volume": _price(
            ids,
            product,
            c + 6,
            nickname="Volume tiers",
            billing_scheme="tiered",
            tiers_mode="volume",
            tiers=tiers_for("usd", "volume"),
        ),
        "multi": _price(
            ids,
            product,
            c + 7,
            nickname="Several currencies",
            amount=2000,
            tax_behavior="exclusive",
            lookup_key="extras_multi_monthly",
        ),
        "metered": _price(
            ids,
            product,
            c + 8,
            nickname="Metered, sub-cent",
            unit_amount_decimal="0.25",
            recurring=("month", 1, "metered"),
        ),
    }


def _product(ids: Ids, name: str, created: int) -> dict:
    return {
        "id": ids("prod_"),
        "object": "product",
        "active": True,
        "created": created,
        "default_price": None,
        "description": None,
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": {},
        "name": name,
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "unit_label": None,
        "updated": created + 3600,
        "url": None,
    }


def catalog(account: dict, ids: Ids, origin: int) -> tuple[dict[str, dict], list[dict]]:
    """Two products: one price of each shape, and add-ons for subscriptions of many items."""
    extras = _product(ids, "Usage and extras", origin - 10 * DAY)
    addons = _product(ids, "Add-ons", origin - 11 * DAY)
    special = _special_prices(ids, extras, extras["created"])
    addon_prices = [
        _price(ids, addons, addons["created"] + k, nickname=f"Add-on {k + 1}", amount=100 * (k + 1))
        for k in range(ADDONS)
    ]
    extras["default_price"] = special["multi"]["id"]
    addons["default_price"] = addon_prices[0]["id"]
    account["products"] += [extras, addons]
    account["prices"] += [*special.values(), *addon_prices]
    return special, addon_prices


def prices_and_options(account: dict, rng: random.Random) -> None:
    """Tiers for tiered prices; every price's currency options (its own currency, and for some,
    others): Stripe returns both only when a request expands them."""
    for price in account["prices"]:
        if price["billing_scheme"] == "tiered" and not price.get("tiers"):
            price["tiers"] = tiers_for(price["currency"], price["tiers_mode"] or "graduated")
        options = {price["currency"]: currency_option(price)}
        if price["nickname"] == "Several currencies" or (
            price["billing_scheme"] == "per_unit" and price["unit_amount"] and rng.random() < 0.15
        ):
            for other, factor in (("eur", 0.95), ("gbp", 0.85)):
                if other != price["currency"] and price["currency"] != "jpy":
                    amount = int(price["unit_amount"] * factor)
                    options[other] = {
                        **options[price["currency"]],
                        "unit_amount": amount,
                        "unit_amount_decimal": str(amount),
                    }
        price["currency_options"] = options
