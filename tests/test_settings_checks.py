"""The RECONCILE settings: defaults, drf-stripe-subscription's names, and the system checks."""

from __future__ import annotations

import pytest

from reconcile.checks import check_settings
from reconcile.conf import get_config


def ids(errors):
    return sorted(e.id for e in errors)


def test_defaults(settings, monkeypatch):
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    settings.RECONCILE = {}
    config = get_config()
    assert (config.api_key, config.api_base, config.page_size, config.user_email_field) == ("", None, 100, "email")
    assert config.user_create_map is None and config.features_metadata_key == "features"
    assert check_settings() == []


def test_the_key_falls_back_to_the_environment(settings, monkeypatch):
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_FromEnv1")
    settings.RECONCILE = {}
    assert get_config().api_key == "sk_test_FromEnv1"


def test_drf_stripe_settings_are_read_when_reconcile_keys_are_absent(settings):
    settings.RECONCILE = {"API_BASE": "http://127.0.0.1:12111"}
    settings.DRF_STRIPE = {
        "STRIPE_API_SECRET": "sk_test_FromDrfStripe1",
        "DJANGO_USER_EMAIL_FIELD": "username",
        "USER_CREATE_DEFAULTS_ATTRIBUTE_MAP": {"username": "email"},
        "FRONT_END_BASE_URL": "http://localhost:3000",  # theirs, ignored here
    }
    config = get_config()
    assert config.api_key == "sk_test_FromDrfStripe1"
    assert config.user_email_field == "username"
    assert config.user_create_map == {"username": "email"}
    settings.RECONCILE = {"API_KEY": "sk_test_Own1", "USER_EMAIL_FIELD": "email"}
    assert (get_config().api_key, get_config().user_email_field) == ("sk_test_Own1", "email")
    assert check_settings() == []


def test_privileged_fields_in_the_user_map_are_refused_at_start_up(settings):
    for field in ("is_superuser", "is_staff", "password", "groups", "user_permissions", "last_login"):
        settings.RECONCILE = {"USER_CREATE_DEFAULTS_ATTRIBUTE_MAP": {"username": "email", field: "name"}}
        errors = check_settings()
        assert ids(errors) == ["reconcile.E008"], field
        assert f"may not set {field!r}" in errors[0].msg


def test_a_map_must_name_user_fields_and_customer_attributes(settings):
    settings.RECONCILE = {"USER_CREATE_DEFAULTS_ATTRIBUTE_MAP": {"nickname": "email", "username": "phone"}}
    errors = check_settings()
    assert ids(errors) == ["reconcile.E009", "reconcile.E010"]
    settings.RECONCILE = {"USER_CREATE_DEFAULTS_ATTRIBUTE_MAP": ["username"]}
    assert ids(check_settings()) == ["reconcile.E007"]


def test_bad_values_are_reported_each_with_its_setting(settings):
    settings.RECONCILE = {
        "PAGE_SIZE": 500,
        "API_BASE": "ftp://x",
        "API_KEY": "pk_test_publishable",
        "USER_EMAIL_FIELD": "mail",
        "TIMEOUT": 0,
        "SURPRISE": 1,
    }
    errors = check_settings()
    assert ids(errors) == [
        "reconcile.E002",
        "reconcile.E003",
        "reconcile.E003",
        "reconcile.E004",
        "reconcile.E005",
        "reconcile.E006",
    ]
    text = " ".join(e.msg for e in errors)
    assert "unknown key 'SURPRISE'" in text and "PAGE_SIZE" in text and "TIMEOUT" in text
    assert "pk_test_publishable" not in text  # never echo a key


def test_the_malloc_settings_are_none_or_within_glibcs_limits(settings):
    settings.RECONCILE = {}
    assert (get_config().malloc_arena_max, get_config().malloc_mmap_threshold) == (2, 131_072)
    settings.RECONCILE = {"MALLOC_ARENA_MAX": None, "MALLOC_MMAP_THRESHOLD": None}
    config = get_config()
    assert config.malloc_arena_max is None and config.malloc_mmap_threshold is None and check_settings() == []
    for bad in (0, "2", True, 65):
        settings.RECONCILE = {"MALLOC_ARENA_MAX": bad}
        assert [e.msg for e in check_settings()] == [
            "RECONCILE['MALLOC_ARENA_MAX'] must be None or an integer from 1 to 64."
        ]
    settings.RECONCILE = {"MALLOC_MMAP_THRESHOLD": 64 * 1024 * 1024}
    assert [e.msg for e in check_settings()] == [
        "RECONCILE['MALLOC_MMAP_THRESHOLD'] must be None or an integer from 4096 to 33554432."
    ]


@pytest.mark.parametrize(
    ("key", "attribute"), [("FETCH_ON_ONE_CPU", "fetch_on_one_cpu"), ("READ_STORED_IN_CHILD", "read_stored_in_child")]
)
def test_the_switches_are_true_or_false(settings, key, attribute):
    settings.RECONCILE = {}
    assert getattr(get_config(), attribute) is True
    settings.RECONCILE = {key: False}
    assert getattr(get_config(), attribute) is False and check_settings() == []
    for bad in (0, "yes", None):
        settings.RECONCILE = {key: bad}
        assert [e.msg for e in check_settings()] == [f"RECONCILE['{key}'] must be True or False."]
