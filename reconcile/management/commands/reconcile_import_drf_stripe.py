"""``manage.py reconcile_import_drf_stripe``: carry drf-stripe-subscription's customer-to-user links over.

Dry run by default (prints the plan, writes nothing); ``--apply`` writes the links in one
transaction and records a ``SyncRun``. Running it again changes nothing. Exit codes: 0 done or
nothing to do, 2 error (no drf-stripe-subscription tables, another run applying, ...).
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timezone

from django.core.management.base import CommandError, CommandParser
from django.db import DatabaseError, transaction

from ...conf import get_config
from ...core.plan import Plan
from ...core.report import applied_line, render
from ...db.apply import Result
from ...db.audit import Audit, record
from ...db.lock import run_lock
from ...drf_import import DRF_LINK_TABLE, apply_import, load_context, plan_import, read_drf_links
from ...errors import ReconcileError
from ...options import IMPORT_OPTIONS
from ..base import ConfigCheckedCommand, argparse_keywords

COMMAND = "reconcile_import_drf_stripe"


class Command(ConfigCheckedCommand):
    help = (
        "Import drf-stripe-subscription's customer-to-user links (its drf_stripe_stripeuser table, read with SQL). "
        "Dry run unless --apply. Then run pull_stripe for products, prices, customers and subscriptions."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        for opt in IMPORT_OPTIONS:
            parser.add_argument(*opt.flags, dest=opt.dest, help=opt.help, **argparse_keywords(opt))

    def handle(self, *args, **options) -> None:
        started, clock = datetime.now(timezone.utc), time.monotonic()
        fmt = options["format"]
        try:
            if not options["apply"]:
                self._report(self._plan(), fmt)
                self.stderr.write("Dry run: nothing was written. Run again with --apply to write these links.")
                return
            with run_lock(), transaction.atomic():
                plan = self._plan()
                self._report(plan, fmt)
                written = apply_import(plan, get_config().batch_size)
                if written:  # the audit row, in the same transaction as the links
                    record(Audit(started, COMMAND, {"format": fmt}, plan), Result(Counter(link_user=written)))
        except ReconcileError as exc:
            raise CommandError(str(exc), returncode=2) from None
        except DatabaseError as exc:
            raise CommandError(
                f"The database failed while importing ({type(exc).__name__}: {exc}). "
                "The transaction was rolled back: nothing was written.",
                returncode=2,
            ) from None
        line = applied_line({"link_user": written}, time.monotonic() - clock)
        (self.stdout if fmt == "text" else self.stderr).write(line)

    def _plan(self) -> Plan:
        rows = read_drf_links()
        users, stored = load_context(rows, get_config().user_email_field)
        return plan_import(rows, users, stored)

    def _report(self, plan: Plan, fmt: str) -> None:
        stats = plan.stats
        self.stderr.write(
            f"Read {stats['drf_links']} rows from {DRF_LINK_TABLE}; {stats['already_linked']} "
            "of its links are already stored here."
        )
        self.stdout.write(render(plan, fmt), ending="")
