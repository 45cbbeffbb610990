"""Carry drf-stripe-subscription's customer-to-user links over to reconcile: the database side.

Stripe knows every product, price, customer and subscription, so a normal ``pull_stripe`` brings
those; what Stripe cannot tell is which Django user each customer belongs to. drf-stripe-subscription
keeps that in its ``drf_stripe_stripeuser`` table (``user_id`` primary key, ``customer_id``). This
module reads that table with plain SQL, so drf-stripe-subscription need not be installed or
importable; the pure ``core/drf_links.py`` plans one ``= link user`` per link reconcile does not
have yet, and ``apply_import`` / ``import_links`` write them. Once stored, a link is kept by every
later run, whatever the customer's email says.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connections, transaction

from ..core.drf_links import Import, plan_import
from ..core.plan import LinkUser, Plan
from ..errors import ReconcileError
from ..models import StripeUser
from .apply import Result
from .audit import Audit, record
from .lock import run_lock

DRF_LINK_TABLE = "drf_stripe_stripeuser"
DRF_LINK_COLUMNS = ("user_id", "customer_id")
_CHUNK = 500


class DrfTablesMissing(ReconcileError):
    """The database has no drf-stripe-subscription link table (or not the columns it should have)."""


def read_drf_links(using: str = "default") -> list[tuple[Any, str | None]]:
    """``(user_id, customer_id)`` rows of drf-stripe-subscription's link table, read with SQL."""
    conn = connections[using]
    with conn.cursor() as cursor:
        tables = set(conn.introspection.table_names(cursor))
        if DRF_LINK_TABLE not in tables:
            found = sorted(t for t in tables if t.startswith("drf_stripe_"))
            raise DrfTablesMissing(
                f"The database '{using}' has no table {DRF_LINK_TABLE} (drf-stripe-subscription's customer-to-user "
                f"links)"
                + (f"; drf_stripe tables found: {', '.join(found)}" if found else "; no drf_stripe_* table at all")
                + ". Run this command against the database drf-stripe-subscription used, before dropping its "
                "tables. Nothing was changed."
            )
        names = {column.name for column in conn.introspection.get_table_description(cursor, DRF_LINK_TABLE)}
        missing = [c for c in DRF_LINK_COLUMNS if c not in names]
        if missing:
            raise DrfTablesMissing(
                f"The table {DRF_LINK_TABLE} has no column {', '.join(missing)}: it is not drf-stripe-subscription's "
                "link table as of version 1.2. Nothing was changed."
            )
        q = conn.ops.quote_name
        cursor.execute(f"SELECT {q('user_id')}, {q('customer_id')} FROM {q(DRF_LINK_TABLE)}")  # noqa: S608
        return list(cursor.fetchall())


def _chunks(values: list, size: int = _CHUNK) -> Iterable[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def load_context(rows: list[tuple[Any, str | None]], email_field: str) -> tuple[dict, dict]:
    """The users drf's rows name (pk -> email) and reconcile's stored rows of their customers
    (customer id -> user pk or None): one query per 500 ids."""
    user_model = get_user_model()
    user_ids = sorted({uid for uid, _ in rows}, key=str)
    customer_ids = sorted({cid.strip() for _, cid in rows if cid and cid.strip()})
    users: dict[Any, Any] = {}
    for chunk in _chunks(user_ids):
        users.update(user_model.objects.filter(pk__in=chunk).values_list("pk", email_field))
    stored: dict[str, Any] = {}
    for chunk in _chunks(customer_ids):
        stored.update(StripeUser.objects.filter(customer_id__in=chunk).values_list("customer_id", "user_id"))
    return users, stored


def apply_import(plan: Plan, batch_size: int = 500) -> int:
    """Write the plan's links in the caller's transaction: new ``StripeUser`` rows for customers
    reconcile has not stored yet (the next pull fills their email and name), ``user`` set on the
    unlinked ones. Returns the number of links written."""
    links = [op for op in plan.operations if isinstance(op, LinkUser)]
    if not links:
        return 0
    with transaction.atomic():
        ids = [op.customer_id for op in links]
        present: set[str] = set()
        for chunk in _chunks(ids, batch_size):
            present.update(
                StripeUser.objects.select_for_update()
                .filter(customer_id__in=chunk)
                .values_list("customer_id", flat=True)
            )
        StripeUser.objects.bulk_create(
            [
                StripeUser(customer_id=op.customer_id, user_id=op.user_id)
                for op in links
                if op.customer_id not in present
            ],
            batch_size=batch_size,
        )
        StripeUser.objects.bulk_update(
            [StripeUser(customer_id=op.customer_id, user_id=op.user_id) for op in links if op.customer_id in present],
            ["user"],
            batch_size=batch_size,
        )
    return len(links)


def read_links(email_field: str, using: str = "default") -> Import:
    """drf-stripe-subscription's links and the plan that takes them over; writes nothing."""
    rows = read_drf_links(using)
    users, stored = load_context(rows, email_field)
    return plan_import(rows, users, stored)


def import_links(
    email_field: str, batch_size: int, *, command: str, options: dict[str, Any], started: datetime
) -> tuple[Import, int]:
    """Read, plan and write the links under the run lock, in one transaction with their ``SyncRun``
    (none when nothing was written). Returns what was read and the number of links written."""
    with run_lock(), transaction.atomic():
        read = read_links(email_field)
        written = apply_import(read.plan, batch_size)
        if written:
            record(Audit(started, command, options, read.plan), Result(Counter(link_user=written)))
    return read, written
