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
from django.db.models import Model
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from .conf import raw_settings
from .core.values import show
from .models import Feature, Price, Product, ProductFeature, StripeUser, Subscription, SubscriptionItem, SyncRun

TIERED = "tiered / custom"
# Stripe's zero-decimal and three-decimal currencies (https://docs.stripe.com/currencies); every other
# currency, ISK, HUF and TWD included, has two decimals in the API's minor units.
ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())
MAX_OPERATIONS = 1000  # rows of a report's operations table shown on a SyncRun page


def format_amount(amount: int | None, currency: str) -> str:
    """Minor units as a decimal amount with its currency: ``1200, "usd"`` gives ``"12.00 USD"``."""
    if amount is None:
        return TIERED
    code = (currency or "").lower()
    decimals = 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2
    sign = "-" if amount < 0 else ""
    units, minor = divmod(abs(amount), 10**decimals)
    number = f"{units}.{minor:0{decimals}d}" if decimals else str(units)
    return f"{sign}{number} {code.upper()}".rstrip()


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
        return format_amount(obj.amount, obj.currency)


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
    list_display = ("id", "product", "nickname", "amount_display", "frequency", "active")
    list_filter = ("active", "currency", "frequency")
    list_select_related = ("product",)
    search_fields = ("id", "nickname", "product__id", "product__name")

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: Price) -> str:
        return format_amount(obj.amount, obj.currency)


@admin.register(Feature)
class FeatureAdmin(ReadOnlyAdmin):
    list_display = ("id", "description")
    search_fields = ("id", "description")
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
        return format_amount(obj.price.amount, obj.price.currency)


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    list_display = ("id", "customer", "status", "current_period_end", "cancel_at_period_end")
    list_filter = ("status", "cancel_at_period_end")
    list_select_related = ("stripe_user",)
    inlines = (SubscriptionItemInline,)

    def get_search_fields(self, request):
        return ("id", "stripe_user__customer_id", "stripe_user__email", *_user_email_field("stripe_user__user__"))

    @admin.display(description="Stripe customer", ordering="stripe_user")
    def customer(self, obj: Subscription):
        return self.link(obj.stripe_user)


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
        return format_amount(obj.price.amount, obj.price.currency)


# The audit


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


def _counts_line(counts: Any) -> str:
    if not isinstance(counts, Mapping):
        return ""
    done = [(k, n) for k, n in sorted(counts.items(), key=lambda kv: str(kv[0])) if n]
    return ", ".join(f"{n} {str(k).replace('_', ' ')}" for k, n in done) or "nothing"


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
        in_sync = report.get("in_sync")
        meta = format_html(
            "<p>schema {} &middot; {}</p>",
            _text(schema) or "unknown",
            "in sync" if in_sync is True else "changes planned" if in_sync is False else "in sync: unknown",
        )
        return format_html("{}{}", meta, table) if summary else meta

    @admin.display(description="operations")
    def operations_display(self, obj: SyncRun):
        ops = _dicts(self._report(obj).get("operations"))
        if not ops:
            return "none"
        rows = format_html_join(
            "",
            '<tr title="{}"><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>',
            (
                (
                    _text(op.get("description")),
                    _text(op.get("symbol")),
                    _text(op.get("action")),
                    _text(op.get("model")),
                    _text(op.get("id")),
                    _change_lines(op.get("changes")),
                    _text(op.get("reason")),
                )
                for op in ops[:MAX_OPERATIONS]
            ),
        )
        table = _table(("", "action", "model", "id", "changes", "reason"), rows, "reconcile-operations")
        if len(ops) > MAX_OPERATIONS:
            more = format_html("<p>{} more operations not shown; see the raw report.</p>", len(ops) - MAX_OPERATIONS)
            return format_html("{}{}", table, more)
        return table

    def _model_id_table(self, obj: SyncRun, key: str, text: str):
        """The report's ``key`` list (conflicts or notes) as a table of model, id and ``text``."""
        entries = _dicts(self._report(obj).get(key))
        if not entries:
            return "none"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            ((_text(e.get("model")), _text(e.get("id")), _text(e.get(text))) for e in entries),
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


from .events import admin as _events_admin  # noqa: E402,F401 - the event log, beside SyncRun
