"""The events' writes: the event log, the incremental cursor, the per-event transaction and stamps.

Kept here with the other writes (reconcile/db is the only package that writes): the events
package decides what to write, these functions write it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone

from django.db import IntegrityError, connection, models, transaction
from django.db.models import F, OuterRef, Q, QuerySet, Subquery, Value

from ..events.models import EventCursor, Outcome, StripeEvent
from ..models import Subscription, SubscriptionItem


def synced_query(model: type[models.Model], oid: str) -> QuerySet:
    """``(synced_at, items' latest synced_at)`` of one row: a subscription's items count too (a
    change of quantity rewrites the items only). A subquery, not a join and an aggregate, so that
    the same statement can also lock the row."""
    rows = model.objects.filter(pk=oid)
    if model is not Subscription:
        return rows.values_list("synced_at", Value(None, output_field=models.DateTimeField()))
    items = SubscriptionItem.objects.filter(subscription=OuterRef("pk")).order_by(F("synced_at").desc(nulls_last=True))
    return rows.values_list("synced_at", Subquery(items.values("synced_at")[:1]))


def newest(found: tuple | None) -> datetime | None:
    return max((t for t in found or () if t is not None), default=None)


@contextlib.contextmanager
def event_transaction(model: type[models.Model], oid: str) -> Iterator[datetime | None]:
    """One event's transaction; the event's row is locked first (``SELECT ... FOR UPDATE`` where
    the database has it), so events of one object are applied one after the other. Yields the
    row's last ``synced_at`` read by that same statement (None: no row)."""
    with transaction.atomic():
        yield newest(synced_query(model, oid).select_for_update().first())


def stamp(model: type[models.Model], ids: Iterable[str], at: datetime) -> None:
    """Set ``synced_at`` to ``at`` where it is older (or unset)."""
    older = Q(synced_at__lt=at) | Q(synced_at__isnull=True)
    model.objects.filter(older, pk__in=list(ids)).update(synced_at=at)


def store_event(event: dict, source: str) -> tuple[StripeEvent, bool]:
    """Store the event once; (row, True) the first time, (stored row, False) for a redelivery."""
    # In autocommit the INSERT is its own transaction (a duplicate fails alone): no BEGIN/COMMIT.
    guard = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
    try:
        with guard:
            row = StripeEvent.objects.create(
                id=event["id"],
                type=event["type"],
                created=datetime.fromtimestamp(event["created"], tz=timezone.utc),
                received_at=datetime.now(timezone.utc),
                source=source,
                api_version=event.get("api_version"),
                livemode=bool(event.get("livemode")),
                object_id=event["data"]["object"]["id"],
                payload=event,
            )
        return row, True
    except IntegrityError:
        StripeEvent.objects.filter(pk=event["id"]).update(deliveries=F("deliveries") + 1)
        return StripeEvent.objects.get(pk=event["id"]), False


def record_outcome(event_id: str, outcome: str, report: dict, error: str) -> None:
    StripeEvent.objects.filter(pk=event_id).update(
        outcome=outcome,
        report=report,
        error=error,
        processed_at=datetime.now(timezone.utc),
        attempts=F("attempts") + 1,
    )


def prune_events(before: datetime) -> int:
    deleted, _ = StripeEvent.objects.filter(received_at__lt=before).exclude(outcome=Outcome.PENDING).delete()
    return deleted


def save_cursor(created: datetime, source: str, stored: datetime | None) -> None:
    """Store the cursor, never moving it back (``stored``: the cursor read before; one write).
    Call inside the run's transaction; only writing runs store it, holding the run lock."""
    values = {"created": created, "updated_at": datetime.now(timezone.utc), "source": source}
    if stored is None:
        EventCursor.objects.bulk_create([EventCursor(name="events", **values)], ignore_conflicts=True)
    elif stored < created:
        EventCursor.objects.filter(name="events", created__lt=created).update(**values)


def save_cursor_alone(created: datetime, source: str, stored: datetime | None) -> None:
    """``save_cursor`` in a transaction of its own (a run that wrote nothing else)."""
    with transaction.atomic():
        save_cursor(created, source, stored)
