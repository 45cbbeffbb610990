"""reconcile.access: what a user may use, in one SQL query whatever the number of subscriptions."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.http import HttpResponse
from django.urls import path
from django.views import View

from reconcile.access import (
    FeatureRequiredMixin,
    active_subscriptions,
    feature_required,
    features,
    has_feature,
    subscribed_products,
)
from reconcile.checks import check_settings
from reconcile.models import Feature, Price, Product, ProductFeature, StripeUser, Subscription, SubscriptionItem

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 3, 1, tzinfo=timezone.utc)


@feature_required("reports")
def reports(request):
    return HttpResponse("reports")


class Exports(FeatureRequiredMixin, View):
    required_features = ("reports", "exports")

    def get(self, request):
        return HttpResponse("exports")


urlpatterns = [path("reports/", reports), path("exports/", Exports.as_view())]


def product(pid: str, *feature_ids: str) -> Price:
    prod = Product.objects.create(id=pid, name=pid)
    for fid in feature_ids:
        Feature.objects.get_or_create(id=fid)
        ProductFeature.objects.create(product=prod, feature_id=fid)
    return Price.objects.create(id=f"price_{pid}", product=prod, amount=100, currency="usd")


def subscribe(customer: StripeUser, sid: str, status: str, *prices: Price) -> Subscription:
    sub = Subscription.objects.create(id=sid, stripe_user=customer, status=status, created=NOW)
    for i, price in enumerate(prices):
        SubscriptionItem.objects.create(id=f"si_{sid}_{i}", subscription=sub, price=price, quantity=1)
    return sub


@pytest.fixture
def account():
    User = get_user_model()
    ann, bob = User.objects.create(username="ann"), User.objects.create(username="bob")
    pro, team, legacy = product("pro", "reports", "api"), product("team", "exports"), product("legacy", "old")
    product("unused", "never")
    home = StripeUser.objects.create(customer_id="cus_ann1", user=ann)
    work = StripeUser.objects.create(customer_id="cus_ann2", user=ann)  # a second customer of the same user
    subscribe(home, "sub_active", "active", pro)
    subscribe(work, "sub_trial", "trialing", team)
    subscribe(work, "sub_late", "past_due", legacy)
    subscribe(home, "sub_gone", "canceled", legacy)
    subscribe(StripeUser.objects.create(customer_id="cus_bob", user=bob), "sub_bob", "canceled", pro)
    StripeUser.objects.create(customer_id="cus_nobody")
    return ann, bob


def test_default_statuses_grant_active_and_trialing(account, django_assert_num_queries):
    ann, bob = account
    with django_assert_num_queries(1):
        assert sorted(s.id for s in active_subscriptions(ann)) == ["sub_active", "sub_trial"]
    with django_assert_num_queries(1):
        assert sorted(p.id for p in subscribed_products(ann)) == ["pro", "team"]
    with django_assert_num_queries(1):
        assert features(ann) == frozenset({"reports", "api", "exports"})
    with django_assert_num_queries(1):
        assert has_feature(ann, "exports") is True
    with django_assert_num_queries(1):
        assert has_feature(ann, "old") is False  # past_due and canceled grant nothing by default
    with django_assert_num_queries(2):
        assert features(bob) == frozenset() and list(active_subscriptions(bob)) == []


def test_past_due_is_a_setting(account, settings):
    settings.RECONCILE = {"ACCESS_STATUSES": ["active", "trialing", "past_due"]}
    ann, _ = account
    assert features(ann) == frozenset({"reports", "api", "exports", "old"})
    assert sorted(s.id for s in active_subscriptions(ann)) == ["sub_active", "sub_late", "sub_trial"]


@pytest.mark.parametrize("count", [1, 40])
def test_one_query_whatever_the_number_of_subscriptions(count, django_assert_num_queries):
    user = get_user_model().objects.create(username="many")
    customer = StripeUser.objects.create(customer_id="cus_many", user=user)
    for i in range(count):
        subscribe(customer, f"sub_{i}", "active", product(f"p{i}", f"f{i}", "shared"))
    with django_assert_num_queries(1):
        assert len(features(user)) == count + 1
    with django_assert_num_queries(1):
        assert len(subscribed_products(user)) == count
    with django_assert_num_queries(1):
        assert len(active_subscriptions(user)) == count
    with django_assert_num_queries(1):
        assert has_feature(user, f"f{count - 1}")


def test_anonymous_users_have_nothing_and_cost_no_query(account, django_assert_num_queries):
    with django_assert_num_queries(0):
        for who in (AnonymousUser(), None):
            assert features(who) == frozenset() and has_feature(who, "reports") is False
            assert list(active_subscriptions(who)) == [] and list(subscribed_products(who)) == []


@pytest.mark.urls("tests.test_access")
def test_decorator_and_mixin_answer_403_without_the_feature(account, client):
    ann, bob = account
    assert client.get("/reports/").status_code == 403  # anonymous
    client.force_login(bob)
    assert client.get("/reports/").status_code == 403
    assert client.get("/exports/").status_code == 403
    client.force_login(ann)
    assert client.get("/reports/").content == b"reports"
    assert client.get("/exports/").content == b"exports"  # both features: one query for the set
    ProductFeature.objects.filter(feature_id="exports").delete()
    assert client.get("/exports/").status_code == 403


def test_an_entitlements_feature_is_named_by_its_id_and_its_lookup_key(account, client, django_assert_num_queries):
    ann, bob = account
    sso = Feature.objects.create(id="feat_61SsoAbc", lookup_key="sso", name="Single sign-on")
    ProductFeature.objects.create(product_id="pro", feature=sso)  # ann's active subscription
    with django_assert_num_queries(1):
        assert features(ann) == frozenset({"reports", "api", "exports", "feat_61SsoAbc", "sso"})
    with django_assert_num_queries(1):
        assert has_feature(ann, "sso") is True
    with django_assert_num_queries(1):
        assert has_feature(ann, "feat_61SsoAbc") is True
    assert has_feature(bob, "sso") is False and has_feature(ann, "Single sign-on") is False  # a name is not a key


def test_access_statuses_are_checked_at_start_up(settings):
    settings.RECONCILE = {"ACCESS_STATUSES": ["active", "paid"]}
    assert [e.id for e in check_settings()] == ["reconcile.E012"]
    settings.RECONCILE = {"ACCESS_STATUSES": []}
    assert [e.id for e in check_settings()] == ["reconcile.E012"]
    settings.RECONCILE = {"ACCESS_STATUSES": ("active", "trialing", "past_due")}
    assert check_settings() == []
