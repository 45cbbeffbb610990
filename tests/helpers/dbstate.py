"""Whole-database snapshots for "exactly as before" assertions, and the reset between examples."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model

from tests.stripe_state import (
    expected_customers,
    expected_prices,
    expected_products,
    expected_subscriptions,
    stored_customers,
    stored_prices,
    stored_products,
    stored_subscriptions,
)


def tracked_models() -> list:
    """Every reconcile model, plus the user model (runs may link or create users)."""
    return [*apps.get_app_config("reconcile").get_models(), get_user_model()]


def dump_db() -> dict[str, list[dict[str, Any]]]:
    """Every row of every tracked table, each table sorted by primary key."""
    return {
        model._meta.label: sorted(model.objects.values(), key=lambda row, pk=model._meta.pk.attname: str(row[pk]))
        for model in tracked_models()
    }


def clear_db() -> None:
    """Delete every tracked row, children first (items PROTECT their prices)."""
    from reconcile.models import (
        Feature,
        Price,
        Product,
        ProductFeature,
        StripeUser,
        Subscription,
        SubscriptionItem,
        SyncRun,
    )

    for model in (SubscriptionItem, Subscription, StripeUser, ProductFeature, Feature, Price, Product, SyncRun):
        model.objects.all().delete()
    get_user_model().objects.all().delete()


def stored_state(resources=("products", "customers", "subscriptions")) -> dict:
    """What the database holds, in the shape of ``expected_state``."""
    state = {}
    if "products" in resources:
        state |= {"products": stored_products(), "prices": stored_prices()}
    if "customers" in resources:
        state["customers"] = stored_customers()
    if "subscriptions" in resources:
        state["subscriptions"] = stored_subscriptions()
    return state


def expected_state(source, resources=("products", "customers", "subscriptions"), skip_subscriptions=()) -> dict:
    """What the database must hold after a successful run against Stripe's JSON objects: a fake Stripe's
    data, or a dict of object lists per resource."""

    def objects(resource: str) -> list[dict]:
        return source.all(resource) if hasattr(source, "all") else list(source.get(resource, []))

    state = {}
    if "products" in resources:
        state |= {"products": expected_products(objects("products")), "prices": expected_prices(objects("prices"))}
    if "customers" in resources:
        state["customers"] = expected_customers(objects("customers"))
    if "subscriptions" in resources:
        state["subscriptions"] = expected_subscriptions(objects("subscriptions"), skip=set(skip_subscriptions))
    return state
