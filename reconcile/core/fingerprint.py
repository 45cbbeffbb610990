"""A row's fingerprint: one integer standing for every compared value of a record (pure).

A re-pull compares each Stripe record with its stored row as its page is read, and drops it when
they are equal (``prune.py``). Holding every stored row as a record for that comparison was most of
a no-op's peak memory: about 1.1 KiB per subscription with its items at N=100,000. A fingerprint
is an int per row, made from the row's values as the database returns them, so a row edited in
the database still differs from Stripe's record.

A fingerprint is Python's ``hash`` of the values that ``Resource.same`` compares (the id, the
fields, and the compared child records: their count and the sum of their fingerprints), with
dicts and lists turned into hashable tuples that are equal exactly when they are: equal values
give equal fingerprints, as ``==`` decides (1 and 1.0, two datetimes of the same instant in
different zones). Different values give the same fingerprint with a probability of about 2**-64
per row, except where CPython's hash is not one-to-one: ``hash(-1) == hash(-2)``, and integers
equal modulo 2**61 - 1. The integers compared here are amounts, quantities and counts, which
Stripe never sends negative or that large. A fingerprint is only compared within one process
(string hashes are salted per process).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from .parse import subscription_key
from .registry import BY_NAME, CUSTOMERS, ITEMS, PRICES, SUBSCRIPTIONS, Resource

# The resources a re-pull may drop (products never: their Entitlements features arrive later).
PRUNED: tuple[Resource, ...] = (PRICES, CUSTOMERS, SUBSCRIPTIONS)

_JSON = (dict, list)
_DICT, _LIST = "\0dict", "\0list"  # tags: a dict and a list never equal each other or a tuple
_EMPTY_DICT, _EMPTY_LIST = (_DICT, ()), (_LIST, ())


def canonical(value: Any) -> Any:
    """``value`` with every dict and list (at any depth) made a tagged tuple; equal values give equal
    results. Raises TypeError for what has no such form (a dict whose keys do not sort)."""
    kind = type(value)
    if kind is dict:
        if not value:  # most records' metadata: no sort, no generator
            return _EMPTY_DICT
        return (_DICT, tuple(sorted((k, canonical(v)) for k, v in value.items())))
    if kind is list:
        return (_LIST, tuple(map(canonical, value))) if value else _EMPTY_LIST
    if kind is tuple:
        return tuple(map(canonical, value))
    return value


def _slow(key: tuple) -> int | None:
    """Every value of ``key`` made canonical, at any depth; None when one has no canonical form
    (such a row is never found equal, and is compared field by field)."""
    try:
        return hash(canonical(key))
    except TypeError:
        return None


def key_fingerprint(resource: Resource) -> Callable[[tuple], int | None]:
    """From a key (the id, the fields' values, then a compared child collection as ``children``
    sums it up), its fingerprint: what a stored row gives (``load_fingerprints``) and what
    ``record_fingerprint`` makes of a record. Compiled as one expression (as the registry's record
    makers): a no-op pull of N=100,000 makes 700,000 of them. Only the fields whose readers say
    they hold JSON (``json=True``: metadata, tiers, ...) are looked at for a dict or a list (a
    check on every value was three quarters of the time: 4.3 against 1.2 us a subscription); a
    dict or list anywhere else makes ``hash`` raise TypeError and the key takes the slower way,
    which gives the same fingerprint (every value made canonical, scalars as they are)."""
    width = 1 + len(resource.fields) + len(resource.compared_extras)
    json = {1 + i for i, f in enumerate(resource.fields) if getattr(f.read, "about", {}).get("json")}
    values = ", ".join(
        f"(v{i} if type(v{i}) not in JSON else canonical(v{i}))" if i in json else f"v{i}" for i in range(width)
    )
    names = ", ".join(f"v{i}" for i in range(width))
    env = {"JSON": _JSON, "canonical": canonical, "slow": _slow}
    source = (
        f"def fingerprint(key):\n    {names}, = key\n    try:\n        return hash(({values},))\n"
        "    except TypeError:\n        return slow(key)\n"
    )
    exec(source, env)  # noqa: S102
    return env["fingerprint"]


def record_fingerprint(resource: Resource) -> Callable[[Any], int | None]:
    """A record's fingerprint: its id, fields and compared extras, as ``Resource.same`` sees them; a
    compared child collection (a subscription's items) as ``children(...)`` of its records'
    fingerprints."""
    key, of = resource._key, key_fingerprint(resource)
    kids = [c for c in resource.children if c.name in resource.compared_extras]
    if not kids:
        return lambda record: of(key(record))
    if resource.compared_extras != tuple(c.name for c in kids) or len(kids) != 1:
        raise ValueError(f"{resource.name}: its one compared extra must be its child collection")
    own = attrgetter("id", *resource.names)
    collection, summed = attrgetter(kids[0].name), _summer(kids[0])

    def fingerprint(record):
        total = summed(collection(record))
        return None if total is None else of((*own(record), total))

    return fingerprint


def _summer(child: Resource) -> Callable[[Iterable[Any]], int | None]:
    """A child collection's records summed up as ``children`` does it, written out: this runs once
    per subscription of a re-pull."""
    child_key, child_of = child._key, key_fingerprint(child)

    def summed(records: Iterable[Any]) -> int | None:
        total = NO_CHILDREN
        for child in records:
            found = child_of(child_key(child))
            if found is None:
                return None
            total = (total & ~MASK) + ONE | (total + found) & MASK
        return total

    return summed


def object_fingerprint(resource: Resource) -> Callable[..., int | None]:
    """The fingerprint of the record that parsing a Stripe object makes, made without that record:
    a re-pull compares most objects only to drop them (``prune.Pruner.sighted``), and making a
    subscription's record with its 19 slots, then reading them back, was a third of its parsing.
    ``fingerprint(obj)``, or for subscriptions ``fingerprint(obj, items)`` (its complete item
    list); each raises ``BadObject`` where parsing would, with the same reason."""
    of = key_fingerprint(resource)
    if resource is SUBSCRIPTIONS:
        summed = _summer(ITEMS)

        def subscription(obj: dict, items: Iterable[dict]) -> int | None:
            key, recs = subscription_key(obj, items)
            total = summed(recs)
            return None if total is None else of((*key, total))

        return subscription
    if resource.compared_extras:
        raise ValueError(f"{resource.name}: no object fingerprint for a resource with compared extras")
    key_of = resource.key_of
    return lambda obj: of(key_of(obj))


# A child collection summed up is one int: its size times 2**64 plus the sum of its records'
# fingerprints modulo 2**64 (a load holds one per subscription while it reads the items: an int
# of 36 bytes where a tuple of two took 120).
MASK = (1 << 64) - 1
ONE = 1 << 64  # one more record in the size
NO_CHILDREN = 0  # what ``children`` makes of an empty collection


def add_child(summed: int | None, fingerprint: int | None) -> int | None:
    """``summed`` (a collection's size and fingerprint sum so far) with one more record's
    fingerprint: a load adds each item as its row passes, without holding the rows."""
    if summed is None or fingerprint is None:
        return None
    return (summed & ~MASK) + ONE | (summed + fingerprint) & MASK


def children(fingerprints: Iterable[int | None]) -> int | None:
    """A child collection (a subscription's items, each id once) as one int: its size times 2**64
    plus the sum of its records' fingerprints modulo 2**64, the same for the same records in any
    order. None if one has no fingerprint."""
    summed: int | None = NO_CHILDREN
    for fingerprint in fingerprints:
        summed = add_child(summed, fingerprint)
        if summed is None:
            return None
    return summed


@dataclass(frozen=True)
class Fingerprints:
    """The stored side of a re-pull, as small as the prune allows: every stored id per resource,
    with the fingerprint of the pruned resources' rows (``None`` for the others), and the
    customers linked to no user."""

    products: Mapping[str, int | None] = field(default_factory=dict)
    prices: Mapping[str, int | None] = field(default_factory=dict)
    customers: Mapping[str, int | None] = field(default_factory=dict)
    subscriptions: Mapping[str, int | None] = field(default_factory=dict)
    features: Mapping[str, int | None] = field(default_factory=dict)
    unlinked: frozenset[str] = frozenset()

    @classmethod
    def of(cls, snapshot: Any) -> Fingerprints:
        """From a snapshot's records (what ``load_fingerprints`` reads from the rows)."""
        tables: dict[str, dict] = {}
        for name in ("products", "prices", "customers", "subscriptions", "features"):
            records = getattr(snapshot, name)
            resource = BY_NAME[name]
            if resource in PRUNED:
                fingerprint = record_fingerprint(resource)
                tables[name] = {oid: fingerprint(rec) for oid, rec in records.items()}
            else:
                tables[name] = dict.fromkeys(records)
        unlinked = frozenset(oid for oid, rec in snapshot.customers.items() if rec.user_id is None)
        return cls(**tables, unlinked=unlinked)


# A part of the stored side as it is read (``db.local.fingerprint_tables``): a resource's name,
# some of its rows' fingerprints, the customers among them linked to no user (or None), and
# whether it is that table's last part.
Part = tuple[str, dict, "frozenset[str] | None", bool]


class Gathered:
    """The stored side gathered part by part (``Part``), as a reader sends it."""

    def __init__(self) -> None:
        self.tables: dict[str, dict] = {}
        self.unlinked: set[str] = set()
        self.whole: set[str] = set()  # the resources whose last part has come

    def add(self, part: Part) -> bool:
        """Add one part; True when it completes its table."""
        name, rows, unlinked, last = part
        table = self.tables.get(name)
        if table is None:
            self.tables[name] = rows  # the part's own dict: no copy of the first
        else:
            table.update(rows)
        if unlinked:
            self.unlinked.update(unlinked)
        if last:
            self.whole.add(name)
        return last

    def fingerprints(self) -> Fingerprints:
        """What has come so far (a table not yet whole is left out)."""
        tables = {name: table for name, table in self.tables.items() if name in self.whole}
        return Fingerprints(**tables, unlinked=frozenset(self.unlinked))

    @classmethod
    def of(cls, parts: Iterable[Part]) -> Fingerprints:
        gathered = cls()
        for part in parts:
            gathered.add(part)
        return gathered.fingerprints()
