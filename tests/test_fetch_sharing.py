"""What a fetch's records share instead of holding copies (a first pull holds them all until the apply)."""

from __future__ import annotations

import pytest

from reconcile.conf import get_config
from reconcile.core.read import NO_METADATA
from reconcile.stripe.remote import fetch_remote
from reconcile.testing.generate import generate_account

ALL = ("products", "customers", "subscriptions")


@pytest.mark.django_db
def test_a_subscription_holds_its_customers_id_string_and_empty_metadata_is_shared(start_fake):
    account = generate_account(120, seed=3, n_products=3)
    start_fake(account)
    remote = fetch_remote(get_config(), ALL)
    subscriptions = list(remote.subscriptions.values())
    assert len(subscriptions) == 120
    # each subscription's customer was listed: one string for the id in both records
    assert all(sub.customer_id is remote.customers[sub.customer_id].id for sub in subscriptions)
    empty = [rec for rec in (*remote.customers.values(), *subscriptions) if not rec.metadata]
    assert empty and all(rec.metadata is NO_METADATA for rec in empty)
