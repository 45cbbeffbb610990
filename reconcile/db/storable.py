"""What the database can store: an object it cannot store is skipped with the reason, not the run.

Without this, one such object fails the apply's single transaction on every run:

- PostgreSQL refuses a NUL character in text and in JSON (SQLite and MariaDB store it);
- no database driver encodes a lone surrogate (``"\\ud800"`` in Stripe's JSON) as UTF-8;
- ``CharField(max_length=N)`` is ``varchar(N)`` on PostgreSQL and MySQL/MariaDB (SQLite stores any length);
- integer columns have ranges (Django's common ranges, the narrowest of the supported databases),
  decimal columns a number of digits;
- JSON columns (metadata, a price's tiers and currency options) hold text too: the same rules for
  every string in them, keys included;
- MySQL/MariaDB ``DATETIME`` holds the years 1000 to 9999;
- MySQL/MariaDB's default collations compare ids case-insensitively (and, for ``PAD SPACE``
  collations, ignoring trailing spaces): two Stripe ids that differ only so are one primary key there.

Every rule but the last applies on every database, so that a plan made on a developer's SQLite is the
plan production's PostgreSQL or MariaDB would make. The last applies on MySQL/MariaDB only.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.db import models
from django.db.backends.base.operations import BaseDatabaseOperations

from ..core.escape import escape
from ..core.registry import BY_RECORD, FEATURES, PRODUCTS, RESOURCES
from ..core.snapshot import Rejected, Snapshot

MIN_YEAR = 1000  # MySQL/MariaDB DATETIME
RANGES = BaseDatabaseOperations.integer_field_ranges
FEATURE_ID_LENGTH = 255  # Feature.id, and ProductFeature's reference to it


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _text_problem(what: str, value: str, max_length: int | None) -> str | None:
    found = _UNSTORABLE.search(value)
    if found and found.group() == "\x00":
        return f"{what} holds a NUL character, which PostgreSQL cannot store"
    if found:
        return f"{what} holds a lone surrogate ({escape(found.group())}), which no database can store as UTF-8"
    if max_length is not None and len(value) > max_length:
        return f"{what} is longer than {max_length} characters, the column's size"
    return None


def _value_problem(what: str, value: Any, field: models.Field | None) -> str | None:
    if isinstance(value, str):
        return _text_problem(what, value, getattr(field, "max_length", None))
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int) and field is not None:
        low, high = RANGES.get(field.get_internal_type(), (None, None))
        if low is not None and not low <= value <= high:
            return f"{what} {value} is out of the column's range ({low} to {high})"
    if isinstance(value, datetime) and value.year < MIN_YEAR:
        return f"{what} is before the year {MIN_YEAR}, which MySQL and MariaDB cannot store"
    if isinstance(value, Decimal) and isinstance(field, models.DecimalField):
        return _decimal_problem(what, value, field)
    if isinstance(value, dict):  # a JSON column (metadata, currency options) or a value inside one
        for key, item in value.items():
            found = _text_problem(f"{what} key {escape(repr(key))}", str(key), None) or _value_problem(
                f"{what} {escape(repr(key))}", item, None
            )
            if found:
                return found
    if isinstance(value, list | tuple):  # a JSON list (a price's tiers)
        for n, item in enumerate(value):
            found = _value_problem(f"{what} [{n}]", item, None)
            if found:
                return found
    return None


def _decimal_problem(what: str, value: Decimal, field: models.DecimalField) -> str | None:
    """``numeric(max_digits, decimal_places)`` on PostgreSQL and MySQL/MariaDB: more digits fail the run."""
    if not value.is_finite():
        return f"{what} {value} is not a finite number"
    digits, exponent = len(value.as_tuple().digits), value.as_tuple().exponent
    places = max(0, -exponent)
    whole = max(0, digits + exponent)
    if places > field.decimal_places or whole > field.max_digits - field.decimal_places:
        return (
            f"{what} {value} has more digits than the column holds "
            f"({field.max_digits - field.decimal_places} before the point, {field.decimal_places} after)"
        )
    return None


@functools.cache
def _fields_check(record_type: type) -> Callable[[Any], str | None]:
    """A record type's fields checked by one straight-line function (as the registry compiles its
    parsers): the common values (None, a bool, text within its length and without a NUL or a lone
    surrogate, a datetime from the year 1000, an integer within its column's range, an empty dict:
    most records' metadata) pass without a call; anything else goes to ``_value_problem``, which
    says why. A first pull checks every value of every record: 200,000 records and 166,000 items at
    N=100,000 (the empty metadata alone took a call each: 2.4 against 1.7 us a record)."""
    env: dict[str, Any] = {"search": _UNSTORABLE.search, "datetime": datetime, "slow": _value_problem}
    lines = ["def check(record):"]
    for i, (name, field, max_length, low, high) in enumerate(_checked_fields(record_type)):
        env[f"field_{i}"] = field
        text = f"len(v) <= {max_length} and " if max_length is not None else ""
        number = f" and {low} <= v <= {high}" if low is not None else ""
        common = (
            f"v is None or type(v) is bool or (type(v) is str and {text}not search(v)) "
            f"or (type(v) is datetime and v.year >= {MIN_YEAR}) or (type(v) is int{number}) "
            "or (type(v) is dict and not v)"
        )
        lines += [
            f"    v = record.{name}",
            f"    if not ({common}):",
            f"        found = slow({f'field {name!r}'!r}, v, field_{i})",
            "        if found:",
            "            return found",
        ]
    exec("\n".join([*lines, "    return None", ""]), env)  # noqa: S102
    return env["check"]


@functools.cache
def _checked_fields(record_type: type) -> tuple[tuple[str, models.Field, int | None, int | None, int | None], ...]:
    """The id and the registry's fields of a record type, each with the model field that stores it,
    its maximum length and its integer range (None where none applies), looked up once per type.
    A record's extras are local (a customer's user) or checked on their own (features, items)."""
    resource = BY_RECORD[record_type]
    model = apps.get_model("reconcile", resource.model)
    fields = (("id", model._meta.pk), *((f.name, model._meta.get_field(f.column)) for f in resource.fields))
    return tuple(
        (name, field, getattr(field, "max_length", None), *RANGES.get(field.get_internal_type(), (None, None)))
        for name, field in fields
    )


def problem(record: Any) -> str | None:
    """Why the database cannot store ``record`` (one of the snapshot records), or None."""
    found = _fields_check(type(record))(record)
    if found:
        return found
    for feature in getattr(record, "features", ()):
        found = _text_problem(f"feature id {escape(repr(feature))}", feature, FEATURE_ID_LENGTH)
        if found:
            return found
    for item in getattr(record, "items", ()):
        found = problem(item)
        if found:
            return f"item {escape(item.id)}: {found}"
    return None


def collation_key(oid: str) -> str:
    """An id as a case- and accent-insensitive, PAD SPACE collation compares it (near enough)."""
    decomposed = unicodedata.normalize("NFKD", oid.rstrip(" "))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _collisions(ids: Iterable[str], stored: Iterable[str]) -> dict[str, str]:
    """Remote ids that MySQL/MariaDB would take for another id: id -> the id it collides with."""
    owner = {collation_key(oid): oid for oid in sorted(stored)}
    found = {}
    for oid in sorted(ids):
        key = collation_key(oid)
        other = owner.setdefault(key, oid)
        if other != oid:
            found[oid] = other
    return found


def _item_collisions(subscriptions: Mapping[str, Any], refused: set[str], rejected: list) -> None:
    """Items are rows of their own: two items (of any subscriptions) whose ids collate alike cannot
    both be stored. The subscription holding the later id is skipped (added to ``refused``)."""
    owner = {item.id: sid for sid, sub in subscriptions.items() if sid not in refused for item in sub.items}
    for item_id, other in _collisions(owner, ()).items():
        sid = owner[item_id]
        if sid not in refused:
            refused.add(sid)
            reason = f"its item {escape(item_id)} is the item {escape(other)} to MySQL/MariaDB, whose collation "
            reason += "ignores case, accents and trailing spaces"
            rejected.append(Rejected("Subscription", sid, reason))


def stored_ids(local: Snapshot, known: Any) -> dict[str, set[str]]:
    """The ids stored now, per resource: the loaded ones and the known ones (``KnownIds``)."""
    return {r.name: set(getattr(local, r.name)) | set(getattr(known, r.name, ()) or ()) for r in RESOURCES}


def screen(
    remote: Snapshot, stored: Mapping[str, Iterable[str]], *, collation: bool = False, local: Snapshot | None = None
) -> Snapshot:
    """``remote`` without the records the database cannot store, each rejected with the reason.

    ``stored`` maps a resource to the ids the database holds now (for the collation rule, applied
    when ``collation`` is true: MySQL and MariaDB). A product naming a skipped feature is skipped
    too (its feature rows would refer to a feature that is not stored). A record equal to its row
    in ``local`` is stored already and is not checked again (a re-pull checks only what changed).
    """
    rejected = list(remote.rejected)
    # The ids refused, by resource; the records kept are copied only when some were: a first
    # pull's copies of its dicts of records held 9 MiB at N=100,000 and were thrown away.
    dropped: dict[str, set[str]] = {}
    unchanged: dict[str, frozenset[str]] = {}
    for resource in RESOURCES:  # features before products, which refer to them
        records: Mapping[str, Any] = getattr(remote, resource.name)
        clash = {}
        if collation:  # the only use of ``stored``: a re-pull of a large account need not copy it
            local_ids = set(stored.get(resource.name, ()))
            clash = _collisions(set(records) - local_ids, local_ids)
        rows: Mapping[str, Any] = getattr(local, resource.name) if local is not None else {}
        same = resource.same
        refused = dropped[resource.name] = set()
        early = remote.checked.get(resource.name)  # checked already, as the fetch read them
        skipped_features = dropped.get(FEATURES.name, set())
        equal = []
        for oid, rec in records.items():
            row = rows.get(oid)
            # stored as it is: no check, unless it is a product naming a feature now skipped (then
            # the checks below skip it with that reason)
            as_stored = row is not None and same(row, rec)
            if as_stored and resource is PRODUCTS:
                as_stored = not _skipped_feature(rec, skipped_features)
            if as_stored:
                equal.append(oid)
                continue
            reason = early.get(oid) if early is not None else problem(rec)
            if reason is None and oid in clash:
                reason = (
                    f"its id is the id {escape(clash[oid])} to MySQL/MariaDB, whose collation ignores case, "
                    "accents and trailing spaces"
                )
            if reason is None and resource is PRODUCTS:
                reason = _skipped_feature(rec, skipped_features)
            if reason is not None:
                refused.add(oid)
                rejected.append(Rejected(resource.model, oid, reason))
        unchanged[resource.name] = frozenset(equal)
    if collation:
        _item_collisions(remote.subscriptions, dropped["subscriptions"], rejected)
    if len(rejected) == len(remote.rejected):
        return dataclasses.replace(remote, unchanged=unchanged)
    kept = {
        name: {oid: rec for oid, rec in getattr(remote, name).items() if oid not in ids}
        for name, ids in dropped.items()
        if ids
    }
    rejected_sorted = tuple(sorted(set(rejected), key=lambda r: (r.model, r.id)))
    return dataclasses.replace(remote, **kept, rejected=rejected_sorted, unchanged=unchanged)


def _skipped_feature(product: Any, skipped: AbstractSet[str]) -> str | None:
    for fid in product.features:
        if fid in skipped:
            return f"its feature {escape(fid)} is skipped (it cannot be stored)"
    return None


def json_storable(value: Any) -> Any:
    """A JSON value every database's JSON column stores: NUL characters escaped (``\\x00``), which
    PostgreSQL's jsonb refuses. For the audit's copy of a report, whose skips may quote such ids.
    ``value`` itself when it holds no NUL: a first pull's audit report (1,000 operations with every
    field) is several MiB, and a copy of it was the run's highest point of memory."""
    return _escaped(value) if _holds_nul(value) else value


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(map(_holds_nul, value))
    return False


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\\x00")
    if isinstance(value, dict):
        return {_escaped(k): _escaped(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_escaped(v) for v in value]
    return value
