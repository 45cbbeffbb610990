"""Load the local snapshot: one query per model, the same record shapes as Stripe's side."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from ..core.registry import CUSTOMERS, FEATURES, ITEMS, PRICES, PRODUCTS, RESOURCES, SUBSCRIPTIONS, Resource
from ..core.snapshot import KnownIds, Snapshot
from ..core.users import UserDirectory, Validator, normalize_email
from ..models import Price, Product, ProductFeature, StripeUser

_CHUNK = 2000


def known_ids() -> KnownIds:
    """The stored ids that decide which referenced objects a subscriptions run must fetch."""
    return KnownIds(
        products=frozenset(Product.objects.values_list("id", flat=True)),
        prices=frozenset(Price.objects.values_list("id", flat=True)),
        customers=frozenset(StripeUser.objects.values_list("customer_id", flat=True)),
    )


def _rows(resource: Resource, *extra: str) -> Iterator[tuple]:
    """``(id, *compared fields, *extra)`` per row: one query, read in chunks."""
    model = apps.get_model("reconcile", resource.model)
    return model.objects.values_list(resource.pk, *resource.columns, *extra).iterator(_CHUNK)


def _load(resource: Resource, synced: dict, extra: tuple[str, ...] = (), children: Mapping | None = None) -> dict:
    """One resource's records by id; ``children``: its child collection's records by parent id."""
    records = {}
    make = resource.maker(*extra)
    for row in _rows(resource, *extra, "synced_at"):
        oid, synced_at = row[0], row[-1]
        records[oid] = make(row) if children is None else make(row, children.get(oid, ()))
        if synced_at is not None:
            synced[(resource.model, oid)] = synced_at
    return records


def _items() -> dict[str, tuple]:
    """Every subscription's items, sorted by id."""
    items: dict[str, list] = defaultdict(list)
    make = ITEMS.maker()
    for row in _rows(ITEMS, ITEMS.parent_column):
        items[row[-1]].append(make(row))
    return {sid: tuple(sorted(recs, key=_by_id)) for sid, recs in items.items()}


def _features() -> dict[str, tuple[str, ...]]:
    """Every product's feature ids, sorted."""
    links: dict[str, list[str]] = defaultdict(list)
    for product_id, feature_id in ProductFeature.objects.values_list("product_id", "feature_id").iterator(_CHUNK):
        links[product_id].append(feature_id)
    return {pid: tuple(sorted(ids)) for pid, ids in links.items()}


def load_local(resources: Iterable[str]) -> Snapshot:
    """The database's side of the resources named ("products" includes prices and features)."""
    wanted = {r.name for r in RESOURCES if r.group in set(resources)}
    synced: dict[tuple[str, str], Any] = {}
    loaded: dict[str, Any] = {}
    if "products" in wanted:
        loaded["products"] = _load(PRODUCTS, synced, children=_features())
        loaded["features"] = _load(FEATURES, synced)
    if "prices" in wanted:
        loaded["prices"] = _load(PRICES, synced)
    if "customers" in wanted:
        loaded["customers"] = _load(CUSTOMERS, synced, ("user_id",))
    if "subscriptions" in wanted:
        loaded["subscriptions"] = _load(SUBSCRIPTIONS, synced, children=_items())
    return Snapshot(**loaded, synced_at=synced)


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

    def validate(fields: dict) -> str | None:
        user = user_model(**fields)
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
