"""One run, shared by the management commands and the click CLI: fetch, load, diff, report, apply.

Stripe is called before any transaction opens; the apply and its audit row share one transaction.
A writing run holds the one-run-at-a-time lock from its start to its end.
"""

from __future__ import annotations

import contextlib
import gc
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TextIO

from django.db import transaction

from .conf import Config, get_config
from .core import planfile
from .core.diff import UserPolicy, diff
from .core.plan import Plan
from .core.report import applied_line, as_dict, render
from .db.apply import apply_plan
from .db.local import known_ids, load_directory, load_local, make_validator
from .db.lock import run_lock
from .errors import PlanFileError
from .models import SyncRun
from .progress import Progress, make_progress
from .stripe.fetch import Fetcher
from .stripe.remote import Window, fetch_remote

EXIT_OK, EXIT_DRIFT, EXIT_ERROR = 0, 1, 2
ORDER = ("products", "customers", "subscriptions")
AUDIT_OPERATIONS = 1000  # operations kept in a SyncRun's report; the summary counts them all


@dataclass
class Options:
    command: str
    resources: tuple[str, ...]
    dry_run: bool = False
    check: bool = False
    strict: bool = False  # with check: orphans and skips count as drift too
    fmt: str = "text"
    verbosity: int = 1
    window: Window = field(default_factory=Window)
    plan_out: str | None = None
    apply_plan: str | None = None
    progress: bool | None = None  # None: when stderr is a terminal

    @property
    def writing(self) -> bool:
        return not (self.dry_run or self.check or self.plan_out)


@dataclass
class Outcome:
    plan: Plan
    exit_code: int
    applied: bool = False
    counts: dict = field(default_factory=dict)
    requests: int = 0


@dataclass
class Built:
    plan: Plan
    fetched_at: dict
    state: str  # the database fingerprint the plan was computed against
    requests: int


def _local_side(config: Config, resources: tuple[str, ...]):
    """The stored records, and the users by email when customers may be created or linked
    (a subscriptions run records the customers its subscriptions need)."""
    local = load_local(resources)
    wanted = "customers" in resources or "subscriptions" in resources
    directory = load_directory(config.user_email_field) if wanted else None
    return local, directory


def build_plan(
    config: Config,
    resources: tuple[str, ...],
    window: Window,
    *,
    fetcher: Fetcher | None = None,
    progress: Progress | None = None,
    fingerprint: bool = False,
) -> Built:
    """Fetch Stripe's side (no transaction open), then load ours and diff."""
    fetcher = fetcher or Fetcher(config)
    known = known_ids()
    remote = fetch_remote(config, resources, fetcher=fetcher, window=window, known=known, progress=progress)
    (progress or Progress()).phase("diffing")
    local, directory = _local_side(config, resources)
    policy = None
    if directory is not None:
        create_map = config.user_create_map
        policy = UserPolicy(directory, create_map, make_validator(create_map) if create_map else None)
    plan = diff(remote, local, known=known, users=policy)
    state = planfile.fingerprint(local, directory) if fingerprint else ""
    return Built(plan, dict(remote.fetched_at), state, fetcher.requests)


@contextlib.contextmanager
def _fewer_collections():
    """A run allocates hundreds of thousands of long-lived records: with the default thresholds
    the cyclic collector rescans them again and again (a third of a large fetch). Collect far less
    often during the run and restore the thresholds after."""
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], 50_000), max(thresholds[1], 20), max(thresholds[2], 100))
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def execute(options: Options, out: TextIO, err: TextIO, *, fetcher: Fetcher | None = None) -> Outcome:
    """Run one command; raises ReconcileError on errors a person must fix."""
    with _fewer_collections():
        return _execute(options, out, err, fetcher)


def _execute(options: Options, out: TextIO, err: TextIO, fetcher: Fetcher | None) -> Outcome:
    config = get_config()
    resources = tuple(r for r in ORDER if r in options.resources)
    started = datetime.now(timezone.utc)
    clock = time.monotonic()
    listed = tuple(
        r
        for r in ("products", "prices", "customers", "subscriptions")
        if r in resources or (r == "prices" and "products" in resources)
    )
    progress = make_progress(err, listed, options.progress) if not options.apply_plan else Progress()
    lock = run_lock() if options.writing else contextlib.nullcontext()
    try:
        with lock:
            if options.apply_plan:
                built, header = _from_file(options.apply_plan, resources, config)
            else:
                built = build_plan(
                    config,
                    resources,
                    options.window,
                    fetcher=fetcher,
                    progress=progress,
                    fingerprint=bool(options.plan_out),
                )
                header = None
            progress.close()
            out.write(render(built.plan, options.fmt, options.verbosity))
            if options.plan_out:
                planfile.write(
                    options.plan_out,
                    built.plan,
                    command=options.command,
                    resources=resources,
                    state=built.state,
                    fetched_at=built.fetched_at,
                )
                err.write(f"Saved the plan to {options.plan_out}; apply it with --apply-plan {options.plan_out}.\n")
            if not options.writing:
                drift = not built.plan.in_sync or (options.strict and bool(built.plan.operations))
                code = EXIT_DRIFT if options.check and drift else EXIT_OK
                return Outcome(built.plan, code, requests=built.requests)
            if not built.plan.writes:
                return Outcome(built.plan, EXIT_OK, requests=built.requests)
            with transaction.atomic():
                if header is not None:  # the database may have changed since the plan was made
                    _check_state(options.apply_plan, header, resources, config)
                result = apply_plan(built.plan, built.fetched_at, config.batch_size)
                report = as_dict(built.plan, max_operations=AUDIT_OPERATIONS)
                report["conflicts"] = [{"model": c.model, "id": c.id, "reason": c.reason} for c in result.conflicts]
                SyncRun.objects.create(
                    started_at=started,
                    finished_at=datetime.now(timezone.utc),
                    command=options.command,
                    options=_options_json(options),
                    outcome="applied" if not result.conflicts else "applied with conflicts",
                    counts={**result.counts, "conflict": len(result.conflicts)}
                    if result.conflicts
                    else dict(result.counts),
                    report=report,
                )
    finally:
        progress.close()
    (out if options.fmt == "text" else err).write(
        _applied_line(result.counts, result.conflicts, time.monotonic() - clock)
    )
    return Outcome(built.plan, EXIT_OK, applied=True, counts=dict(result.counts), requests=built.requests)


def _from_file(path: str, resources: tuple[str, ...], config: Config) -> tuple[Built, dict]:
    header, plan, fetched_at = planfile.read(path)
    if tuple(header["resources"]) != resources:
        raise PlanFileError(
            f"The plan file {path} was made by {header['command']} for {', '.join(header['resources'])}; "
            f"apply it with that command."
        )
    return Built(plan, fetched_at, header["database_fingerprint"], 0), header


def _check_state(path: str, header: dict, resources: tuple[str, ...], config: Config) -> None:
    local, directory = _local_side(config, resources)
    if planfile.fingerprint(local, directory) != header["database_fingerprint"]:
        raise PlanFileError(
            f"The database changed since the plan in {path} was made, so that plan may no longer be right. "
            "Nothing was applied. Make a new plan with --dry-run --plan-out."
        )


def _applied_line(counts: dict, conflicts: list, seconds: float) -> str:
    lines = [applied_line(counts, seconds)]
    lines += [f"  ! conflict {c.model} {c.id}: {c.reason}" for c in conflicts]
    return "\n".join(lines) + "\n"


def _options_json(options: Options) -> dict:
    return {
        "resources": list(options.resources),
        "format": options.fmt,
        "limit": options.window.limit,
        "starting_after": options.window.starting_after,
        "apply_plan": options.apply_plan,
    }
