"""Mount with ``path("stripe/webhook/", include("reconcile.urls"))``: the Stripe webhook endpoint."""

from __future__ import annotations

from django.urls import path

from .events.views import webhook

app_name = "reconcile"
urlpatterns = [path("", webhook, name="webhook")]
