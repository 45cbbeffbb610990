"""A subscription's billing period, from Stripe's either shape (pure).

API versions before 2025-03-31 put one period on the subscription, and items carry none: every
item bills on that cycle, so each item is given it. Later versions put a period on each item; with
flexible billing, items may bill on different periods. The subscription's stored period is then
the period of the item that renews first (the earliest end; then the earliest start, then the item
id): a period one item really has, and the date until which everything on the subscription is
paid. The diff notes such subscriptions when it writes them. A period that ends before it starts
is refused (``BadObject``): the subscription is skipped with the reason.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from .read import BadObject

Period = tuple[datetime | None, datetime | None]


def _check(start: datetime | None, end: datetime | None, kind: str, oid: str) -> None:
    # the name is made only for the message: this runs for every subscription and item of a pull
    if start is not None and end is not None and end < start:
        raise BadObject(
            f"{kind} {oid} has an impossible billing period: it ends ({end:%Y-%m-%dT%H:%M:%SZ}) "
            f"before it starts ({start:%Y-%m-%dT%H:%M:%SZ})"
        )


def first_to_renew(items: tuple[Any, ...]) -> Any | None:
    """The item whose period ends first (None when no item has a period)."""
    if len(items) == 1:  # most subscriptions
        return items[0] if items[0].current_period_end is not None else None
    dated = [i for i in items if i.current_period_end is not None]
    if not dated:
        return None
    return min(dated, key=lambda i: (i.current_period_end, i.current_period_start or i.current_period_end, i.id))


def distinct_periods(items: tuple[Any, ...]) -> list[Period]:
    return sorted(
        {(i.current_period_start, i.current_period_end) for i in items if i.current_period_end is not None},
        key=lambda p: (p[1], p[0] or p[1]),
    )


def resolve(sid: str, start: datetime | None, end: datetime | None, items: tuple[Any, ...]) -> tuple[Period, tuple]:
    """The subscription's period and its items (given the subscription's period where Stripe puts it
    there); ``BadObject`` for an impossible period."""
    _check(start, end, "subscription", sid)
    if start is not None or end is not None:
        items = tuple(
            i if (i.current_period_start, i.current_period_end) != (None, None)
            else replace(i, current_period_start=start, current_period_end=end)
            for i in items
        )
    for item in items:
        _check(item.current_period_start, item.current_period_end, "item", item.id)
    if start is None and end is None:
        first = first_to_renew(items)
        if first is not None:
            start, end = first.current_period_start, first.current_period_end
    return (start, end), items


def mixed_periods_note(sub: Any) -> str | None:
    """Why a subscription's period is one item's, when its items bill on different periods."""
    if len(sub.items) < 2:  # most subscriptions: one item, one period
        return None
    periods = distinct_periods(sub.items)
    if len(periods) < 2:
        return None
    first = first_to_renew(sub.items)
    shown = ", ".join(f"{s:%Y-%m-%d}..{e:%Y-%m-%d}" if s else f"..{e:%Y-%m-%d}" for s, e in periods)
    return (
        f"its items bill on {len(periods)} different periods ({shown}); the subscription's period is that of "
        f"item {first.id}, the first to renew, and each item keeps its own"
    )
