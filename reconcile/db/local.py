"""Load the local snapshot: one query per model, the same record shapes as Stripe's side."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from ..core.fingerprint import NO_CHILDREN, Fingerprints, Gathered, Part, add_child, key_fingerprint
from ..core.registry import CUSTOMERS, FEATURES, ITEMS, PRICES, PRODUCTS, RESOURCES, SUBSCRIPTIONS, Resource
from ..core.snapshot import KnownIds, Snapshot
from ..core.users import UserDirectory, Validator, normalize_email
from ..models import Price, Product, ProductFeature, StripeUser
from .rows import CACHE_LIMIT
from .rows import values as fast_values

_CHUNK = 2000


def known_ids() -> KnownIds:
    """The stored ids that decide which referenced objects a subscriptions run must fetch."""
    return KnownIds(
        products=frozenset(Product.objects.values_list("id", flat=True)),
        prices=frozenset(Price.objects.values_list("id", flat=True)),
        customers=frozenset(StripeUser.objects.values_list("customer_id", flat=True)),
    )


def _only(queryset, column: str, ids: Collection[str] | None):
    """Restricted to ``ids`` (an event's few) when given."""
    return queryset.all() if ids is None else queryset.filter(**{f"{column}__in": list(ids)})


def _rows(
    resource: Resource, *extra: str, ids: Collection[str] | None = None, cache_limit: int = CACHE_LIMIT
) -> Iterable[tuple]:
    """``(id, *compared fields, *extra)`` per row: one query, read in chunks; with ``ids``, just those
    rows (of a child collection: those of these parents)."""
    model = apps.get_model("reconcile", resource.model)
    rows = _only(model.objects, resource.parent_column or resource.pk, ids)
    return _read(rows.values_list(resource.pk, *resource.columns, *extra), ids, cache_limit)


def _read(rows, ids: Collection[str] | None, cache_limit: int = CACHE_LIMIT) -> Iterable[tuple]:
    """A whole table in chunks (a server-side cursor on PostgreSQL), with the fast converters; an
    event's few rows at once (a cursor would cost three round trips). ``cache_limit=0``: rows that
    do not outlive the read share no datetimes (``rows.values``)."""
    return fast_values(rows, _CHUNK, cache_limit=cache_limit) if ids is None else rows


def _load(
    resource: Resource,
    synced: dict,
    extra: tuple[str, ...] = (),
    children: Mapping | None = None,
    ids: Collection[str] | None = None,
) -> dict:
    """One resource's records by id; ``children``: its child collection's records by parent id."""
    records = {}
    make = resource.maker(*extra)
    for row in _rows(resource, *extra, "synced_at", ids=ids):
        oid, synced_at = row[0], row[-1]
        records[oid] = make(row) if children is None else make(row, children.get(oid, ()))
        if synced_at is not None:
            synced[(resource.model, oid)] = synced_at
    return records


def _items(ids: Collection[str] | None = None) -> dict[str, tuple]:
    """Every subscription's items (or those of ``ids``), sorted by id."""
    items: dict[str, list] = defaultdict(list)
    make = ITEMS.maker()
    for row in _rows(ITEMS, ITEMS.parent_column, ids=ids):
        items[row[-1]].append(make(row))
    return {sid: tuple(sorted(recs, key=_by_id)) for sid, recs in items.items()}


def _features(ids: Collection[str] | None = None) -> dict[str, tuple[str, ...]]:
    """Every product's feature ids (or those of ``ids``), sorted."""
    links: dict[str, list[str]] = defaultdict(list)
    rows = _only(ProductFeature.objects, "product_id", ids)
    for product_id, feature_id in _read(rows.values_list("product_id", "feature_id"), ids):
        links[product_id].append(feature_id)
    return {pid: tuple(sorted(ids)) for pid, ids in links.items()}


def load_local(resources: Iterable[str], only: Mapping[str, Collection[str]] | None = None) -> Snapshot:
    """The database's side of the resources named ("products" includes prices and features);
    with ``only`` ({resource name: ids}, an event's few), just those rows."""
    wanted = {r.name for r in RESOURCES if r.group in set(resources)}
    synced: dict[tuple[str, str], Any] = {}
    loaded: dict[str, Any] = {}

    def ids(name: str) -> Collection[str] | None:
        return None if only is None else only.get(name, ())

    if "products" in wanted:
        loaded["products"] = _load(PRODUCTS, synced, children=_features(ids("products")), ids=ids("products"))
        loaded["features"] = _load(FEATURES, synced)
    if "prices" in wanted:
        loaded["prices"] = _load(PRICES, synced, ids=ids("prices"))
    if "customers" in wanted:
        loaded["customers"] = _load(CUSTOMERS, synced, ("user_id",), ids=ids("customers"))
    if "subscriptions" in wanted:
        subs = ids("subscriptions")
        loaded["subscriptions"] = _load(SUBSCRIPTIONS, synced, children=_items(subs), ids=subs)
    return Snapshot(**loaded, synced_at=synced)


def load_fingerprints(resources: Iterable[str], known: KnownIds) -> Fingerprints:
    """What a re-pull's prune needs of the stored rows (``core/fingerprint.py``): each row's
    fingerprint, made as the row is read and the row let go; the products' ids from ``known``
    (products are never dropped), the features' ids, and the customers linked to no user. One
    query per table, as ``load_local``; no sync times (the rows still compared after the fetch are
    read again, with theirs)."""
    return Gathered.of(fingerprint_tables(resources, known))


PART_ROWS = 25_000  # rows per part: a reader in another process holds at most this many of a table


def fingerprint_tables(resources: Iterable[str], known: KnownIds) -> Iterator[Part]:
    """``load_fingerprints`` in parts of at most ``PART_ROWS`` rows (``fingerprint.Part``), the
    subscriptions first: theirs are the largest records a fetch keeps until their table has come
    (``db/aside.py``)."""
    wanted = {r.name for r in RESOURCES if r.group in set(resources)}
    if "subscriptions" in wanted:
        # each item's fingerprint added into its subscription's as its row passes (``children``)
        item_of, items = key_fingerprint(ITEMS), {}
        for row in _rows(ITEMS, ITEMS.parent_column, cache_limit=0):
            parent = row[-1]
            items[parent] = add_child(items.get(parent, NO_CHILDREN), item_of(row[:-1]))
        of = key_fingerprint(SUBSCRIPTIONS)

        def subscriptions(row: tuple) -> int | None:
            summed = items.pop(row[0], NO_CHILDREN)
            return None if summed is None else of((*row, summed))

        yield from _parts("subscriptions", _rows(SUBSCRIPTIONS, cache_limit=0), subscriptions)
        del items
    if "customers" in wanted:
        of, width = key_fingerprint(CUSTOMERS), 1 + len(CUSTOMERS.fields)
        rows = _rows(CUSTOMERS, "user_id", cache_limit=0)
        yield from _parts("customers", rows, lambda row: of(row[:width]), unlinked=lambda row: row[width] is None)
    if "prices" in wanted:
        yield from _parts("prices", _rows(PRICES, cache_limit=0), key_fingerprint(PRICES))
    if "products" in wanted:
        yield "products", dict.fromkeys(known.products), None, True
        features = apps.get_model("reconcile", FEATURES.model).objects.values_list(FEATURES.pk, flat=True)
        yield "features", dict.fromkeys(features), None, True


def _parts(name: str, rows: Iterable[tuple], of: Callable, unlinked: Callable | None = None) -> Iterator[Part]:
    """(name, {id: of(row)}, ids of the rows ``unlinked`` says, last) for each ``PART_ROWS`` rows."""
    table: dict = {}
    flagged: set | None = set() if unlinked is not None else None
    for row in rows:
        table[row[0]] = of(row)
        if flagged is not None and unlinked(row):
            flagged.add(row[0])
        if len(table) == PART_ROWS:
            yield name, table, None if flagged is None else frozenset(flagged), False
            table, flagged = {}, None if flagged is None else set()
    yield name, table, None if flagged is None else frozenset(flagged), True


def _by_id(item: Any) -> str:
    return item.id


# Flags that make an account one never linked by email (unless allowed): (field, value, what it is).
PRIVILEGE_FLAGS = (
    ("is_superuser", True, "a superuser account"),
    ("is_staff", True, "a staff account"),
    ("is_active", False, "an inactive account"),
)


def load_directory(email_field: str, *, link_privileged: bool = False) -> UserDirectory:
    """Every user's primary key by normalised email, and the privileged ones: one query."""
    user_model = get_user_model()
    names = {f.name for f in user_model._meta.concrete_fields}
    flags = [] if link_privileged else [flag for flag in PRIVILEGE_FLAGS if flag[0] in names]
    by_email: dict[str, list] = defaultdict(list)
    privileged = {}
    rows = user_model.objects.values_list("pk", email_field, *(name for name, _, _ in flags))
    for pk, email, *values in rows.iterator(_CHUNK):
        key = normalize_email(email)
        if key:
            by_email[key].append(pk)
            what = next((what for (_, bad, what), value in zip(flags, values, strict=True) if value is bad), None)
            if what:
                privileged[pk] = what
    return UserDirectory({k: tuple(v) for k, v in by_email.items()}, privileged)


def make_validator(create_map: dict[str, str]) -> Validator:
    """Checks a new user's fields with the user model's own validation, without a query per user.

    Unique fields are checked against the values stored now (one query per unique field) and
    against the users this plan creates before it.
    """
    user_model = get_user_model()
    unique = [f for f in create_map if user_model._meta.get_field(f).unique]
    taken = {f: set(user_model.objects.values_list(f, flat=True)) for f in unique}
    others = [f.name for f in user_model._meta.concrete_fields if f.name not in create_map]
    # One instance checks every new user: each check sets every mapped field anew, and building a
    # model instance per user (its defaults, its signals) was a third of the check on a first pull.
    user = user_model()
    attnames = {name: user_model._meta.get_field(name).attname for name in create_map}

    def validate(fields: dict) -> str | None:
        for name, value in fields.items():
            setattr(user, attnames[name], value)
        try:
            user.clean_fields(exclude=others)
        except ValidationError as exc:
            return "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in sorted(exc.message_dict.items()))
        for name in unique:
            value = getattr(user, name)
            if value in taken[name]:
                return f"{name}: a user with {name} {value!r} already exists"
            taken[name].add(value)
        return None

    return validate
