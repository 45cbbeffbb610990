"""Django system checks for the ``RECONCILE`` settings: a bad setting stops start-up, not a sync."""

from __future__ import annotations

from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core import checks
from django.core.exceptions import FieldDoesNotExist

from .conf import (
    CUSTOMER_ATTRIBUTES,
    DEFAULTS,
    FEATURES_SOURCES,
    PRIVILEGED_USER_FIELDS,
    SUBSCRIPTION_STATUSES,
    key_hint,
    key_problem,
    raw_settings,
)

_POSITIVE_NUMBERS = ("RETRY_BASE_DELAY", "RETRY_MAX_DELAY", "TIMEOUT", "RATE_LIMIT", "RATE_LIMIT_TOTAL")
# glibc's limits: at most 8 arenas a core in all; the mmap threshold up to 32 MiB (64-bit)
_MALLOC = {"MALLOC_ARENA_MAX": (1, 64), "MALLOC_MMAP_THRESHOLD": (4096, 32 * 1024 * 1024)}
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
    for key in (*_POSITIVE_NUMBERS, "SQLITE_BUSY_TIMEOUT"):
        if key in ("RATE_LIMIT", "RATE_LIMIT_TOTAL") and s[key] is None:
            continue
        if not isinstance(s[key], (int, float)) or isinstance(s[key], bool) or s[key] <= 0:
            errors.append(checks.Error(f"RECONCILE['{key}'] must be a positive number.", id="reconcile.E003"))
    base = s["API_BASE"]
    if base and not (isinstance(base, str) and base.startswith(("http://", "https://"))):
        errors.append(checks.Error("RECONCILE['API_BASE'] must be an http(s) URL.", id="reconcile.E004"))
    problem = key_problem(s["API_KEY"]) if s["API_KEY"] else None
    if problem:
        errors.append(checks.Error(problem[0].upper() + problem[1:] + ".", hint=key_hint(), id="reconcile.E005"))
    for key, (low, high) in _MALLOC.items():
        value = s[key]
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high):
            message = f"RECONCILE['{key}'] must be None or an integer from {low} to {high}."
            errors.append(checks.Error(message, id="reconcile.E003"))
    for flag in ("FETCH_ON_ONE_CPU", "READ_STORED_IN_CHILD"):
        if not isinstance(s[flag], bool):
            errors.append(checks.Error(f"RECONCILE['{flag}'] must be True or False.", id="reconcile.E003"))
    errors.extend(_check_statuses(s["ACCESS_STATUSES"]))
    if s["FEATURES_SOURCE"] not in FEATURES_SOURCES:
        errors.append(
            checks.Error(
                f"RECONCILE['FEATURES_SOURCE'] must be one of {', '.join(map(repr, FEATURES_SOURCES))}.",
                hint="'metadata' reads FEATURES_METADATA_KEY; 'entitlements' reads Stripe's Entitlements features.",
                id="reconcile.E020",
            )
        )
    errors.extend(_check_user_fields(s))
    return errors


def _check_statuses(statuses: object) -> list[checks.CheckMessage]:
    if (
        isinstance(statuses, (list, tuple, set, frozenset))
        and statuses
        and all(isinstance(x, str) and x in SUBSCRIPTION_STATUSES for x in statuses)
    ):
        return []
    return [
        checks.Error(
            "RECONCILE['ACCESS_STATUSES'] must be a non-empty list of Stripe subscription statuses.",
            hint=f"Known statuses: {', '.join(sorted(SUBSCRIPTION_STATUSES))}. Default: ['active', 'trialing'].",
            id="reconcile.E012",
        )
    ]


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
    return errors + _check_required_fields(user_model, mapping)


def _check_required_fields(user_model, mapping: dict) -> list[checks.CheckMessage]:
    """Fields a created user needs a value for but the map leaves out: a unique one would get the
    same empty value for every user (an IntegrityError at apply time), a NOT NULL one without a
    default and without an empty value (a number, a date) would fail at once."""
    errors = []
    for model_field in user_model._meta.concrete_fields:
        name = model_field.name
        if (
            name in mapping
            or name in PRIVILEGED_USER_FIELDS
            or model_field.primary_key
            or model_field.null
            or model_field.has_default()
            or model_field.is_relation
            or getattr(model_field, "auto_now", False)
            or getattr(model_field, "auto_now_add", False)
        ):
            continue
        if model_field.unique or not model_field.empty_strings_allowed:
            why = "a unique field" if model_field.unique else "a required field without a default"
            errors.append(
                checks.Error(
                    f"USER_CREATE_DEFAULTS_ATTRIBUTE_MAP does not set {name!r}, {why} of {user_model._meta.label}: "
                    "creating users would fail.",
                    hint=f"Map it to a customer attribute, e.g. {{{name!r}: 'email'}}.",
                    id="reconcile.E011",
                )
            )
    return errors

