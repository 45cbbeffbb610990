"""Apply a plan: the only code that writes. Bulk statements in batches, dispatched per operation kind.

The caller opens the transaction (one per command, one for all of ``pull_stripe``). Before each
batch of creates or updates, the rows it touches are read back (``SELECT ... FOR UPDATE`` where the
database has it): a row written after its Stripe page was fetched (by a webhook, say) is kept and
reported as a conflict; a row created meanwhile is updated rather than inserted twice.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.db import connections, models, transaction

from ..core.plan import Create, CreateUser, LinkUser, Plan, RecreateItems, Skip, Update
from ..core.snapshot import RENAMED, ItemRec, column_values, columns
from ..models import Feature, Price, Product, ProductFeature, StripeUser, Subscription, SubscriptionItem
from .bulk import batches, insert

KEPT = "the stored row was written after Stripe's page was fetched; kept the newer row"


ITEM_COLUMNS = (
    "id",
    "subscription_id",
    "price_id",
    "quantity",
    "current_period_start",
    "current_period_end",
    "synced_at",
)


@dataclass(frozen=True)
class Spec:
    model: type[models.Model]
    pk: str


SPECS: dict[str, Spec] = {
    "Product": Spec(Product, "id"),
    "Price": Spec(Price, "id"),
    "StripeUser": Spec(StripeUser, "customer_id"),
    "Subscription": Spec(Subscription, "id"),
}


@dataclass
class Result:
    counts: Counter = field(default_factory=Counter)
    conflicts: list[Skip] = field(default_factory=list)


class Applier:
    def __init__(self, plan: Plan, fetched_at: Mapping[tuple[str, str], datetime], batch_size: int = 500):
        self.plan = plan
        self.fetched_at = fetched_at
        self.batch_size = batch_size
        self.now = datetime.now(timezone.utc)
        self.result = Result()
        self.written: dict[str, set[str]] = defaultdict(set)  # model -> ids written this run
        self.inserted: dict[str, set[str]] = defaultdict(set)  # model -> ids inserted this run

    def stamp(self, model: str, oid: str) -> datetime:
        return self.fetched_at.get((model, oid), self.now)

    def run(self) -> Result:
        if not self.plan.writes:
            return self.result
        _lift_sqlite_parameter_limit()
        ops = defaultdict(list)
        for op in self.plan.writes:
            ops[(type(op), op.model)].append(op)
        with transaction.atomic():
            Feature.objects.bulk_create(
                [Feature(id=op.id) for op in ops[(Create, "Feature")]],
                batch_size=self.batch_size,
                ignore_conflicts=True,
            )
            self.result.counts["create"] += len(ops[(Create, "Feature")])
            for model in ("Product", "Price"):
                self.upsert(model, ops[(Create, model)], ops[(Update, model)])
            self.features(ops[(Create, "Product")] + ops[(Update, "Product")])
            links = self.users(ops[(CreateUser, "User")], ops[(LinkUser, "StripeUser")])
            self.upsert("StripeUser", ops[(Create, "StripeUser")], ops[(Update, "StripeUser")], links)
            self.link(links, len(ops[(LinkUser, "StripeUser")]))
            self.upsert("Subscription", ops[(Create, "Subscription")], ops[(Update, "Subscription")])
            self.items(ops[(Create, "Subscription")], ops[(RecreateItems, "SubscriptionItem")])
        return self.result

    # -- products, prices, customers, subscriptions ---------------------------------------------
    def upsert(self, model: str, creates: list[Create], updates: list[Update], links: Mapping | None = None):
        spec = SPECS[model]
        for batch in batches(creates + updates, self.batch_size):
            ids = [op.id for op in batch]
            stored = dict(spec.model.objects.select_for_update().filter(pk__in=ids).values_list(spec.pk, "synced_at"))
            inserts, changed, fields = [], [], {"synced_at"}
            for op in batch:
                at = self.stamp(model, op.id)
                if op.id in stored and stored[op.id] is not None and stored[op.id] > at:
                    self.result.conflicts.append(Skip(model, op.id, KEPT))
                    continue
                if isinstance(op, Create) and op.id not in stored:
                    row = (op.id, *column_values(op.record).values(), at)
                    inserts.append(row + ((links or {}).get(op.id),) if model == "StripeUser" else row)
                    self.inserted[model].add(op.id)
                elif op.id in stored:
                    changed.append(spec.model(**{spec.pk: op.id}, **column_values(op.record), synced_at=at))
                    fields |= (
                        set(columns(type(op.record)))
                        if isinstance(op, Create)
                        else {RENAMED.get(c.field, c.field) for c in op.changes if c.field != "features"}
                    )
                self.written[model].add(op.id)
            names = (spec.pk, *columns(type(batch[0].record)), "synced_at")
            insert(spec.model, names + (("user_id",) if model == "StripeUser" else ()), inserts, self.batch_size)
            if changed:
                spec.model.objects.bulk_update(changed, sorted(fields))
            self.result.counts["create"] += len(inserts)
            self.result.counts["update"] += len(changed)

    def features(self, ops: list[Create | Update]) -> None:
        touched = [
            op
            for op in ops
            if op.id in self.written["Product"]
            and (isinstance(op, Create) or any(c.field == "features" for c in op.changes))
        ]
        for batch in batches(touched, self.batch_size):
            stale = [op.id for op in batch if op.id not in self.inserted["Product"]]
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
            users = []
            for op in batch:
                user = user_model(**dict(op.fields))
                user.password = unusable_password()
                for flag in ("is_staff", "is_superuser"):
                    if hasattr(user, flag):
                        setattr(user, flag, False)
                users.append(user)
            user_model.objects.bulk_create(users)
            for op, user in zip(batch, users, strict=True):
                for customer_id in (op.customer_id, *op.also_link):
                    result[customer_id] = user.pk
            self.result.counts["create_user"] += len(users)
        return result

    def link(self, links: Mapping[str, Any], planned: int) -> None:
        """Store every customer's new user; count the planned links only (the customers of created
        users count in ``create_user``), so that the counts match the plan's."""
        rows = [
            StripeUser(customer_id=cid, user_id=uid)
            for cid, uid in links.items()
            if cid not in self.inserted["StripeUser"]
        ]
        StripeUser.objects.bulk_update(rows, ["user"], batch_size=self.batch_size)
        self.result.counts["link_user"] += planned

    # -- items -----------------------------------------------------------------------------------
    def items(self, creates: list[Create], recreates: list[RecreateItems]) -> None:
        recreates = recreates + [
            RecreateItems(op.id, (), op.record.items)
            for op in creates
            if op.id in self.written["Subscription"] and op.id not in self.inserted["Subscription"]
        ]
        conflicted = {c.id for c in self.result.conflicts if c.model == "Subscription"}
        recreates = [op for op in recreates if op.subscription_id not in conflicted]
        new = [(op.id, op.record.items) for op in creates if op.id in self.inserted["Subscription"]]
        for batch in batches(recreates, self.batch_size):
            SubscriptionItem.objects.filter(subscription_id__in=[op.subscription_id for op in batch]).delete()
            self.insert_items((op.subscription_id, op.new) for op in batch)
            self.result.counts["recreate_items"] += len(batch)
        self.insert_items(new)

    def insert_items(self, subscriptions: Iterable[tuple[str, tuple[ItemRec, ...]]]) -> None:
        rows = (
            (
                i.id,
                sid,
                i.price_id,
                i.quantity,
                i.current_period_start,
                i.current_period_end,
                self.stamp("Subscription", sid),
            )
            for sid, items in subscriptions
            for i in items
        )
        insert(SubscriptionItem, ITEM_COLUMNS, rows, self.batch_size)


def unusable_password() -> str:
    """What ``set_unusable_password()`` stores (the "!" prefix, then random text), from one call to
    the OS's random source instead of 40 calls of ``secrets.choice``."""
    return UNUSABLE_PASSWORD_PREFIX + secrets.token_urlsafe(30)


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


def apply_plan(plan: Plan, fetched_at: Mapping[tuple[str, str], datetime] | None = None, batch_size: int = 500):
    return Applier(plan, fetched_at or {}, batch_size).run()
