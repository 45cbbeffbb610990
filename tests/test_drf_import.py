"""reconcile_import_drf_stripe on a table shaped as drf-stripe-subscription 1.2.2 makes it.

The end-to-end test (a database filled by drf-stripe-subscription itself) is in
tests/test_drf_migration.py; these cover each case of the plan and the command's contract.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from reconcile.core.drf_links import plan_import
from reconcile.core.plan import LinkUser, Skip
from reconcile.models import StripeUser, SyncRun

from .conftest import run

# MySQL/MariaDB commit at CREATE TABLE, so a test that makes drf's table cannot be rolled back there:
# those tests run in transaction mode (the tables are emptied after each) and the table is dropped.
DDL_COMMITS = connection.vendor == "mysql"
pytestmark = pytest.mark.django_db(transaction=DDL_COMMITS)


@pytest.fixture(autouse=True)
def _drop_drf_table():
    yield
    if DDL_COMMITS:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS drf_stripe_stripeuser")

# drf_stripe's 0001_initial: StripeUser(user OneToOne primary key, customer_id varchar(128) NULL).
DDL = "CREATE TABLE drf_stripe_stripeuser (user_id integer NOT NULL PRIMARY KEY, customer_id varchar(128) NULL)"


def drf_table(*rows):
    with connection.cursor() as cursor:
        cursor.execute(DDL)
        for user_id, customer_id in rows:
            cursor.execute("INSERT INTO drf_stripe_stripeuser VALUES (%s, %s)", [user_id, customer_id])


def links() -> dict[str, object]:
    return dict(StripeUser.objects.values_list("customer_id", "user_id"))


def test_plan_import_covers_every_case():
    rows = [
        (1, "cus_new"),
        (2, "cus_unlinked"),
        (3, "cus_same"),
        (4, "cus_other"),
        (5, "cus_twice"),
        (6, "cus_twice"),
        (7, "cus_gone"),
        (8, None),
        (9, "  "),
    ]
    users = {1: "a@x.io", 2: "b@x.io", 3: "c@x.io", 4: "d@x.io", 5: "e@x.io", 6: "f@x.io", 8: "h@x.io", 9: ""}
    stored = {"cus_unlinked": None, "cus_same": 3, "cus_other": 40}
    read = plan_import(rows, users, stored)
    plan = read.plan
    assert plan.operations == (
        Skip("StripeUser", "cus_gone", "drf-stripe-subscription links it to user 7, who no longer exists"),
        LinkUser("cus_new", 1, "a@x.io"),
        Skip(
            "StripeUser", "cus_other", "linked to user 40 here and to user 4 by drf-stripe-subscription; kept user 40"
        ),
        Skip("StripeUser", "cus_twice", "drf-stripe-subscription links it to 2 users (5, 6); linked none"),
        LinkUser("cus_unlinked", 2, "b@x.io"),
    )
    assert [n.describe() for n in plan.notes] == [
        "StripeUser user 8: drf-stripe-subscription has no customer id for it",
        "StripeUser user 9: drf-stripe-subscription has no customer id for it",
    ]
    assert (read.drf_links, read.already_linked) == (9, 1)


def test_dry_run_then_apply_then_nothing(reconcile_settings):
    User = get_user_model()
    ann = User.objects.create(username="ann", email="Shared@Example.com")
    bob = User.objects.create(username="bob", email="shared@example.com")
    cid = User.objects.create(username="cid", email="cid@example.com")
    StripeUser.objects.create(customer_id="cus_B", email="shared@example.com")  # pulled before, unlinked
    drf_table((ann.pk, "cus_A"), (bob.pk, "cus_B"), (cid.pk, "cus_C"))

    dry = run("reconcile_import_drf_stripe")
    assert dry.code == 0
    assert dry.out == (
        "Customers:\n"
        f"  = link StripeUser cus_A to user {ann.pk} (Shared@Example.com)\n"
        f"  = link StripeUser cus_B to user {bob.pk} (shared@example.com)\n"
        f"  = link StripeUser cus_C to user {cid.pk} (cid@example.com)\n"
        "Plan: 0 to create, 0 to update, 0 item sets to recreate, 3 users to link, 0 users to create, "
        "0 orphaned, 0 skipped.\n"
    )
    assert "Read 3 rows from drf_stripe_stripeuser; 0 of its links are already stored here." in dry.err
    assert "Dry run: nothing was written" in dry.err
    assert links() == {"cus_B": None}
    assert SyncRun.objects.count() == 0

    applied = run("reconcile_import_drf_stripe", "--apply")
    assert applied.code == 0, applied.err
    assert applied.out.splitlines()[-1].startswith(
        "Applied: 0 created, 0 updated, 0 item sets recreated, 3 users linked, 0 users created in "
    )
    assert links() == {"cus_A": ann.pk, "cus_B": bob.pk, "cus_C": cid.pk}
    run_row = SyncRun.objects.get()
    assert (run_row.command, run_row.counts, run_row.report["summary"]["link_user"]) == (
        "reconcile_import_drf_stripe",
        {"link_user": 3},
        3,
    )
    # the new rows wait for the pull: no email, never synced
    assert list(StripeUser.objects.filter(customer_id="cus_A").values_list("email", "synced_at")) == [(None, None)]

    again = run("reconcile_import_drf_stripe", "--apply")
    assert again.code == 0
    assert again.out.splitlines()[0] == "No changes detected."
    assert "3 of its links are already stored here" in again.err
    assert links() == {"cus_A": ann.pk, "cus_B": bob.pk, "cus_C": cid.pk}
    assert SyncRun.objects.count() == 1


def test_json_report(reconcile_settings):
    user = get_user_model().objects.create(username="ann", email="ann@example.com")
    drf_table((user.pk, "cus_A"))
    result = run("reconcile_import_drf_stripe", "--format", "json")
    report = json.loads(result.out)
    assert report["summary"]["link_user"] == 1
    assert report["operations"][0]["id"] == "cus_A"


def test_missing_tables_exit_2_and_write_nothing(reconcile_settings):
    result = run("reconcile_import_drf_stripe", "--apply")
    assert result.code == 2
    assert (
        "The database 'default' has no table drf_stripe_stripeuser (drf-stripe-subscription's customer-to-user "
        "links); no drf_stripe_* table at all." in result.err
    )
    assert StripeUser.objects.count() == 0


def test_table_without_its_columns_exit_2(reconcile_settings):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE drf_stripe_stripeuser (id integer PRIMARY KEY)")
    result = run("reconcile_import_drf_stripe")
    assert result.code == 2
    assert "has no column user_id, customer_id" in result.err


def test_the_click_cli_runs_the_same_command(reconcile_settings):
    from click.testing import CliRunner

    from reconcile.cli import main

    user = get_user_model().objects.create(username="ann", email="ann@example.com")
    runner = CliRunner()
    missing = runner.invoke(main, ["import-drf-stripe"])
    assert missing.exit_code == 2 and "has no table drf_stripe_stripeuser" in missing.output
    drf_table((user.pk, "cus_A"))
    dry = runner.invoke(main, ["import-drf-stripe"])
    assert dry.exit_code == 0 and dry.output.startswith(run("reconcile_import_drf_stripe").out)
    applied = runner.invoke(main, ["import-drf-stripe", "--apply"])
    assert applied.exit_code == 0, applied.output
    assert links() == {"cus_A": user.pk}
