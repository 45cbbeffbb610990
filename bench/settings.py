"""Django settings of the benchmark (``python -m bench``): the demo project's, pointed at the bench's
database and at the fake Stripe (a test double on loopback) by environment variables.

- ``BENCH_DATABASE_URL``: any URL dj-database-url understands (default: ``.bench/bench.sqlite3``);
- ``BENCH_API_BASE``: the fake Stripe's URL;
- ``BENCH_UNTHROTTLED``: "1" to lift reconcile's client-side rate limits (``RATE_LIMIT`` and, where
  the setting exists, ``RATE_LIMIT_TOTAL``), for runs against a fake that has no rate limit;
  otherwise reconcile keeps its defaults;
- ``BENCH_CREATE_USERS``: "1" to set ``USER_CREATE_DEFAULTS_ATTRIBUTE_MAP`` (the side by side);
- ``BENCH_READ_IN_PROCESS``: "1" to set ``READ_STORED_IN_CHILD`` False (a re-pull reads the stored
  rows in its own process, before the fetch);
- ``BENCH_RECONCILE_JSON``: further ``RECONCILE`` settings as a JSON object, for a one-off
  comparison (``'{"CONCURRENCY": 1}'``: one request at a time, the listings one after the other).
"""

from __future__ import annotations

import os

import dj_database_url

from demo.settings import *  # noqa: F403
from demo.settings import BASE_DIR
from reconcile.conf import DEFAULTS

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{BASE_DIR / '.bench' / 'bench.sqlite3'}"), conn_max_age=0
    )
}

RECONCILE = {
    "API_KEY": "sk_test_BenchKey000",
    "API_BASE": os.environ.get("BENCH_API_BASE", "http://127.0.0.1:9"),
}
if os.environ.get("BENCH_UNTHROTTLED") == "1":
    RECONCILE.update({key: 1_000_000.0 for key in ("RATE_LIMIT", "RATE_LIMIT_TOTAL") if key in DEFAULTS})
if os.environ.get("BENCH_READ_IN_PROCESS") == "1":  # the stored rows read by the run's own process
    RECONCILE["READ_STORED_IN_CHILD"] = False
if os.environ.get("BENCH_CREATE_USERS") == "1":
    RECONCILE["USER_CREATE_DEFAULTS_ATTRIBUTE_MAP"] = {"username": "email", "email": "email"}

LOGGING = {"version": 1, "disable_existing_loggers": False}
if os.environ.get("BENCH_RECONCILE_JSON"):  # further settings for a one-off comparison (JSON object)
    import json

    RECONCILE.update(json.loads(os.environ["BENCH_RECONCILE_JSON"]))
