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
    """Times keyed by ``(model, id)``, held as one dict per model.

    A fetch stamps every object it keeps with its page's time (the lost-write guard compares it with
    the row's): a tuple key per object cost 72 bytes, 14 MiB at N=100,000, for two strings each
    record and model name already hold."""

    __slots__ = ("_tables",)

    def __init__(self, items: Mapping[tuple[str, str], datetime] | None = None) -> None:
        self._tables: dict[str, dict[str, datetime]] = {}
        if items:
            self.update(items)

    def __getitem__(self, key: tuple[str, str]) -> datetime:
        model, oid = key
        return self._tables[model][oid]

    def get(self, key: tuple[str, str], default=None):
        table = self._tables.get(key[0])
        return default if table is None else table.get(key[1], default)

    def __setitem__(self, key: tuple[str, str], at: datetime) -> None:
        model, oid = key
        table = self._tables.get(model)
        if table is None:  # setdefault: another listing's thread may make it at the same moment
            table = self._tables.setdefault(model, {})
        table[oid] = at

    def __delitem__(self, key: tuple[str, str]) -> None:
        model, oid = key
        del self._tables[model][oid]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and len(key) == 2 and key[1] in self._tables.get(key[0], ())

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for model, table in self._tables.items():
            for oid in table:
                yield model, oid

    def __len__(self) -> int:
        return sum(map(len, self._tables.values()))

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
    # Local side only: when each row was last written from Stripe data, keyed by (model, id).
    synced_at: Mapping[tuple[str, str], datetime] = field(default_factory=dict)
