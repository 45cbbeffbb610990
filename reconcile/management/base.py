"""The management commands' shared shape: parse options, run, map errors to exit codes."""

from __future__ import annotations

import argparse
import sys
import traceback

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from ..conf import get_config
from ..core.escape import escape
from ..errors import ReconcileError
from ..runner import EXIT_DRIFT, EXIT_INTERRUPTED, Options, execute
from ..stripe.fetch import redact
from ..stripe.remote import Window


class SyncCommand(BaseCommand):
    resources: tuple[str, ...] = ()
    windowed = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Print the plan; write nothing.")
        parser.add_argument(
            "--check", action="store_true", help="Print the plan; exit 1 when it is not empty, 0 when in sync."
        )
        parser.add_argument(
            "--strict",
            action="store_true",
            help="With --check: orphans and skipped objects count as drift too (exit 1).",
        )
        parser.add_argument(
            "--format", choices=("text", "json", "markdown"), default="text", help="Report format (default: text)."
        )
        parser.add_argument(
            "--plan-out",
            metavar="FILE",
            default=None,
            help="Save the plan to FILE (signed, with a fingerprint of the database) and write nothing.",
        )
        parser.add_argument(
            "--apply-plan",
            metavar="FILE",
            default=None,
            help="Apply exactly the plan saved in FILE, without fetching; refused if the database changed "
            "since or the file was edited.",
        )
        parser.add_argument(
            "--progress",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="Show progress on stderr (default: only when stderr is a terminal).",
        )
        if self.windowed:
            parser.add_argument(
                "-l",
                "--limit",
                type=int,
                default=None,
                help="Reconcile at most this many objects (1-100), one page; orphans are not reported.",
            )
            parser.add_argument(
                "-s", "--starting_after", default=None, help="Reconcile the window after this Stripe id."
            )

    def handle(self, *args, **options) -> None:
        limit = options.get("limit")
        if limit is not None and not 1 <= limit <= 100:
            raise CommandError("--limit must be from 1 to 100 (Stripe's page size).", returncode=2)
        run = Options(
            command=self.command_name(),
            resources=self.resources,
            dry_run=options["dry_run"],
            check=options["check"],
            strict=options["strict"],
            fmt=options["format"],
            verbosity=options["verbosity"],
            window=Window(limit, options.get("starting_after")),
            plan_out=options["plan_out"],
            apply_plan=options["apply_plan"],
            progress=options["progress"],
        )
        if run.strict and not run.check:
            raise CommandError("--strict goes with --check.", returncode=2)
        if run.apply_plan and (run.plan_out or run.dry_run or run.check or run.window.active):
            raise CommandError(
                "--apply-plan applies a saved plan as it is: it takes none of --dry-run, --check, --plan-out, "
                "--limit, --starting_after.",
                returncode=2,
            )
        try:
            outcome = execute(run, self.stdout, self.stderr)
        except ReconcileError as exc:
            raise CommandError(escape(str(exc)), returncode=2) from None
        except DatabaseError as exc:
            raise CommandError(_database_message(exc, run.writing), returncode=2) from None
        except KeyboardInterrupt:
            raise CommandError("Interrupted: nothing was written.", returncode=EXIT_INTERRUPTED) from None
        except Exception as exc:  # a bug: exit 2 like any error, never 1, which --check users read as drift
            self.stderr.write("\n".join(escape(line) for line in redact(traceback.format_exc()).splitlines()))
            raise CommandError(
                f"reconcile failed unexpectedly ({type(exc).__name__}: {_first_line(exc)}). This is a bug: please "
                "report it with the traceback above. Nothing was written.",
                returncode=2,
            ) from None
        if outcome.exit_code == EXIT_DRIFT:
            sys.exit(EXIT_DRIFT)

    def command_name(self) -> str:
        return self.__module__.rsplit(".", 1)[-1]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return escape(text.splitlines()[0]) if text else "no detail"


def _database_message(exc: DatabaseError, writing: bool) -> str:
    detail = f"{type(exc).__name__}: {_first_line(exc)}"
    why = ""
    if "database is locked" in str(exc).lower():  # SQLite's words for a lock held past the busy timeout
        wait = get_config().sqlite_busy_timeout
        why = (
            " Another process is writing to it and held its lock longer than "
            f"RECONCILE['SQLITE_BUSY_TIMEOUT'] ({wait:g} s)."
        )
    if not writing:  # a dry run, a check or --plan-out: it only reads
        return f"The database failed while reading ({detail}).{why} This run writes nothing: nothing was written."
    return (
        f"The database failed while applying ({detail}).{why} "
        "The transaction was rolled back: nothing was written."
    )
