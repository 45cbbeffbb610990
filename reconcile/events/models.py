"""The event log (one row per Stripe event received, by webhook or by an incremental pull) and
the incremental pull's cursor. Imported by ``reconcile.models`` so Django registers them."""

from __future__ import annotations

from django.db import models


class Outcome(models.TextChoices):
    PENDING = "pending", "pending"  # stored, not processed yet (queued, or the process died)
    APPLIED = "applied", "applied"  # its objects were written
    DUPLICATE = "duplicate", "duplicate"  # nothing to write: the database already held this state
    STALE = "stale", "stale"  # older than the stored rows: changed nothing
    IGNORED = "ignored", "ignored"  # a type reconcile does not handle
    FAILED = "failed", "failed"  # an error; see ``error``, retry with ``stripe_events retry``


class StripeEvent(models.Model):
    id = models.CharField(max_length=255, primary_key=True, help_text="Stripe's event id (evt_...).")
    type = models.CharField(max_length=100, db_index=True)
    created = models.DateTimeField(db_index=True, help_text="When Stripe created the event.")
    received_at = models.DateTimeField(db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=16, default="webhook", help_text="webhook or incremental pull.")
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.PENDING, db_index=True)
    deliveries = models.PositiveIntegerField(default=1, help_text="Times Stripe delivered this event.")
    attempts = models.PositiveIntegerField(default=0, help_text="Times reconcile processed it.")
    api_version = models.CharField(max_length=64, null=True, blank=True)
    livemode = models.BooleanField(default=False)
    object_id = models.CharField(max_length=255, null=True, blank=True, db_index=True)
    payload = models.JSONField(default=dict, blank=True, help_text="The event as received (to process or retry).")
    report = models.JSONField(default=dict, blank=True, help_text="The operations applied (reconcile.plan/v1).")
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created", "-received_at"]
        verbose_name = "Stripe event"

    def __str__(self) -> str:
        return f"{self.id} {self.type} ({self.outcome})"


class EventCursor(models.Model):
    """Where the next incremental pull starts reading /v1/events (``created[gt]``)."""

    name = models.CharField(max_length=32, primary_key=True, default="events")
    created = models.DateTimeField(help_text="Events created after this are read next time.")
    updated_at = models.DateTimeField()
    source = models.CharField(max_length=32, help_text="The run that stored it.")

    def __str__(self) -> str:
        return f"{self.name}: after {self.created:%Y-%m-%d %H:%M:%S}"
