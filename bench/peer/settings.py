"""Settings of the peer project: drf-stripe-subscription 1.2.2 pointed at the fake Stripe (a test double).

Environment:
- ``PEER_DATABASE_URL``: ``sqlite:///path`` or ``postgres://user@host:port/name``;
- ``PEER_API_BASE``: the fake Stripe's URL (loopback); the peer reads it through ``stripe.api_base``.
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

import stripe


def _database(url: str) -> dict:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": unquote(parts.path[1:] if parts.path.startswith("//") else parts.path),
        }
    if parts.scheme in ("postgres", "postgresql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": parts.path.lstrip("/"),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }
    raise ValueError(f"unsupported PEER_DATABASE_URL {url!r}")


SECRET_KEY = "bench-peer-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "drf_stripe",
]
DATABASES = {"default": _database(os.environ.get("PEER_DATABASE_URL", "sqlite:///peer.sqlite3"))}

# drf-stripe-subscription's own settings dict; everything else keeps its defaults (notably
# USER_CREATE_DEFAULTS_ATTRIBUTE_MAP = {"username": "email"}: it creates a user per customer email).
DRF_STRIPE = {
    "STRIPE_API_SECRET": "sk_test_BenchKey000",
    "STRIPE_WEBHOOK_SECRET": "whsec_bench_unused",
    "FRONT_END_BASE_URL": "http://localhost:3000",
}

# The peer calls stripe-python's module-level API; this points it at the fake Stripe on loopback.
stripe.api_base = os.environ.get("PEER_API_BASE", "http://127.0.0.1:9")
