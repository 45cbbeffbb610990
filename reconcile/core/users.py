"""Matching Stripe customers to Django users by email, and planning the users to create.

``plan_users`` is pure: it reads a ``UserDirectory`` (loaded by ``load_directory`` with one query)
and a validator callable, and returns operations and notes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .plan import CreateUser, LinkUser, Note, Operation, Skip
from .snapshot import CustomerRec

Validator = Callable[[dict[str, Any]], str | None]  # returns the reason a user is invalid, or None


def normalize_email(email: str | None) -> str | None:
    if not email:
        return None
    email = email.strip().lower()
    return email or None


@dataclass(frozen=True)
class UserDirectory:
    by_email: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)  # normalised email -> user pks
    # Users never linked by email, with what they are ("a staff account"): Stripe does not verify
    # emails, so anyone who types an admin's email at checkout would otherwise get the admin's account.
    privileged: Mapping[Any, str] = field(default_factory=dict)


PRIVILEGED_HINT = (
    "Stripe does not verify emails; set RECONCILE['LINK_PRIVILEGED_USERS'] = True to link such accounts too"
)


def plan_users(
    remote: Iterable[CustomerRec],
    local: Mapping[str, CustomerRec],
    directory: UserDirectory,
    create_map: Mapping[str, str] | None,
    validate: Validator | None = None,
) -> tuple[list[Operation], list[Note]]:
    ops: list[Operation] = []
    notes: list[Note] = []
    to_create: dict[str, list[CustomerRec]] = defaultdict(list)
    for customer in remote:
        stored = local.get(customer.id)
        email = normalize_email(customer.email)
        if stored is not None and stored.user_id is not None:
            # a link imported before the first pull has no stored email yet: nothing changed
            if stored.email is not None and normalize_email(stored.email) != email:
                notes.append(
                    Note(
                        "StripeUser",
                        customer.id,
                        f"email changed from {stored.email!r} to {customer.email!r} "
                        f"in Stripe; keeps its link to user {stored.user_id}",
                    )
                )
            continue
        if email is None:
            continue
        matches = directory.by_email.get(email, ())
        if len(matches) == 1 and matches[0] in directory.privileged:
            what = directory.privileged[matches[0]]
            message = f"not linked to user {matches[0]}, {what} with this email: {PRIVILEGED_HINT}"
            notes.append(Note("StripeUser", customer.id, message))
        elif len(matches) == 1:
            ops.append(LinkUser(customer.id, matches[0], customer.email or ""))
        elif len(matches) > 1:
            shown = ", ".join(str(pk) for pk in sorted(matches, key=str))
            notes.append(
                Note("StripeUser", customer.id, f"{len(matches)} users share {email!r} ({shown}); linked none")
            )
        elif create_map:
            to_create[email].append(customer)
    for email in sorted(to_create):
        customers = sorted(to_create[email], key=lambda c: c.id)
        first = customers[0]
        values = {"email": first.email.strip() if first.email else None, "name": first.name, "id": first.id}
        fields = {user_field: values.get(attribute) for user_field, attribute in sorted(create_map.items())}
        reason = validate(fields) if validate else None
        if reason:
            ops.append(Skip("User", first.id, f"user not created: {reason}"))
            continue
        ops.append(CreateUser(first.id, tuple(sorted(fields.items())), tuple(c.id for c in customers[1:])))
    return ops, notes
