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
from datetime import datetime

from django.core import signing

from ..errors import PlanFileError
from .escape import json_text
from .plan import Note, Plan, from_json, to_json
from .report import as_dict
from .snapshot import Snapshot
from .users import UserDirectory
from .values import encode

SCHEMA = "reconcile.planfile/v1"
SALT = "reconcile.planfile"


# -- fingerprint ---------------------------------------------------------------------------------
def fingerprint(local: Snapshot, directory: UserDirectory | None) -> str:
    """A digest of the database state a plan depends on: every loaded record, and user emails."""
    state = {
        "products": encode(sorted(local.products.values(), key=lambda r: r.id), tagged=True),
        "prices": encode(sorted(local.prices.values(), key=lambda r: r.id), tagged=True),
        "customers": encode(sorted(local.customers.values(), key=lambda r: r.id), tagged=True),
        "subscriptions": encode(sorted(local.subscriptions.values(), key=lambda r: r.id), tagged=True),
        "features": encode(sorted(local.features.values(), key=lambda r: r.id), tagged=True),
        "synced_at": sorted([list(k), v.isoformat()] for k, v in local.synced_at.items()),
        "users": sorted([k, sorted(map(str, v))] for k, v in directory.by_email.items()) if directory else None,
        "privileged": sorted([str(k), v] for k, v in directory.privileged.items()) if directory else None,
    }
    blob = json.dumps(state, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


# -- the file's text (the caller reads and writes the file) ----------------------------------------
def dumps(
    plan: Plan,
    *,
    command: str,
    resources: tuple[str, ...],
    state: str,
    fetched_at: dict,
    database: str = "",
    extra: dict | None = None,
) -> str:
    body = {
        **(extra or {}),  # e.g. an incremental run's event cursor and scope
        "schema": SCHEMA,
        "command": command,
        "resources": list(resources),
        "database": database,  # the identity of the database the plan was made for (a digest)
        "database_fingerprint": state,
        "report": as_dict(plan),
        "operations": [to_json(op) for op in plan.operations],
        "notes": [encode(n, tagged=True) for n in plan.notes],
        "fetched_at": [[model, oid, at.isoformat()] for (model, oid), at in sorted(fetched_at.items())],
    }
    body["signature"] = signing.Signer(salt=SALT).signature(_canonical(body))
    return json_text(json.dumps(body, indent=1, ensure_ascii=False)) + "\n"


def loads(text: str, path: str) -> tuple[dict, Plan, dict]:
    """The header, the plan and the fetch times in the text of the file at ``path`` (named in
    errors); PlanFileError if it is not a plan file or was edited."""
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise PlanFileError(f"Cannot read the plan file {path}: {exc}") from None
    except RecursionError:
        raise PlanFileError(f"Cannot read the plan file {path}: it is nested too deeply.") from None
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
    try:
        plan = Plan(
            operations=tuple(from_json(op) for op in body["operations"]),
            notes=tuple(Note(**n) for n in body["notes"]),
        )
        fetched_at = {(m, oid): datetime.fromisoformat(at) for m, oid, at in body["fetched_at"]}
    except (KeyError, TypeError, ValueError) as exc:
        # signed, so made by reconcile: by a version whose operations or records had other fields
        raise PlanFileError(
            f"The plan file {path} holds an operation this version of reconcile cannot read ({exc}); "
            "it was made by another version. Make a new plan with --dry-run --plan-out."
        ) from None
    return body, plan, fetched_at


def _canonical(body: dict) -> str:
    return json_text(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
