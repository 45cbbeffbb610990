"""The management commands' shared shape: parse options, run, map errors to exit codes."""

from __future__ import annotations

import argparse
import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser, SystemCheckError
from django.db import DatabaseError

from ..errors import ReconcileError
from ..runner import EXIT_DRIFT, Options, execute
from ..stripe.remote import Window


class ConfigCheckedCommand(BaseCommand):
    """A command whose failed system checks (a bad setting) exit 2, the exit code of every other
    configuration error, instead of Django's 1, which ``--check`` uses for drift: a scheduled
    check can then tell a misconfiguration from drift."""

    def check(self, *args, **kwargs) -> None:
        try:
            super().check(*args, **kwargs)
        except SystemCheckError as exc:
            exc.returncode = 2
            raise


class SyncCommand(ConfigCheckedCommand):
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
            raise CommandError(str(exc), returncode=2) from None
        except DatabaseError as exc:
            raise CommandError(
                f"The database failed while applying ({type(exc).__name__}: {_first_line(exc)}). "
                "The transaction was rolled back: nothing was written.",
                returncode=2,
            ) from None
        if outcome.exit_code == EXIT_DRIFT:
            sys.exit(EXIT_DRIFT)

    def command_name(self) -> str:
        return self.__module__.rsplit(".", 1)[-1]


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no detail"
