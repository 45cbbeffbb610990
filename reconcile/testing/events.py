"""Events of the fake Stripe (a test double): every mutation records a Stripe-shaped event.

``EventRecorder`` turns a change of a stored object into an event the way Stripe does (``evt_``
id, ``type``, ``created``, ``data.object`` as the API serves it, ``data.previous_attributes`` on
updates, ``api_version``, ``livemode``); ``list_events`` answers ``GET /v1/events`` with the
``type`` (``*`` wildcard), ``types[]`` and ``created`` filters and Stripe's pagination.
Webhook delivery lives in ``webhooks.py``.
"""

from __future__ import annotations

import copy
import fnmatch
import secrets
import string
import threading
import time
from collections.abc import Callable
from typing import Any

from .store import SINGULAR, dumps

API_VERSION = "2026-10-28.endive"  # the version stripe-python 16 pins; events render objects with it
_ALNUM = string.ascii_letters + string.digits
_NOISE = frozenset({"updated"})  # keys Stripe does not list in previous_attributes


def event_id() -> str:
    return "evt_" + "".join(secrets.choice(_ALNUM) for _ in range(24))


def _event_type(resource: str, before: dict | None, after: dict | None) -> str:
    prefix = "customer.subscription" if resource == "subscriptions" else SINGULAR[resource]
    if after is None or (after.get("deleted") and not (before or {}).get("deleted")):
        return f"{prefix}.deleted"
    if before is None or before.get("deleted"):
        return f"{prefix}.created"
    if resource == "subscriptions":
        old, new = before.get("status"), after.get("status")
        if new != old and new in ("canceled", "incomplete_expired"):
            return f"{prefix}.deleted"
        if new != old and new == "paused":
            return f"{prefix}.paused"
        if old == "paused" and new != old:
            return f"{prefix}.resumed"
    return f"{prefix}.updated"


def previous_attributes(before: dict, after: dict) -> dict:
    """The top-level keys an update changed, with their old values (as Stripe sends them)."""
    keys = (set(before) | set(after)) - _NOISE
    return {k: copy.deepcopy(before.get(k)) for k in sorted(keys) if before.get(k) != after.get(k)}


class EventRecorder:
    """Records one event per mutation, newest last; listeners (webhook senders) see each one."""

    def __init__(self, served: Callable[[str, dict], dict], clock: Callable[[], float] = time.time) -> None:
        self._served = served
        self.clock = clock
        self.events: list[dict] = []
        self.listeners: list[Callable[[dict], None]] = []
        self._lock = threading.Lock()

    def record(self, resource: str, before: dict | None, after: dict | None) -> dict | None:
        if before == after:
            return None
        kind = _event_type(resource, before, after)
        shown = after if after is not None and (before is None or not after.get("deleted")) else before
        obj = copy.deepcopy(self._served(resource, {k: v for k, v in shown.items() if k != "deleted"}))
        data: dict[str, Any] = {"object": obj}
        if kind.endswith(".updated") or kind.endswith((".paused", ".resumed")):
            data["previous_attributes"] = previous_attributes(before or {}, after or {})
        event = {
            "id": event_id(),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(self.clock()),
            "data": data,
            "livemode": False,
            "pending_webhooks": len(self.listeners),
            "request": {"id": None, "idempotency_key": None},
            "type": kind,
        }
        with self._lock:
            self.events.append(event)
            listeners = list(self.listeners)
        for listener in listeners:
            listener(event)
        return event

    def get(self, evt_id: str) -> dict | None:
        with self._lock:
            return next((e for e in self.events if e["id"] == evt_id), None)

    def newest_first(self) -> list[dict]:
        with self._lock:
            return self.events[::-1]


class EventQueryError(ValueError):
    def __init__(self, message: str, param: str):
        super().__init__(message)
        self.param = param


def _type_filter(params: dict[str, Any]) -> Callable[[dict], bool]:
    if "type" in params and "types" in params:
        raise EventQueryError("You may only specify one of these parameters: type, types.", "types")
    if "types" in params:
        types = params["types"]
        if len(types) > 20:
            raise EventQueryError("You may pass up to 20 types.", "types")
        wanted = set(types)
        return lambda e: e["type"] in wanted
    if "type" in params:
        pattern = params["type"]
        return lambda e: fnmatch.fnmatchcase(e["type"], pattern)
    return lambda e: True


def _created_filter(value: Any) -> Callable[[dict], bool]:
    if isinstance(value, str):
        exact = int(value)
        return lambda e: e["created"] == exact
    ops = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}
    bounds = []
    for op, raw in value.items():
        if op not in ops:
            raise EventQueryError(f"Received unknown parameter: created[{op}]", f"created[{op}]")
        try:
            bounds.append((ops[op], int(raw)))
        except ValueError:
            raise EventQueryError(f"Invalid integer: {raw}", f"created[{op}]") from None
    return lambda e: all(cmp(e["created"], bound) for cmp, bound in bounds)


def list_events(recorder: EventRecorder, params: dict[str, Any]) -> str:
    """``GET /v1/events``: newest first, filtered, one page of ``limit`` (1-100, default 10)."""
    allowed = {"type", "types", "created", "limit", "starting_after", "ending_before", "delivery_success"}
    for key in params:
        if key not in allowed:
            raise EventQueryError(f"Received unknown parameter: {key}", key)
    preds = [_type_filter(params)]
    if "created" in params:
        preds.append(_created_filter(params["created"]))
    limit = int(params.get("limit", 10))
    if not 1 <= limit <= 100:
        raise EventQueryError("limit must be from 1 to 100.", "limit")
    events = recorder.newest_first()
    ids = [e["id"] for e in events]
    after, before = params.get("starting_after"), params.get("ending_before")
    if after and before:
        raise EventQueryError("You may only specify one of these parameters: ending_before, starting_after.", "after")
    cursor = after or before
    if cursor and cursor not in ids:
        raise EventQueryError(f"No such event: '{cursor}'", "starting_after" if after else "ending_before")
    if before:
        candidates = events[: ids.index(before)][::-1]
    else:
        candidates = events[ids.index(after) + 1 :] if after else events
    page, has_more = [], False
    for event in candidates:
        if all(p(event) for p in preds):
            if len(page) == limit:
                has_more = True
                break
            page.append(event)
    if before:
        page = page[::-1]
    body = {"object": "list", "data": page, "has_more": has_more, "url": "/v1/events"}
    return dumps(body)
