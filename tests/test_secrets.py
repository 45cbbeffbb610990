"""Secrets: the API key never leaves the settings, and Stripe data never grants privileges.

Every command, every report format and every error path runs with a distinctive key; stdout,
stderr, every log record (reconcile, stripe, urllib3, root, at DEBUG), the errors raised and the
audit rows are searched for it. Stripe is the project's fake Stripe (a test double on loopback).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import socket
import traceback

import pytest
import stripe
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import is_password_usable
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from reconcile.checks import check_settings
from reconcile.errors import ReconcileError
from reconcile.models import SyncRun
from reconcile.runner import Options, execute
from reconcile.testing.fakestripe import Fault
from tests.conftest import demo_data, run

pytestmark = pytest.mark.django_db
User = get_user_model()

KEY = "sk_test_SECRETcanary9f8e7d6c5b4a"
# Parts that must never appear anywhere, even in a third-party library's console output.
SECRET_PARTS = (KEY, "SECRETcanary", "canary9f8e7d6c", "9f8e7d6c5b4a")
# The key's last four characters: what Stripe's own masked form ("sk_test_****5b4a") shows.
TAIL = KEY[-4:]
COMMANDS = ("pull_stripe", "update_stripe_products", "update_stripe_customers", "update_stripe_subscriptions")


def leaks(text: str, parts=(*SECRET_PARTS, TAIL)) -> list[str]:
    return [part for part in parts if part in text]


class Collected:
    """Everything a run could show: command output, log records, raised errors, audit rows."""

    def __init__(self, caplog):
        self.caplog = caplog
        self.texts: list[tuple[str, str]] = []

    def add(self, where: str, text: str) -> None:
        self.texts.append((where, text))

    def records(self) -> list[tuple[str, str]]:
        found = []
        for record in self.caplog.records:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + "".join(traceback.format_exception(*record.exc_info))
            found.append((f"log record {record.name}:{record.levelname}", text))
        return found

    def audit(self) -> list[tuple[str, str]]:
        return [
            (f"SyncRun {row['id']}", json.dumps(row, default=str))
            for row in SyncRun.objects.values("id", "command", "options", "outcome", "counts", "report")
        ]

    def assert_clean(self) -> None:
        everything = self.texts + self.records() + self.audit()
        assert everything
        found = [(where, leaks(text), text[:300]) for where, text in everything if leaks(text)]
        assert not found, found


@pytest.fixture
def secret_settings(reconcile_settings, monkeypatch):
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "API_KEY": KEY}
    return reconcile_settings


@pytest.fixture
def collected(caplog, secret_settings):
    caplog.set_level(logging.DEBUG)
    for name in ("reconcile", "stripe", "urllib3", "django.db.backends"):
        caplog.set_level(logging.DEBUG, logger=name)
    return Collected(caplog)


def run_and_collect(collected: Collected, name: str, *args: str):
    try:
        result = run(name, *args)
    except Exception as exc:  # an error that escaped the command: its text must be clean too
        collected.add(f"{name} {args} raised", "".join(traceback.format_exception(exc)))
        raise
    collected.add(f"{name} {args} stdout", result.out)
    collected.add(f"{name} {args} stderr", result.err)
    return result


def drift(fake, n: int) -> None:
    fake.update("products", "prod_DemoStarter01", name=f"Starter {n}")
    fake.update("customers", "cus_DemoBob0000001", name=f"Bob {n}")
    fake.update("subscriptions", "sub_DemoBob0000001", metadata={"round": str(n)})


@pytest.mark.parametrize("command", COMMANDS)
def test_no_command_output_log_or_audit_row_shows_the_key(start_fake, collected, command):
    fake = start_fake()
    options = [
        ("--dry-run",),
        ("--check",),
        ("--dry-run", "--format", "json"),
        ("--check", "--format", "markdown"),
        ("--dry-run", "-v", "2"),
        ("-v", "2"),  # applies, text
    ]
    for args in options:
        assert run_and_collect(collected, command, *args).code in (0, 1)
    for n, fmt in enumerate(("json", "markdown", "text"), start=1):
        drift(fake, n)
        assert run_and_collect(collected, command, "--format", fmt, "-v", "2").code == 0
    if command in ("update_stripe_customers", "update_stripe_subscriptions"):
        assert run_and_collect(collected, command, "-l", "2", "-v", "2").code == 0
        assert run_and_collect(
            collected, command, "-l", "2", "-s", "cus_Nothing" if "cust" in command else "sub_Nothing", "--dry-run"
        ).code in (0, 2)
    assert SyncRun.objects.count() == 4  # the first run and one per format; checks and dry runs are not audited
    collected.assert_clean()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ERRORS = {
    "401": dict(data_kwargs={"api_key": "sk_test_SomeOtherKey1"}),
    "500 exhausted": dict(fault=Fault("status", "/v1/", times=10_000, status=500)),
    "429 exhausted": dict(fault=Fault("status", "/v1/", times=10_000, status=429)),
    "not json": dict(fault=Fault("not_json", "/v1/", times=10_000)),
    "truncated": dict(fault=Fault("truncated", "/v1/", times=10_000)),
    "reset": dict(fault=Fault("reset", "/v1/", times=10_000)),
    "timeout": dict(fault=Fault("sleep", "/v1/", times=10_000, delay=0.5)),
    "unreachable": dict(unreachable=True),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_no_error_path_shows_the_key(start_fake, collected, secret_settings, case):
    spec = ERRORS[case]
    fake = start_fake(demo_data(), **spec.get("data_kwargs", {}))
    if "fault" in spec:
        fake.inject(spec["fault"])
    settings = {**secret_settings.RECONCILE, "TIMEOUT": 0.2, "MAX_RETRIES": 1, "CONCURRENCY": 8}
    if spec.get("unreachable"):
        settings["API_BASE"] = f"http://127.0.0.1:{closed_port()}"
    secret_settings.RECONCILE = settings
    runs = zip(
        COMMANDS,
        ((), ("--dry-run", "--format", "json"), ("--check", "-v", "2", "--format", "markdown"), ("-v", "2", "-l", "5")),
        strict=True,
    )
    for command, args in runs:
        result = run_and_collect(collected, command, *args)
        assert result.code == 2, (case, command, args, result)
    # the error itself, as a handler or an error tracker would see it
    with pytest.raises(ReconcileError) as raised:
        execute(Options("pull_stripe", ("products", "customers", "subscriptions")), io.StringIO(), io.StringIO())
    collected.add("raised", "".join(traceback.format_exception(raised.value)) + repr(raised.value.args))
    assert SyncRun.objects.count() == 0
    collected.assert_clean()


@pytest.mark.parametrize("args", [("-l", "0"), ("-l", "101"), ("--limit", "-5")])
def test_a_bad_limit_shows_no_key(fake_stripe, collected, args):
    result = run_and_collect(collected, "update_stripe_customers", *args)
    assert result.code == 2
    assert "--limit must be from 1 to 100" in result.err
    assert fake_stripe.requests == []
    collected.assert_clean()


def test_stripe_pythons_own_debug_console_output_never_shows_the_key(start_fake, secret_settings, monkeypatch, capsys):
    """``stripe.log = "debug"`` prints straight to stderr. It may print Stripe's own masked form of a rejected
    key (``sk_test_****5b4a``), which reconcile does not control; never the key itself."""
    monkeypatch.setattr(stripe, "log", "debug")
    fake = start_fake(demo_data(), api_key="sk_test_SomeOtherKey1")
    rejected = run("pull_stripe")
    fake.api_key = None  # now any key is accepted
    accepted = run("pull_stripe", "-v", "2")
    captured = capsys.readouterr()
    assert (rejected.code, accepted.code) == (2, 0)
    assert "Request to Stripe api" in captured.err  # the console log is on
    for text in (captured.out, captured.err, rejected.err, accepted.out):
        assert not leaks(text, SECRET_PARTS)


def test_the_fake_stripe_saw_the_key_only_in_the_authorization_header(fake_stripe, secret_settings):
    run("pull_stripe")
    assert fake_stripe.requests
    for request in fake_stripe.requests:
        assert not leaks(request.path + json.dumps(request.query))


# -- users: no privileges from Stripe data ---------------------------------------------------------

CREATE_MAP = {"username": "email", "email": "email", "first_name": "name"}


def test_created_users_have_an_unusable_password_and_no_privileges(fake_stripe, secret_settings):
    secret_settings.RECONCILE = {**secret_settings.RECONCILE, "USER_CREATE_DEFAULTS_ATTRIBUTE_MAP": CREATE_MAP}
    assert run("update_stripe_customers").code == 0
    users = list(User.objects.all())
    assert len(users) == 5
    for user in users:
        assert not user.has_usable_password()
        assert user.password.startswith("!")  # Django's unusable-password marker
        assert user.is_staff is False and user.is_superuser is False and user.is_active is True
        assert not user.groups.exists() and not user.user_permissions.exists()


@pytest.mark.parametrize("field", ["is_superuser", "is_staff", "password", "groups", "user_permissions", "is_admin"])
@pytest.mark.parametrize("where", ["RECONCILE", "DRF_STRIPE"])
def test_a_map_setting_a_privileged_field_is_refused_by_the_system_checks(settings, field, where):
    mapping = {"username": "email", "email": "email", field: "name"}
    if where == "RECONCILE":
        settings.RECONCILE = {"API_KEY": KEY, "USER_CREATE_DEFAULTS_ATTRIBUTE_MAP": mapping}
    else:
        settings.RECONCILE = {"API_KEY": KEY}
        settings.DRF_STRIPE = {"USER_CREATE_DEFAULTS_ATTRIBUTE_MAP": mapping}
    errors = check_settings()
    refused = [e for e in errors if e.id == "reconcile.E008"]
    assert len(refused) == 1, errors
    assert refused[0].msg.startswith(f"USER_CREATE_DEFAULTS_ATTRIBUTE_MAP may not set {field!r}")
    assert [e for e in errors if e.id != "reconcile.E008"] == []


def test_a_map_with_several_privileged_fields_names_each(settings):
    settings.RECONCILE = {
        "API_KEY": KEY,
        "USER_CREATE_DEFAULTS_ATTRIBUTE_MAP": {
            "email": "email",
            "is_staff": "id",
            "is_superuser": "id",
            "password": "id",
            "groups": "name",
        },
    }
    messages = sorted(e.msg for e in check_settings() if e.id == "reconcile.E008")
    assert [m.split("may not set ")[1].split(":")[0] for m in messages] == [
        "'groups'",
        "'is_staff'",
        "'is_superuser'",
        "'password'",
    ]


def test_a_command_will_not_start_with_a_privileged_map(fake_stripe, secret_settings):
    secret_settings.RECONCILE = {
        **secret_settings.RECONCILE,
        "USER_CREATE_DEFAULTS_ATTRIBUTE_MAP": {"username": "email", "is_superuser": "name"},
    }
    with pytest.raises(SystemCheckError) as raised:
        call_command("pull_stripe", skip_checks=False, stdout=io.StringIO(), stderr=io.StringIO())
    assert "reconcile.E008" in str(raised.value)
    assert not leaks(str(raised.value))
    assert fake_stripe.requests == []
    assert User.objects.count() == 0


@pytest.mark.parametrize("field", ["is_superuser", "is_staff", "password"])
def test_even_with_checks_skipped_no_created_user_gets_privileges(fake_stripe, secret_settings, field):
    """Defence in depth: ``call_command`` skips system checks; the apply still never grants them."""
    for attribute in ("id", "name", "email"):
        User.objects.all().delete()
        secret_settings.RECONCILE = {
            **secret_settings.RECONCILE,
            "USER_CREATE_DEFAULTS_ATTRIBUTE_MAP": {"username": "email", "email": "email", field: attribute},
        }
        result = run("update_stripe_customers")
        assert result.code in (0, 2), result
        for user in User.objects.all():
            assert not user.has_usable_password() and not user.is_staff and not user.is_superuser, (field, attribute)


def test_a_key_of_the_wrong_kind_is_refused_without_echoing_it(settings):
    publishable = "pk_test_SECRETcanary9f8e7d6c5b4a"
    settings.RECONCILE = {"API_KEY": publishable}
    errors = check_settings()
    assert [e.id for e in errors] == ["reconcile.E005"]
    assert not leaks(f"{errors[0].msg} {errors[0].hint}", ("SECRETcanary", "9f8e7d6c5b4a", TAIL))


def test_unusable_passwords_are_djangos_marker_then_distinct_random_text():
    from reconcile.db.apply import unusable_passwords

    passwords = unusable_passwords(500)
    assert len(passwords) == len(set(passwords)) == 500
    for password in passwords:
        assert password.startswith("!") and len(password) == 41  # "!" and token_urlsafe(30)'s 40 characters
        assert len(base64.urlsafe_b64decode(password[1:])) == 30
        assert not is_password_usable(password)
    assert unusable_passwords(0) == []
