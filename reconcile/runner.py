"""One run, shared by the management commands and the click CLI: fetch, load, diff, report, apply.

Stripe is called before any transaction opens; the apply, the audit row and the lock's hold all
happen after the whole fetch is done.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TextIO

from django.db import transaction

from .apply import apply_plan
from .conf import Config, get_config
from .diff import UserPolicy, diff
from .fetch import Fetcher
from .local import known_ids, load_directory, load_local, make_validator
from .lock import run_lock
from .models import SyncRun
from .plan import Plan
from .remote import Window, fetch_remote
from .report import as_dict, render

EXIT_OK, EXIT_DRIFT, EXIT_ERROR = 0, 1, 2
ORDER = ("products", "customers", "subscriptions")


@dataclass
class Options:
    command: str
    resources: tuple[str, ...]
    dry_run: bool = False
    check: bool = False
    fmt: str = "text"
    verbosity: int = 1
    window: Window = field(default_factory=Window)


@dataclass
class Outcome:
    plan: Plan
    exit_code: int
    applied: bool = False
    counts: dict = field(default_factory=dict)
    requests: int = 0


def build_plan(config: Config, resources: tuple[str, ...], window: Window, fetcher: Fetcher | None = None):
    """Fetch Stripe's side, then load ours and diff. Returns (plan, remote snapshot, fetcher)."""
    fetcher = fetcher or Fetcher(config)
    known = known_ids()
    remote = fetch_remote(config, resources, fetcher=fetcher, window=window, known=known)
    local = load_local(resources)
    policy = None
    if "customers" in resources:
        create_map = config.user_create_map
        policy = UserPolicy(
            directory=load_directory(config.user_email_field),
            create_map=create_map,
            validate=make_validator(create_map) if create_map else None,
        )
    return diff(remote, local, known=known, users=policy), remote, fetcher


def execute(options: Options, out: TextIO, err: TextIO, *, fetcher: Fetcher | None = None) -> Outcome:
    """Run one command; raises ReconcileError on errors a person must fix."""
    config = get_config()
    resources = tuple(r for r in ORDER if r in options.resources)
    started = datetime.now(timezone.utc)
    clock = time.monotonic()
    writing = not (options.dry_run or options.check)
    with run_lock() if writing else _nothing():
        plan, remote, fetcher = build_plan(config, resources, options.window, fetcher)
        out.write(render(plan, options.fmt, options.verbosity))
        if not writing:
            code = EXIT_DRIFT if options.check and not plan.in_sync else EXIT_OK
            return Outcome(plan, code, requests=fetcher.requests)
        if not plan.writes:
            return Outcome(plan, EXIT_OK, requests=fetcher.requests)
        with transaction.atomic():
            result = apply_plan(plan, remote.fetched_at, config.batch_size)
            counts = dict(result.counts)
            report = as_dict(plan)
            report["conflicts"] = [{"model": c.model, "id": c.id, "reason": c.reason} for c in result.conflicts]
            SyncRun.objects.create(
                started_at=started,
                finished_at=datetime.now(timezone.utc),
                command=options.command,
                options=_options_json(options),
                outcome="applied" if not result.conflicts else "applied with conflicts",
                counts=counts,
                report=report,
            )
    line = _applied_line(counts, result.conflicts, time.monotonic() - clock)
    (out if options.fmt == "text" else err).write(line)
    return Outcome(plan, EXIT_OK, applied=True, counts=counts, requests=fetcher.requests)


def _applied_line(counts: dict, conflicts: list, seconds: float) -> str:
    done = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(counts.items()) if n) or "nothing"
    lines = [f"Applied: {done} in {seconds:.1f}s."]
    lines += [f"  ! conflict {c.model} {c.id}: {c.reason}" for c in conflicts]
    return "\n".join(lines) + "\n"


def _options_json(options: Options) -> dict:
    return {
        "resources": list(options.resources),
        "format": options.fmt,
        "limit": options.window.limit,
        "starting_after": options.window.starting_after,
    }


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
