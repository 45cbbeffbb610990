"""A large load into an empty SQLite table makes its plain indexes after the rows (``db/indexes.py``):
the same indexes afterwards, the same rows, nothing dropped where it would change an outcome."""

from __future__ import annotations

import contextlib

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from reconcile.db import indexes
from reconcile.models import Price, ProductFeature, StripeUser, Subscription, SubscriptionItem
from reconcile.testing.generate import generate_account
from tests.conftest import run

pytestmark = pytest.mark.django_db
sqlite_only = pytest.mark.skipif(connection.vendor != "sqlite", reason="the deferral is SQLite's alone")


def index_statements(model) -> list[tuple[str, str | None]]:
    """Every index of ``model``'s table with the statement that made it (None: a key's own)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s ORDER BY name",
            [model._meta.db_table],
        )
        return cursor.fetchall()


@sqlite_only
def test_an_empty_tables_plain_indexes_are_dropped_for_the_load_and_made_again(monkeypatch):
    monkeypatch.setattr(indexes, "MIN_ROWS", 2)
    before = index_statements(SubscriptionItem)
    with transaction.atomic(), CaptureQueriesContext(connection) as ctx:
        with indexes.deferred(SubscriptionItem, 2) as dropped:
            assert dropped == [
                "reconcile_subscriptionitem_price_id_d5ae239e",
                "reconcile_subscriptionitem_subscription_id_d52231bd",
            ]
            assert index_statements(SubscriptionItem) == [("sqlite_autoindex_reconcile_subscriptionitem_1", None)]
    assert index_statements(SubscriptionItem) == before
    assert [q["sql"].split(" ", 2)[:2] for q in ctx.captured_queries if not q["sql"].startswith("SELECT")] == [
        ["DROP", "INDEX"],
        ["DROP", "INDEX"],
        ["CREATE", "INDEX"],
        ["CREATE", "INDEX"],
    ]


@sqlite_only
def test_a_failed_load_leaves_the_indexes_as_they_were(monkeypatch):
    monkeypatch.setattr(indexes, "MIN_ROWS", 2)
    before = index_statements(Subscription)
    with pytest.raises(RuntimeError), transaction.atomic(), indexes.deferred(Subscription, 5) as dropped:
        assert len(dropped) == 2
        raise RuntimeError("the load failed")
    assert index_statements(Subscription) == before


def _deferred_statements(model, atomic: bool = True) -> tuple[list[str], list[str]]:
    with CaptureQueriesContext(connection) as ctx:
        with transaction.atomic() if atomic else contextlib.nullcontext(), indexes.deferred(model, 5) as dropped:
            pass
    return dropped, [q["sql"] for q in ctx.captured_queries if q["sql"].startswith(("DROP", "CREATE"))]


@pytest.mark.parametrize("case", ["rows stored", "few rows"])
def test_nothing_is_dropped_where_it_could_change_an_outcome_or_gain_nothing(monkeypatch, case):
    monkeypatch.setattr(indexes, "MIN_ROWS", 10_000 if case == "few rows" else 2)
    if case == "rows stored":  # making the index again would read every stored row
        StripeUser.objects.create(customer_id="cus_1")
    assert _deferred_statements(StripeUser) == ([], [])


@pytest.mark.django_db(transaction=True)
def test_nothing_is_dropped_outside_a_transaction(monkeypatch):
    """Without one, a failed load could not bring the indexes back."""
    monkeypatch.setattr(indexes, "MIN_ROWS", 2)
    assert _deferred_statements(StripeUser, atomic=False) == ([], [])


@sqlite_only
def test_a_unique_keys_index_is_kept(monkeypatch):
    """A duplicate is refused where it is inserted, as without the deferral."""
    monkeypatch.setattr(indexes, "MIN_ROWS", 2)
    with transaction.atomic(), indexes.deferred(ProductFeature, 5) as dropped:
        assert dropped == [
            "reconcile_productfeature_feature_id_e05a370c",
            "reconcile_productfeature_product_id_361125e7",
        ]
        assert index_statements(ProductFeature) == [("sqlite_autoindex_reconcile_productfeature_1", None)]


def test_only_a_create_index_statement_is_deferred():
    assert indexes._plain('CREATE INDEX "a" ON "t" ("x")')
    assert indexes._plain('create  index "a" ON "t" ("x") WHERE x IS NOT NULL')
    assert not indexes._plain('CREATE UNIQUE INDEX "a" ON "t" ("x")')
    assert not indexes._plain(None)  # a primary key's or a UNIQUE constraint's own index


@sqlite_only
def test_a_first_pull_with_its_indexes_deferred_stores_what_one_without_stores(start_fake, monkeypatch):
    start_fake(generate_account(40, seed=3))
    schema = {model: index_statements(model) for model in (Price, StripeUser, Subscription, SubscriptionItem)}
    monkeypatch.setattr(indexes, "MIN_ROWS", 1)
    with CaptureQueriesContext(connection) as ctx:
        assert run("pull_stripe").code == 0
    dropped = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith("DROP INDEX")]
    assert dropped == [
        'DROP INDEX "reconcile_price_product_id_9fdab202"',
        'DROP INDEX "reconcile_price_lookup_key_efb97915"',
        'DROP INDEX "reconcile_stripeuser_user_id_4cb3810e"',
        'DROP INDEX "reconcile_subscription_status_8fdd7c60"',
        'DROP INDEX "reconcile_subscription_stripe_user_id_9a9aa81a"',
        'DROP INDEX "reconcile_subscriptionitem_price_id_d5ae239e"',
        'DROP INDEX "reconcile_subscriptionitem_subscription_id_d52231bd"',
    ]
    assert {model: index_statements(model) for model in schema} == schema
    assert run("pull_stripe", "--check").code == 0  # a second run plans nothing
    assert SubscriptionItem.objects.count() == sum(
        len(s["items"]["data"]) for s in generate_account(40, seed=3)["subscriptions"]
    )
