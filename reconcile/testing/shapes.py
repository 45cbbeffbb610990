"""Billing shapes the synthetic accounts add to the basic catalog (data for the fake Stripe, a test double).

Stripe's prices are more than "an amount per period": sub-cent amounts given only as
``unit_amount_decimal``, packages (``transform_quantity``), tiers, amounts the customer chooses
(``custom_unit_amount``), several currencies (``currency_options``), day and week intervals,
metered usage. Subscriptions have more than 10 items (the rest on ``/v1/subscription_items``
pages), items billing on different periods, a currency of their own, invoices sent rather than
charged, paused collection. Products carry Entitlements features. ``add_billing_shapes`` adds
all of these to a generated account, deterministically, with its own random stream so the basic
catalog stays what it was.
"""

from __future__ import annotations

import random

from .catalog import Ids, catalog, prices_and_options

DAY = 86_400
FEATURES = [
    ("sso", "Single sign-on"),
    ("audit", "Audit log"),
    ("export", "Data export"),
    ("api", "API access"),
    ("priority", "Priority support"),
    ("seats", "Extra seats"),
]


def period_of(anchor: int, interval: str, count: int, at: int, add_months) -> tuple[int, int]:
    """The billing period [start, end) from ``anchor`` that contains ``at``, for any interval."""
    if interval in ("day", "week"):
        step = count * DAY * (7 if interval == "week" else 1)
        k = max(0, (at - anchor) // step)
        return anchor + k * step, anchor + (k + 1) * step
    months = count * (12 if interval == "year" else 1)
    k = 0
    while add_months(anchor, (k + 1) * months) <= at:
        k += 1
    return add_months(anchor, k * months), add_months(anchor, (k + 1) * months)


def _item(ids: Ids, sub: dict, price: dict, created: int, period: tuple[int, int], quantity: int | None) -> dict:
    item = {
        "id": ids("si_"),
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": created,
        "current_period_end": period[1],
        "current_period_start": period[0],
        "discounts": [],
        "metadata": {},
        "price": price,
        "subscription": sub["id"],
        "tax_rates": [],
    }
    if quantity is not None:  # metered items have none
        item["quantity"] = quantity
    return item


class _Subs:
    """Rewrites chosen subscriptions' items (periods follow each price's interval)."""

    def __init__(self, ids: Ids, now: int, add_months) -> None:
        self.ids, self.now, self.add_months = ids, now, add_months

    def period(self, sub: dict, price: dict) -> tuple[int, int]:
        if sub["status"] == "trialing":
            return sub["trial_start"], sub["trial_end"]
        rec = price["recurring"]
        at = sub["ended_at"] or self.now
        return period_of(sub["created"], rec["interval"], rec["interval_count"], at, self.add_months)

    def set_items(self, sub: dict, prices: list[tuple[dict, int | None]], currency: str | None = None) -> None:
        items = [self._item(sub, price, k, quantity) for k, (price, quantity) in enumerate(prices)]
        sub["items"]["data"] = items
        sub["currency"] = currency or prices[0][0]["currency"]
        if sub["cancel_at_period_end"]:
            sub["cancel_at"] = min(i["current_period_end"] for i in items)

    def add_item(self, sub: dict, price: dict, quantity: int | None = 1) -> None:
        data = sub["items"]["data"]
        data.append(self._item(sub, price, len(data), quantity))

    def _item(self, sub: dict, price: dict, k: int, quantity: int | None) -> dict:
        return _item(self.ids, sub, price, sub["created"] + k, self.period(sub, price), quantity)


def _subscriptions(account: dict, special: dict, addons: list[dict], subs: _Subs) -> None:
    """Every subscription gets ``billing_mode``; chosen ones get the shapes (by position, so a
    small account has a few of each)."""
    for i, sub in enumerate(account["subscriptions"]):
        sub["billing_mode"] = {"flexible": None, "type": "classic"}
        sub["billing_schedules"] = []
        sub["billing_thresholds"] = None
        if i % 397 == 5:  # more than 10 items: the rest come from /v1/subscription_items
            subs.set_items(sub, [(p, 1 + k % 3) for k, p in enumerate(addons[: 11 + (i // 397) % 3])])
        elif i % 89 == 7:  # items billing on different periods (flexible billing mode)
            subs.set_items(sub, [(special["multi"], 1), (special["weekly"], 1)], currency="usd")
            sub["billing_mode"] = {
                "flexible": {"proration_discounts": "included"},
                "type": "flexible",
                "updated_at": sub["created"],
            }
        elif i % 83 == 11:  # billed in EUR on a USD price with a EUR option
            subs.set_items(sub, [(special["multi"], 2)], currency="eur")
        elif i % 79 == 13:
            subs.set_items(sub, [(special["package"], 25)])
        elif i % 73 == 17:
            subs.set_items(sub, [(special["decimal"], 3), (special["metered"], None)])
        elif i % 71 == 19:
            subs.set_items(sub, [(special["daily"], 1)])
        elif i % 67 == 23:
            subs.set_items(sub, [(special["volume"], 7)])
        _settings(sub, i, subs.now)


def _settings(sub: dict, i: int, now: int) -> None:
    if i % 13 == 4 and sub["status"] != "trialing":
        sub["collection_method"], sub["days_until_due"] = "send_invoice", 30
    if i % 61 == 3 and sub["status"] in ("active", "past_due"):
        sub["pause_collection"] = {"behavior": "keep_as_draft", "resumes_at": now + 10 * DAY}
    details = sub["cancellation_details"]
    if sub["canceled_at"] and i % 5 == 2:
        details["reason"] = "payment_failed"
    if sub["canceled_at"] and i % 7 == 3:
        details["feedback"], details["comment"] = "too_expensive", "Moved to a cheaper plan"


def _features(account: dict, ids: Ids) -> None:
    """Entitlements features (one archived), attached to the products whose metadata names them."""
    features = {
        key: {
            "id": ids("feat_"),
            "object": "entitlements.feature",
            "active": True,
            "livemode": False,
            "lookup_key": key,
            "metadata": {},
            "name": name,
        }
        for key, name in FEATURES
    }
    archived = {
        "id": ids("feat_"),
        "object": "entitlements.feature",
        "active": False,
        "livemode": False,
        "lookup_key": "legacy_reports",
        "metadata": {"retired": "2025"},
        "name": "Legacy reports",
    }
    attachments = []
    for product in account["products"]:
        named = (product["metadata"].get("features") or "").replace(",", " ").split()
        for token in sorted(set(named)):
            feature = features.get(token.removeprefix("feat_"))
            if feature is not None:
                attachments.append(
                    {
                        "id": ids("prodft_"),
                        "object": "product_feature",
                        "product": product["id"],
                        "entitlement_feature": feature["id"],
                        "livemode": False,
                    }
                )
    account["features"] = [*features.values(), archived]
    account["product_features"] = attachments


def _customers(account: dict) -> None:
    for i, customer in enumerate(account["customers"]):
        if i % 17 == 3:
            customer["metadata"] = {"crm_id": f"C{i:06d}", "source": "import"}


def add_billing_shapes(account: dict, *, ids: Ids, rng: random.Random, now: int, add_months) -> dict:
    """Add the shapes above to a generated account (in place); returns it."""
    origin = min((p["created"] for p in account["products"]), default=now)
    special, addons = catalog(account, ids, origin)
    prices_and_options(account, rng)
    _subscriptions(account, special, addons, _Subs(ids, now, add_months))
    prices = {p["id"]: p for p in account["prices"]}
    for sub in account["subscriptions"]:  # items embed each price as it now is
        for item in sub["items"]["data"]:
            price = prices[item["price"]["id"]]
            item["price"] = {
                **price,
                "metadata": dict(price["metadata"]),
                "recurring": price["recurring"] and dict(price["recurring"]),
            }
    _features(account, ids)
    _customers(account)
    return account
