"""One run, shared by the management commands and the click CLI.

The steps, in order: lock (a writing run holds it to its end), fetch Stripe's side (no transaction
open), load ours, diff, render the report, save the plan (--plan-out), apply with its audit row in
one transaction. ``--apply-plan`` reads a saved plan instead of fetching, loading and diffing.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from django.db import connection

from .conf import Config, get_config
from .core import planfile
from .core.diff import UserPolicy, diff
from .core.escape import escape
from .core.fingerprint import Fingerprints, Gathered, Part
from .core.plan import CreateUser, LinkUser, Plan, RecreateItems, as_operation, is_record
from .core.prune import LatePruner, Pruner
from .core.registry import BY_NAME, RESOURCES
from .core.report import applied_line, render_chunks
from .core.snapshot import Stamps
from .db.apply import Result, apply_plan
from .db.aside import read_aside
from .db.audit import Audit, audited
from .db.busy import sqlite_busy_timeout
from .db.identity import database_identity
from .db.local import fingerprint_tables, known_ids, load_directory, load_fingerprints, load_local, make_validator
from .db.lock import run_lock
from .db.storable import problem, screen, stored_ids
from .errors import PlanFileError
from .events.incremental import (
    cursor_from_header,
    cursor_header,
    cursor_is_old,
    full_pull_cursor,
    incremental_plan,
    save_cursor,
    save_cursor_alone,
    scoped_state,
)
from .malloc import tune
from .private_file import write_private
from .progress import Progress, make_progress
from .stripe.fetch import Fetcher
from .stripe.remote import Window, fetch_remote

EXIT_OK, EXIT_DRIFT, EXIT_ERROR = 0, 1, 2
EXIT_INTERRUPTED = 130  # Ctrl-C: the shell's convention for SIGINT
GROUPS = tuple(dict.fromkeys(r.group for r in RESOURCES))  # what a command may name, in pipeline order


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
    incremental: bool = False  # read /v1/events since the stored cursor instead of every list

    @classmethod
    def parsed(cls, command: str, resources: tuple[str, ...], given: dict[str, Any]) -> Options:
        """From the options as the command line gave them (``options.OPTIONS``' dests)."""
        return cls(
            command=command,
            resources=resources,
            dry_run=given["dry_run"],
            check=given["check"],
            strict=given["strict"],
            fmt=given["format"],
            verbosity=given["verbosity"],
            window=Window(given.get("limit"), given.get("starting_after")),
            plan_out=given["plan_out"],
            apply_plan=given["apply_plan"],
            progress=given["progress"],
            incremental=given.get("incremental", False),
        )

    @property
    def writing(self) -> bool:
        return not (self.dry_run or self.check or self.plan_out)

    def as_json(self) -> dict[str, Any]:
        """What the audit row keeps of the options."""
        return {
            "resources": list(self.resources),
            "format": self.fmt,
            "limit": self.window.limit,
            "starting_after": self.window.starting_after,
            "apply_plan": self.apply_plan,
            "incremental": self.incremental,
        }


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
    cursor: datetime | None = None  # the event cursor to store with the writes (complete pulls)
    scope: dict | None = None  # an incremental plan's ids: its fingerprint covers only these rows


def execute(options: Options, out: TextIO, err: TextIO, *, fetcher: Fetcher | None = None) -> Outcome:
    """Run one command, step by step; raises ReconcileError on errors a person must fix."""
    run = _Run(options, out, err, fetcher)
    # before the fetch's threads start
    tune(arena_max=run.config.malloc_arena_max, mmap_threshold=run.config.malloc_mmap_threshold)
    busy = sqlite_busy_timeout(run.config.sqlite_busy_timeout)
    with no_cyclic_collection(), busy, contextlib.closing(run.progress), run.lock():
        built = run.read_plan() if options.apply_plan else run.fetch_load_diff()
        run.render(built)
        run.save_plan(built)
        if not (options.writing and built.plan.writes):
            return run.not_applied(built)
        result = run.apply_with_audit(built)
    return run.applied(built, result)


class _Run:
    """The steps of one run, over its options, its streams and its start time."""

    def __init__(self, options: Options, out: TextIO, err: TextIO, fetcher: Fetcher | None):
        self.options, self.out, self.err, self.fetcher = options, out, err, fetcher
        self.config = get_config()
        self.resources = tuple(g for g in GROUPS if g in options.resources)
        self.started, self.clock = datetime.now(timezone.utc), time.monotonic()
        self.planned_for: str | None = None  # a saved plan's database identity
        # Fetching, diffing, then (paused while the report prints) applying; closed when the run ends.
        listed = _listed(self.resources)
        self.progress = Progress() if options.apply_plan else make_progress(err, listed, options.progress)

    def lock(self):
        """One writing run at a time, held from the fetch to the end of the apply."""
        return run_lock() if self.options.writing else contextlib.nullcontext()

    def fetch_load_diff(self) -> Built:
        if self.options.incremental:
            inc = incremental_plan(self.config, self.fetcher, self.progress, self.options, self.err)
            if inc is not None:
                return Built(inc.plan, inc.fetched_at, inc.state, inc.requests, inc.cursor, inc.scope)
        return build_plan(
            self.config,
            self.resources,
            self.options.window,
            fetcher=self.fetcher,
            progress=self.progress,
            fingerprint=bool(self.options.plan_out),
        )

    def read_plan(self) -> Built:
        path = self.options.apply_plan
        try:
            text = Path(path).read_text()
        except (OSError, ValueError) as exc:
            raise PlanFileError(f"Cannot read the plan file {path}: {exc}") from None
        header, plan, fetched_at = planfile.loads(text, path)
        if tuple(header["resources"]) != self.resources:
            raise PlanFileError(
                f"The plan file {path} was made by {header['command']} for {', '.join(header['resources'])}; "
                f"apply it with that command."
            )
        self.planned_for = header.get("database")
        cursor, scope = cursor_from_header(header)
        return Built(plan, fetched_at, header["database_fingerprint"], 0, cursor, scope)

    def render(self, built: Built) -> None:
        self.progress.pause()  # the report goes to stdout undisturbed
        for chunk in render_chunks(built.plan, self.options.fmt, self.options.verbosity):
            self.out.write(chunk)

    def save_plan(self, built: Built) -> None:
        path = self.options.plan_out
        if path:
            text = planfile.dumps(
                built.plan,
                command=self.options.command,
                resources=self.resources,
                state=built.state,
                fetched_at=plan_times(built.plan, built.fetched_at),
                database=database_identity(),
                extra=cursor_header(built.cursor, built.scope),
            )
            write_private(Path(path), text.encode())
            self.err.write(f"Saved the plan to {path}; apply it with --apply-plan {path}.\n")

    def not_applied(self, built: Built) -> Outcome:
        plan, options = built.plan, self.options
        if options.writing and built.cursor is not None and (built.scope is not None or cursor_is_old(built.cursor)):
            save_cursor_alone(built.cursor, options.command)  # nothing else to write: the cursor alone
        drift = not plan.in_sync or (options.strict and bool(plan.operations))
        return Outcome(plan, EXIT_DRIFT if options.check and drift else EXIT_OK, requests=built.requests)

    def apply_with_audit(self, built: Built) -> Result:
        """One transaction: (for a saved plan) the database is as it was planned, the apply, the audit row."""
        self.progress.phase("applying")
        with audited(Audit(self.started, self.options.command, self.options.as_json(), built.plan)) as audit:
            if self.options.apply_plan:
                self.check_state(built.state, built.scope)
            audit.result = apply_plan(built.plan, built.fetched_at, self.config.batch_size)
            if built.cursor is not None:  # the event cursor moves with the writes
                save_cursor(built.cursor, self.options.command)
        return audit.result

    def check_state(self, state: str, scope: dict | None = None) -> None:
        if self.planned_for != database_identity():
            raise PlanFileError(
                f"The plan in {self.options.apply_plan} was made for another database (another file, server or "
                "database name), and applies only to the one it was made against. Nothing was applied. Make a "
                "new plan with --dry-run --plan-out."
            )
        # an incremental plan depends on the rows of its ids only
        found = scoped_state(scope, self.config) if scope is not None else _fingerprint(self.config, self.resources)
        if found != state:
            raise PlanFileError(
                f"The database changed since the plan in {self.options.apply_plan} was made, so that plan may "
                "no longer be right. Nothing was applied. Make a new plan with --dry-run --plan-out."
            )

    def applied(self, built: Built, result: Result) -> Outcome:
        lines = [applied_line(result.counts, time.monotonic() - self.clock)]
        lines += [escape(f"  ! conflict {c.model} {c.id}: {c.reason}") for c in result.conflicts]
        (self.out if self.options.fmt == "text" else self.err).write("\n".join(lines) + "\n")
        return Outcome(built.plan, EXIT_OK, applied=True, counts=dict(result.counts), requests=built.requests)


def build_plan(
    config: Config,
    resources: tuple[str, ...],
    window: Window,
    *,
    fetcher: Fetcher | None = None,
    progress: Progress | None = None,
    fingerprint: bool = False,
) -> Built:
    """Load ours, fetch Stripe's side (no transaction open; records equal to their row are dropped
    as they arrive), read again the rows still compared, and diff."""
    fetcher = fetcher or Fetcher(config)
    known = known_ids()
    prune, read_stored = _stored_side(config, resources, known, fetcher)
    remote = fetch_remote(
        config, resources, fetcher=fetcher, window=window, known=known, progress=progress, prune=prune, check=problem
    )
    before = read_stored()
    (progress or Progress()).phase("diffing")
    # The rows still compared are read again: a webhook may have written them during the fetch,
    # and the diff's lost-write guard needs their latest sync time.
    local, directory = _local_side(config, resources, _still_compared(remote, before))
    collation = connection.vendor == "mysql"
    stored = stored_ids(before, known) if collation else {}  # the screen's collation rule alone reads it
    del before, prune
    remote = screen(remote, stored, collation=collation, local=local)
    policy = None
    if directory is not None:
        create_map = config.user_create_map
        policy = UserPolicy(directory, create_map, make_validator(create_map) if create_map else None)
    plan = diff(remote, local, known=known, users=policy)
    state = _fingerprint(config, resources) if fingerprint else ""
    whole = set(resources) == set(GROUPS) and not window.active
    cursor = full_pull_cursor(remote.listed_at) if whole and remote.listed_at else None
    return Built(plan, stamps(plan, remote), state, fetcher.requests, cursor)


def _stored_side(config: Config, resources: tuple[str, ...], known, fetcher: Fetcher):
    """The prune of a re-pull and, to call once the fetch has ended, the stored fingerprints it
    compared with (none and empty on a first pull). The fingerprints are read table by table by a
    child process while this one fetches (db/aside.py), records compared as their table arrives;
    where no child can be made, they are read here first."""
    if not (known.products or known.prices or known.customers):  # nothing is stored (a first pull)
        return None, Fingerprints
    directory, create = _directory(config, resources), bool(config.user_create_map)
    gathered = Gathered()

    def arrive(part: Part) -> None:
        if gathered.add(part):  # a table whole: its records are compared from now on
            found = gathered.fingerprints()
            late.arrive(Pruner(found, directory, create), (BY_NAME[name].model for name in gathered.whole))

    def settle() -> None:
        nonlocal gathered
        if pending is not None and not pending.result():  # the child failed (``why``): read here
            gathered = Gathered()
            for part in fingerprint_tables(resources, known):
                arrive(part)

    late = LatePruner(settle, stop=fetcher.cancelled)
    pending = None
    if config.read_stored_in_child:
        pending = read_aside(fingerprint_tables, resources, known, then=arrive, failed=late.give_up)
    if pending is None:
        before = load_fingerprints(resources, known)
        return Pruner(before, directory, create), lambda: before
    return late, lambda: gathered.fingerprints()


REREAD_LIMIT = 5_000  # ids per table read again by id; more, and the whole table is read (one query)


def _still_compared(remote, before) -> dict[str, set[str]] | None:
    """The stored ids the diff still needs, by resource: those Stripe listed and the prune kept, and
    those a whole listing did not return (marked deleted or orphaned). None: read everything. (A
    row first written during the fetch is not read: the apply's guard finds it and updates it
    instead of inserting it twice. Nor is an id no database can hold, such as one with a NUL.)"""
    wanted: dict[str, set[str]] = {}
    for resource in RESOURCES:
        theirs = getattr(remote, resource.name)
        ours = getattr(before, resource.name)
        ids = {oid for oid in theirs if oid in ours}  # no set of every stored id: one pass over them
        if resource.name in remote.complete:
            unchanged = remote.unchanged.get(resource.name, frozenset())
            ids.update(oid for oid in ours if oid not in theirs and oid not in unchanged)
        if len(ids) > REREAD_LIMIT:
            return None
        wanted[resource.name] = ids
    return wanted


def stamps(plan: Plan, remote) -> Stamps:
    """When Stripe's data behind each write was read, where its record does not say so itself (the
    apply reads a record's own ``fetched_at``): a customer's link, a subscription's recreated items,
    a row marked deleted (absent from a listing: the time the listing began). A table of its own,
    so that the snapshot's dicts of records (10 MiB at N=100,000) go with the snapshot once the plan
    is made; the plan's operations keep the records they write."""
    found, fetched, listed_at = Stamps(), remote.fetched_at, remote.listed_at
    # A time set by key wins over a record's own; a fetch sets none, and then a first pull's
    # 200,000 creates (records, in the plan: ``Operations``) are passed over without a look-up.
    by_key = not isinstance(fetched, Stamps) or fetched.set_by_key
    writes = plan.writes
    for entry in getattr(writes, "entries", writes):
        if not by_key and is_record(entry) and entry.fetched_at is not None:
            continue  # a create held as its record, which carries its time
        op = as_operation(entry)
        own = getattr(getattr(op, "record", None), "fetched_at", None)
        for key in _rows_of(op):
            at = fetched.get(key)
            if own is not None and (at is None or at == own):
                continue  # the record's own time is the one
            at = at or listed_at
            if at is not None:
                found[key] = at
    return found


def _rows_of(op) -> tuple[tuple[str, str], ...]:
    """The rows whose guard reads an operation's time: a user's customers, items' subscription."""
    if isinstance(op, RecreateItems):
        return (("Subscription", op.id),)
    if isinstance(op, LinkUser | CreateUser):
        return tuple(("StripeUser", cid) for cid in (op.customer_id, *getattr(op, "also_link", ())))
    return ((op.model, op.id),)


def plan_times(plan: Plan, times: Mapping[tuple[str, str], datetime]) -> dict:
    """Every write's time, by (model, id): ``times`` and the records' own, for a plan file."""
    found = dict(times.items())
    for op in plan.writes:
        at = getattr(getattr(op, "record", None), "fetched_at", None)
        if at is not None:
            found.setdefault((op.model, op.id), at)
    return found


def _listed(resources: tuple[str, ...]) -> tuple[str, ...]:
    """The listings a run walks, for the progress display ("products" lists prices too)."""
    return tuple(r.name for r in RESOURCES if r.group in resources)


def _local_side(config: Config, resources: tuple[str, ...], only: dict[str, set[str]] | None = None):
    """The stored records (with ``only``, just those ids), and the users by email."""
    return load_local(resources, only), _directory(config, resources)


def _directory(config: Config, resources: tuple[str, ...]):
    """The users by email, when customers may be created or linked (a subscriptions run records the
    customers its subscriptions need)."""
    if "customers" in resources or "subscriptions" in resources:
        return load_directory(config.user_email_field, link_privileged=config.link_privileged_users)
    return None


def _fingerprint(config: Config, resources: tuple[str, ...]) -> str:
    """The state a saved plan depends on: every stored row of its tables. A subscriptions plan also
    creates the customers, prices and products its subscriptions need, so its fingerprint covers
    those tables too."""
    wider = GROUPS if "subscriptions" in resources else resources
    local, directory = _local_side(config, wider)
    return planfile.fingerprint(local, directory)


@contextlib.contextmanager
def no_cyclic_collection():
    """The cyclic garbage collector off for the run, and back as it was after.

    A run allocates hundreds of thousands of long-lived records and frees them by reference
    counting: the collector looks at each of them again and again and finds next to nothing. In
    a first pull of N=100,000 (the bench's account, ``gc.callbacks`` around each collection) it
    made 36 young and 3 middle passes, 0.54 s of the run's 9.9 s, and freed 80 objects in all
    (earlier rounds had raised its thresholds: at the defaults it took a third of a large fetch).

    Turned back on, it would scan at once every object the run allocated that is still alive
    (0.31 s there): the run's survivors go to the oldest generation instead, as if they had
    survived the young passes, by ``gc.freeze()`` then ``gc.unfreeze()`` (which move lists and
    reset the young count, without a scan). Not when something else has frozen objects (a server
    that freezes before it forks, so that its children share those pages): they stay frozen.
    Of runs overlapping in one process, the one that found the collector on turns it back on."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:
            gc.freeze()
            gc.unfreeze()
        if was_on:
            gc.enable()
