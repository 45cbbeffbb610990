"""``manage.py reconcile_import_drf_stripe``: carry drf-stripe-subscription's customer-to-user links over.

Dry run by default (prints the plan, writes nothing); ``--apply`` writes the links in one
transaction and records a ``SyncRun``. Running it again changes nothing. Exit codes: 0 done or
nothing to do, 2 error (no drf-stripe-subscription tables, another run applying, ...).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from django.core.management.base import CommandError, CommandParser
from django.db import DatabaseError

from ...conf import get_config
from ...core.drf_links import Import
from ...core.report import applied_line, render
from ...db.drf_links import DRF_LINK_TABLE, import_links, read_links
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
        fmt, config = options["format"], get_config()
        try:
            if not options["apply"]:
                self._report(read_links(config.user_email_field), fmt)
                self.stderr.write("Dry run: nothing was written. Run again with --apply to write these links.")
                return
            read, written = import_links(
                config.user_email_field, config.batch_size, command=COMMAND, options={"format": fmt}, started=started
            )
        except ReconcileError as exc:
            raise CommandError(str(exc), returncode=2) from None
        except DatabaseError as exc:
            raise CommandError(
                f"The database failed while importing ({type(exc).__name__}: {exc}). "
                "The transaction was rolled back: nothing was written.",
                returncode=2,
            ) from None
        self._report(read, fmt)
        line = applied_line({"link_user": written}, time.monotonic() - clock)
        (self.stdout if fmt == "text" else self.stderr).write(line)

    def _report(self, read: Import, fmt: str) -> None:
        self.stderr.write(
            f"Read {read.drf_links} rows from {DRF_LINK_TABLE}; {read.already_linked} "
            "of its links are already stored here."
        )
        self.stdout.write(render(read.plan, fmt), ending="")
