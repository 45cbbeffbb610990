"""Which records a pull need not keep: those equal to their stored row that need nothing else (pure).

A re-pull of a large account finds almost every object unchanged. Compared as its page is read,
such a record is dropped and only its id kept, so the pull holds the stored rows and what changed,
not a second copy of the account (at N=100,000 the two copies were most of the peak memory).

Not dropped, although equal: products (their Entitlements features are attached after the listing,
so a product is complete only then), and an unlinked customer that the users pass may still act
on (a user with its email exists now, or users are created for customers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .registry import CUSTOMERS, PRICES, SUBSCRIPTIONS
from .snapshot import Snapshot
from .users import UserDirectory, normalize_email

Pruner = Callable[[str, Any], bool]


def pruner(stored: Snapshot, directory: UserDirectory | None, create_users: bool) -> Pruner:
    """``unchanged(model, record)``: True when ``record`` equals its row in ``stored`` and the run has
    nothing else to do for it."""
    tables = {r.model: (getattr(stored, r.name), r.same) for r in (PRICES, CUSTOMERS, SUBSCRIPTIONS)}
    by_email = directory.by_email if directory is not None else {}

    def unchanged(model: str, record: Any) -> bool:
        found = tables.get(model)
        if found is None:
            return False
        rows, same = found
        row = rows.get(record.id)
        if row is None or not same(row, record):
            return False
        if model == CUSTOMERS.model and row.user_id is None:
            email = normalize_email(record.email)
            if email is not None and (create_users or email in by_email):
                return False  # the users pass may link it or create its user
        return True

    return unchanged
