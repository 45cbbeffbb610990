"""The app's settings: one ``RECONCILE`` dict with documented defaults.

A project moving from drf-stripe-subscription keeps its ``DRF_STRIPE`` dict: its
``STRIPE_API_SECRET``, ``DJANGO_USER_EMAIL_FIELD`` and ``USER_CREATE_DEFAULTS_ATTRIBUTE_MAP``
are read when the matching ``RECONCILE`` keys are absent.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings as django_settings

from .errors import ConfigError

KEY_CHARACTERS = re.compile(r"[A-Za-z0-9_]+")  # every Stripe key: sk_/rk_, test_/live_, then letters and digits

DEFAULTS: dict[str, Any] = {
    "API_KEY": "",  # Stripe secret or restricted key; falls back to $STRIPE_API_KEY
    "API_BASE": None,  # e.g. "http://127.0.0.1:12111" for a local server; None: Stripe itself
    "API_VERSION": None,  # None: the version stripe-python pins
    "FEATURES_METADATA_KEY": "features",
    # Where a product's features come from: "metadata" (the key above, drf-stripe-subscription's
    # way), "entitlements" (Stripe's Entitlements features), or "both" (their union).
    "FEATURES_SOURCE": "metadata",
    "USER_EMAIL_FIELD": "email",
    "USER_CREATE_DEFAULTS_ATTRIBUTE_MAP": None,  # {user_field: customer_attribute}; None: never create
    # Link customers to staff, superuser or inactive accounts by email too. Off: Stripe does not
    # verify emails, so anyone could type an admin's email at checkout and get the admin's account.
    "LINK_PRIVILEGED_USERS": False,
    "SQLITE_BUSY_TIMEOUT": 60.0,  # seconds a run waits for another writer's lock on a SQLite database
    "PAGE_SIZE": 100,  # Stripe's maximum
    "BATCH_SIZE": 500,  # rows per bulk statement
    "MAX_RETRIES": 5,  # per request, for 5xx, 429 and network errors
    "RETRY_BASE_DELAY": 0.5,  # seconds, doubled per try, with jitter
    "RETRY_MAX_DELAY": 8.0,
    "TIMEOUT": 30.0,  # seconds per request
    "CONCURRENCY": 8,  # requests in flight per listing while fetching, all listings at once; 1: one in all
    "FETCH_ON_ONE_CPU": True,  # the fetch's threads on the CPU the run is on (Linux; reconcile/stripe/affinity.py)
    "READ_STORED_IN_CHILD": True,  # a re-pull reads the stored rows in a forked child while it fetches (Linux)
    "RATE_LIMIT": None,  # requests per second per endpoint; None: no per-endpoint throttle
    "RATE_LIMIT_TOTAL": None,  # requests per second for the whole account; None: Stripe's, from the key
    # glibc's malloc as a run leaves the process (reconcile/malloc.py); None: glibc's default.
    # glibc's own $MALLOC_ARENA_MAX and $MALLOC_MMAP_THRESHOLD_ win over them.
    "MALLOC_ARENA_MAX": 2,  # arenas the run's threads share
    "MALLOC_MMAP_THRESHOLD": 131_072,  # bytes from which a block is mapped on its own (fixed)
    "ACCESS_STATUSES": ("active", "trialing"),  # subscription statuses that grant access (reconcile.access)
    # Events (reconcile.events): the webhook endpoint, the event log, incremental pulls.
    "WEBHOOK_SECRETS": (),  # one "whsec_..." or several (rotation); none: the endpoint answers 400
    "WEBHOOK_TOLERANCE": 300,  # seconds a signature's timestamp may be old
    "WEBHOOK_MODE": "payload",  # "payload": trust data.object; "refetch": retrieve the object from Stripe
    "WEBHOOK_QUEUE": None,  # None: process in the request; "celery": store, enqueue, answer at once
    "WEBHOOK_MAX_BYTES": 1_048_576,  # larger bodies get 413
    "EVENT_RETENTION_DAYS": 30,  # stripe_events prune deletes log entries older than this
    "EVENTS_CURSOR_MARGIN": 300,  # seconds a stored cursor starts before the run that stored it
}

# Stripe's documented account-wide limits (read requests per second): 25 in test mode (sandboxes),
# 100 in live mode. ``RATE_LIMIT_TOTAL = None`` picks the one matching the key.
TEST_MODE_RATE = 25.0
LIVE_MODE_RATE = 100.0


def stripe_rate_limit(api_key: str) -> float:
    """Stripe's account-wide limit for this key: test-mode keys (sk_test_, rk_test_) 25/s, else 100/s."""
    return TEST_MODE_RATE if api_key.startswith(("sk_test_", "rk_test_")) else LIVE_MODE_RATE


# Stripe's subscription statuses (https://docs.stripe.com/api/subscriptions/object#subscription_object-status).
SUBSCRIPTION_STATUSES = frozenset(
    {"incomplete", "incomplete_expired", "trialing", "active", "past_due", "canceled", "unpaid", "paused"}
)

# drf-stripe-subscription's names for the same settings.
DRF_STRIPE_ALIASES = {
    "API_KEY": "STRIPE_API_SECRET",
    "USER_EMAIL_FIELD": "DJANGO_USER_EMAIL_FIELD",
    "USER_CREATE_DEFAULTS_ATTRIBUTE_MAP": "USER_CREATE_DEFAULTS_ATTRIBUTE_MAP",
}

# Customer attributes a user-creation map may read.
CUSTOMER_ATTRIBUTES = frozenset({"email", "name", "id"})

# User fields a user-creation map must never set: they grant access or hold credentials.
PRIVILEGED_USER_FIELDS = frozenset(
    {"is_staff", "is_superuser", "is_admin", "password", "groups", "user_permissions", "last_login", "id", "pk"}
)


@dataclass(frozen=True)
class Config:
    api_key: str = field(repr=False)  # kept out of reprs: tracebacks with locals, error trackers
    api_base: str | None
    api_version: str | None
    features_metadata_key: str
    features_source: str
    user_email_field: str
    user_create_map: dict[str, str] | None
    link_privileged_users: bool
    sqlite_busy_timeout: float
    page_size: int
    batch_size: int
    max_retries: int
    retry_base_delay: float
    retry_max_delay: float
    timeout: float
    concurrency: int
    rate_limit: float | None  # per endpoint; None: none
    rate_limit_total: float  # the whole account (resolved from the key when not set)
    access_statuses: tuple[str, ...] = ("active", "trialing")
    malloc_arena_max: int | None = 2
    malloc_mmap_threshold: int | None = 131_072
    fetch_on_one_cpu: bool = True
    read_stored_in_child: bool = True


def raw_settings() -> dict[str, Any]:
    """The effective settings: RECONCILE, then DRF_STRIPE aliases, then defaults."""
    own = dict(getattr(django_settings, "RECONCILE", None) or {})
    legacy = dict(getattr(django_settings, "DRF_STRIPE", None) or {})
    merged = dict(DEFAULTS)
    merged.update({key: legacy[alias] for key, alias in DRF_STRIPE_ALIASES.items() if alias in legacy})
    merged.update(own)
    if not merged["API_KEY"]:
        merged["API_KEY"] = os.environ.get("STRIPE_API_KEY", "")
    return merged


FEATURES_SOURCES = ("metadata", "entitlements", "both")


def features_source(value: Any) -> str:
    if value not in FEATURES_SOURCES:
        raise ConfigError(
            f"RECONCILE['FEATURES_SOURCE'] is {value!r}; it must be one of {', '.join(map(repr, FEATURES_SOURCES))}."
        )
    return value


def get_config() -> Config:
    s = raw_settings()
    return Config(
        # A key read from a file or a secret store often ends with a line break: strip it here, so
        # that it never reaches an HTTP header (where requests would print it whole in its error).
        api_key=(s["API_KEY"] or "").strip() if isinstance(s["API_KEY"], str) else "",
        api_base=(s["API_BASE"] or None),
        api_version=s["API_VERSION"] or None,
        features_metadata_key=s["FEATURES_METADATA_KEY"],
        features_source=features_source(s["FEATURES_SOURCE"]),
        user_email_field=s["USER_EMAIL_FIELD"],
        user_create_map=dict(s["USER_CREATE_DEFAULTS_ATTRIBUTE_MAP"])
        if s["USER_CREATE_DEFAULTS_ATTRIBUTE_MAP"]
        else None,
        link_privileged_users=bool(s["LINK_PRIVILEGED_USERS"]),
        sqlite_busy_timeout=float(s["SQLITE_BUSY_TIMEOUT"]),
        page_size=int(s["PAGE_SIZE"]),
        batch_size=int(s["BATCH_SIZE"]),
        max_retries=int(s["MAX_RETRIES"]),
        retry_base_delay=float(s["RETRY_BASE_DELAY"]),
        retry_max_delay=float(s["RETRY_MAX_DELAY"]),
        timeout=float(s["TIMEOUT"]),
        concurrency=int(s["CONCURRENCY"]),
        rate_limit=float(s["RATE_LIMIT"]) if s["RATE_LIMIT"] else None,
        rate_limit_total=float(s["RATE_LIMIT_TOTAL"] or stripe_rate_limit(s["API_KEY"] or "")),
        access_statuses=tuple(s["ACCESS_STATUSES"]),
        malloc_arena_max=s["MALLOC_ARENA_MAX"],
        malloc_mmap_threshold=s["MALLOC_MMAP_THRESHOLD"],
        fetch_on_one_cpu=bool(s["FETCH_ON_ONE_CPU"]),
        read_stored_in_child=bool(s["READ_STORED_IN_CHILD"]),
    )


def key_problem(key: object) -> str | None:
    """Why a Stripe key cannot be used (None when it can); the message never repeats the key."""
    if not isinstance(key, str) or not key.strip():
        return "no Stripe API key is set"
    key = key.strip()  # a key read from a file ends with a line break: it is stripped when read
    if key.startswith("pk_"):
        return (
            "the Stripe API key is a publishable key (pk_...), which cannot list customers or subscriptions; "
            "use a secret key (sk_...) or a restricted key with read access (rk_...)"
        )
    if not key.startswith(("sk_", "rk_")):
        return "the Stripe API key does not look like a secret key (sk_...) or a restricted key (rk_...)"
    if not KEY_CHARACTERS.fullmatch(key):
        return (
            "the Stripe API key has a character no Stripe key has (a space, a line break or a control character "
            "inside it?): a key holds letters, digits and underscores only"
        )
    return None


def key_hint() -> str:
    """Where a person sets the key: the standalone CLI's environment variable, or the project's settings."""
    if getattr(django_settings, "RECONCILE_STANDALONE", False):
        return STANDALONE_KEY_HINT
    return "Check RECONCILE['API_KEY'] (or DRF_STRIPE['STRIPE_API_SECRET'], or $STRIPE_API_KEY)."


STANDALONE_KEY_HINT = (
    "Set the environment variable STRIPE_API_KEY (export STRIPE_API_KEY=sk_test_...), "
    "or give --settings MODULE to use your Django project's settings."
)
