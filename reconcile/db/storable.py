"""What the database can store: an object it cannot store is skipped with the reason, not the run.

Without this, one such object fails the apply's single transaction on every run:

- PostgreSQL refuses a NUL character in text and in JSON (SQLite and MariaDB store it);
- no database driver encodes a lone surrogate (``"\\ud800"`` in Stripe's JSON) as UTF-8;
- ``CharField(max_length=N)`` is ``varchar(N)`` on PostgreSQL and MySQL/MariaDB (SQLite stores any length);
- integer columns have ranges (Django's common ranges, the narrowest of the supported databases);
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
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.backends.base.operations import BaseDatabaseOperations

from ..core.escape import escape
from ..core.snapshot import RENAMED, CustomerRec, ItemRec, PriceRec, ProductRec, Rejected, Snapshot, SubscriptionRec
from ..models import Price, Product, StripeUser, Subscription, SubscriptionItem

MIN_YEAR = 1000  # MySQL/MariaDB DATETIME
RANGES = BaseDatabaseOperations.integer_field_ranges
MODELS: dict[type, type[models.Model]] = {
    ProductRec: Product,
    PriceRec: Price,
    CustomerRec: StripeUser,
    SubscriptionRec: Subscription,
    ItemRec: SubscriptionItem,
}
RESOURCES = {"products": "Product", "prices": "Price", "customers": "StripeUser", "subscriptions": "Subscription"}
SKIPPED_FIELDS = frozenset({"user_id", "items", "features"})  # local-only, or checked on their own


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


def _field(model: type[models.Model], name: str) -> models.Field | None:
    if name == "id":
        return model._meta.pk
    try:
        return model._meta.get_field(RENAMED.get(name, name))
    except FieldDoesNotExist:
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
    if isinstance(value, dict):
        for key, item in value.items():
            found = _text_problem(f"{what} key {escape(repr(key))}", str(key), None) or _value_problem(
                f"{what} {escape(repr(key))}", item, None
            )
            if found:
                return found
    return None


@functools.cache
def _checked_fields(record_type: type) -> tuple[tuple[str, models.Field | None], ...]:
    model = MODELS[record_type]
    names = [f.name for f in dataclasses.fields(record_type) if f.name not in SKIPPED_FIELDS]
    return tuple((name, _field(model, name)) for name in names)


def problem(record: Any) -> str | None:
    """Why the database cannot store ``record`` (one of the snapshot records), or None."""
    for name, field in _checked_fields(type(record)):
        value = getattr(record, name)
        if value is None or value is True or value is False:
            continue
        if type(value) is str:  # the common case, checked without building a message
            max_length = getattr(field, "max_length", None)
            if not _UNSTORABLE.search(value) and (max_length is None or len(value) <= max_length):
                continue
        found = _value_problem(f"field {name!r}", value, field)
        if found:
            return found
    for feature in getattr(record, "features", ()):
        found = _text_problem(f"feature id {escape(repr(feature))}", feature, 255)
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


def _item_collisions(subscriptions: dict, rejected: list) -> None:
    """Items are rows of their own: two items (of any subscriptions) whose ids collate alike cannot
    both be stored. The subscription holding the later id is skipped."""
    owner = {item.id: sid for sid, sub in subscriptions.items() for item in sub.items}
    for item_id, other in _collisions(owner, ()).items():
        sid = owner[item_id]
        if subscriptions.pop(sid, None) is not None:
            reason = f"its item {escape(item_id)} is the item {escape(other)} to MySQL/MariaDB, whose collation "
            reason += "ignores case, accents and trailing spaces"
            rejected.append(Rejected("Subscription", sid, reason))


def stored_ids(local: Snapshot, known: Any) -> dict[str, set[str]]:
    """The ids stored now, per resource: the loaded ones and the known ones (``KnownIds``)."""
    return {resource: set(getattr(local, resource)) | set(getattr(known, resource, ()) or ()) for resource in RESOURCES}


def screen(remote: Snapshot, stored: Mapping[str, Iterable[str]], *, collation: bool = False) -> Snapshot:
    """``remote`` without the records the database cannot store, each rejected with the reason.

    ``stored`` maps a resource to the ids the database holds now (for the collation rule, applied
    when ``collation`` is true: MySQL and MariaDB).
    """
    rejected = list(remote.rejected)
    kept: dict[str, dict] = {}
    for resource, model in RESOURCES.items():
        records: Mapping[str, Any] = getattr(remote, resource)
        local = set(stored.get(resource, ()))
        clash = _collisions(set(records) - local, local) if collation else {}
        kept[resource] = {}
        for oid, rec in records.items():
            reason = problem(rec)
            if reason is None and oid in clash:
                reason = (
                    f"its id is the id {escape(clash[oid])} to MySQL/MariaDB, whose collation ignores case, "
                    "accents and trailing spaces"
                )
            if reason is None:
                kept[resource][oid] = rec
            else:
                rejected.append(Rejected(model, oid, reason))
    if collation:
        _item_collisions(kept["subscriptions"], rejected)
    if len(rejected) == len(remote.rejected):
        return remote
    return dataclasses.replace(
        remote,
        **kept,
        features=frozenset(f for p in kept["products"].values() for f in p.features),
        rejected=tuple(sorted(set(rejected), key=lambda r: (r.model, r.id))),
    )


def json_storable(value: Any) -> Any:
    """A JSON value every database's JSON column stores: NUL characters escaped (``\\x00``), which
    PostgreSQL's jsonb refuses. For the audit's copy of a report, whose skips may quote such ids."""
    if isinstance(value, str):
        return value.replace("\x00", "\\x00")
    if isinstance(value, dict):
        return {json_storable(k): json_storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_storable(v) for v in value]
    return value
