"""The audit: one ``SyncRun`` row per applied run, written in the apply's own transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from django.db import connections, router, transaction
from django.db.models.expressions import RawSQL

from ..core.plan import Plan
from ..core.report import as_json_text
from ..models import SyncRun
from .apply import Result
from .storable import json_storable

AUDIT_OPERATIONS = 1000  # operations kept in a SyncRun's report; the summary counts them all


@dataclass
class Audit:
    started: datetime
    command: str
    options: dict[str, Any]
    plan: Plan
    result: Result | None = None  # set by the apply


@contextmanager
def audited(audit: Audit) -> Iterator[Audit]:
    """The apply's transaction; the run's SyncRun row is written in it, once the apply set ``result``.
    Whatever fails in the block rolls back everything, the audit row included."""
    with transaction.atomic():
        yield audit
        if audit.result is not None:
            record(audit, audit.result)


def record(audit: Audit, result: Result) -> None:
    conflicts = [{"model": c.model, "id": c.id, "reason": c.reason} for c in result.conflicts]
    # The report goes in as its JSON text, made one operation at a time (NUL characters escaped:
    # PostgreSQL's jsonb refuses them). A create is kept without its field values: the row it made
    # holds them, and the admin lists creates by id. With them, a first pull's audit row was
    # 1.2 MB, and writing it added 6 MiB to the run's peak at N=100,000.
    text = as_json_text(audit.plan, AUDIT_OPERATIONS, {"conflicts": conflicts}, json_storable, created_values=False)
    counts = dict(result.counts)
    if result.conflicts:
        counts["conflict"] = len(result.conflicts)
    SyncRun.objects.create(
        started_at=audit.started,
        finished_at=datetime.now(timezone.utc),
        command=audit.command,
        options=audit.options,
        outcome="applied with conflicts" if result.conflicts else "applied",
        counts=counts,
        report=_json_text(text),
    )


def _json_text(text: str) -> RawSQL:
    """JSON text as a JSON column's value, without Django encoding it again (it would store a string)."""
    cast = "%s::jsonb" if connections[router.db_for_write(SyncRun)].vendor == "postgresql" else "%s"
    return RawSQL(cast, [text], output_field=SyncRun._meta.get_field("report"))
