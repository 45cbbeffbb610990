"""Stripe API versions in the fake Stripe (a test double): which it knows, and what changes with them.

Stripe renders every object with the request's ``Stripe-Version`` header (or the account's default
version when there is none) and answers a version it does not know with HTTP 400
``Invalid Stripe API version: <value>``. The one change that matters to this project: from
2025-03-31 (``basil``) on, ``current_period_start`` / ``current_period_end`` live on subscription
items; before, they live on the subscription and items have none.
"""

from __future__ import annotations

import re
from datetime import date

# The versions the fake answers to: a sample of Stripe's dated versions before named releases, named
# releases (date.codename) since 2024-09-30, the spec's (2026-08-26.dahlia) and stripe-python's.
# Add the version a new stripe-python pins.
KNOWN_VERSIONS: frozenset[str] = frozenset(
    {
        "2020-08-27",
        "2022-08-01",
        "2022-11-15",
        "2023-08-16",
        "2023-10-16",
        "2024-04-10",
        "2024-06-20",
        "2024-09-30.acacia",
        "2024-10-28.acacia",
        "2024-11-20.acacia",
        "2024-12-18.acacia",
        "2025-01-27.acacia",
        "2025-02-24.acacia",
        "2025-03-31.basil",
        "2025-04-30.basil",
        "2025-05-28.basil",
        "2025-06-30.basil",
        "2025-07-30.basil",
        "2025-08-27.basil",
        "2025-09-30.clover",
        "2025-10-29.clover",
        "2026-06-24.dahlia",  # what stripe-python 15.3 pins
        "2026-08-26.dahlia",  # tests/data/stripe_schemas.json's spec
        "2026-10-28.endive",  # what stripe-python 16.1 pins
    }
)
DEFAULT_VERSION = "2026-10-28.endive"  # the fake account's default, used when no header is sent
ITEM_PERIODS_SINCE = "2025-03-31"
_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:\.[a-z]+)?$")


# Named releases in order, each from the first date the fake knows of it: a version date.codename
# is taken when the codename is one of these and the date falls in its release's span, so that a
# later stripe-python of the same major version (pinning, say, 2026-12-16.endive) still works.
RELEASES: tuple[tuple[str, str], ...] = (
    ("acacia", "2024-09-30"),
    ("basil", "2025-03-31"),
    ("clover", "2025-09-30"),
    ("dahlia", "2026-06-24"),
    ("endive", "2026-10-28"),
)
_NAMED = re.compile(r"^(\d{4})-(\d{2})-(\d{2})\.([a-z]+)$")


def _named_release_ok(version: str) -> bool:
    match = _NAMED.match(version)
    if not match:
        return False
    try:
        date.fromisoformat("-".join(match.groups()[:3]))
    except ValueError:
        return False
    day, name = version[:10], match.group(4)
    starts = [start for codename, start in RELEASES]
    for n, (codename, start) in enumerate(RELEASES):
        if codename == name:
            return start <= day and (n + 1 == len(starts) or day < starts[n + 1])
    return False


def invalid_version_message(version: str) -> str | None:
    """Stripe's error message for an unknown version, or None when the fake knows it."""
    if version in KNOWN_VERSIONS or _named_release_ok(version):
        return None
    return f"Invalid Stripe API version: {version}"


def periods_on_items(version: str) -> bool:
    """Whether ``version`` puts billing periods on subscription items (2025-03-31 and later)."""
    match = _DATE.match(version)
    return bool(match) and match.group(1) >= ITEM_PERIODS_SINCE


def legacy_subscription(sub: dict) -> dict:
    """A subscription as versions before 2025-03-31 render it: the period on the subscription
    (that of its first item: such versions bill every item on one cycle), none on the items."""
    items = sub.get("items") or {}
    data = items.get("data") or []
    first = data[0] if data else {}
    return {
        **sub,
        "current_period_start": first.get("current_period_start"),
        "current_period_end": first.get("current_period_end"),
        "items": {**items, "data": [legacy_item(item) for item in data]},
    }


def legacy_item(item: dict) -> dict:
    return {k: v for k, v in item.items() if k not in ("current_period_start", "current_period_end")}
