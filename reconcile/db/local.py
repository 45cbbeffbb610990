"""Load the local snapshot: one query per model, the same record shapes as Stripe's side."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from ..core.snapshot import CustomerRec, ItemRec, KnownIds, PriceRec, ProductRec, Snapshot, SubscriptionRec, columns
from ..core.users import UserDirectory, Validator, normalize_email
from ..models import Feature, Price, Product, ProductFeature, StripeUser, Subscription, SubscriptionItem

_CHUNK = 2000


def known_ids() -> KnownIds:
    """The stored ids that decide which referenced objects a subscriptions run must fetch."""
    return KnownIds(
        products=frozenset(Product.objects.values_list("id", flat=True)),
        prices=frozenset(Price.objects.values_list("id", flat=True)),
        customers=frozenset(StripeUser.objects.values_list("customer_id", flat=True)),
    )


def _rows(model, record_type: type, pk: str, *extra: str):
    """(pk, compared fields..., extra..., synced_at) per row: one query, read in chunks."""
    return model.objects.values_list(pk, *columns(record_type), *extra, "synced_at").iterator(_CHUNK)


def load_local(resources: Iterable[str]) -> Snapshot:
    """The database's side of the resources named ("products" includes prices and features)."""
    resources = set(resources)
    synced: dict[tuple[str, str], object] = {}
    products, prices, customers, subscriptions = {}, {}, {}, {}
    features: frozenset[str] = frozenset()
    if "products" in resources:
        links: dict[str, list[str]] = defaultdict(list)
        for product_id, feature_id in ProductFeature.objects.values_list("product_id", "feature_id").iterator(_CHUNK):
            links[product_id].append(feature_id)
        for pid, *values, synced_at in _rows(Product, ProductRec, "id"):
            products[pid] = ProductRec(pid, *values, features=tuple(sorted(links[pid])))
            synced[("Product", pid)] = synced_at
        for pid, *values, synced_at in _rows(Price, PriceRec, "id"):
            prices[pid] = PriceRec(pid, *values)
            synced[("Price", pid)] = synced_at
        features = frozenset(Feature.objects.values_list("id", flat=True))
    if "customers" in resources:
        for cid, *values, user_id, synced_at in _rows(StripeUser, CustomerRec, "customer_id", "user_id"):
            customers[cid] = CustomerRec(cid, *values, user_id=user_id)
            synced[("StripeUser", cid)] = synced_at
    if "subscriptions" in resources:
        items: dict[str, list[ItemRec]] = defaultdict(list)
        for sid, *fields in SubscriptionItem.objects.values_list(
            "subscription_id", "id", "price_id", "quantity", "current_period_start", "current_period_end"
        ).iterator(_CHUNK):
            items[sid].append(ItemRec(*fields))
        for sid, *values, synced_at in _rows(Subscription, SubscriptionRec, "id"):
            subscriptions[sid] = SubscriptionRec(sid, *values, items=tuple(sorted(items.get(sid, ()), key=_by_id)))
            synced[("Subscription", sid)] = synced_at
    return Snapshot(
        products=products,
        prices=prices,
        customers=customers,
        subscriptions=subscriptions,
        features=features,
        synced_at={k: v for k, v in synced.items() if v is not None},
    )


def _by_id(item: ItemRec) -> str:
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
