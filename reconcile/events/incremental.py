"""Incremental pulls: read ``/v1/events`` since the stored cursor and reconcile only what changed.

The newest event per object becomes a small remote snapshot (as a webhook would), diffed against
the stored rows of those ids with the pull's diff: the plan, report, plan file and apply are a
pull's. Requests grow with the changes: one page per 100 events, plus the referenced objects
neither stored nor in the events. The cursor moves in the same transaction as the writes.

The cursor: a complete ``pull_stripe`` stores the time its fetch began minus
``EVENTS_CURSOR_MARGIN`` (events can show up in the list a moment after their ``created``); an
incremental run stores the time its own listing began minus the margin. Events older than
Stripe's retention (30 days) cannot be read: a cursor that old, or none, means a full pull.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ..conf import Config
from ..core import planfile
from ..core.diff import diff
from ..core.plan import Plan
from ..db import events as db_events
from ..db.local import load_local
from ..progress import Progress
from ..stripe.fetch import Fetcher
from ..stripe.remote import snapshot_of
from .models import EventCursor
from .process import HANDLED, RECORDS, RESOURCE, _policy, directory_for, emails_of, stamp_of, stored_ids
from .settings import event_settings

RETENTION = timedelta(days=30)  # Stripe keeps events this long
TYPES = tuple(sorted(HANDLED))  # 17: under the 20 types[] Stripe accepts


def load_cursor() -> datetime | None:
    return EventCursor.objects.filter(name="events").values_list("created", flat=True).first()


def cursor_problem(cursor: datetime | None, now: datetime | None = None) -> str | None:
    """Why an incremental pull cannot start from ``cursor``, or None."""
    now = now or datetime.now(timezone.utc)
    if cursor is None:
        return "No event cursor is stored yet (no complete pull_stripe has run)"
    if cursor < now - RETENTION:
        return (
            f"The event cursor ({cursor:%Y-%m-%d %H:%M:%S} UTC) is older than Stripe's 30 days of events, "
            "so changes since may be missing"
        )
    return None


def save_cursor(created: datetime, source: str) -> None:
    """Store the cursor, never moving it back; call inside the run's transaction."""
    db_events.save_cursor(created, source, load_cursor())


def save_cursor_alone(created: datetime, source: str) -> None:
    """Store the cursor in a transaction of its own (a run that wrote nothing else)."""
    db_events.save_cursor_alone(created, source, load_cursor())


def cursor_is_old(new: datetime) -> bool:
    """A pull that changes nothing moves the cursor only when it is a day behind (one read, no
    write): a no-op pull stays write-free, and the cursor never nears Stripe's 30 days."""
    stored = load_cursor()
    return stored is None or stored < new - timedelta(days=1)


def full_pull_cursor(listed_at: datetime) -> datetime:
    return listed_at - timedelta(seconds=event_settings().cursor_margin)


@dataclass
class Changes:
    """The newest event per object since the cursor."""

    objects: list[tuple[str, dict, datetime, bool]]
    events: int
    began: datetime


def read_events(fetcher: Fetcher, cursor: datetime, progress: Progress) -> Changes:
    began = datetime.now(timezone.utc)
    params = {"created": {"gt": int(cursor.timestamp())}, "types": list(TYPES)}
    newest: dict[tuple[str, str], tuple[str, dict, datetime, bool]] = {}
    count = 0
    for page in fetcher.pages("/v1/events", params):
        progress.page("events", len(page.data))
        for event in page.data:  # newest first: the first event seen of an object is its latest
            count += 1
            model = HANDLED.get(event.get("type"))
            obj = (event.get("data") or {}).get("object") or {}
            if model is None or not isinstance(obj.get("id"), str) or (model, obj["id"]) in newest:
                continue
            deleted = event["type"].endswith(".deleted") and model != "Subscription"
            newest[(model, obj["id"])] = (model, obj, stamp_of(event["created"]), deleted)
    return Changes(list(newest.values())[::-1], count, began)


@dataclass
class IncrementalBuilt:
    plan: Plan
    fetched_at: dict
    state: str
    requests: int
    cursor: datetime
    scope: dict  # {resource: ids} the plan was computed over (the plan file's fingerprint covers these)


def build_incremental(
    config: Config, cursor: datetime, fetcher: Fetcher, progress: Progress, fingerprint: bool
) -> IncrementalBuilt:
    changes = read_events(fetcher, cursor, progress)
    remote = snapshot_of(config, fetcher, changes.objects, stored_ids)
    progress.phase("diffing")
    scope = {r: sorted(getattr(remote, r)) for r in RECORDS} | {"emails": emails_of(remote)}
    local = load_local(("products", "customers", "subscriptions"), only=scope)
    known = stored_ids(
        {p.product_id for p in remote.prices.values()},
        {i.price_id for s in remote.subscriptions.values() for i in s.items},
        {s.customer_id for s in remote.subscriptions.values()},
    )
    policy = _policy(remote, config)
    plan = diff(remote, local, known=known, users=policy)
    directory = directory_for(scope["emails"], config.user_email_field) if remote.customers else None
    state = planfile.fingerprint(local, directory) if fingerprint else ""
    new_cursor = max(cursor, full_pull_cursor(changes.began))
    return IncrementalBuilt(plan, dict(remote.fetched_at), state, fetcher.requests, new_cursor, scope)


def scoped_state(scope: dict, config: Config) -> str:
    """The fingerprint of the rows an incremental plan was computed over (to apply its plan file)."""
    local = load_local(("products", "customers", "subscriptions"), only=scope)
    directory = directory_for(scope["emails"], config.user_email_field) if scope.get("customers") else None
    return planfile.fingerprint(local, directory)


def incremental_plan(config: Config, fetcher, progress: Progress, options, err) -> IncrementalBuilt | None:
    """The incremental run's plan, or None (said on ``err``) when it must be a full pull."""
    cursor = load_cursor()
    problem = cursor_problem(cursor)
    if problem:
        err.write(f"{problem}: doing a full pull instead.\n")
        return None
    return build_incremental(config, cursor, fetcher or Fetcher(config), progress, bool(options.plan_out))


def cursor_header(cursor: datetime | None, scope: dict | None) -> dict:
    """What a plan file keeps of the cursor and scope, so that applying it moves the cursor too."""
    return {"event_cursor": cursor.isoformat() if cursor else None, "scope": scope}


def cursor_from_header(header: dict) -> tuple[datetime | None, dict | None]:
    raw = header.get("event_cursor")
    return (datetime.fromisoformat(raw) if raw else None), header.get("scope")


__all__ = ["RESOURCE", "build_incremental", "cursor_problem", "load_cursor", "save_cursor", "scoped_state"]
