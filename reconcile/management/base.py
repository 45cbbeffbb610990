"""The management commands' shared shape: parse options, run, map errors to exit codes."""

from __future__ import annotations

import argparse
import sys
import traceback

from django.core.management.base import BaseCommand, CommandError, CommandParser, SystemCheckError
from django.db import DatabaseError

from ..conf import get_config
from ..core.escape import escape
from ..errors import ReconcileError
from ..options import VERBOSITY_HELP, Opt, declared
from ..runner import EXIT_DRIFT, EXIT_INTERRUPTED, Options, execute
from ..stripe.fetch import redact


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

    def create_parser(self, prog_name: str, subcommand: str, **kwargs) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        for action in parser._actions:  # Django declares -v itself; say what it does here
            if action.dest == "verbosity":
                action.help = VERBOSITY_HELP
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        for opt in declared(self.windowed):
            parser.add_argument(*opt.flags, dest=opt.dest, help=opt.help, **argparse_keywords(opt))

    def handle(self, *args, **options) -> None:
        limit = options.get("limit")
        if limit is not None and not 1 <= limit <= 100:
            raise CommandError("--limit must be from 1 to 100 (Stripe's page size).", returncode=2)
        run = Options.parsed(self.command_name(), self.resources, options)
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


def argparse_keywords(opt: Opt) -> dict:
    """An option's argparse keywords (ranges are checked in ``handle``, with the message it gives)."""
    if opt.kind == "flag":
        return {"action": "store_true"}
    if opt.kind == "switch":
        return {"action": argparse.BooleanOptionalAction, "default": None}
    kwargs = {"default": opt.default, "metavar": opt.metavar}
    if opt.kind == "choice":
        return {**kwargs, "choices": opt.choices, "metavar": None}
    return {**kwargs, "type": int} if opt.kind == "int" else kwargs
