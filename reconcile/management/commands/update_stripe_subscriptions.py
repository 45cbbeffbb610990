from __future__ import annotations

from ..base import SyncCommand


class Command(SyncCommand):
    help = "Fetch every Stripe subscription (all statuses) with its items and reconcile the database."
    resources = ("subscriptions",)
    windowed = True
