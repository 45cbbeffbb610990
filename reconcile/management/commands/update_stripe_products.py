from __future__ import annotations

from ..base import SyncCommand


class Command(SyncCommand):
    help = "Fetch every Stripe product and price (archived ones too) and reconcile the database with them."
    resources = ("products",)
    windowed = False
