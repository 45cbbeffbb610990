from __future__ import annotations

from ..base import SyncCommand


class Command(SyncCommand):
    help = (
        "Fetch products and prices, customers and subscriptions from Stripe, print one plan and apply it "
        "in a single transaction."
    )
    resources = ("products", "customers", "subscriptions")

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--incremental",
            action="store_true",
            help="Read only Stripe's events since the last complete run (a full pull when there is no cursor "
            "or it is older than Stripe's 30 days of events).",
        )
