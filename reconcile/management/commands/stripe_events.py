from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ...events.log import RETRYABLE, pending, prune, retry
from ...events.models import Outcome, StripeEvent
from ...events.settings import event_settings


class Command(BaseCommand):
    help = (
        "The Stripe event log: 'retry' failed events, 'process-pending' events stored but never processed, "
        "'prune' entries older than RECONCILE['EVENT_RETENTION_DAYS']."
    )

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        again = sub.add_parser("retry", help="Process failed events again, oldest first.")
        again.add_argument("ids", nargs="*", help="Only these event ids (failed or pending).")
        waiting = sub.add_parser("process-pending", help="Process events stored but not processed.")
        waiting.add_argument("--older-than", type=float, default=60.0, help="Seconds since receipt (default 60).")
        listing = sub.add_parser("list", help="The newest events: id, type, outcome, deliveries.")
        listing.add_argument("--limit", type=int, default=20)
        old = sub.add_parser("prune", help="Delete log entries received more than N days ago.")
        old.add_argument("--days", type=int, default=None, help="Default: RECONCILE['EVENT_RETENTION_DAYS'].")

    def handle(self, *args, **options) -> None:
        action = options["action"]
        if action == "list":
            for row in StripeEvent.objects.order_by("-received_at")[: options["limit"]]:
                self.stdout.write(
                    f"{row.id}  {row.type:<32} {row.outcome:<9} delivered {row.deliveries}x  "
                    f"{row.received_at:%H:%M:%S} {row.error}\n"
                )
            return
        if action == "prune":
            days = options["days"] if options["days"] is not None else event_settings().retention_days
            if days < 0:
                raise CommandError("--days must be 0 or more.", returncode=2)
            self.stdout.write(f"Deleted {prune(days)} event log entries older than {days} days.\n")
            return
        if action == "retry":
            rows = StripeEvent.objects.filter(outcome__in=RETRYABLE) if options["ids"] else None
            rows = (
                rows.filter(pk__in=options["ids"])
                if rows is not None
                else StripeEvent.objects.filter(outcome=Outcome.FAILED)
            )
        else:
            rows = pending(options["older_than"])
        counts = retry(list(rows))
        done = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing to do"
        self.stdout.write(f"Processed: {done}.\n")
        if counts.get(Outcome.FAILED):
            raise CommandError(f"{counts[Outcome.FAILED]} events failed again; see the event log.", returncode=1)
