"""The commands' options, declared once: the management commands (argparse) and the click CLI both
build their options from ``OPTIONS`` (the sync commands) and ``IMPORT_OPTIONS`` (the importer of
drf-stripe-subscription's links), so names, defaults and help texts cannot drift apart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FORMATS = ("text", "json", "markdown")
VERBOSITY_HELP = "2 shows field-level changes, old -> new."


@dataclass(frozen=True)
class Opt:
    flags: tuple[str, ...]
    dest: str
    help: str
    kind: str = "flag"  # flag | choice | int | text | switch (--x/--no-x, default None)
    choices: tuple[str, ...] = ()
    default: Any = None
    metavar: str | None = None
    bounds: tuple[int, int] | None = None  # an int's allowed range, both ends included
    windowed: bool = False  # only the commands that take a window (customers, subscriptions)


FORMAT = Opt(
    ("--format",),
    "format",
    "The report's format (default: text); only the report goes to stdout.",
    kind="choice",
    choices=FORMATS,
    default="text",
)

OPTIONS: tuple[Opt, ...] = (
    Opt(("--dry-run",), "dry_run", "Print the plan; write nothing.", default=False),
    Opt(
        ("--check",),
        "check",
        "Print the plan; write nothing; exit 1 when applying would change the database, 0 when in sync.",
        default=False,
    ),
    Opt(
        ("--strict",), "strict", "With --check: orphans and skipped objects count as drift too (exit 1).", default=False
    ),
    FORMAT,
    Opt(
        ("--plan-out",),
        "plan_out",
        "Save the plan to FILE (signed, with a fingerprint of the database) and write nothing.",
        kind="text",
        metavar="FILE",
    ),
    Opt(
        ("--apply-plan",),
        "apply_plan",
        "Apply exactly the plan saved in FILE, without calling Stripe; refused if the database changed "
        "since or the file was edited.",
        kind="text",
        metavar="FILE",
    ),
    Opt(
        ("--progress",),
        "progress",
        "Progress on stderr: pages, objects, objects/s and the phase (default: only when stderr is a terminal).",
        kind="switch",
    ),
    Opt(
        ("-l", "--limit"),
        "limit",
        "Reconcile one window of at most N objects (1-100); orphans are not reported.",
        kind="int",
        metavar="N",
        bounds=(1, 100),
        windowed=True,
    ),
    Opt(
        ("-s", "--starting_after"),
        "starting_after",
        "The window starts after this Stripe id.",
        kind="text",
        metavar="ID",
        windowed=True,
    ),
)


# reconcile_import_drf_stripe (and the CLI's import-drf-stripe): a dry run unless --apply.
IMPORT_OPTIONS: tuple[Opt, ...] = (
    Opt(
        ("--apply",),
        "apply",
        "Write the links, in one transaction (default: a dry run, which writes nothing).",
        default=False,
    ),
    FORMAT,
)


def declared(windowed: bool) -> tuple[Opt, ...]:
    """The options of one command."""
    return tuple(opt for opt in OPTIONS if windowed or not opt.windowed)
