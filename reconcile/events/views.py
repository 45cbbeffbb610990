"""The webhook endpoint: verify, store once, process (or enqueue), answer.

Mount it with ``path("stripe/webhook/", include("reconcile.urls"))``. POST only (405 otherwise),
CSRF exempt (Stripe cannot send a token: the signature is the proof), bodies over
``WEBHOOK_MAX_BYTES`` get 413, a bad signature or a body that is not an event gets 400 and
changes nothing. A redelivered event gets 200 and changes nothing (a failed one is processed
again). Logs name event ids and types, never secrets, signatures or payloads.
"""

from __future__ import annotations

import json
import logging

from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from django.http import HttpRequest, HttpResponseNotAllowed, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from ..stripe.webhook import SignatureError, verify
from .log import BadEvent, check_shape, handle, receive
from .models import Outcome
from .settings import event_settings

log = logging.getLogger("reconcile.events")


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _body(request: HttpRequest, limit: int) -> bytes | None:
    """The body, or None when it is over ``limit`` bytes (checked before reading when announced)."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > limit:
        return None
    try:
        body = request.body
    except RequestDataTooBig:
        return None
    return None if len(body) > limit else body


@csrf_exempt
def webhook(request: HttpRequest):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    settings = event_settings()
    body = _body(request, settings.max_bytes)
    if body is None:
        log.warning("webhook refused: body over %d bytes", settings.max_bytes)
        return _error(413, "body too large")
    try:
        verify(body, request.headers.get("Stripe-Signature"), settings.secrets, settings.tolerance)
    except SignatureError as exc:
        log.warning("webhook refused: signature %s", exc.kind)
        return _error(400, f"signature {exc.kind}")
    try:
        event = check_shape(json.loads(body))
    except (ValueError, BadEvent) as exc:
        log.warning("webhook refused: not a Stripe event (%s)", exc if isinstance(exc, BadEvent) else "not JSON")
        return _error(400, "not a Stripe event")
    row, new = receive(event)
    if not new and row.outcome != Outcome.FAILED:
        return JsonResponse({"id": row.id, "outcome": "duplicate"})
    if settings.queue == "celery":
        from ..tasks import process_event  # celery is an optional extra

        transaction.on_commit(lambda: process_event.delay(row.id))
        return JsonResponse({"id": row.id, "outcome": Outcome.PENDING})
    processed = handle(row)
    # A failure answers 500 so that Stripe delivers the event again; the redelivery retries it.
    return JsonResponse({"id": row.id, "outcome": processed.outcome}, status=500 if processed.error else 200)
