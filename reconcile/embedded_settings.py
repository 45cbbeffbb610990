"""Built-in settings for the standalone ``reconcile`` command, when no Django project is given.

A SQLite file in the current directory (``reconcile.sqlite3``, or ``$RECONCILE_DATABASE``), the
Stripe key from ``$STRIPE_API_KEY`` and an optional ``$STRIPE_API_BASE``. Plan files are signed
with ``$RECONCILE_SECRET_KEY``, or with a key kept beside the database (created on first use).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

DATABASE_PATH = Path(os.environ.get("RECONCILE_DATABASE", "reconcile.sqlite3")).resolve()


def _secret_key() -> str:
    if os.environ.get("RECONCILE_SECRET_KEY"):
        return os.environ["RECONCILE_SECRET_KEY"]
    key_file = DATABASE_PATH.with_name(DATABASE_PATH.name + ".key")
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "reconcile.apps.ReconcileConfig"]
# Write-ahead logging: a dry run or check reads while another run applies, never waiting for its
# lock (the file is reconcile's own, so its journal mode is reconcile's to choose).
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(DATABASE_PATH),
        "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL"},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
RECONCILE = {"API_KEY": os.environ.get("STRIPE_API_KEY", ""), "API_BASE": os.environ.get("STRIPE_API_BASE") or None}
