"""Which records a pull need not keep: those equal to their stored row that need nothing else (pure).

A re-pull of a large account finds almost every object unchanged. Compared as its page is read,
such a record is dropped and only its id kept, so the pull holds a fingerprint per stored row
(``fingerprint.py``) and what changed, not two copies of the account (at N=100,000 the two copies
were most of the peak memory; the stored rows as records, most of what remained).

Not dropped, although equal: products (their Entitlements features are attached after the listing,
so a product is complete only then), and an unlinked customer that the users pass may still act
on (a user with its email exists now, or users are created for customers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .fingerprint import PRUNED, Fingerprints, record_fingerprint
from .registry import CUSTOMERS
from .users import UserDirectory, normalize_email

Pruner = Callable[[str, Any], bool]


def pruner(stored: Fingerprints, directory: UserDirectory | None, create_users: bool) -> Pruner:
    """``unchanged(model, record)``: True when ``record``'s fingerprint is its stored row's and the
    run has nothing else to do for it."""
    tables = {r.model: (getattr(stored, r.name), record_fingerprint(r)) for r in PRUNED}
    by_email = directory.by_email if directory is not None else {}
    unlinked = stored.unlinked

    def unchanged(model: str, record: Any) -> bool:
        found = tables.get(model)
        if found is None:
            return False
        rows, fingerprint = found
        kept = rows.get(record.id)
        if kept is None or kept != fingerprint(record):
            return False
        if model == CUSTOMERS.model and record.id in unlinked:
            email = normalize_email(record.email)
            if email is not None and (create_users or email in by_email):
                return False  # the users pass may link it or create its user
        return True

    return unchanged
