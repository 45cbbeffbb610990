from __future__ import annotations

from ..base import SyncCommand


class Command(SyncCommand):
    help = (
        "Fetch products and prices, customers and subscriptions from Stripe, print one plan and apply it "
        "in a single transaction."
    )
    resources = ("products", "customers", "subscriptions")
