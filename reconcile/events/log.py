"""The event log: store an event once (unique on Stripe's id), process it, record the outcome.

An event is stored (outcome ``pending``) before it is processed, so a crash in between loses
nothing: ``stripe_events process-pending`` (or the periodic Celery task) picks it up again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from ..db.events import prune_events, record_outcome, store_event
from .models import Outcome, StripeEvent
from .process import Processed, process

RETRYABLE = (Outcome.FAILED, Outcome.PENDING)


class BadEvent(ValueError):
    """A body that is not a Stripe event (answered 400)."""


def check_shape(event: object) -> dict:
    if not isinstance(event, dict):
        raise BadEvent("the body is not a JSON object")
    if not (isinstance(event.get("id"), str) and event["id"].startswith("evt_")):
        raise BadEvent("no evt_ id")
    if not isinstance(event.get("type"), str) or not isinstance(event.get("created"), int):
        raise BadEvent("no type or created")
    obj = (event.get("data") or {}).get("object") if isinstance(event.get("data"), dict) else None
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        raise BadEvent("no data.object with an id")
    return event


def receive(event: dict, source: str = "webhook") -> tuple[StripeEvent, bool]:
    """Store the event; returns (row, True) the first time, (stored row, False) for a redelivery."""
    return store_event(event, source)


def _recorder(row: StripeEvent):
    def record(processed: Processed) -> None:
        record_outcome(row.pk, processed.outcome, processed.report, processed.error)

    return record


def handle(row: StripeEvent, fetcher=None) -> Processed:
    """Process a stored event and record its outcome (with the writes, in one transaction)."""
    return process(row.payload, record=_recorder(row), fetcher=fetcher)


def handle_id(event_id: str) -> str:
    """Process the stored event ``event_id`` unless it was already processed; returns its outcome."""
    row = StripeEvent.objects.get(pk=event_id)
    if row.outcome not in RETRYABLE:
        return row.outcome
    return handle(row).outcome


def retry(rows: Iterable[StripeEvent]) -> dict[str, int]:
    """Process again, oldest first; returns the count per new outcome."""
    counts: dict[str, int] = {}
    for row in sorted(rows, key=lambda r: (r.created, r.received_at)):
        outcome = handle(row).outcome
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def pending(older_than: float = 60.0):
    """Events stored but not processed for ``older_than`` seconds (their process died, a lost task)."""
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=older_than)
    return StripeEvent.objects.filter(outcome=Outcome.PENDING, received_at__lte=cutoff)


def prune(days: int) -> int:
    """Delete log entries received more than ``days`` days ago; returns how many."""
    return prune_events(datetime.now(timezone.utc) - timedelta(days=days))
