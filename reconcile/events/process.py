"""One Stripe event through the pull's engine: a small remote snapshot of the object it names,
the stored rows of those ids, the same diff, lost-write guard, apply and audit.

Stripe is called (a re-fetch, the subscription's unknown customer or price) before the
transaction opens; the writes and the event's log entry share one transaction.

Ordering. Stripe delivers at least once and in no set order, and an event's ``created`` has a
one-second resolution. A row written from an event gets ``synced_at`` = the end of that second
(the latest instant the event may describe), so that a pull whose page was fetched within the
same second never overwrites it. An event is stale when the stored row was synced after the end
of its second. When the row was synced within the event's own second the order cannot be told
from the timestamps: the object is re-fetched from Stripe (one request). A re-fetched object is
newer than the row as it was before the request; it is written only if the row did not change
meanwhile (else it is fetched again). The checks are made again under the row's lock, so
concurrent deliveries of one object's events serialise correctly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from django.contrib.auth import get_user_model
from django.db import DatabaseError, IntegrityError, OperationalError
from django.db.models import Q

from ..conf import Config, get_config
from ..core.diff import UserPolicy, diff
from ..core.plan import Plan, RecreateItems, Skip
from ..core.registry import PRICES
from ..core.report import as_dict
from ..core.snapshot import SOFT_DELETED, KnownIds, Snapshot
from ..core.users import UserDirectory, normalize_email
from ..db.apply import apply_plan
from ..db.events import event_transaction, newest, synced_query
from ..db.events import stamp as stamp_rows
from ..db.local import load_local, make_validator
from ..errors import FetchError, ReconcileError
from ..models import Price, Product, StripeUser, Subscription
from ..stripe.fetch import Fetcher
from ..stripe.remote import snapshot_of
from .models import Outcome
from .settings import event_settings

log = logging.getLogger("reconcile.events")

_SUBSCRIPTION = (
    "created",
    "updated",
    "deleted",
    "paused",
    "resumed",
    "pending_update_applied",
    "pending_update_expired",
    "trial_will_end",
)
HANDLED: dict[str, str] = {
    **{f"product.{k}": "Product" for k in ("created", "updated", "deleted")},
    **{f"price.{k}": "Price" for k in ("created", "updated", "deleted")},
    **{f"customer.{k}": "StripeUser" for k in ("created", "updated", "deleted")},
    **{f"customer.subscription.{k}": "Subscription" for k in _SUBSCRIPTION},
}
RESOURCE = {"Product": "products", "Price": "prices", "StripeUser": "customers", "Subscription": "subscriptions"}
MODELS = {"Product": Product, "Price": Price, "StripeUser": StripeUser, "Subscription": Subscription}
_SECOND, _TICK = timedelta(seconds=1), timedelta(microseconds=1)
RECORDS = ("products", "prices", "customers", "subscriptions")  # the snapshot's maps an event may fill
_GROUPS = {"products": ("products", "prices"), "customers": ("customers",), "subscriptions": ("subscriptions",)}
_ATTEMPTS = 5  # an ambiguous order, a concurrent insert of the row, a deadlock: processed again


def stamp_of(created: int) -> datetime:
    """The latest instant an event created at ``created`` (whole seconds) may describe."""
    return datetime.fromtimestamp(created, tz=timezone.utc) + _SECOND - _TICK


@dataclass(frozen=True)
class Processed:
    outcome: str
    report: dict
    error: str = ""


Record = Callable[[Processed], None]  # writes the event's log entry (inside the transaction)


def stored_ids(products: set[str], prices: set[str], customers: set[str]) -> KnownIds:
    """Which of these referenced ids are stored: three small queries, not the whole tables."""
    return KnownIds(
        products=frozenset(Product.objects.filter(pk__in=products).values_list("pk", flat=True)),
        prices=frozenset(Price.objects.filter(pk__in=prices).values_list("pk", flat=True)),
        customers=frozenset(StripeUser.objects.filter(pk__in=customers).values_list("pk", flat=True)),
    )


def emails_of(remote: Snapshot) -> list[str]:
    return sorted({normalize_email(c.email) for c in remote.customers.values()} - {None})


def _directory(remote: Snapshot, email_field: str) -> UserDirectory:
    """The users whose email matches one of the snapshot's customers."""
    return directory_for(emails_of(remote), email_field)


def directory_for(emails: list[str], email_field: str) -> UserDirectory:
    """The users with one of these (normalised) emails: one query."""
    if not emails:
        return UserDirectory()
    query = Q()
    for email in emails:
        query |= Q(**{f"{email_field}__iexact": email})
    found: dict[str, list] = {}
    for pk, email in get_user_model().objects.filter(query).values_list("pk", email_field):
        found.setdefault(normalize_email(email), []).append(pk)
    return UserDirectory({k: tuple(v) for k, v in found.items() if k})


def _policy(remote: Snapshot, config: Config) -> UserPolicy | None:
    if not remote.customers:
        return None
    create_map = config.user_create_map
    return UserPolicy(
        _directory(remote, config.user_email_field), create_map, make_validator(create_map) if create_map else None
    )


@dataclass(frozen=True)
class _Target:
    model: str
    obj: dict
    stamp: datetime
    deleted: bool
    created: datetime | None  # the start of the event's second; None when the object was re-fetched
    seen: datetime | None = None  # re-fetched: the row's synced_at read before the request


class _Again(Exception):
    """The stored row changed in a way that leaves the order unknown: re-fetch and try again."""


def _target(event: dict, fetcher: Fetcher, mode: str) -> _Target | Processed:
    """What to reconcile, or the outcome when there is nothing to do."""
    model = HANDLED.get(event.get("type", ""))
    if model is None:
        return Processed(Outcome.IGNORED, {})
    obj = event["data"]["object"]
    oid, stamp = obj["id"], stamp_of(event["created"])
    created = stamp - _SECOND + _TICK
    deleted = event["type"].endswith(".deleted") and model in SOFT_DELETED
    synced = last_synced(model, oid)
    if synced is not None and synced > stamp:
        return Processed(Outcome.STALE, {"reason": f"the stored row was synced at {synced.isoformat()}"})
    # A price's payload lacks the fields Stripe sends only when expanded (tiers, currency options):
    # a price is always read from Stripe, with them.
    if mode != "refetch" and model != "Price" and (synced is None or synced < created):
        return _Target(model, obj, stamp, deleted, created)
    query = {"expand": [p.removeprefix("data.") for p in PRICES.expand]} if model == "Price" and PRICES.expand else None
    try:
        body, requested_at = fetcher.get(f"/v1/{RESOURCE[model]}/{oid}", query)
    except FetchError as exc:
        if exc.status != 404 or model not in SOFT_DELETED:
            raise
        body, requested_at = {"deleted": True}, datetime.now(timezone.utc)
    deleted = bool(body.get("deleted")) and model in SOFT_DELETED
    # Read after the stored row was written (checked again under the lock): at least as new as it,
    # so it takes at least its stamp (which may be the end of the second an event was created in).
    stamp = max(requested_at, synced) if synced is not None else requested_at
    return _Target(model, obj if deleted else body, stamp, deleted, None, synced)


def last_synced(model: str, oid: str) -> datetime | None:
    """When the row was last written from Stripe data; for a subscription, its items count too
    (a change of quantity rewrites the items only)."""
    return newest(synced_query(MODELS[model], oid).first())


def _outcome(plan: Plan, result, oid: str) -> Processed:
    """Failed when the event's own object was skipped (a reference Stripe no longer has: a later
    redelivery may succeed); stale when a newer row was kept; duplicate when nothing was written."""
    report = as_dict(plan)
    report["conflicts"] = [{"model": c.model, "id": c.id, "reason": c.reason} for c in result.conflicts]
    skips = [op for op in plan.operations if isinstance(op, Skip) and op.id == oid]
    skips += [c for c in result.conflicts if c.id == oid]
    refused = [s for s in skips if "kept" not in s.reason]
    if refused:
        return Processed(Outcome.FAILED, report, refused[0].reason)
    if skips:
        return Processed(Outcome.STALE, report)
    if any(result.counts.values()):
        return Processed(Outcome.APPLIED, report)
    return Processed(Outcome.DUPLICATE, report)


def _check_order(target: _Target, synced: datetime | None) -> None:
    """Under the row lock: data from an event's payload is applied only over a row synced before
    the event's second; re-fetched data only over the row as it was before the request. Otherwise
    the order cannot be told (a concurrent delivery wrote meanwhile): fetch again."""
    if target.created is None:
        if synced != target.seen:
            raise _Again()
    elif synced is not None and target.created <= synced <= target.stamp:
        raise _Again()


def _stamp_recreated(plan: Plan, remote: Snapshot) -> None:
    """A subscription whose items alone changed is stamped too, so that a pull's lost-write guard
    (which reads the subscription's ``synced_at``) keeps the newer items."""
    for op in plan.writes:
        if isinstance(op, RecreateItems):
            at = remote.fetched_at.get(("Subscription", op.id))
            if at is not None:
                stamp_rows(Subscription, [op.id], at)


def _apply(remote: Snapshot, target: _Target, config: Config, record: Record | None) -> Processed:
    oid = target.obj["id"]
    only = {r: set(getattr(remote, r)) for r in RECORDS}
    with event_transaction(MODELS[target.model], oid) as synced:
        _check_order(target, synced)
        groups = [g for g, names in _GROUPS.items() if any(getattr(remote, n) for n in names)]
        local = load_local(groups, only=only)
        known = stored_ids(
            {p.product_id for p in remote.prices.values()},
            {i.price_id for s in remote.subscriptions.values() for i in s.items},
            {s.customer_id for s in remote.subscriptions.values()},
        )
        plan = diff(remote, local, known=known, users=_policy(remote, config))
        # No savepoint: any error leaves the whole event's transaction (and is retried or recorded).
        result = apply_plan(plan, remote.fetched_at, config.batch_size, savepoint=False)
        _stamp_recreated(plan, remote)
        processed = _outcome(plan, result, oid)
        if processed.outcome == Outcome.DUPLICATE:
            # The row already held this state: it is now known good as of the event, which the
            # ordering checks of a later delivery (of an older event of the same second) must see.
            stamp_rows(MODELS[target.model], [oid], target.stamp)
        if record is not None:
            record(processed)
    return processed


def _attempt(event: dict, config: Config, fetcher: Fetcher, mode: str, record: Record | None) -> Processed:
    target = _target(event, fetcher, mode)
    if isinstance(target, Processed):
        if record is not None:
            record(target)
        return target
    remote = snapshot_of(config, fetcher, [(target.model, target.obj, target.stamp, target.deleted)], stored_ids)
    rejected = [r for r in remote.rejected if r.id == target.obj.get("id")]
    if rejected:
        processed = Processed(Outcome.FAILED, {}, rejected[0].reason)
        if record is not None:
            record(processed)
        return processed
    return _apply(remote, target, config, record)


def process(event: dict, *, record: Record | None = None, fetcher: Fetcher | None = None) -> Processed:
    """Reconcile the object one event names; ``record`` writes the log entry in the same transaction.

    Errors (Stripe unreachable, a database error) come back as a failed outcome, recorded apart.
    """
    config = get_config()
    mode = event_settings().mode
    try:
        fetcher = fetcher or shared_fetcher(config)
        for attempt in range(_ATTEMPTS):
            try:
                processed = _attempt(event, config, fetcher, mode, record)
                break
            except _Again:
                mode = "refetch"
            except (IntegrityError, OperationalError):  # a concurrent insert of the row, a deadlock
                if attempt == _ATTEMPTS - 1:
                    raise
        else:
            raise ReconcileError("the stored row stays newer than Stripe's answers (clocks apart?); retry later")
    except (ReconcileError, DatabaseError, KeyError, TypeError, ValueError) as exc:
        processed = Processed(Outcome.FAILED, {}, f"{type(exc).__name__}: {exc}")
        if record is not None:
            record(processed)
    _log(event, processed)
    return processed


def _log(event: dict, processed: Processed) -> None:
    # ids, types and outcomes only: never payloads (emails) nor secrets at INFO and above.
    summary = processed.report.get("summary") or {}
    counts = ", ".join(f"{n} {k}" for k, n in sorted(summary.items()) if n) or "no operation"
    level = logging.WARNING if processed.outcome == Outcome.FAILED else logging.INFO
    log.log(level, "event %s %s: %s (%s)", event.get("id"), event.get("type"), processed.outcome, counts)


_FETCHERS: dict[tuple, Fetcher] = {}


def shared_fetcher(config: Config) -> Fetcher:
    """One client per process and settings: a webhook should not build a Stripe client per request."""
    key = (config.api_key, config.api_base, config.api_version, config.timeout, config.max_retries)
    fetcher = _FETCHERS.get(key)
    if fetcher is None:
        fetcher = _FETCHERS[key] = Fetcher(config)
    return fetcher
