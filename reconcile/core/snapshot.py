"""Snapshots: plain immutable records keyed by Stripe id, one shape for Stripe and for the database.

Each record holds exactly the fields its model stores, normalised the same way on both sides:
timestamps as aware UTC datetimes, money as integers in minor units, metadata as dicts. The
record types are made from the registry's declarations (``registry.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime

from . import registry

# The record types, one per registry entry (frozen, keyword-only dataclasses).
FeatureRec = registry.FEATURES.record
ProductRec = registry.PRODUCTS.record
PriceRec = registry.PRICES.record
CustomerRec = registry.CUSTOMERS.record
ItemRec = registry.ITEMS.record
SubscriptionRec = registry.SUBSCRIPTIONS.record

SOFT_DELETED = registry.SOFT_DELETED


@dataclass(frozen=True)
class KnownIds:
    """Ids stored locally, so that phase 2 fetches only what neither side has."""

    products: frozenset[str] = frozenset()
    prices: frozenset[str] = frozenset()
    customers: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Rejected:
    """A Stripe object that could not be read, with the reason (it becomes a skip operation)."""

    model: str
    id: str
    reason: str


class Stamps(MutableMapping):
    """Times keyed by ``(model, id)``: when the page holding each object was requested.

    A fetch keeps each record's time on the record (its ``fetched_at``, which no comparison looks
    at), and this mapping reads it through the fetch's dicts of records (``records``, by model): a
    table of its own, an entry per object beside the records' dicts, cost 7 MiB at N=100,000 (and a
    tuple key per object before that, 14 MiB more). Times set by key (the listing's start for a row
    found absent, a plan file's) go into one dict per model and win over a record's."""

    __slots__ = ("_tables", "_records")

    def __init__(
        self,
        items: Mapping[tuple[str, str], datetime] | None = None,
        records: Mapping[str, Mapping[str, object]] | None = None,
    ) -> None:
        self._tables: dict[str, dict[str, datetime]] = {}
        self._records = dict(records or {})
        if items:
            self.update(items)

    def get(self, key: tuple[str, str], default=None):
        model, oid = key
        table = self._tables.get(model)
        at = table.get(oid) if table is not None else None
        if at is None:
            records = self._records.get(model)
            record = records.get(oid) if records is not None else None
            at = getattr(record, "fetched_at", None)
        return default if at is None else at

    def __getitem__(self, key: tuple[str, str]) -> datetime:
        at = self.get(key)
        if at is None:
            raise KeyError(key)
        return at

    def __setitem__(self, key: tuple[str, str], at: datetime) -> None:
        model, oid = key
        table = self._tables.get(model)
        if table is None:
            table = self._tables.setdefault(model, {})
        table[oid] = at

    def __delitem__(self, key: tuple[str, str]) -> None:
        """Only a time set by key (a record's own is the record's)."""
        model, oid = key
        del self._tables[model][oid]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and len(key) == 2 and self.get(key) is not None

    @property
    def set_by_key(self) -> bool:
        """Whether any time was set by key (a fetch's own stamps are all its records')."""
        return any(self._tables.values())

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for model, table in self._tables.items():
            for oid in table:
                yield model, oid
        for model, records in self._records.items():
            table = self._tables.get(model, {})
            for oid, record in records.items():
                if oid not in table and getattr(record, "fetched_at", None) is not None:
                    yield model, oid

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"Stamps({dict(self)!r})"


@dataclass(frozen=True)
class Snapshot:
    """Records keyed by id. ``complete`` names the resources whose listing was whole, so that
    local rows absent from it are orphans; a windowed run (--limit/--starting_after) is not whole."""

    products: Mapping[str, ProductRec] = field(default_factory=dict)
    prices: Mapping[str, PriceRec] = field(default_factory=dict)
    customers: Mapping[str, CustomerRec] = field(default_factory=dict)
    subscriptions: Mapping[str, SubscriptionRec] = field(default_factory=dict)
    features: Mapping[str, FeatureRec] = field(default_factory=dict)  # by id: Entitlements' or metadata's
    complete: frozenset[str] = frozenset()
    rejected: tuple[Rejected, ...] = ()
    # Remote side only: when the page holding each object was requested, keyed by (model, id),
    # for the lost-write guard.
    fetched_at: Mapping[tuple[str, str], datetime] = field(default_factory=dict)
    # Remote side only: when the listings began (rows absent from a whole listing and written
    # after this are kept, not marked deleted).
    listed_at: datetime | None = None
    # Remote side only: customers known to be deleted in Stripe.
    deleted_customers: frozenset[str] = frozenset()
    # Remote side only, windowed runs: the cursor to pass as --starting_after for the next window.
    next_cursor: Mapping[str, str] = field(default_factory=dict)
    # Remote side only: ids (by resource name) whose record equals its stored row, found so by the
    # storability screen; the diff does not compare them again.
    unchanged: Mapping[str, AbstractSet[str]] = field(default_factory=dict)
    # Remote side only: for the resources (by name) whose every record was checked as it was
    # fetched, why each record that cannot be stored cannot; the screen reads it instead.
    checked: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Local side only: when each row was last written from Stripe data, keyed by (model, id).
    synced_at: Mapping[tuple[str, str], datetime] = field(default_factory=dict)
