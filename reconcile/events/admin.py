"""The event log in the admin, read-only, beside SyncRun: filter by outcome and type."""

from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html

from ..admin import SyncRunAdmin, _when
from .models import StripeEvent


@admin.register(StripeEvent)
class StripeEventAdmin(SyncRunAdmin):
    list_display = ("id", "type", "outcome", "created_display", "received", "deliveries", "object_id")
    list_filter = ("outcome", "type", "source")
    search_fields = ("id", "object_id", "type")
    date_hierarchy = "created"
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "type",
                    "outcome",
                    "error",
                    "object_id",
                    "created_display",
                    "received",
                    "processed",
                    "source",
                    "deliveries",
                    "attempts",
                    "api_version",
                    "livemode",
                )
            },
        ),
        ("Operations", {"fields": ("report_summary", "operations_display", "conflicts_display", "notes_display")}),
        ("Event", {"classes": ("collapse",), "fields": ("payload_json",)}),
    )
    readonly_fields = tuple(name for _, options in fieldsets for name in options["fields"])

    @admin.display(description="created", ordering="created")
    def created_display(self, obj: StripeEvent) -> str:
        return _when(obj.created)

    @admin.display(description="received", ordering="received_at")
    def received(self, obj: StripeEvent) -> str:
        return _when(obj.received_at)

    @admin.display(description="processed", ordering="processed_at")
    def processed(self, obj: StripeEvent) -> str:
        return _when(obj.processed_at) if obj.processed_at else "not yet"

    @admin.display(description="event (JSON)")
    def payload_json(self, obj: StripeEvent):
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, ensure_ascii=False))
