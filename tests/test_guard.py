"""The lost-write guard's read: what the ORM would return, in one statement with one parameter."""

from __future__ import annotations

import pytest
from django.db import connection

from reconcile.db.guard import stored_stamps
from reconcile.models import Product, StripeUser, Subscription
from tests.conftest import run

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("model", [Product, StripeUser, Subscription])
def test_the_guard_reads_what_the_orm_reads(fake_stripe, model, django_assert_num_queries):
    assert run("pull_stripe").code == 0
    stored = list(model.objects.values_list("pk", flat=True))
    assert len(stored) >= 2
    model.objects.filter(pk=stored[0]).update(synced_at=None)  # a row never stamped
    ids = [*stored, "absent_0001", 'absent_"0002", [x]']  # new ids too, one with what a JSON text escapes
    orm = dict(model.objects.filter(pk__in=ids).values_list("pk", "synced_at"))
    with django_assert_num_queries(1):
        found = stored_stamps(model, ids)
    assert found == orm and set(found) == set(stored) and found[stored[0]] is None
    assert all(at.utcoffset() is not None for at in found.values() if at is not None)  # aware, as the ORM's


def test_an_id_with_quotes_and_brackets_is_found(fake_stripe):
    assert run("pull_stripe").code == 0
    odd = 'prod_"odd", [x] \\ é'
    Product.objects.create(id=odd, name="Odd", active=True, metadata={})
    assert set(stored_stamps(Product, [odd, "prod_DemoStarter01", "prod_absent"])) == {odd, "prod_DemoStarter01"}


def test_the_guard_locks_the_rows_it_reads_where_the_database_can(fake_stripe):
    from django.db import transaction
    from django.test.utils import CaptureQueriesContext

    assert run("pull_stripe").code == 0
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        stored_stamps(Product, ["prod_DemoStarter01"])
    sql = queries.captured_queries[-1]["sql"]
    assert sql.endswith("FOR UPDATE") == connection.features.has_select_for_update
    assert stored_stamps(Product, []) == {}
