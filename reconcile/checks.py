"""Django system checks for the ``RECONCILE`` settings: a bad setting stops start-up, not a sync."""

from __future__ import annotations

from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core import checks
from django.core.exceptions import FieldDoesNotExist

from .conf import CUSTOMER_ATTRIBUTES, DEFAULTS, PRIVILEGED_USER_FIELDS, raw_settings

_POSITIVE_INTS = {"PAGE_SIZE": (1, 100), "BATCH_SIZE": (1, 100_000), "MAX_RETRIES": (0, 20), "CONCURRENCY": (1, 32)}


@checks.register()
def check_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    own = getattr(django_settings, "RECONCILE", None) or {}
    if not isinstance(own, dict):
        return [checks.Error("RECONCILE must be a dict.", id="reconcile.E001")]
    for key in sorted(set(own) - set(DEFAULTS)):
        errors.append(
            checks.Error(
                f"RECONCILE has an unknown key {key!r}.",
                hint=f"Known keys: {', '.join(sorted(DEFAULTS))}.",
                id="reconcile.E002",
            )
        )
    s = raw_settings()
    for key, (low, high) in _POSITIVE_INTS.items():
        value = s[key]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            errors.append(
                checks.Error(f"RECONCILE['{key}'] must be an integer from {low} to {high}.", id="reconcile.E003")
            )
    for key in ("RETRY_BASE_DELAY", "RETRY_MAX_DELAY", "TIMEOUT", "RATE_LIMIT", "RATE_LIMIT_TOTAL"):
        if key in ("RATE_LIMIT", "RATE_LIMIT_TOTAL") and s[key] is None:
            continue
        if not isinstance(s[key], (int, float)) or isinstance(s[key], bool) or s[key] <= 0:
            errors.append(checks.Error(f"RECONCILE['{key}'] must be a positive number.", id="reconcile.E003"))
    base = s["API_BASE"]
    if base and not (isinstance(base, str) and base.startswith(("http://", "https://"))):
        errors.append(checks.Error("RECONCILE['API_BASE'] must be an http(s) URL.", id="reconcile.E004"))
    key = s["API_KEY"]
    if key and not (isinstance(key, str) and key.startswith(("sk_", "rk_"))):
        errors.append(
            checks.Error(
                "RECONCILE['API_KEY'] does not look like a Stripe secret key (sk_...) or restricted key (rk_...).",
                hint="A publishable key (pk_...) cannot list customers or subscriptions.",
                id="reconcile.E005",
            )
        )
    errors.extend(_check_user_fields(s))
    return errors


def _check_user_fields(s: dict) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    user_model = get_user_model()
    email_field = s["USER_EMAIL_FIELD"]
    try:
        user_model._meta.get_field(email_field)
    except FieldDoesNotExist:
        errors.append(
            checks.Error(
                f"USER_EMAIL_FIELD {email_field!r} is not a field of {user_model._meta.label}.", id="reconcile.E006"
            )
        )
    mapping = s["USER_CREATE_DEFAULTS_ATTRIBUTE_MAP"]
    if mapping is None:
        return errors
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        return errors + [
            checks.Error(
                "USER_CREATE_DEFAULTS_ATTRIBUTE_MAP must be a dict of {user_field: customer_attribute} strings.",
                id="reconcile.E007",
            )
        ]
    for field, attribute in sorted(mapping.items()):
        if field in PRIVILEGED_USER_FIELDS or field.startswith("is_") and field != "is_active":
            errors.append(
                checks.Error(
                    f"USER_CREATE_DEFAULTS_ATTRIBUTE_MAP may not set {field!r}: created users never get "
                    "privileges or a password from Stripe data.",
                    hint="Remove that key; created users get an unusable password and no staff or superuser flag.",
                    id="reconcile.E008",
                )
            )
            continue
        try:
            model_field = user_model._meta.get_field(field)
        except FieldDoesNotExist:
            errors.append(
                checks.Error(
                    f"USER_CREATE_DEFAULTS_ATTRIBUTE_MAP names {field!r}, not a field of {user_model._meta.label}.",
                    id="reconcile.E009",
                )
            )
            continue
        if model_field.is_relation:
            errors.append(
                checks.Error(
                    f"USER_CREATE_DEFAULTS_ATTRIBUTE_MAP may not set the relation {field!r}.", id="reconcile.E008"
                )
            )
        if attribute not in CUSTOMER_ATTRIBUTES:
            errors.append(
                checks.Error(
                    f"USER_CREATE_DEFAULTS_ATTRIBUTE_MAP maps {field!r} to {attribute!r}, not a customer attribute.",
                    hint=f"Use one of: {', '.join(sorted(CUSTOMER_ATTRIBUTES))}.",
                    id="reconcile.E010",
                )
            )
    return errors
