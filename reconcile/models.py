"""Local copies of Stripe objects. Stripe owns them: write them through reconcile or webhooks.

They are not drf-stripe-subscription's models: the tables (``reconcile_*``) and several field
names differ (``Price.amount`` for ``price``, ``frequency`` for ``freq``, ``id`` for ``product_id``
and the like, one ``StripeUser`` per customer); docs/migrating-from-drf-stripe-subscription.md
maps each one. Which Stripe field fills which column: ``core/registry.py``.
``synced_at`` records when a row was last written from Stripe data (by a sync run, at the time
its Stripe page was fetched; a webhook handler should set it to the event's time or now). A run
never overwrites a row whose ``synced_at`` is newer than the page it fetched.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from .fields import ExactDecimalField


class StripeRow(models.Model):
    synced_at = models.DateTimeField(
        null=True, blank=True, help_text="When this row was last written from Stripe data."
    )

    class Meta:
        abstract = True


class StripeObject(StripeRow):
    """A row holding one Stripe object, keyed by its Stripe id."""

    id = models.CharField(max_length=255, primary_key=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.id


class Product(StripeObject):
    name = models.CharField(max_length=255)
    description = models.TextField(null=True, blank=True)
    active = models.BooleanField(default=True)
    metadata = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class Price(StripeObject):
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="prices")
    amount = models.BigIntegerField(null=True, blank=True, help_text="Minor units; NULL for tiered or custom prices.")
    currency = models.CharField(max_length=3)
    frequency = models.CharField(
        max_length=32, null=True, blank=True, help_text='"{interval}_{interval_count}"; NULL for one-time prices.'
    )
    active = models.BooleanField(default=True)
    nickname = models.CharField(max_length=255, null=True, blank=True)
    lookup_key = models.CharField(max_length=200, null=True, blank=True, db_index=True)
    tax_behavior = models.CharField(
        max_length=16,
        null=True,
        blank=True,
        help_text="inclusive, exclusive or unspecified; NULL when Stripe omits it.",
    )
    # What the amount means (README, "Models"): Stripe's own names, NULL where Stripe gives none.
    type = models.CharField(max_length=16, null=True, blank=True, help_text="one_time or recurring.")
    billing_scheme = models.CharField(max_length=16, null=True, blank=True, help_text="per_unit or tiered.")
    interval = models.CharField(max_length=8, null=True, blank=True, help_text="day, week, month or year.")
    interval_count = models.PositiveIntegerField(null=True, blank=True)
    usage_type = models.CharField(max_length=16, null=True, blank=True, help_text="licensed or metered.")
    unit_amount_decimal = ExactDecimalField(
        max_digits=32,
        decimal_places=12,
        null=True,
        blank=True,
        help_text="The exact unit amount in minor units (may hold fractions of a cent, e.g. 0.5).",
    )
    transform_divide_by = models.PositiveIntegerField(
        null=True, blank=True, help_text="The amount is per package of this many units."
    )
    transform_round = models.CharField(max_length=8, null=True, blank=True, help_text="up or down.")
    tiers_mode = models.CharField(max_length=16, null=True, blank=True, help_text="graduated or volume.")
    tiers = models.JSONField(default=list, blank=True, help_text="Stripe's tiers, in order; [] unless tiered.")
    currency_options = models.JSONField(
        default=dict, blank=True, help_text="Amounts in other currencies, by currency code (not the price's own)."
    )
    custom_unit_amount = models.JSONField(
        null=True, blank=True, help_text="{minimum, maximum, preset}: the customer chooses the amount."
    )


class Feature(StripeRow):
    id = models.CharField(max_length=255, primary_key=True)
    description = models.TextField(null=True, blank=True)
    lookup_key = models.CharField(
        max_length=200, null=True, blank=True, db_index=True, help_text="An Entitlements feature's lookup key."
    )
    name = models.CharField(max_length=255, null=True, blank=True, help_text="An Entitlements feature's name.")

    def __str__(self) -> str:
        return self.id


class ProductFeature(models.Model):
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="linked_features")
    feature = models.ForeignKey(Feature, on_delete=models.CASCADE, related_name="linked_products")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["product", "feature"], name="reconcile_product_feature_unique")]

    def __str__(self) -> str:
        return f"{self.product_id}: {self.feature_id}"


class StripeUser(StripeRow):
    customer_id = models.CharField(max_length=255, primary_key=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="stripe_users"
    )
    email = models.CharField(max_length=255, null=True, blank=True)
    name = models.CharField(max_length=255, null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = "Stripe customer"

    def __str__(self) -> str:
        return f"{self.customer_id} ({self.email or 'no email'})"


class Subscription(StripeObject):
    stripe_user = models.ForeignKey(
        StripeUser, on_delete=models.CASCADE, related_name="subscriptions", verbose_name="Stripe customer"
    )
    status = models.CharField(max_length=32, db_index=True)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    canceled_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    trial_start = models.DateTimeField(null=True, blank=True)
    trial_end = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    currency = models.CharField(max_length=3, null=True, blank=True, help_text="The currency it bills in.")
    collection_method = models.CharField(
        max_length=32, null=True, blank=True, help_text="charge_automatically or send_invoice."
    )
    cancellation_reason = models.CharField(
        max_length=64, null=True, blank=True, help_text="cancellation_details.reason: why Stripe canceled it."
    )
    pause_collection_behavior = models.CharField(
        max_length=32,
        null=True,
        blank=True,
        help_text="Set while payment collection is paused: keep_as_draft, mark_uncollectible or void.",
    )
    pause_collection_resumes_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"


class SubscriptionItem(StripeObject):
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="items")
    price = models.ForeignKey(Price, on_delete=models.PROTECT, related_name="subscription_items")
    quantity = models.PositiveIntegerField(null=True, blank=True)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)


class SyncRun(models.Model):
    """One applied run (dry runs are not recorded), written in the run's own transaction."""

    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField()
    command = models.CharField(max_length=64)
    options = models.JSONField(default=dict, blank=True)
    outcome = models.CharField(max_length=32)
    counts = models.JSONField(default=dict, blank=True)
    report = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at"]
        get_latest_by = "started_at"

    @property
    def duration(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    def __str__(self) -> str:
        return f"{self.command} at {self.started_at:%Y-%m-%d %H:%M:%S} ({self.outcome})"
