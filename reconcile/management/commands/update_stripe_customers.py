from __future__ import annotations

from ..base import SyncCommand


class Command(SyncCommand):
    help = "Fetch every Stripe customer, reconcile StripeUser rows and link them to Django users by email."
    resources = ("customers",)
    windowed = True
