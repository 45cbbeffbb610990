"""Values out of the pipeline: ``show`` writes one for people (the reports, the admin), ``encode``
makes one JSON-ready (the JSON report, the audit, the plan file) and ``decode`` reads the plan
file's form back."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any


def show(value: Any) -> str:
    """A field value as the reports print it: strings quoted, times in UTC to the second."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {show(v)}" for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))) + "}"
    return str(value)


def encode(value: Any, *, tagged: bool = False) -> Any:
    """JSON-ready: dataclasses as dicts of their compared fields, tuples as lists. Datetimes as ISO 8601 in
    UTC (``...Z``), or ``tagged`` as ``{"$dt": iso}`` so that ``decode`` gives them back."""
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()} if tagged else value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal):  # an exact amount: as text, never a float
        return {"$dec": str(value)} if tagged else plain(value)
    if is_dataclass(value):
        # a field no comparison looks at (a record's ``fetched_at``) is not part of its value
        return {f.name: encode(getattr(value, f.name), tagged=tagged) for f in fields(value) if f.compare}
    if isinstance(value, tuple | list):
        return [encode(v, tagged=tagged) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v, tagged=tagged) for k, v in value.items()}
    return value


def decode(value: Any) -> Any:
    """The inverse of ``encode(tagged=True)``, with lists as tuples (records hold tuples)."""
    if isinstance(value, dict):
        if set(value) == {"$dt"}:
            return datetime.fromisoformat(value["$dt"])
        if set(value) == {"$dec"}:
            return Decimal(value["$dec"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(decode(v) for v in value)
    return value


def plain(number: Decimal) -> str:
    """A decimal without exponent or trailing zeros: ``Decimal("0.500000000000")`` gives ``"0.5"``."""
    text = format(number.normalize(), "f")
    return text
