"""Which of drf-stripe-subscription's customer-to-user links reconcile should take over (pure).

Rows of its ``drf_stripe_stripeuser`` table, the users they name and the links reconcile already
stores in, one ``= link user`` per link reconcile lacks out; what cannot be taken over is reported
as a skip or a note. The reading and writing are in ``reconcile/db/drf_links.py``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .plan import LinkUser, Note, Plan, Skip


@dataclass(frozen=True)
class Import:
    plan: Plan
    drf_links: int  # rows read from drf-stripe-subscription's link table
    already_linked: int  # of those, links reconcile already stores


def plan_import(rows: Iterable[tuple[Any, str | None]], users: Mapping[Any, Any], stored: Mapping[str, Any]) -> Import:
    """One ``LinkUser`` per drf link reconcile lacks; the rest reported.

    - a link reconcile already has (same user): nothing, counted in ``already_linked``;
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
    return Import(Plan(tuple(ops), tuple(notes)), drf_links=total, already_linked=already)
