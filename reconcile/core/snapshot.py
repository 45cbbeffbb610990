"""Snapshots: plain immutable records keyed by Stripe id, one shape for Stripe and for the database.

Each record holds exactly the fields its model stores, normalised the same way on both sides:
timestamps as aware UTC datetimes, money as integers in minor units, metadata as dicts.
``FIELDS`` names, per record type, the fields a diff compares (and an update writes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ProductRec:
    id: str
    name: str
    description: str | None
    active: bool
    metadata: dict
    features: tuple[str, ...] = ()  # feature ids, sorted, from the features metadata key


@dataclass(frozen=True, slots=True)
class PriceRec:
    id: str
    product_id: str
    amount: int | None
    currency: str
    frequency: str | None
    active: bool
    nickname: str | None


@dataclass(frozen=True, slots=True)
class CustomerRec:
    id: str
    email: str | None
    name: str | None
    user_id: Any = None  # local side only: the linked Django user's primary key


@dataclass(frozen=True, slots=True)
class ItemRec:
    id: str
    price_id: str
    quantity: int | None
    current_period_start: datetime | None
    current_period_end: datetime | None


@dataclass(frozen=True, slots=True)
class SubscriptionRec:
    id: str
    customer_id: str
    status: str
    current_period_start: datetime | None
    current_period_end: datetime | None
    cancel_at: datetime | None
    cancel_at_period_end: bool
    canceled_at: datetime | None
    ended_at: datetime | None
    trial_start: datetime | None
    trial_end: datetime | None
    created: datetime | None
    metadata: dict
    items: tuple[ItemRec, ...] = ()  # sorted by id


FIELDS: dict[type, tuple[str, ...]] = {
    ProductRec: ("name", "description", "active", "metadata"),
    PriceRec: ("product_id", "amount", "currency", "frequency", "active", "nickname"),
    CustomerRec: ("email", "name"),
    SubscriptionRec: (
        "customer_id",
        "status",
        "current_period_start",
        "current_period_end",
        "cancel_at",
        "cancel_at_period_end",
        "canceled_at",
        "ended_at",
        "trial_start",
        "trial_end",
        "created",
        "metadata",
    ),
}

# Where a record's field is stored, where the model's column has another name.
RENAMED: dict[str, str] = {"customer_id": "stripe_user_id"}


def columns(record_type: type) -> tuple[str, ...]:
    """The model columns holding ``FIELDS[record_type]``, in the same order."""
    return tuple(RENAMED.get(name, name) for name in FIELDS[record_type])


def column_values(record: Any) -> dict[str, Any]:
    """A record's compared fields as model column values."""
    return {RENAMED.get(name, name): getattr(record, name) for name in FIELDS[type(record)]}


# Model label of each record type (the report and the JSON schema use these names).
MODEL_OF: dict[type, str] = {
    ProductRec: "Product",
    PriceRec: "Price",
    CustomerRec: "StripeUser",
    SubscriptionRec: "Subscription",
}

RESOURCES = ("products", "prices", "customers", "subscriptions")
RESOURCE_MODEL = {"products": "Product", "prices": "Price", "customers": "StripeUser", "subscriptions": "Subscription"}


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


@dataclass(frozen=True)
class Snapshot:
    """Records keyed by id. ``complete`` names the resources whose listing was whole, so that
    local rows absent from it are orphans; a windowed run (--limit/--starting_after) is not whole."""

    products: Mapping[str, ProductRec] = field(default_factory=dict)
    prices: Mapping[str, PriceRec] = field(default_factory=dict)
    customers: Mapping[str, CustomerRec] = field(default_factory=dict)
    subscriptions: Mapping[str, SubscriptionRec] = field(default_factory=dict)
    features: frozenset[str] = frozenset()
    complete: frozenset[str] = frozenset()
    rejected: tuple[Rejected, ...] = ()
    # Remote side only: when the page holding each object was requested, keyed by (model, id),
    # for the lost-write guard.
    fetched_at: Mapping[tuple[str, str], datetime] = field(default_factory=dict)
    # Remote side only: customers known to be deleted in Stripe.
    deleted_customers: frozenset[str] = frozenset()
    # Remote side only, windowed runs: the cursor to pass as --starting_after for the next window.
    next_cursor: Mapping[str, str] = field(default_factory=dict)
    # Local side only: when each row was last written from Stripe data, keyed by (model, id).
    synced_at: Mapping[tuple[str, str], datetime] = field(default_factory=dict)

    def count(self) -> int:
        return len(self.products) + len(self.prices) + len(self.customers) + len(self.subscriptions)
