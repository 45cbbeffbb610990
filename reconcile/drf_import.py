"""Carry drf-stripe-subscription's customer-to-user links over to reconcile.

Stripe knows every product, price, customer and subscription, so a normal ``pull_stripe`` brings
those; what Stripe cannot tell is which Django user each customer belongs to. drf-stripe-subscription
keeps that in its ``drf_stripe_stripeuser`` table (``user_id`` primary key, ``customer_id``). This
module reads that table with plain SQL, so drf-stripe-subscription need not be installed or
importable, and plans one ``= link user`` per link reconcile does not have yet. Once stored, a
link is kept by every later run, whatever the customer's email says.

``plan_import`` is pure (rows in, a Plan out); ``read_drf_links`` and ``apply_import`` touch the
database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connections, transaction

from .core.plan import LinkUser, Note, Plan, Skip
from .errors import ReconcileError
from .models import StripeUser

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


def plan_import(rows: Iterable[tuple[Any, str | None]], users: Mapping[Any, Any], stored: Mapping[str, Any]) -> Plan:
    """One ``LinkUser`` per drf link reconcile lacks; the rest reported.

    - a link reconcile already has (same user): nothing, counted in ``stats['already_linked']``;
    - a customer reconcile links to another user: skipped, the stored link is kept (never moved
      silently);
    - a customer drf links to several users, or to a user that no longer exists: skipped;
    - a drf row without a customer id: a note.
    """
    by_customer: dict[str, set] = defaultdict(set)
    notes: list[Note] = []
    total = 0
    for user_id, customer_id in rows:
        total += 1
        customer_id = (customer_id or "").strip()
        if not customer_id:
            notes.append(Note("StripeUser", f"user {user_id}", "drf-stripe-subscription has no customer id for it"))
            continue
        by_customer[customer_id].add(user_id)
    ops: list = []
    already = 0
    for customer_id in sorted(by_customer):
        owners = sorted(by_customer[customer_id], key=str)
        if len(owners) > 1:
            shown = ", ".join(str(u) for u in owners)
            ops.append(
                Skip(
                    "StripeUser",
                    customer_id,
                    f"drf-stripe-subscription links it to {len(owners)} users ({shown}); linked none",
                )
            )
            continue
        user_id = owners[0]
        if user_id not in users:
            ops.append(
                Skip(
                    "StripeUser",
                    customer_id,
                    f"drf-stripe-subscription links it to user {user_id}, who no longer exists",
                )
            )
            continue
        here = stored.get(customer_id)
        if here is None:
            ops.append(LinkUser(customer_id, user_id, str(users[user_id] or "no email")))
        elif str(here) == str(user_id):
            already += 1
        else:
            ops.append(
                Skip(
                    "StripeUser",
                    customer_id,
                    f"linked to user {here} here and to user {user_id} by drf-stripe-subscription; kept user {here}",
                )
            )
    return Plan(tuple(ops), tuple(notes), stats={"drf_links": total, "already_linked": already})


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
