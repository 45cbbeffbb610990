"""Apply a plan: the only code that writes. Bulk statements in batches, dispatched per operation kind.

The caller opens the transaction (one per command, one for all of ``pull_stripe``). Before each
chunk of creates or updates (``GUARD_CHUNK``), the rows it touches are read back (``SELECT ... FOR UPDATE`` where the
database has it): a row written after its Stripe page was fetched (by a webhook, say) is kept and
reported as a conflict; a row created meanwhile is updated rather than inserted twice.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import secrets
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.db import connections, router, transaction

from ..core.diff import KEPT
from ..core.plan import Change, Create, CreateUser, LinkUser, Plan, RecreateItems, Skip, Update
from ..core.registry import ITEM_COLUMNS, ITEMS, RESOURCES, Resource
from ..models import ProductFeature, StripeUser, SubscriptionItem
from . import indexes, instances
from .bulk import batches, insert
from .guard import stored_stamps

GUARD_CHUNK = 10_000  # operations whose stored rows one guard SELECT reads (at most the database's parameter limit)


@dataclass
class Result:
    counts: Counter = field(default_factory=Counter)
    conflicts: list[Skip] = field(default_factory=list)


class Applier:
    def __init__(
        self, plan: Plan, fetched_at: Mapping[tuple[str, str], datetime], batch_size: int = 500, savepoint: bool = True
    ):
        self.plan = plan
        self.savepoint = savepoint
        self.fetched_at = fetched_at
        self.batch_size = batch_size
        self.now = datetime.now(timezone.utc)
        self.result = Result()
        # model -> ids written over a row that was there (or may have been): updates, and creates
        # that found their row stored. A create neither rewritten nor refused as a conflict was
        # inserted: no set of those, which on a first pull would hold all of its 200,000 ids.
        self.rewritten: dict[str, set[str]] = defaultdict(set)
        self.links: dict[str, Any] = {}  # customer id -> user pk, linked or created this run

    def stamp(self, model: str, oid: str, record: Any = None) -> datetime:
        """When the Stripe data written to a row was read: a time given by key wins over the time
        on the row's record (a fetch's records carry their own; see ``runner.stamps``)."""
        at = self.fetched_at.get((model, oid))
        if at is None:
            at = getattr(record, "fetched_at", None)
        return self.now if at is None else at

    def run(self) -> Result:
        if not self.plan.writes:
            return self.result
        _lift_sqlite_parameter_limit()
        ops: dict[tuple[type, str], list] = defaultdict(list)
        for op in self.plan.writes:
            ops[(type(op), op.model)].append(op)
        with transaction.atomic(savepoint=self.savepoint):
            for resource in RESOURCES:  # the registry's order: a row's references are written first
                for related in resource.before:
                    self.before(related.model, ops)
                creates = ops[(Create, resource.model)]
                if not resource.guarded:
                    self.insert_or_ignore(resource, creates)
                    creates = []
                model = apps.get_model("reconcile", resource.model)
                with indexes.deferred(model, len(creates)):
                    self.upsert(resource, creates, ops[(Update, resource.model)])
                # a subscription's items: at least as many as the subscriptions created
                children = [apps.get_model("reconcile", child.model) for child in resource.children]
                with contextlib.ExitStack() as stack:
                    for child in children:
                        stack.enter_context(indexes.deferred(child, len(creates)))
                    self.after(resource.model, ops)
        return self.result

    def insert_or_ignore(self, resource: Resource, creates: list[Create]) -> None:
        """New rows of an unguarded resource: one INSERT that skips rows already there, no guard read."""
        model = apps.get_model("reconcile", resource.model)
        stamp = self.stamp
        rows = [
            model(
                **{resource.pk: op.id},
                **resource.column_values(op.record),
                synced_at=stamp(resource.model, op.id, op.record),
            )
            for op in creates
        ]
        model.objects.bulk_create(rows, batch_size=self.batch_size, ignore_conflicts=True)
        self.rewritten[resource.model].update(op.id for op in creates)  # new or already there: not told
        self.result.counts["create"] += len(rows)

    def before(self, model: str, ops: Mapping[tuple[type, str], list]) -> None:
        """Write a ``Related`` model of the registry, ahead of the resource that refers to it."""
        if model == "User":
            self.links.update(self.users(ops[(CreateUser, "User")], ops[(LinkUser, "StripeUser")]))

    def after(self, model: str, ops: Mapping[tuple[type, str], list]) -> None:
        """Write a resource's child collections and links, after its rows."""
        if model == "Product":
            self.features(ops[(Create, "Product")] + ops[(Update, "Product")])
        elif model == "StripeUser":
            created = {op.id for op in self.inserted(model, ops[(Create, model)])} if self.links else set()
            self.link(self.links, [op.customer_id for op in ops[(LinkUser, "StripeUser")]], created)
        elif model == "Subscription":
            self.items(ops[(Create, "Subscription")], ops[(RecreateItems, ITEMS.model)])

    # -- products, prices, customers, subscriptions ---------------------------------------------
    def upsert(self, resource: Resource, creates: list[Create], updates: list[Update]) -> None:
        model, pk, name = apps.get_model("reconcile", resource.model), resource.pk, resource.model
        linked = "user_id" in dict(resource.extras)  # a new customer row carries its user link
        names = (pk, *resource.columns, "synced_at") + (("user_id",) if linked else ())
        # The lost-write guard reads (and locks) the rows of GUARD_CHUNK operations with one SELECT,
        # and their new rows go in with one COPY on PostgreSQL: per 500 operations, those two
        # round trips were a fifth of a large first pull's apply there.
        limit = connections[router.db_for_write(model)].features.max_query_params or GUARD_CHUNK
        for batch in batches(itertools.chain(creates, updates), max(self.batch_size, min(GUARD_CHUNK, limit))):
            ids = [op.id for op in batch]
            stored = stored_stamps(model, ids)
            inserts, changed, fields = [], [], {"synced_at"}
            for op in batch:
                at = self.stamp(name, op.id, op.record)
                if op.id in stored and stored[op.id] is not None and stored[op.id] > at:
                    self.result.conflicts.append(Skip(name, op.id, KEPT))
                    continue
                if isinstance(op, Create) and op.id not in stored:
                    inserts.append(op)  # its row is made as its batch goes in, not 10,000 rows at once
                    continue
                if op.id in stored:
                    changed.append(model(**{pk: op.id}, **resource.column_values(op.record), synced_at=at))
                    fields |= set(resource.columns) if isinstance(op, Create) else _columns(resource, op.changes)
                self.rewritten[name].add(op.id)
            insert(model, names, self.rows(resource, inserts, linked), self.batch_size)
            _update(model, changed, sorted(fields), self.batch_size)
            self.result.counts["create"] += len(inserts)
            self.result.counts["update"] += len(changed)

    def rows(self, resource: Resource, creates: list[Create], linked: bool) -> Iterable[tuple]:
        """The new rows of ``creates``: the id, the fields, the sync time (and a customer's user)."""
        name, values, stamp, links = resource.model, resource.values, self.stamp, self.links
        for op in creates:
            row = (op.id, *values(op.record), stamp(name, op.id, op.record))
            yield row + (links.get(op.id),) if linked else row

    def conflicted(self, model: str) -> set[str]:
        """The ids of ``model`` whose operations the guard refused (their rows were kept)."""
        return {c.id for c in self.result.conflicts if c.model == model}

    def inserted(self, model: str, creates: Iterable[Create]) -> Iterable[Create]:
        """The creates of ``model`` that inserted their row: neither refused nor found stored."""
        skip = self.conflicted(model) | self.rewritten[model]
        return (op for op in creates if op.id not in skip)

    def features(self, ops: list[Create | Update]) -> None:
        refused = self.conflicted("Product")  # every other operation wrote its row (or meant to)
        touched = [
            op
            for op in ops
            if op.id not in refused and (isinstance(op, Create) or any(c.field == "features" for c in op.changes))
        ]
        for batch in batches(touched, self.batch_size):
            stale = [op.id for op in batch if isinstance(op, Update) or op.id in self.rewritten["Product"]]
            if stale:
                ProductFeature.objects.filter(product_id__in=stale).delete()
            links = [(op.id, f) for op in batch for f in op.record.features]
            insert(ProductFeature, ("product_id", "feature_id"), links, self.batch_size)

    # -- users -----------------------------------------------------------------------------------
    def users(self, creates: list[CreateUser], links: list[LinkUser]) -> dict[str, Any]:
        """Create users (unusable password, never staff or superuser); return customer -> user pk."""
        result = {op.customer_id: op.user_id for op in links}
        user_model = get_user_model()
        for batch in batches(creates, self.batch_size):
            users = instances.new(user_model, [dict(op.fields) for op in batch])
            for user, password in zip(users, unusable_passwords(len(batch)), strict=True):
                user.password = password
                for flag in ("is_staff", "is_superuser"):
                    if hasattr(user, flag):
                        setattr(user, flag, False)
            instances.create(users, self.batch_size)  # bulk_create's rows, its values prepared for less
            for op, user in zip(batch, users, strict=True):
                for customer_id in (op.customer_id, *op.also_link):
                    result[customer_id] = user.pk
            self.result.counts["create_user"] += len(users)
        return result

    def link(self, links: Mapping[str, Any], planned: Iterable[str], created: set[str]) -> None:
        """Link stored customers to users, under the lost-write guard: a row linked by someone else,
        or written after its Stripe page was fetched, since the plan was made keeps what it has.
        Counts the planned links that were made (the customers of created users count in
        ``create_user``), so that the counts match the plan's. ``created``: the customers this run
        inserted, their links written with their rows."""
        conflicted = self.conflicted("StripeUser")
        refused = conflicted & set(links)
        wanted = sorted(cid for cid in links if cid not in created and cid not in conflicted)
        rows = []
        for batch in batches(wanted, self.batch_size):
            stored = {
                cid: (user_id, synced_at)
                for cid, user_id, synced_at in StripeUser.objects.select_for_update()
                .filter(customer_id__in=batch)
                .values_list("customer_id", "user_id", "synced_at")
            }
            for cid in batch:
                user_id, synced_at = stored.get(cid, (None, None))
                if user_id is not None and user_id != links[cid]:
                    reason = f"linked to user {user_id} after Stripe's page was fetched; kept that link"
                    self.result.conflicts.append(Skip("StripeUser", cid, reason))
                    refused.add(cid)
                elif synced_at is not None and synced_at > self.stamp("StripeUser", cid):
                    self.result.conflicts.append(Skip("StripeUser", cid, KEPT))
                    refused.add(cid)
                else:
                    rows.append(StripeUser(customer_id=cid, user_id=links[cid]))
        StripeUser.objects.bulk_update(rows, ["user"], batch_size=self.batch_size)
        self.result.counts["link_user"] += len(set(planned) - refused)

    # -- items -----------------------------------------------------------------------------------
    def items(self, creates: list[Create], recreates: list[RecreateItems]) -> None:
        stamp, rewritten = self.stamp, self.rewritten["Subscription"]
        # (a subscription, its items, when they were read): the plan's recreations, and the creates
        # that found their row stored (a webhook wrote it during the fetch)
        rewrites = [(op.id, op.new, stamp("Subscription", op.id)) for op in recreates]
        rewrites += [
            (op.id, op.record.items, stamp("Subscription", op.id, op.record)) for op in creates if op.id in rewritten
        ]
        conflicted = self.conflicted("Subscription")
        rewrites = [rewrite for rewrite in rewrites if rewrite[0] not in conflicted]
        # a generator: a list of a first pull's 100,000 pairs was its apply's largest allocation
        new = (
            (op.id, op.record.items, stamp("Subscription", op.id, op.record))
            for op in self.inserted("Subscription", creates)
        )
        for batch in batches(rewrites, self.batch_size):
            SubscriptionItem.objects.filter(subscription_id__in=[sid for sid, _, _ in batch]).delete()
            self.insert_items(batch)
            self.result.counts["recreate_items"] += len(batch)
        self.insert_items(new)

    def insert_items(self, subscriptions: Iterable[tuple[str, tuple[Any, ...], datetime]]) -> None:
        """The items of subscriptions given as (id, items, the subscription's time)."""
        rows = ((i.id, sid, *ITEMS.values(i), at) for sid, items, at in subscriptions for i in items)
        insert(SubscriptionItem, ITEM_COLUMNS, rows, self.batch_size)


def _columns(resource: Resource, changes: Iterable[Change]) -> set[str]:
    """The columns an update's changes touch (features are links, written apart)."""
    column = {f.name: f.column for f in resource.fields}
    return {column[c.field] for c in changes if c.field in column}


_PASSWORD_BYTES = 30  # a multiple of 3: its base64 text has no padding, 40 characters


def unusable_passwords(count: int) -> list[str]:
    """What ``set_unusable_password()`` stores (the "!" prefix, then random text), ``count`` times,
    from one read of the OS's random source: a read per user was 3% of a first pull creating 10,000
    users. The random text of each is ``secrets.token_urlsafe(30)``'s: base64 is made of 3-byte
    groups, so the text of the joined bytes is the joined texts."""
    text = base64.urlsafe_b64encode(secrets.token_bytes(_PASSWORD_BYTES * count)).decode()
    width = _PASSWORD_BYTES * 4 // 3
    return [UNUSABLE_PASSWORD_PREFIX + text[i : i + width] for i in range(0, len(text), width)]


def _lift_sqlite_parameter_limit(alias: str = "default") -> None:
    """Let bulk statements on SQLite use the parameter limit the library was built with.

    Django 5.2 assumes SQLite's old default of 999 bound parameters, which caps a bulk insert of
    8 columns at 124 rows; SQLite 3.32+ allows 32,766. Python 3.11+ can ask the real limit.
    """
    conn = connections[alias]
    if conn.vendor != "sqlite":
        return
    conn.ensure_connection()
    getlimit = getattr(conn.connection, "getlimit", None)
    if getlimit is None:
        return
    limit = getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    if limit > conn.features.max_query_params:
        conn.features.max_query_params = limit


def _update(model, rows: list, fields: list[str], batch_size: int) -> None:
    """One row (an event's) by a plain UPDATE: ``bulk_update``'s CASE per field costs more to build;
    more in statements of ``batch_size`` rows."""
    if len(rows) == 1:
        attnames = [model._meta.get_field(f).attname for f in fields]  # a foreign key's id, never a fetch
        model.objects.filter(pk=rows[0].pk).update(**{a: getattr(rows[0], a) for a in attnames})
    elif rows:
        model.objects.bulk_update(rows, fields, batch_size=batch_size)


def apply_plan(
    plan: Plan,
    fetched_at: Mapping[tuple[str, str], datetime] | None = None,
    batch_size: int = 500,
    *,
    savepoint: bool = True,
):
    """``savepoint=False``: the caller's transaction is the unit (an error must leave it whole)."""
    return Applier(plan, fetched_at or {}, batch_size, savepoint).run()
