"""The management commands' shared shape: parse options, run, map errors to exit codes."""

from __future__ import annotations

import argparse
import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from ..errors import ReconcileError
from ..options import VERBOSITY_HELP, Opt, declared
from ..runner import EXIT_DRIFT, Options, execute


class SyncCommand(BaseCommand):
    resources: tuple[str, ...] = ()
    windowed = False

    def create_parser(self, prog_name: str, subcommand: str, **kwargs) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        for action in parser._actions:  # Django declares -v itself; say what it does here
            if action.dest == "verbosity":
                action.help = VERBOSITY_HELP
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        for opt in declared(self.windowed, self.command_name()):
            parser.add_argument(*opt.flags, dest=opt.dest, help=opt.help, **_argparse(opt))

    def handle(self, *args, **options) -> None:
        limit = options.get("limit")
        if limit is not None and not 1 <= limit <= 100:
            raise CommandError("--limit must be from 1 to 100 (Stripe's page size).", returncode=2)
        run = Options.parsed(self.command_name(), self.resources, options)
        if run.strict and not run.check:
            raise CommandError("--strict goes with --check.", returncode=2)
        if run.apply_plan and (run.plan_out or run.dry_run or run.check or run.window.active or run.incremental):
            raise CommandError(
                "--apply-plan applies a saved plan as it is: it takes none of --dry-run, --check, --plan-out, "
                "--limit, --starting_after, --incremental.",
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


def _argparse(opt: Opt) -> dict:
    """An option's argparse keywords (ranges are checked in ``handle``, with the message it gives)."""
    if opt.kind == "flag":
        return {"action": "store_true"}
    if opt.kind == "switch":
        return {"action": argparse.BooleanOptionalAction, "default": None}
    kwargs = {"default": opt.default, "metavar": opt.metavar}
    if opt.kind == "choice":
        return {**kwargs, "choices": opt.choices, "metavar": None}
    return {**kwargs, "type": int} if opt.kind == "int" else kwargs
