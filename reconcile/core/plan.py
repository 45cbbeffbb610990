"""The plan: an ordered sequence of small typed operations that the report renders and apply
executes (a tuple, or ``Operations``, which reads like one and holds a diff's creates as records).

Every operation has ``model``, ``id``, ``action``, ``changes``, ``reason`` (skips only) and
``describe()``; ``to_json`` / ``from_json`` are its one codec (the plan file's form). Each action's
value is the symbol the text report prints (as in Terraform's plan actions).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from enum import Enum
from functools import cached_property
from typing import Any

from .registry import BY_MODEL, BY_RECORD, ITEMS, RECORDS
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
class Change:  # one field's value here (old) and in Stripe (new)
    field: str
    old: Any
    new: Any


class _Operation:
    """The protocol's defaults: an operation changes no field and has no reason unless it says so.

    Operations keep their fields in slots, not a dict each: a first pull of N=100,000 plans 200,000
    of them, and a dict per operation was a third of the plan's memory."""

    __slots__ = ()
    changes: tuple[Change, ...] = ()
    reason: str | None = None
    template = ""  # what describe() says, formatted with the operation as ``op``

    def describe(self) -> str:
        return self.template.format(op=self)


@dataclass(frozen=True, slots=True)
class _OnRow(_Operation):
    """An operation on one row of ``model``, by its Stripe id."""

    model: str
    id: str


class Create(_Operation):
    """A new row: the record, whose own ``id`` and type (``BY_RECORD``) give the operation's.

    One slot, not three as the other row operations have: a first pull of N=100,000 plans 200,000
    creates, and the model and id kept beside the record that already has them were 3 MiB of the
    run's peak (a tenth of what the plan holds). Immutable, compared and hashed by its record, as
    a frozen dataclass would be."""

    __slots__ = ("record",)
    action = Action.CREATE
    FIELDS = ("model", "id", "record")  # the codec's, in the plan file: as when it was a dataclass

    def __init__(self, model: str, id: str, record: Any) -> None:
        resource = BY_RECORD.get(type(record))
        found = getattr(record, "id", None)  # a plan file of an older version may hold no record
        if resource is None or resource.model != model or found != id:
            raise ValueError(f"Create({model!r}, {id!r}) with a record of {type(record).__name__} {found!r}")
        object.__setattr__(self, "record", record)

    @classmethod
    def of(cls, record: Any) -> Create:
        """The create of ``record`` (a record of the registry's), without ``__init__``'s check: its
        model and id are the record's own."""
        create = object.__new__(cls)
        object.__setattr__(create, "record", record)
        return create

    @property
    def model(self) -> str:
        return BY_RECORD[type(self.record)].model

    @property
    def id(self) -> str:
        return self.record.id

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    __delattr__ = __setattr__

    def __eq__(self, other: object) -> bool:
        return other.record == self.record if type(other) is Create else NotImplemented

    def __hash__(self) -> int:
        return hash((Create, self.record))

    def __repr__(self) -> str:
        return f"Create(model={self.model!r}, id={self.id!r}, record={self.record!r})"

    def __reduce__(self):
        return (Create, (self.model, self.id, self.record))

    @property
    def changes(self) -> tuple[Change, ...]:
        """Every stored field, from nothing."""
        return tuple(
            Change(f.name, None, getattr(self.record, f.name))
            for f in fields(self.record)
            if f.compare and f.name not in _NOT_SHOWN
        )

    def describe(self) -> str:
        resource = BY_MODEL[self.model]
        labels = [getattr(self.record, name) for name in resource.label]
        label = next((text for text in labels if text), None)
        return f"create {self.model} {self.id}" + (f" ({label})" if label else "")


_NOT_SHOWN = frozenset({"id", "user_id"})  # the id is the operation's; a user link is an operation of its own


@dataclass(frozen=True, slots=True)
class Update(_OnRow):
    record: Any
    changes: tuple[Change, ...]
    action = Action.UPDATE

    def describe(self) -> str:
        return f"update {self.model} {self.id}: {', '.join(c.field for c in self.changes)}"


@dataclass(frozen=True, slots=True)
class RecreateItems(_Operation):
    subscription_id: str
    old: tuple[ItemRec, ...]
    new: tuple[ItemRec, ...]
    action = Action.RECREATE_ITEMS
    model = ITEMS.model

    @property
    def id(self) -> str:
        return self.subscription_id

    @property
    def changes(self) -> tuple[Change, ...]:
        return (Change("items", tuple(i.id for i in self.old), tuple(i.id for i in self.new)),)

    def describe(self) -> str:
        return f"recreate items of Subscription {self.subscription_id}: {len(self.old)} -> {len(self.new)}"


@dataclass(frozen=True, slots=True)
class _ForCustomer(_Operation):
    """An operation on behalf of one customer: the customer is its id."""

    customer_id: str

    @property
    def id(self) -> str:
        return self.customer_id


@dataclass(frozen=True, slots=True)
class LinkUser(_ForCustomer):
    user_id: Any
    email: str
    action = Action.LINK_USER
    model = "StripeUser"
    template = "link StripeUser {op.customer_id} to user {op.user_id} ({op.email})"

    @property
    def changes(self) -> tuple[Change, ...]:
        return (Change("user", None, self.user_id),)



@dataclass(frozen=True, slots=True)
class CreateUser(_ForCustomer):
    fields: tuple[tuple[str, Any], ...]
    also_link: tuple[str, ...] = ()  # other customers with the same email, linked to the same new user
    action = Action.CREATE_USER
    model = "User"

    @property
    def changes(self) -> tuple[Change, ...]:
        return tuple(Change(k, None, v) for k, v in self.fields)

    def describe(self) -> str:
        shown = ", ".join(f"{k}={show(v)}" for k, v in self.fields)
        also = f" and {', '.join(self.also_link)}" if self.also_link else ""
        return f"create user for StripeUser {self.customer_id}{also} ({shown})"


@dataclass(frozen=True, slots=True)
class Orphan(_OnRow):
    action = Action.ORPHAN
    template = "orphan {op.model} {op.id}: stored here, absent from Stripe (kept)"


@dataclass(frozen=True, slots=True)
class Skip(_OnRow):
    reason: str
    action = Action.SKIP
    template = "skip {op.model} {op.id}: {op.reason}"


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


def is_record(entry: Any) -> bool:
    """Whether an entry of ``Operations`` is a record alone, standing for its create."""
    return not isinstance(entry, _Operation)


def as_operation(entry: Any) -> Operation:
    """An entry of ``Operations`` as the operation it stands for: a record alone is its create."""
    return Create.of(entry) if is_record(entry) else entry


class Operations(Sequence):
    """A plan's operations, in order, read like a tuple of them, where a create is held as its
    record alone and its ``Create`` made each time it is read.

    A first pull plans a create for each of its 200,000 objects, and the diff made them beside the
    fetch's dicts of records: their 9 MiB were the run's highest point of memory at N=100,000.
    Held as records, the creates cost the list's pointer each until the apply groups them, when
    the fetch's dicts are gone. Immutable (``entries`` is not changed after it is given); equal to
    the tuple of the same operations, and pickled as that tuple."""

    __slots__ = ("entries",)

    def __init__(self, entries: Sequence[Any]) -> None:
        self.entries = entries

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return tuple(map(as_operation, self.entries[index]))
        return as_operation(self.entries[index])

    def __iter__(self) -> Iterator[Operation]:
        return map(as_operation, self.entries)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Operations | tuple):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __add__(self, other: tuple) -> tuple:
        return (*self, *other)

    def __radd__(self, other: tuple) -> tuple:
        return (*other, *self)

    def __repr__(self) -> str:
        return repr(tuple(self))

    def __reduce__(self):
        return (tuple, (tuple(self),))


@dataclass(frozen=True)
class Plan:
    operations: tuple[Operation, ...] | Operations = ()
    notes: tuple[Note, ...] = ()
    next_cursor: dict[str, str] = field(default_factory=dict)

    @property
    def in_sync(self) -> bool:
        """Applying would write nothing. Orphans and skips are reported, but no run can fix them."""
        return not self.writes

    @cached_property  # asked for by the runner, the apply and the stamps: 200,000 operations each time
    def writes(self) -> Sequence[Operation]:
        ops = self.operations
        if isinstance(ops, Operations):  # a record alone is a create: it writes
            entries = [e for e in ops.entries if is_record(e) or e.action in WRITES]
            return ops if len(entries) == len(ops) else Operations(entries)
        writes = tuple(op for op in ops if op.action in WRITES)
        # the plan's own tuple when every operation writes (a first pull's): not a second copy of it
        return ops if len(writes) == len(ops) else writes

    def summary(self) -> dict[str, int]:
        return dict(self._summary)

    @cached_property  # the report's closing line and the audit row each ask: counted once
    def _summary(self) -> dict[str, int]:
        ops = self.operations
        entries = ops.entries if isinstance(ops, Operations) else ops
        # a record alone is a create (``Operations``): counted as one without making it, nor a
        # call per entry (a first pull's 200,000)
        actions = [e.action for e in entries if isinstance(e, _Operation)]
        counts = Counter(actions)
        counts[Action.CREATE] += len(entries) - len(actions)
        return {action.key: counts.get(action, 0) for action in Action}


# -- the codec: an operation as JSON and back (the plan file's form) ------------------------------
OPERATIONS = {cls.__name__: cls for cls in (Create, Update, RecreateItems, LinkUser, CreateUser, Orphan, Skip)}


def to_json(op: Operation | Note) -> dict[str, Any]:
    """Every field of the operation (records whole), with its type; datetimes tagged."""
    return {"type": type(op).__name__, **{name: encode(getattr(op, name), tagged=True) for name in _names(type(op))}}


def from_json(data: dict[str, Any]) -> Operation:
    cls = OPERATIONS[data["type"]]
    return cls(**{name: _decode_field(name, data[name], data) for name in _names(cls)})


def _names(cls: type) -> tuple[str, ...]:
    """An operation's fields, as the codec writes and reads them."""
    return getattr(cls, "FIELDS", None) or tuple(f.name for f in fields(cls) if f.compare)


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
