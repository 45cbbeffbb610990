"""The diff: a pure function from two snapshots to a plan. No I/O, no Django.

Set arithmetic on keys: remote - local = create; local - remote = orphan (only where the remote
listing was whole); both = compare the fields the registry declares.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from operator import attrgetter
from typing import Any

from .periods import mixed_periods_note
from .plan import Action, Change, Note, Operation, Operations, Orphan, Plan, RecreateItems, Skip, Update, is_record
from .registry import BY_NAME, BY_RECORD, MODEL_ORDER, SOFT_DELETED
from .snapshot import KnownIds, ProductRec, Snapshot, SubscriptionRec
from .users import UserDirectory, Validator, plan_users

_RANK = {model: i for i, model in enumerate(MODEL_ORDER)}
_ACTION_RANK = {action: i for i, action in enumerate(Action)}
_by_id = attrgetter("id")
_CREATE_RANK = {r.record: _RANK[r.model] * len(_ACTION_RANK) + _ACTION_RANK[Action.CREATE] for r in BY_RECORD.values()}


def _rank(entry: Any) -> int:
    """Where an operation's model, then its action, comes in a plan (ids order the rest); a
    record alone stands for its create (see ``Operations``)."""
    rank = _CREATE_RANK.get(type(entry))
    if rank is None:
        return _RANK[entry.model] * len(_ACTION_RANK) + _ACTION_RANK[entry.action]
    return rank


@dataclass(frozen=True)
class UserPolicy:
    directory: UserDirectory = UserDirectory()
    create_map: Mapping[str, str] | None = None
    validate: Validator | None = None


KEPT = "the stored row was written after Stripe's page was fetched; kept the newer row"


def _newer_locally(remote: Snapshot, local: Snapshot, model: str, oid: str) -> bool:
    """The lost-write guard: a row written (by a webhook, say) after its Stripe page was fetched."""
    synced, fetched = local.synced_at.get((model, oid)), remote.fetched_at.get((model, oid))
    return synced is not None and fetched is not None and synced > fetched


def changes(local: Any, remote: Any) -> tuple[Change, ...]:
    found = tuple(
        Change(name, getattr(local, name), getattr(remote, name))
        for name in BY_RECORD[type(remote)].names
        if getattr(local, name) != getattr(remote, name)
    )
    if isinstance(remote, ProductRec) and local.features != remote.features:
        found += (Change("features", local.features, remote.features),)
    return found


def _compare(resource: str, remote: Snapshot, local: Snapshot, blocked: Mapping[str, str]) -> list[Operation]:
    """Create, update and orphan operations of one resource; ``blocked`` ids are skipped with a reason."""
    ops: list[Operation] = []
    same = BY_NAME[resource].same
    model = BY_NAME[resource].model
    theirs: Mapping[str, Any] = getattr(remote, resource)
    ours: Mapping[str, Any] = getattr(local, resource)
    unchanged = remote.unchanged.get(resource, frozenset())  # compared already, by the screen
    for oid, rec in theirs.items():
        if oid in blocked:
            ops.append(Skip(model, oid, blocked[oid]))
            continue
        if oid in unchanged:
            continue
        stored = ours.get(oid)
        if stored is None:
            ops.append(rec)  # its create, held as the record alone (``Operations``)
            continue
        if same(stored, rec):
            continue
        found = changes(stored, rec)  # () when only a subscription's items differ: _items has them
        if not found:
            continue
        if _newer_locally(remote, local, model, oid):
            ops.append(Skip(model, oid, KEPT))
            continue
        ops.append(Update(model, oid, rec, found))
    if resource in remote.complete:
        ops.extend(_absent(model, remote, ours, local.synced_at, ours.keys() - theirs.keys()))
    return ops


def _absent(model: str, remote: Snapshot, ours: Mapping[str, Any], synced_at: Mapping, ids: Iterable[str]) -> list:
    """Rows absent from a whole listing: products, prices and customers are marked deleted (Stripe
    deleted them); subscriptions are orphans (Stripe never deletes one: canceled ones stay listed)."""
    if model not in SOFT_DELETED:
        return [Orphan(model, oid) for oid in ids]
    ops: list[Operation] = []
    for oid in ids:
        if ours[oid].deleted:
            continue
        synced = synced_at.get((model, oid))
        if synced is not None and remote.listed_at is not None and synced > remote.listed_at:
            ops.append(Skip(model, oid, "written after Stripe's listing began; kept (not marked deleted)"))
            continue
        ops.append(Update(model, oid, replace(ours[oid], deleted=True), (Change("deleted", False, True),)))
    return ops


def _price_blocks(remote: Snapshot, local: Snapshot, known: KnownIds) -> dict[str, str]:
    products = remote.products.keys() | local.products.keys() | known.products
    rejected = {r.id for r in remote.rejected if r.model == "Product"}
    return {
        p.id: f"its product {p.product_id} "
        + ("was skipped" if p.product_id in rejected else "is neither stored nor in Stripe")
        for p in remote.prices.values()
        if p.product_id not in products
    }


def _subscription_blocks(remote: Snapshot, local: Snapshot, known: KnownIds, bad_prices: Iterable[str]) -> dict:
    # where a customer may be, looked up in each: their union would be a set of every customer id
    theirs, ours, known_customers = remote.customers, local.customers, known.customers
    prices = (remote.prices.keys() - set(bad_prices)) | local.prices.keys() | known.prices
    blocked = {}
    for sub in remote.subscriptions.values():
        cid = sub.customer_id
        if not (cid in theirs or cid in ours or cid in known_customers):
            why = "is deleted in Stripe" if sub.customer_id in remote.deleted_customers else "could not be fetched"
            if any(r.model == "StripeUser" and r.id == sub.customer_id for r in remote.rejected):
                why = "was skipped"
            blocked[sub.id] = f"its customer {sub.customer_id} {why} and is not stored"
            continue
        missing = sorted({i.price_id for i in sub.items} - prices)
        if missing:
            blocked[sub.id] = f"its items refer to prices neither stored nor in Stripe: {', '.join(missing)}"
    return blocked


def _items(remote: Snapshot, local: Snapshot, sub_ops: list[Operation]) -> list[Operation]:
    """Recreate the items of stored subscriptions whose item set differs from Stripe's."""
    skipped = {op.id for op in sub_ops if isinstance(op, Skip)}
    ops: list[Operation] = []
    for sid, sub in remote.subscriptions.items():
        stored: SubscriptionRec | None = local.subscriptions.get(sid)
        if stored is None or stored.items == sub.items or sid in skipped:
            continue
        if _newer_locally(remote, local, "Subscription", sid):
            ops.append(Skip("SubscriptionItem", sid, KEPT))
        else:
            ops.append(RecreateItems(sid, stored.items, sub.items))
    return ops


def _period_notes(remote: Snapshot, *groups: list[Operation]) -> list[Note]:
    """A note for each subscription written whose items bill on different periods (unsorted: the
    plan sorts its notes). No set or copy of the operations: on a first pull they are 100,000
    creates, and a set of their ids was the diff's highest point of memory."""
    subscriptions = remote.subscriptions
    notes, seen = [], set()
    for op in itertools.chain(*groups):
        created = is_record(op)  # a record alone: its create
        if not (created or isinstance(op, Update | RecreateItems)) or len(subscriptions[op.id].items) < 2:
            continue  # most subscriptions have one item, one period
        if not created:  # a stored subscription may be updated and its items recreated
            if op.id in seen:
                continue
            seen.add(op.id)
        message = mixed_periods_note(subscriptions[op.id])
        if message:
            notes.append(Note("Subscription", op.id, message))
    return notes


def diff(
    remote: Snapshot,
    local: Snapshot,
    *,
    known: KnownIds | None = None,
    users: UserPolicy | None = None,
) -> Plan:
    known = known or KnownIds()
    ops: list[Operation] = [Skip(r.model, r.id, r.reason) for r in remote.rejected]
    notes: list[Note] = []
    ops += _compare("features", remote, local, {})  # never orphans: features are never deleted here
    ops += _compare("products", remote, local, {})
    price_blocks = _price_blocks(remote, local, known)
    ops += _compare("prices", remote, local, price_blocks)
    if remote.customers or "customers" in remote.complete:
        ops += _compare("customers", remote, local, {})
        policy = users or UserPolicy()
        user_ops, notes = plan_users(
            remote.customers.values(), local.customers, policy.directory, policy.create_map, policy.validate
        )
        ops += user_ops
    sub_ops = _compare("subscriptions", remote, local, _subscription_blocks(remote, local, known, price_blocks))
    item_ops = _items(remote, local, sub_ops)
    ops += sub_ops
    ops += item_ops
    notes = [*notes, *_period_notes(remote, sub_ops, item_ops)]
    del sub_ops, item_ops  # a second list of 100,000 operations, not kept through the sorts
    # By model, action, then id, in two stable sorts: a key tuple per operation made 200,000 of
    # them at once on a first pull (13 MiB); an id is a string already, the rank a small int.
    ops.sort(key=_by_id)
    ops.sort(key=_rank)
    return Plan(
        operations=Operations(ops),
        notes=tuple(sorted(notes, key=lambda n: (n.model, n.id))),
        next_cursor=dict(remote.next_cursor),
    )


__all__ = ["diff", "changes", "UserPolicy"]
