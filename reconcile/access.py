"""What a user may use, from the subscriptions reconcile stores: the public access API.

    from reconcile.access import feature_required, has_feature

    @feature_required("reports")
    def reports(request): ...

A subscription grants access when its status is in ``RECONCILE['ACCESS_STATUSES']`` (default
``("active", "trialing")``; add ``"past_due"`` to keep access while Stripe retries a payment). A
user's subscriptions are those of every Stripe customer linked to the user. A feature is named by
its id: an id listed in a product's ``features`` metadata (``FEATURES_METADATA_KEY``) or, with
``FEATURES_SOURCE`` "entitlements" or "both", a Stripe Entitlements feature's id (``feat_...``)
and also its lookup key, the stable name Stripe suggests code checks (``has_feature(user, "sso")``).

Each function answers with one SQL query, whatever the number of subscriptions; an anonymous user
(or None) costs none and has nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet

from .conf import get_config
from .models import Product, ProductFeature, Subscription

__all__ = [
    "FeatureRequiredMixin",
    "access_statuses",
    "active_subscriptions",
    "feature_required",
    "features",
    "has_feature",
    "subscribed_products",
]


def access_statuses() -> tuple[str, ...]:
    """The subscription statuses that grant access (``RECONCILE['ACCESS_STATUSES']``)."""
    return get_config().access_statuses


def _known(user: Any) -> bool:
    return user is not None and getattr(user, "is_authenticated", False) and user.pk is not None


def active_subscriptions(user: Any) -> QuerySet[Subscription]:
    """The user's subscriptions whose status grants access (a lazy queryset: one query when read)."""
    if not _known(user):
        return Subscription.objects.none()
    return Subscription.objects.filter(stripe_user__user=user, status__in=access_statuses())


def subscribed_products(user: Any) -> QuerySet[Product]:
    """The products of the items of the user's access-granting subscriptions, each once."""
    if not _known(user):
        return Product.objects.none()
    return Product.objects.filter(
        prices__subscription_items__subscription__stripe_user__user=user,
        prices__subscription_items__subscription__status__in=access_statuses(),
    ).distinct()


def features(user: Any) -> frozenset[str]:
    """The names of the features the user's access-granting subscriptions include (ids, and the
    lookup keys of Entitlements features): one query."""
    if not _known(user):
        return frozenset()
    rows = (
        ProductFeature.objects.filter(
            product__prices__subscription_items__subscription__stripe_user__user=user,
            product__prices__subscription_items__subscription__status__in=access_statuses(),
        )
        .values_list("feature_id", "feature__lookup_key")
        .distinct()
    )
    return frozenset(name for row in rows for name in row if name)


def has_feature(user: Any, feature: str) -> bool:
    """True when one of the user's access-granting subscriptions includes the feature of that id or
    Entitlements lookup key: one query."""
    if not _known(user):
        return False
    return ProductFeature.objects.filter(
        Q(feature_id=feature) | Q(feature__lookup_key=feature),
        product__prices__subscription_items__subscription__stripe_user__user=user,
        product__prices__subscription_items__subscription__status__in=access_statuses(),
    ).exists()


def _has_all(user: Any, wanted: tuple[str, ...]) -> bool:
    if len(wanted) == 1:
        return has_feature(user, wanted[0])
    return set(wanted) <= features(user)


def feature_required(*feature_ids: str) -> Callable:
    """A view decorator: 403 (``PermissionDenied``) unless ``request.user`` has every feature named."""
    if not feature_ids:
        raise TypeError("feature_required() needs at least one feature id")

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not _has_all(request.user, feature_ids):
                raise PermissionDenied(f"This page needs the feature(s): {', '.join(feature_ids)}.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


class FeatureRequiredMixin:
    """A class-based view mixin: 403 unless ``request.user`` has every feature in ``required_features``.

    Put it first among the bases: ``class Reports(FeatureRequiredMixin, TemplateView)``.
    """

    required_features: tuple[str, ...] = ()

    def dispatch(self, request, *args, **kwargs):
        if not self.required_features:
            raise TypeError(f"{type(self).__name__}.required_features names no feature")
        if not _has_all(request.user, tuple(self.required_features)):
            raise PermissionDenied(f"This page needs the feature(s): {', '.join(self.required_features)}.")
        return super().dispatch(request, *args, **kwargs)
