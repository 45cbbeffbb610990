"""Saved plans, like ``terraform plan -out``: review a plan, then apply exactly that plan.

A plan file is readable JSON: the plan's report (the same ``reconcile.plan/v1`` dict as
``--format json``), the full operations needed to apply it, a fingerprint of the database state
it was computed against, and a signature (HMAC with the project's SECRET_KEY, through
``django.core.signing``) over all of it. Applying refuses, changing nothing, when the signature
does not match (the file was edited) or the database no longer has that fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields, is_dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from django.core import signing

from ..errors import PlanFileError
from .plan import Change, Create, CreateUser, LinkUser, Note, Orphan, Plan, RecreateItems, Skip, Update
from .registry import RECORDS
from .report import as_dict
from .snapshot import ItemRec, Snapshot
from .users import UserDirectory

SCHEMA = "reconcile.planfile/v1"
SALT = "reconcile.planfile"
OPS = {cls.__name__: cls for cls in (Create, Update, RecreateItems, LinkUser, CreateUser, Orphan, Skip)}


# -- encoding ------------------------------------------------------------------------------------
def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if is_dataclass(value):
        return {f.name: _encode(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$dt"}:
            return datetime.fromisoformat(value["$dt"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    return value


def _record(model: str, data: dict | None):
    if data is None:
        return None
    values = _decode(data)
    if model == "Subscription":
        values["items"] = tuple(ItemRec(**dict(i)) for i in values["items"])
    if "metadata" in values:
        values["metadata"] = dict(values["metadata"])
    return RECORDS[model](**values)


def _operation(data: dict):
    kind = data.pop("type")
    cls = OPS[kind]
    if cls is Create:
        return Create(data["model"], data["id"], _record(data["model"], data["record"]))
    if cls is Update:
        changes = tuple(Change(c["field"], _decode(c["old"]), _decode(c["new"])) for c in data["changes"])
        return Update(data["model"], data["id"], _record(data["model"], data["record"]), changes)
    if cls is RecreateItems:
        old = tuple(ItemRec(**dict(_decode(i))) for i in data["old"])
        new = tuple(ItemRec(**dict(_decode(i))) for i in data["new"])
        return RecreateItems(data["subscription_id"], old, new)
    if cls is CreateUser:
        return CreateUser(
            data["customer_id"], tuple(tuple(f) for f in _decode(data["fields"])), tuple(data["also_link"])
        )
    return cls(**_decode(data))


# -- fingerprint ---------------------------------------------------------------------------------
def fingerprint(local: Snapshot, directory: UserDirectory | None) -> str:
    """A digest of the database state a plan depends on: every loaded record, and user emails."""
    state = {
        "products": _encode(sorted(local.products.values(), key=lambda r: r.id)),
        "prices": _encode(sorted(local.prices.values(), key=lambda r: r.id)),
        "customers": _encode(sorted(local.customers.values(), key=lambda r: r.id)),
        "subscriptions": _encode(sorted(local.subscriptions.values(), key=lambda r: r.id)),
        "features": sorted(local.features),
        "synced_at": sorted([list(k), v.isoformat()] for k, v in local.synced_at.items()),
        "users": sorted([k, sorted(map(str, v))] for k, v in directory.by_email.items()) if directory else None,
    }
    blob = json.dumps(state, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


# -- files ---------------------------------------------------------------------------------------
def write(
    path: str | Path, plan: Plan, *, command: str, resources: tuple[str, ...], state: str, fetched_at: dict
) -> None:
    body = {
        "schema": SCHEMA,
        "command": command,
        "resources": list(resources),
        "database_fingerprint": state,
        "report": as_dict(plan),
        "operations": [{"type": type(op).__name__, **_encode(op)} for op in plan.operations],
        "notes": [_encode(n) for n in plan.notes],
        "fetched_at": [[model, oid, at.isoformat()] for (model, oid), at in sorted(fetched_at.items())],
    }
    body["signature"] = signing.Signer(salt=SALT).signature(_canonical(body))
    Path(path).write_text(json.dumps(body, indent=1, ensure_ascii=False) + "\n")


def read(path: str | Path) -> tuple[dict, Plan, dict]:
    """The file's header, its plan and its fetch times; PlanFileError if unreadable or edited."""
    try:
        body = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise PlanFileError(f"Cannot read the plan file {path}: {exc}") from None
    if not isinstance(body, dict) or body.get("schema") != SCHEMA:
        raise PlanFileError(f"{path} is not a reconcile plan file ({SCHEMA}).")
    signature = body.pop("signature", None)
    if not isinstance(signature, str) or not signing.constant_time_compare(
        signature, signing.Signer(salt=SALT).signature(_canonical(body))
    ):
        raise PlanFileError(
            f"The plan file {path} was edited after it was made (its signature does not match), or it was "
            "made with another SECRET_KEY. Make a new plan with --dry-run --plan-out."
        )
    plan = Plan(
        operations=tuple(_operation(dict(op)) for op in body["operations"]),
        notes=tuple(Note(**n) for n in body["notes"]),
    )
    fetched_at = {(m, oid): datetime.fromisoformat(at) for m, oid, at in body["fetched_at"]}
    return body, plan, fetched_at


def _canonical(body: dict) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
