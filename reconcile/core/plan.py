"""The plan: an ordered tuple of small typed operations that the report renders and apply executes.

Every operation has ``model``, ``id``, ``action``, ``changes``, ``reason`` (skips only) and
``describe()``; ``to_json`` / ``from_json`` are its one codec (the plan file's form). Each action's
value is the symbol the text report prints (as in Terraform's plan actions).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

from .registry import BY_MODEL, ITEMS, RECORDS
from .snapshot import ItemRec
from .values import decode, encode, show


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
    record: Any  # None for a Feature
    action = Action.CREATE
    reason = None

    @property
    def changes(self) -> tuple[Change, ...]:
        """Every stored field, from nothing."""
        if self.record is None:
            return ()
        return tuple(
            Change(f.name, None, getattr(self.record, f.name)) for f in fields(self.record) if f.name not in _NOT_SHOWN
        )

    def describe(self) -> str:
        resource = BY_MODEL.get(self.model)
        labels = [getattr(self.record, name) for name in resource.label] if resource else []
        label = next((text for text in labels if text), None)
        return f"create {self.model} {self.id}" + (f" ({label})" if label else "")


_NOT_SHOWN = frozenset({"id", "user_id"})  # the id is the operation's; a user link is an operation of its own


@dataclass(frozen=True)
class Update:
    model: str
    id: str
    record: Any
    changes: tuple[Change, ...]
    action = Action.UPDATE
    reason = None

    def describe(self) -> str:
        return f"update {self.model} {self.id}: {', '.join(c.field for c in self.changes)}"


@dataclass(frozen=True)
class RecreateItems:
    subscription_id: str
    old: tuple[ItemRec, ...]
    new: tuple[ItemRec, ...]
    action = Action.RECREATE_ITEMS
    model = ITEMS.model
    reason = None

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
    reason = None

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
    reason = None

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
    changes = ()
    reason = None

    def describe(self) -> str:
        return f"orphan {self.model} {self.id}: stored here, absent from Stripe (kept)"


@dataclass(frozen=True)
class Skip:
    model: str
    id: str
    reason: str
    action = Action.SKIP
    changes = ()

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


# -- the codec: an operation as JSON and back (the plan file's form) ------------------------------
OPERATIONS = {cls.__name__: cls for cls in (Create, Update, RecreateItems, LinkUser, CreateUser, Orphan, Skip)}


def to_json(op: Operation | Note) -> dict[str, Any]:
    """Every field of the operation (records whole), with its type; datetimes tagged."""
    return {"type": type(op).__name__, **encode(op, tagged=True)}


def from_json(data: dict[str, Any]) -> Operation:
    cls = OPERATIONS[data["type"]]
    return cls(**{f.name: _decode_field(f.name, data[f.name], data) for f in fields(cls)})


def _decode_field(name: str, value: Any, data: dict[str, Any]) -> Any:
    if name == "record":
        return _record(data["model"], value)
    if name == "changes":
        return tuple(Change(c["field"], decode(c["old"]), decode(c["new"])) for c in value)
    if name in ("old", "new"):  # a subscription's items
        return tuple(ITEMS.record(**decode(i)) for i in value)
    return decode(value)


def _record(model: str, data: dict | None) -> Any:
    if data is None:
        return None
    values = decode(data)
    for child in BY_MODEL[model].children:  # child collections are tuples of their records
        values[child.name] = tuple(child.record(**i) for i in values[child.name])
    return RECORDS[model](**values)


__all__ = [
    "Action",
    "Change",
    "Create",
    "CreateUser",
    "LinkUser",
    "Note",
    "Operation",
    "Orphan",
    "Plan",
    "RecreateItems",
    "Skip",
    "Update",
    "WRITES",
    "from_json",
    "to_json",
]
