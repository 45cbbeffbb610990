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
from threading import Condition, Event, get_ident
from typing import Any

from .fingerprint import PRUNED, Fingerprints, record_fingerprint
from .registry import CUSTOMERS
from .users import UserDirectory, normalize_email

_EMAIL = next(f.read for f in CUSTOMERS.fields if f.name == "email")  # a customer object's email, as parsed


class Pruner:
    """``pruner(model, record)``: True when ``record``'s fingerprint is its stored row's and the run
    has nothing else to do for it. ``sighted`` decides the same from an object's fingerprint,
    before its record is made."""

    def __init__(self, stored: Fingerprints, directory: UserDirectory | None, create_users: bool) -> None:
        self._tables = {r.model: (getattr(stored, r.name), record_fingerprint(r)) for r in PRUNED}
        self._by_email = directory.by_email if directory is not None else {}
        self._unlinked = stored.unlinked
        self._create_users = create_users

    def __call__(self, model: str, record: Any) -> bool:
        found = self._tables.get(model)
        if found is None:
            return False
        rows, fingerprint = found
        kept = rows.get(record.id)
        if kept is None or kept != fingerprint(record):
            return False
        return not (model == CUSTOMERS.model and record.id in self._unlinked and self._may_link(record.email))

    def _may_link(self, email: str | None) -> bool:
        """Whether the users pass may act on a customer linked to no user: link it to a user with its
        email, or create its user."""
        found = normalize_email(email)
        return found is not None and (self._create_users or found in self._by_email)

    def sighted(self, model: str, oid: str, fingerprint: Callable[..., int | None], *args: Any) -> bool:
        """True when the object ``oid``, whose record's fingerprint ``fingerprint(*args)`` makes
        (``fingerprint.object_fingerprint``), is unchanged and needs nothing else; False when its
        record must be made: new, changed, or a customer linked to no user that the users pass
        may act on. ``fingerprint`` is called only for a stored id; it raises ``BadObject`` where
        parsing would."""
        found = self._tables.get(model)
        if found is None:
            return False
        kept = found[0].get(oid)
        if kept is None or kept != fingerprint(*args):
            return False
        # a customer's object is ``args[0]``; equal to its row, its email is the row's, read as parsed
        return not (model == CUSTOMERS.model and oid in self._unlinked and self._may_link(_EMAIL(args[0])))


EARLY_LIMIT = 50_000  # records a fetch keeps before their table has come; then it waits for it


class LatePruner:
    """A pruner whose stored side arrives table by table while the fetch runs (read by another
    process: ``db/aside.py``). Until a resource's table has arrived it keeps every record of it,
    noting which, per thread (a listing's records are added by its own thread); each thread then
    takes back its own (``take``) and the fetch drops those now found unchanged, as the real
    pruner would have as their pages were read. ``settle`` blocks until every table has arrived
    (or makes them arrive), for the last ``take(everyone=True)``.

    At most ``limit`` records are kept so: beyond, a thread waits for its table (a child slower
    than the fetch, on a busy machine, made a re-pull keep nearly every record, as a first pull
    does, on top of the child's memory), unless the stored side will not come that way
    (``give_up``: the child failed) or ``stop`` is set (the fetch is cancelled)."""

    def __init__(self, settle: Callable[[], None], *, limit: int = EARLY_LIMIT, stop: Event | None = None) -> None:
        self._real: Pruner | None = None
        self._arrived: frozenset[str] = frozenset()  # the models whose stored side ``_real`` has
        self._settle = settle
        # thread id -> model -> records kept before their table arrived: by model, so that a thread
        # taking back what arrived (once a page) does not walk the records of tables still to come
        self._early: dict[int, dict[str, list]] = {}
        self._models = frozenset(r.model for r in PRUNED)
        self._limit, self._stop = limit, stop or Event()
        self._kept = 0  # records noted and not yet taken back
        self._changed = Condition()  # a table has come, records were taken back, or the wait is off
        self._unbounded = False

    def arrive(self, real: Pruner, models: Iterable[str]) -> None:
        """``real`` decides for ``models`` from now on (it replaces the one before it)."""
        with self._changed:
            self._real = real
            self._arrived = frozenset(models)  # after ``_real``: a thread that sees a model here finds its pruner
            self._changed.notify_all()

    def give_up(self) -> None:
        """The stored side will come only once the fetch has ended: keep records without a bound."""
        with self._changed:
            self._unbounded = True
            self._changed.notify_all()

    def sighted(self, model: str, oid: str, fingerprint: Callable[..., int | None], *args: Any) -> bool:
        """``Pruner.sighted`` once ``model``'s table has arrived; before, False (the record is made,
        and kept until then)."""
        return model in self._arrived and self._real.sighted(model, oid, fingerprint, *args)  # type: ignore[union-attr]

    def __call__(self, model: str, record: Any) -> bool:
        if model in self._arrived:
            return self._real(model, record)  # type: ignore[misc]
        if model in self._models:
            with self._changed:
                while self._kept >= self._limit and not self._unbounded and model not in self._arrived:
                    if self._stop.is_set():
                        break
                    self._changed.wait(0.2)  # in slices: a cancelled fetch must not wait here
                if model in self._arrived:
                    return self._real(model, record)  # type: ignore[misc]
                self._kept += 1
            mine = self._early.get(get_ident())
            if mine is None:
                mine = self._early[get_ident()] = {}
            kept = mine.get(model)
            if kept is None:
                kept = mine[model] = []
            kept.append(record)
        return False

    def take(self, everyone: bool = False) -> list[tuple[str, Any]]:
        """The records this thread kept early whose table has arrived since (every thread's with
        ``everyone``, once the threads that add have ended: it settles first)."""
        if everyone:
            self._settle()
            lists, self._early = list(self._early.values()), {}
            with self._changed:  # nothing more comes: a record added now (a retrieve) never waits
                self._kept, self._unbounded = 0, True
            return [(model, record) for mine in lists for model, kept in mine.items() for record in kept]
        mine = self._early.get(get_ident())
        if not mine:
            return []
        now = [(model, record) for model in self._arrived.intersection(mine) for record in mine.pop(model)]
        if now:
            with self._changed:
                self._kept -= len(now)
                self._changed.notify_all()
        return now
