"""Django admin for reconcile: every model is read-only.

Stripe owns Product, Price, Feature, ProductFeature, StripeUser, Subscription and SubscriptionItem
(write them through reconcile or webhooks), and SyncRun is an audit, so the admin only ever shows
them: no add, change or delete, for superusers too. Everything shown from a report is escaped, as
its values come from Stripe.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Model, Prefetch
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from .conf import raw_settings
from .core.amounts import UNKNOWN, describe_row, money
from .core.report import DONE
from .core.values import show
from .models import Feature, Price, Product, ProductFeature, StripeUser, Subscription, SubscriptionItem, SyncRun

TIERED = UNKNOWN
MAX_OPERATIONS = 1000  # rows of a report's operations table shown on a SyncRun page


def format_amount(amount: int | None, currency: str) -> str:
    """Minor units as a decimal amount with its currency: ``1200, "usd"`` gives ``"12.00 USD"``."""
    return TIERED if amount is None else money(amount, currency)


def admin_link(obj: Model | None, text: Any = None, site: str = "admin") -> SafeString | str:
    """A link to ``obj``'s admin page (its text escaped), or its text when it has no admin page."""
    if obj is None:
        return "-"
    label = str(obj) if text is None else str(text)
    opts = obj._meta
    try:
        url = reverse(f"{site}:{opts.app_label}_{opts.model_name}_change", args=[quote(obj.pk)])
    except NoReverseMatch:
        return label
    return format_html('<a href="{}">{}</a>', url, label)


def _user_email_field(prefix: str) -> list[str]:
    """``prefix + the user model's email field``, when the user model has that field."""
    name = raw_settings().get("USER_EMAIL_FIELD") or get_user_model().get_email_field_name()
    try:
        get_user_model()._meta.get_field(name)
    except FieldDoesNotExist:
        return []
    return [f"{prefix}{name}"]


class ReadOnlyMixin:
    """View permission only: Stripe (or the audit) owns these rows."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyAdmin(ReadOnlyMixin, admin.ModelAdmin):
    actions = None
    # A list of many columns of long Stripe ids: without the navigation sidebar on its changelist
    # (the page keeps its breadcrumbs), it fits 1280 px without horizontal scrolling.
    wide_list = False

    def changelist_view(self, request, extra_context=None):
        if self.wide_list:
            extra_context = {"is_nav_sidebar_enabled": False, **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    def get_fields(self, request, obj=None):
        """The model's fields, ``synced_at`` (bookkeeping, inherited first) moved last."""
        fields = list(super().get_fields(request, obj))
        if "synced_at" in fields:
            fields.remove("synced_at")
            fields.append("synced_at")
        return fields

    def link(self, obj: Model | None, text: Any = None) -> SafeString | str:
        return admin_link(obj, text, self.admin_site.name)


class ReadOnlyTabularInline(ReadOnlyMixin, admin.TabularInline):
    extra = 0
    max_num = 0
    can_delete = False

    def link(self, obj: Model | None, text: Any = None) -> SafeString | str:
        return admin_link(obj, text, self.admin_site.name)


# Products, prices and features


class PriceInline(ReadOnlyTabularInline):
    model = Price
    fields = ("price_link", "nickname", "amount_display", "frequency", "active")
    readonly_fields = fields

    @admin.display(description="price")
    def price_link(self, obj: Price):
        return self.link(obj)

    @admin.display(description="amount")
    def amount_display(self, obj: Price) -> str:
        return describe_row(obj)


def _links_inline(shows: str) -> type[ReadOnlyTabularInline]:
    """ProductFeature rows seen from one side: a product's features, or a feature's products."""

    class LinksInline(ReadOnlyTabularInline):
        model = ProductFeature
        fields = (shows,)
        readonly_fields = fields
        verbose_name = shows
        verbose_name_plural = f"{shows}s"

        def get_queryset(self, request):
            return super().get_queryset(request).select_related(shows)

    LinksInline.__name__ = f"ProductFeature{shows.title()}Inline"
    return LinksInline


ProductFeatureInline = _links_inline("feature")
LinkedProductInline = _links_inline("product")


@admin.register(Product)
class ProductAdmin(ReadOnlyAdmin):
    list_display = ("id", "name", "active", "synced_at")
    list_filter = ("active",)
    search_fields = ("id", "name")
    inlines = (PriceInline, ProductFeatureInline)


@admin.register(Price)
class PriceAdmin(ReadOnlyAdmin):
    list_display = ("id", "product_link", "nickname", "amount_display", "frequency", "active")
    wide_list = True
    list_filter = ("active", "currency", "type", "billing_scheme", "interval", "usage_type")
    list_select_related = ("product",)
    search_fields = ("id", "nickname", "product__id", "product__name")

    @admin.display(description="product", ordering="product__name")
    def product_link(self, obj: Price):
        return self.link(obj.product, obj.product.name or obj.product_id)

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: Price) -> str:
        return describe_row(obj)


@admin.register(Feature)
class FeatureAdmin(ReadOnlyAdmin):
    list_display = ("id", "lookup_key", "name")
    search_fields = ("id", "lookup_key", "name", "description")
    inlines = (LinkedProductInline,)


@admin.register(ProductFeature)
class ProductFeatureAdmin(ReadOnlyAdmin):
    list_display = ("product", "feature")
    list_select_related = ("product", "feature")
    search_fields = ("product__id", "product__name", "feature__id")


# Customers and subscriptions


class SubscriptionInline(ReadOnlyTabularInline):
    model = Subscription
    fields = ("subscription_link", "status", "current_period_end", "cancel_at_period_end")
    readonly_fields = fields

    @admin.display(description="subscription")
    def subscription_link(self, obj: Subscription):
        return self.link(obj, obj.id)


@admin.register(StripeUser)
class StripeUserAdmin(ReadOnlyAdmin):
    list_display = ("customer_id", "email", "name", "user_link")
    list_select_related = ("user",)
    inlines = (SubscriptionInline,)

    @admin.display(description="user", ordering="user")
    def user_link(self, obj: StripeUser):
        return self.link(obj.user) if obj.user_id else None

    def get_search_fields(self, request):
        return ("customer_id", "email", "name", *_user_email_field("user__"))


class SubscriptionItemInline(ReadOnlyTabularInline):
    model = SubscriptionItem
    fields = ("item_link", "price_link", "product", "amount", "quantity", "current_period_start", "current_period_end")
    readonly_fields = fields
    verbose_name = "item"
    verbose_name_plural = "items"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("price__product")

    @admin.display(description="item")
    def item_link(self, obj: SubscriptionItem):
        return self.link(obj, obj.id)

    @admin.display(description="price")
    def price_link(self, obj: SubscriptionItem):
        return self.link(obj.price)

    @admin.display(description="product")
    def product(self, obj: SubscriptionItem):
        return self.link(obj.price.product)

    @admin.display(description="amount")
    def amount(self, obj: SubscriptionItem) -> str:
        return describe_row(obj.price)


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    list_display = ("id", "customer", "user", "products", "status", "currency", "period_end", "cancels")
    wide_list = True
    list_filter = ("status", "cancel_at_period_end", "currency", "collection_method", "pause_collection_behavior")
    list_select_related = ("stripe_user__user",)
    inlines = (SubscriptionItemInline,)

    def get_queryset(self, request):
        # the products column: one query for every item, price and product of the page
        items = SubscriptionItem.objects.select_related("price__product").order_by("id")
        return super().get_queryset(request).prefetch_related(Prefetch("items", queryset=items))

    @admin.display(description="user", ordering="stripe_user__user")
    def user(self, obj: Subscription):
        return self.link(obj.stripe_user.user) if obj.stripe_user.user_id else "-"

    @admin.display(description="products")
    def products(self, obj: Subscription):
        seen = {item.price.product_id: item.price.product for item in obj.items.all()}
        return format_html_join(", ", "{}", ((self.link(p, p.name or p.id),) for p in seen.values())) or "-"

    @admin.display(description="period end", ordering="current_period_end")
    def period_end(self, obj: Subscription) -> str:
        return f"{obj.current_period_end:%Y-%m-%d}" if obj.current_period_end else "-"

    @admin.display(description="cancels", boolean=True, ordering="cancel_at_period_end")
    def cancels(self, obj: Subscription) -> bool:
        return obj.cancel_at_period_end

    def get_search_fields(self, request):
        return ("id", "stripe_user__customer_id", "stripe_user__email", *_user_email_field("stripe_user__user__"))

    @admin.display(description="Stripe customer", ordering="stripe_user")
    def customer(self, obj: Subscription):
        return self.link(obj.stripe_user, obj.stripe_user_id)  # its email is a click (or a search) away


@admin.register(SubscriptionItem)
class SubscriptionItemAdmin(ReadOnlyAdmin):
    list_display = ("id", "subscription_link", "price_link", "amount", "quantity", "current_period_end")
    list_select_related = ("subscription", "price")
    search_fields = ("id", "subscription__id", "price__id")

    @admin.display(description="subscription", ordering="subscription")
    def subscription_link(self, obj: SubscriptionItem):
        return self.link(obj.subscription)

    @admin.display(description="price", ordering="price")
    def price_link(self, obj: SubscriptionItem):
        return self.link(obj.price)

    @admin.display(description="amount")
    def amount(self, obj: SubscriptionItem) -> str:
        return describe_row(obj.price)


# The audit


# The admin page an operation's id opens: a user created or a recreated item set is seen from its
# customer or subscription (the operation's id is theirs).
REPORT_MODELS: dict[str, type[Model]] = {
    "Product": Product,
    "Price": Price,
    "Feature": Feature,
    "StripeUser": StripeUser,
    "User": StripeUser,
    "Subscription": Subscription,
    "SubscriptionItem": Subscription,
}


def _dicts(value: Any) -> list[Mapping]:
    """The dicts of a report's list (a report written by another version may hold anything)."""
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _when(value: datetime | None) -> str:
    """A time to the second (the admin's default format drops seconds), in the current time zone."""
    if value is None:
        return "-"
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").rstrip()


def _text(value: Any) -> str:
    return "" if value is None else str(value)


# What a run did, in the words of its "Applied:" line.
DONE_WORDS = {**{a.key: w for a, w in DONE.items()}, "conflict": "conflicts kept the newer row"}


def _counts_line(counts: Any) -> str:
    if not isinstance(counts, Mapping):
        return ""
    order = list(DONE_WORDS)
    done = sorted(
        ((k, n) for k, n in counts.items() if n),
        key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), str(kv[0])),
    )
    return ", ".join(f"{n} {DONE_WORDS.get(k, str(k).replace('_', ' '))}" for k, n in done) or "nothing"


def _table(headers: Iterable[str], rows: SafeString, css: str = "") -> SafeString:
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    return format_html('<table class="{}"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', css, head, rows)


def _change_lines(changes: Any) -> SafeString:
    lines = ((_text(c.get("field")), show(c.get("old")), show(c.get("new"))) for c in _dicts(changes))
    return format_html_join(mark_safe("<br>"), "{}: {} -&gt; {}", lines)


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = ("started", "command", "outcome", "duration_display", "counts_summary")
    list_filter = ("outcome", "command")
    search_fields = ("command", "outcome")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "command",
                    "outcome",
                    "started",
                    "finished",
                    "duration_display",
                    "options_display",
                    "counts_summary",
                )
            },
        ),
        (
            "Report",
            {
                "fields": (
                    "report_summary",
                    "operations_display",
                    "conflicts_display",
                    "notes_display",
                    "next_cursor_display",
                )
            },
        ),
        ("Raw report", {"classes": ("collapse",), "fields": ("report_json",)}),
    )
    readonly_fields = tuple(name for _, options in fieldsets for name in options["fields"])

    @staticmethod
    def _report(obj: SyncRun) -> Mapping:
        return obj.report if isinstance(obj.report, Mapping) else {}

    @admin.display(description="started at", ordering="started_at")
    def started(self, obj: SyncRun) -> str:
        return _when(obj.started_at)

    @admin.display(description="finished at", ordering="finished_at")
    def finished(self, obj: SyncRun) -> str:
        return _when(obj.finished_at)

    @admin.display(description="duration")
    def duration_display(self, obj: SyncRun) -> str:
        return f"{obj.duration:.1f} s"

    @admin.display(description="counts")
    def counts_summary(self, obj: SyncRun) -> str:
        return _counts_line(obj.counts)

    @admin.display(description="options")
    def options_display(self, obj: SyncRun):
        return format_html("<pre>{}</pre>", json.dumps(obj.options, indent=2, sort_keys=True, ensure_ascii=False))

    @admin.display(description="summary")
    def report_summary(self, obj: SyncRun):
        report = self._report(obj)
        summary = report.get("summary")
        summary = summary if isinstance(summary, Mapping) else {}
        table = format_html(
            "<table><thead><tr>{}</tr></thead><tbody><tr>{}</tr></tbody></table>",
            format_html_join("", "<th>{}</th>", ((str(k).replace("_", " "),) for k in summary)),
            format_html_join("", "<td>{}</td>", ((_text(n),) for n in summary.values())),
        )
        schema = report.get("schema")
        # a SyncRun is an applied run: its plan was written, so say what happened, not "planned"
        meta = format_html("<p>schema {} &middot; {}</p>", _text(schema) or "unknown", _text(obj.outcome) or "applied")
        return format_html("{}{}", meta, table) if summary else meta

    @admin.display(description="operations")
    def operations_display(self, obj: SyncRun):
        """Changes first (updates, links, skips... with their fields); creates, which on a first run
        are thousands of rows of every field, folded into one collapsed list."""
        ops = _dicts(self._report(obj).get("operations"))
        if not ops:
            return "none"
        shown = ops[:MAX_OPERATIONS]
        urls = self._object_urls(shown)
        changes = [op for op in shown if op.get("action") != "create"]
        creates = [op for op in shown if op.get("action") == "create"]
        rows = format_html_join(
            "",
            '<tr title="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    _text(op.get("description")),
                    _text(op.get("symbol")),
                    _text(op.get("action")),
                    _text(op.get("model")),
                    self._op_id(op, urls),
                    _change_lines(op.get("changes")),
                    _text(op.get("reason")),
                )
                for op in changes
            ),
        )
        parts = [
            _table(("", "action", "model", "id", "changes", "reason"), rows, "reconcile-operations")
            if changes
            else format_html("<p>{}</p>", "No change to rows stored before this run.")
        ]
        if creates:
            parts.append(self._creates(creates, urls))
        if len(ops) > MAX_OPERATIONS:
            parts.append(
                format_html("<p>{} more operations not shown; see the raw report.</p>", len(ops) - MAX_OPERATIONS)
            )
        return format_html_join("", "{}", ((p,) for p in parts))

    def _creates(self, creates: list[Mapping], urls: Mapping) -> SafeString:
        per_model: dict[str, int] = {}
        for op in creates:
            per_model[_text(op.get("model"))] = per_model.get(_text(op.get("model")), 0) + 1
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((_text(op.get("model")), self._op_id(op, urls), _text(op.get("description"))) for op in creates),
        )
        return format_html(
            '<details class="reconcile-creates"><summary>{} created ({}): show</summary>{}</details>',
            len(creates),
            ", ".join(f"{model} {n}" for model, n in per_model.items()),
            _table(("model", "id", "created"), rows, "reconcile-created"),
        )

    def _object_urls(self, ops: list[Mapping]) -> dict[tuple[str, str], str]:
        """The admin page of every stored object the operations name: one query per model."""
        wanted: dict[type[Model], set[str]] = {}
        for op in ops:
            model, oid = REPORT_MODELS.get(_text(op.get("model"))), op.get("id")
            if model is not None and isinstance(oid, str):
                wanted.setdefault(model, set()).add(oid)
        urls: dict[tuple[str, str], str] = {}
        for model, ids in wanted.items():
            opts = model._meta
            try:
                name = f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_change"
                reverse(name, args=["x"])
            except NoReverseMatch:
                continue
            ordered = sorted(ids)
            for start in range(0, len(ordered), 500):
                for pk in model.objects.filter(pk__in=ordered[start : start + 500]).values_list("pk", flat=True):
                    urls[(opts.label, pk)] = reverse(name, args=[quote(pk)])
        return urls

    @staticmethod
    def _op_id(op: Mapping, urls: Mapping) -> SafeString:
        model = REPORT_MODELS.get(_text(op.get("model")))
        url = urls.get((model._meta.label, op.get("id"))) if model is not None else None
        if url:
            return format_html('<a href="{}"><code>{}</code></a>', url, _text(op.get("id")))
        return format_html("<code>{}</code>", _text(op.get("id")))

    def _model_id_table(self, obj: SyncRun, key: str, text: str):
        """The report's ``key`` list (conflicts or notes) as a table of model, id and ``text``."""
        entries = _dicts(self._report(obj).get(key))
        if not entries:
            return "none"
        urls = self._object_urls(entries)
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((_text(e.get("model")), self._op_id(e, urls), _text(e.get(text))) for e in entries),
        )
        return _table(("model", "id", text), rows, f"reconcile-{key}")

    @admin.display(description="conflicts")
    def conflicts_display(self, obj: SyncRun):
        return self._model_id_table(obj, "conflicts", "reason")

    @admin.display(description="notes")
    def notes_display(self, obj: SyncRun):
        return self._model_id_table(obj, "notes", "message")

    @admin.display(description="next cursor")
    def next_cursor_display(self, obj: SyncRun):
        cursor = self._report(obj).get("next_cursor")
        if not isinstance(cursor, Mapping) or not cursor:
            return "none"
        return format_html_join(
            mark_safe("<br>"),
            "{}: --starting_after {}",
            ((_text(k), _text(v)) for k, v in sorted(cursor.items(), key=lambda kv: str(kv[0]))),
        )

    @admin.display(description="report (JSON)")
    def report_json(self, obj: SyncRun):
        return format_html("<pre>{}</pre>", json.dumps(obj.report, indent=2, ensure_ascii=False))
