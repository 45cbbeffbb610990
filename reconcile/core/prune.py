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

from collections.abc import Callable, Iterable
from threading import get_ident
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


class LatePruner:
    """A pruner whose stored side arrives table by table while the fetch runs (read by another
    process: ``db/aside.py``). Until a resource's table has arrived it keeps every record of it,
    noting which, per thread (a listing's records are added by its own thread); each thread then
    takes back its own (``take``) and the fetch drops those now found unchanged, as the real
    pruner would have as their pages were read. ``settle`` blocks until every table has arrived
    (or makes them arrive), for the last ``take(everyone=True)``."""

    def __init__(self, settle: Callable[[], None]) -> None:
        self._real: Pruner | None = None
        self._arrived: frozenset[str] = frozenset()  # the models whose stored side ``_real`` has
        self._settle = settle
        self._early: dict[int, list] = {}  # thread id -> (model, record) kept before their table arrived
        self._models = frozenset(r.model for r in PRUNED)

    def arrive(self, real: Pruner, models: Iterable[str]) -> None:
        """``real`` decides for ``models`` from now on (it replaces the one before it)."""
        self._real = real
        self._arrived = frozenset(models)  # after ``_real``: a thread that sees a model here finds its pruner

    def __call__(self, model: str, record: Any) -> bool:
        if model in self._arrived:
            return self._real(model, record)  # type: ignore[misc]
        if model in self._models:
            self._early.setdefault(get_ident(), []).append((model, record))
        return False

    def take(self, everyone: bool = False) -> list[tuple[str, Any]]:
        """The records this thread kept early whose table has arrived since (every thread's with
        ``everyone``, once the threads that add have ended: it settles first)."""
        if everyone:
            self._settle()
            lists, self._early = list(self._early.values()), {}
            return [pair for kept in lists for pair in kept]
        ident = get_ident()
        mine = self._early.get(ident)
        if not mine:
            return []
        arrived = self._arrived
        now = [pair for pair in mine if pair[0] in arrived]
        if now:
            self._early[ident] = [pair for pair in mine if pair[0] not in arrived]
        return now
