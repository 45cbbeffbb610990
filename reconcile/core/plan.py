"""The plan: an ordered tuple of small typed operations that the report renders and apply executes.

Each action's value is the symbol the text report prints (as in Terraform's plan actions).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from .snapshot import CustomerRec, ItemRec


class Action(Enum):
    CREATE = "+"
    UPDATE = "~"
    RECREATE_ITEMS = "±"
    LINK_USER = "="
    CREATE_USER = "@"
    ORPHAN = "-"
    SKIP = "!"

    @property
    def key(self) -> str:
        return self.name.lower()


def show(value: Any) -> str:
    """A field value as the report prints it."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, tuple):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value) if not isinstance(value, dict) else _dict(value)


def _dict(value: dict) -> str:
    return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in sorted(value.items())) + "}"


@dataclass(frozen=True, slots=True)
class Change:
    field: str
    old: Any
    new: Any

    def describe(self) -> str:
        return f"{self.field}: {show(self.old)} -> {show(self.new)}"


@dataclass(frozen=True)
class Create:
    model: str
    id: str
    record: Any
    action = Action.CREATE

    def describe(self) -> str:
        label = getattr(self.record, "name", None) or getattr(self.record, "email", None)
        return f"create {self.model} {self.id}" + (f" ({label})" if label else "")


@dataclass(frozen=True)
class Update:
    model: str
    id: str
    record: Any
    changes: tuple[Change, ...]
    action = Action.UPDATE

    def describe(self) -> str:
        return f"update {self.model} {self.id}: {', '.join(c.field for c in self.changes)}"


@dataclass(frozen=True)
class RecreateItems:
    subscription_id: str
    old: tuple[ItemRec, ...]
    new: tuple[ItemRec, ...]
    action = Action.RECREATE_ITEMS
    model = "SubscriptionItem"

    @property
    def id(self) -> str:
        return self.subscription_id

    @property
    def changes(self) -> tuple[Change, ...]:
        return (Change("items", tuple(i.id for i in self.old), tuple(i.id for i in self.new)),)

    def describe(self) -> str:
        return f"recreate items of Subscription {self.subscription_id}: {len(self.old)} -> {len(self.new)}"


@dataclass(frozen=True)
class LinkUser:
    customer_id: str
    user_id: Any
    email: str
    action = Action.LINK_USER
    model = "StripeUser"

    @property
    def id(self) -> str:
        return self.customer_id

    @property
    def changes(self) -> tuple[Change, ...]:
        return (Change("user", None, self.user_id),)

    def describe(self) -> str:
        return f"link StripeUser {self.customer_id} to user {self.user_id} ({self.email})"


@dataclass(frozen=True)
class CreateUser:
    customer_id: str
    fields: tuple[tuple[str, Any], ...]
    also_link: tuple[str, ...] = ()  # other customers with the same email, linked to the same new user
    action = Action.CREATE_USER
    model = "User"

    @property
    def id(self) -> str:
        return self.customer_id

    @property
    def changes(self) -> tuple[Change, ...]:
        return tuple(Change(k, None, v) for k, v in self.fields)

    def describe(self) -> str:
        shown = ", ".join(f"{k}={show(v)}" for k, v in self.fields)
        also = f" and {', '.join(self.also_link)}" if self.also_link else ""
        return f"create user for StripeUser {self.customer_id}{also} ({shown})"


@dataclass(frozen=True)
class Orphan:
    model: str
    id: str
    action = Action.ORPHAN

    def describe(self) -> str:
        return f"orphan {self.model} {self.id}: stored here, absent from Stripe (kept)"


@dataclass(frozen=True)
class Skip:
    model: str
    id: str
    reason: str
    action = Action.SKIP

    def describe(self) -> str:
        return f"skip {self.model} {self.id}: {self.reason}"


Operation = Create | Update | RecreateItems | LinkUser | CreateUser | Orphan | Skip

# Actions that write when applied; orphans and skips are reported only.
WRITES = frozenset({Action.CREATE, Action.UPDATE, Action.RECREATE_ITEMS, Action.LINK_USER, Action.CREATE_USER})


@dataclass(frozen=True)
class Note:
    """Something a person should know that is not drift (an ambiguous email, a link kept)."""

    model: str
    id: str
    message: str

    def describe(self) -> str:
        return f"{self.model} {self.id}: {self.message}"


@dataclass(frozen=True)
class Plan:
    operations: tuple[Operation, ...] = ()
    notes: tuple[Note, ...] = ()
    next_cursor: dict[str, str] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)  # objects seen per side, for the report

    @property
    def in_sync(self) -> bool:
        """Applying would write nothing. Orphans and skips are reported, but no run can fix them."""
        return not self.writes

    @property
    def writes(self) -> tuple[Operation, ...]:
        return tuple(op for op in self.operations if op.action in WRITES)

    def summary(self) -> dict[str, int]:
        counts = Counter(op.action for op in self.operations)
        return {action.key: counts.get(action, 0) for action in Action}

    def __add__(self, other: Plan) -> Plan:
        return Plan(
            self.operations + other.operations,
            self.notes + other.notes,
            {**self.next_cursor, **other.next_cursor},
            {k: self.stats.get(k, 0) + other.stats.get(k, 0) for k in {*self.stats, *other.stats}},
        )


__all__ = [
    "Action",
    "Change",
    "Create",
    "CreateUser",
    "CustomerRec",
    "LinkUser",
    "Note",
    "Operation",
    "Orphan",
    "Plan",
    "RecreateItems",
    "Skip",
    "Update",
    "WRITES",
    "show",
]
