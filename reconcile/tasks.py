"""Celery tasks (the optional extra ``reconcile[celery]``).

- ``reconcile.tasks.process_event(event_id)``: process a stored event (the webhook enqueues it
  when ``RECONCILE["WEBHOOK_QUEUE"] = "celery"``).
- ``reconcile.tasks.pull_stripe(incremental=False)``: a full or incremental pull, for celery beat.
- ``reconcile.tasks.process_pending_events(older_than=60)``: events stored but never processed
  (a worker died, a task was lost), for celery beat.
"""

from __future__ import annotations

import io

from celery import shared_task
from django.core.management import call_command
from django.core.management.base import CommandError


@shared_task(name="reconcile.tasks.process_event", acks_late=True)
def process_event(event_id: str) -> str:
    from .events.log import handle_id

    return handle_id(event_id)


@shared_task(name="reconcile.tasks.pull_stripe")
def pull_stripe(incremental: bool = False, check: bool = False) -> dict:
    args = ["--format", "json"] + (["--incremental"] if incremental else []) + (["--check"] if check else [])
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("pull_stripe", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    except CommandError as exc:
        return {"exit_code": exc.returncode, "error": str(exc)}
    return {"exit_code": code, "report": out.getvalue(), "log": err.getvalue()}


@shared_task(name="reconcile.tasks.process_pending_events")
def process_pending_events(older_than: float = 60.0) -> dict[str, int]:
    from .events.log import pending, retry

    return retry(pending(older_than))
