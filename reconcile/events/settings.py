"""The events' settings, read from ``RECONCILE`` (defaults in ``reconcile.conf.DEFAULTS``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core import checks

from ..conf import raw_settings

MODES = ("payload", "refetch")
QUEUES = (None, "celery")


@dataclass(frozen=True)
class EventSettings:
    secrets: tuple[str, ...] = field(repr=False)
    tolerance: int
    mode: str
    queue: str | None
    max_bytes: int
    retention_days: int
    cursor_margin: int


def event_settings() -> EventSettings:
    s = raw_settings()
    secrets = s["WEBHOOK_SECRETS"] or ()
    return EventSettings(
        secrets=(secrets,) if isinstance(secrets, str) else tuple(secrets),
        tolerance=int(s["WEBHOOK_TOLERANCE"]),
        mode=s["WEBHOOK_MODE"],
        queue=s["WEBHOOK_QUEUE"] or None,
        max_bytes=int(s["WEBHOOK_MAX_BYTES"]),
        retention_days=int(s["EVENT_RETENTION_DAYS"]),
        cursor_margin=int(s["EVENTS_CURSOR_MARGIN"]),
    )


@checks.register()
def check_event_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    s = raw_settings()
    errors = []
    if s["WEBHOOK_MODE"] not in MODES:
        errors.append(checks.Error(f"RECONCILE['WEBHOOK_MODE'] must be one of {MODES}.", id="reconcile.E020"))
    if (s["WEBHOOK_QUEUE"] or None) not in QUEUES:
        errors.append(checks.Error("RECONCILE['WEBHOOK_QUEUE'] must be None or 'celery'.", id="reconcile.E021"))
    secrets = s["WEBHOOK_SECRETS"] or ()
    secrets = (secrets,) if isinstance(secrets, str) else secrets
    if not all(isinstance(x, str) and x.startswith("whsec_") for x in secrets):
        errors.append(
            checks.Error(
                "RECONCILE['WEBHOOK_SECRETS'] must be a 'whsec_...' string or a list of them "
                "(the signing secrets of your Stripe webhook endpoint).",
                id="reconcile.E022",
            )
        )
    return errors
