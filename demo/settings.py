"""Settings of the demo project that ships with reconcile (not for production).

Reads three environment variables:
- ``STRIPE_API_KEY``: the Stripe secret key (a fake ``sk_test_...`` key against the fake Stripe);
- ``STRIPE_API_BASE``: a base URL such as ``http://127.0.0.1:12111`` to talk to a local server
  instead of Stripe (unset: Stripe itself);
- ``DATABASE_URL``: any URL dj-database-url understands (default: ``sqlite:///db.sqlite3``).
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "reconcile.apps.ReconcileConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's CSS and JavaScript) served without DEBUG, as Django projects
    # commonly do in production: WhiteNoise, from the apps' static directories (no collectstatic).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "demo.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"), conn_max_age=0
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
WHITENOISE_USE_FINDERS = True

RECONCILE = {
    "API_KEY": os.environ.get("STRIPE_API_KEY", ""),
    "API_BASE": os.environ.get("STRIPE_API_BASE") or None,
}
if os.environ.get("RECONCILE_SQLITE_BUSY_TIMEOUT"):
    RECONCILE["SQLITE_BUSY_TIMEOUT"] = float(os.environ["RECONCILE_SQLITE_BUSY_TIMEOUT"])
if os.environ.get("RECONCILE_USER_CREATE"):
    RECONCILE["USER_CREATE_DEFAULTS_ATTRIBUTE_MAP"] = {"username": "email", "email": "email"}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"reconcile": {"handlers": ["console"], "level": os.environ.get("RECONCILE_LOG", "WARNING")}},
}
