"""Hostile and unlucky inputs on the database side (issue 14): objects a database cannot store, links
written by someone else during the apply, saved plans aimed at another database or a changed one.
Runs on SQLite, PostgreSQL and MariaDB alike; Stripe is the project's fake Stripe (a test double)."""

from __future__ import annotations

import copy
import dataclasses
import os
import shutil
import subprocess
import sys
import threading
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.utils import timezone

from reconcile.core.escape import escape
from reconcile.core.snapshot import CustomerRec, PriceRec
from reconcile.db import apply as apply_module
from reconcile.db.storable import collation_key, problem
from reconcile.models import Price, Product, StripeUser, Subscription, SubscriptionItem, SyncRun
from tests.conftest import FAKE_KEY, ROOT, demo_data, run
from tests.helpers.procs import _sqlite_template, child_env
from tests.stripe_state import expected_products, stored_products

pytestmark = pytest.mark.django_db
User = get_user_model()
KEPT = "the stored row was written after Stripe's page was fetched; kept the newer row"


# -- 4. what a database cannot store ----------------------------------------------------------------
def hostile_account() -> tuple[dict, dict[str, str]]:
    """The demo account plus one object per limit, and the skip line each must get."""
    data = demo_data()
    base_product, base_price = data["products"][0], data["prices"][0]
    base_customer, base_sub = data["customers"][0], data["subscriptions"][0]

    def product(pid, **fields):
        data["products"].append({**copy.deepcopy(base_product), "id": pid, "metadata": {}, **fields})

    product("prod_Nul", name="Nul\x00name")
    product("prod_\x00InId", name="NUL in the id: in the report and the audit too")
    product("prod_NulMeta", metadata={"note": "a\x00b"})
    product("prod_NulKey", metadata={"k\x00": "v"})
    product("prod_" + "L" * 260, name="long id")
    product("prod_Emoji", name="Emoji \U0001f600 " + "\u00e9" * 240)  # 4-byte characters, 248 characters
    data["prices"].append({**copy.deepcopy(base_price), "id": "price_Huge", "unit_amount": 2**63 - 1})
    data["customers"].append({**copy.deepcopy(base_customer), "id": "cus_NulEmail", "email": "x\x00@example.com"})
    data["customers"].append({**copy.deepcopy(base_customer), "id": "cus_OldCreated", "name": "Old", "created": 1})
    sub = copy.deepcopy(base_sub)
    sub.update(id="sub_Ancient", created=-40_000_000_000)  # the year 702
    sub["items"]["data"] = [dict(i, id="si_Ancient" + str(n)) for n, i in enumerate(sub["items"]["data"])]
    data["subscriptions"].append(sub)
    sub = copy.deepcopy(base_sub)
    sub.update(id="sub_NulItem", metadata={})
    sub["items"]["data"] = [dict(i, id="si_\x00" + str(n)) for n, i in enumerate(sub["items"]["data"])]
    data["subscriptions"].append(sub)
    sub = copy.deepcopy(base_sub)
    sub.update(id="sub_BigQuantity")
    sub["items"]["data"] = [
        dict(i, id="si_Big" + str(n), quantity=2**31 - 1) for n, i in enumerate(sub["items"]["data"])
    ]
    data["subscriptions"].append(sub)
    skips = {
        "prod_Nul": "field 'name' holds a NUL character, which PostgreSQL cannot store",
        "prod_\x00InId": "field 'id' holds a NUL character, which PostgreSQL cannot store",
        "prod_NulMeta": "field 'metadata' 'note' holds a NUL character, which PostgreSQL cannot store",
        "prod_NulKey": "field 'metadata' key 'k\\x00' holds a NUL character, which PostgreSQL cannot store",
        "prod_" + "L" * 260: "field 'id' is longer than 255 characters, the column's size",
        "cus_NulEmail": "field 'email' holds a NUL character, which PostgreSQL cannot store",
        "sub_Ancient": "field 'created' is before the year 1000, which MySQL and MariaDB cannot store",
        "sub_NulItem": "item si_\\x000: field 'id' holds a NUL character, which PostgreSQL cannot store",
    }
    return data, skips


def test_an_object_the_database_cannot_store_is_skipped_with_the_reason_and_the_rest_applies(start_fake):
    data, skips = hostile_account()
    start_fake(data)
    result = run("pull_stripe")
    assert result.code == 0, result.err
    for oid, reason in skips.items():
        model = {"prod": "Product", "cus": "StripeUser", "sub": "Subscription"}[oid.split("_")[0]]
        assert f"  ! skip {model} {escape(oid)}: {reason}\n" in result.out, oid
    stored = set(Product.objects.values_list("id", flat=True))
    assert stored == {p["id"] for p in data["products"]} - set(skips)
    assert Product.objects.get(id="prod_Emoji").name == "Emoji \U0001f600 " + "\u00e9" * 240
    assert Price.objects.get(id="price_Huge").amount == 2**63 - 1
    assert set(
        SubscriptionItem.objects.filter(subscription_id="sub_BigQuantity").values_list("quantity", flat=True)
    ) == {2**31 - 1}
    assert not Subscription.objects.filter(id__in=["sub_Ancient", "sub_NulItem"]).exists()
    audit = SyncRun.objects.get().report
    assert {"model": "Product", "id": "prod_\\x00InId"}.items() <= next(
        op for op in audit["operations"] if op["id"].endswith("InId")
    ).items()  # the audit keeps a NUL escaped: PostgreSQL's jsonb cannot hold one
    again = run("pull_stripe", "--check")
    assert again.code == 0, again.out  # the skips are reported again, and nothing else
    assert again.out.endswith(f"No changes detected (reported only: 0 orphaned, {len(skips) + 1} skipped).\n")


def test_ids_that_differ_only_in_case_are_one_id_to_mariadb(start_fake):
    data = demo_data()
    for pid in ("prod_Gold", "prod_gold", "prod_GOLD "):
        data["products"].append({**copy.deepcopy(data["products"][0]), "id": pid, "name": pid.strip()})
    for sid, item_id in (("sub_ItemA", "si_Dup"), ("sub_ItemB", "si_dup")):
        sub = copy.deepcopy(data["subscriptions"][0])
        sub.update(id=sid)
        sub["items"]["data"] = [dict(sub["items"]["data"][0], id=item_id, subscription=sid)]
        data["subscriptions"].append(sub)
    start_fake(data)
    subscriptions = run("update_stripe_subscriptions")
    stored = set(Subscription.objects.filter(id__in=["sub_ItemA", "sub_ItemB"]).values_list("id", flat=True))
    if connection.vendor == "mysql":
        assert stored == {"sub_ItemA"}
        assert (
            "  ! skip Subscription sub_ItemB: its item si_dup is the item si_Dup to MySQL/MariaDB, whose collation "
            "ignores case, accents and trailing spaces\n" in subscriptions.out
        )
    else:
        assert stored == {"sub_ItemA", "sub_ItemB"}
    result = run("update_stripe_products")
    assert result.code == 0, result.err
    gold = set(Product.objects.filter(name__in=["prod_Gold", "prod_gold", "prod_GOLD"]).values_list("id", flat=True))
    if connection.vendor == "mysql":
        assert gold == {"prod_GOLD "}
        reason = (
            "its id is the id prod_GOLD  to MySQL/MariaDB, whose collation ignores case, accents and trailing spaces"
        )
        assert f"  ! skip Product prod_Gold: {reason}\n" in result.out
        assert f"  ! skip Product prod_gold: {reason}\n" in result.out
    else:
        assert gold == {"prod_Gold", "prod_gold", "prod_GOLD "}
    assert collation_key("prod_Gold ") == collation_key("PROD_gold") == collation_key("prod_göld")


# -- 2. links and rows written by someone else ------------------------------------------------------
@pytest.fixture
def unlinked_alice(fake_stripe):
    """Alice's customer is stored without a user; then her user appears, so a run plans the link."""
    assert run("update_stripe_customers").code == 0
    assert StripeUser.objects.get(customer_id="cus_DemoAlice00001").user_id is None
    return User.objects.create_user("alice", "alice.smith@example.com")


def link_before(monkeypatch, write) -> None:
    original = apply_module.Applier.link

    def link(self, links, planned, created):
        write()
        return original(self, links, planned, created)

    monkeypatch.setattr(apply_module.Applier, "link", link)


def test_a_link_written_during_the_apply_is_kept(unlinked_alice, monkeypatch):
    other = User.objects.create_user("mallory-admin", "someone.else@example.com")

    def webhook():  # in the apply's transaction, just before the link step
        StripeUser.objects.filter(customer_id="cus_DemoAlice00001").update(user=other, synced_at=timezone.now())

    link_before(monkeypatch, webhook)
    result = run("update_stripe_customers")
    assert result.code == 0, result.err
    assert (
        f"  = link StripeUser cus_DemoAlice00001 to user {unlinked_alice.pk} (Alice.Smith@Example.com)\n" in result.out
    )
    assert StripeUser.objects.get(customer_id="cus_DemoAlice00001").user_id == other.pk
    assert (
        f"\n  ! conflict StripeUser cus_DemoAlice00001: linked to user {other.pk} after Stripe's page was fetched; "
        "kept that link\n" in result.out
    )


def test_a_stamped_unlinked_row_written_during_the_apply_is_kept_too(unlinked_alice, monkeypatch):
    link_before(
        monkeypatch,
        lambda: StripeUser.objects.filter(customer_id="cus_DemoAlice00001").update(synced_at=timezone.now()),
    )
    result = run("update_stripe_customers")
    assert f"\n  ! conflict StripeUser cus_DemoAlice00001: {KEPT}\n" in result.out
    assert StripeUser.objects.get(customer_id="cus_DemoAlice00001").user_id is None


@pytest.mark.django_db(transaction=True)
def test_a_link_committed_by_another_connection_during_the_apply_is_kept(unlinked_alice, monkeypatch):
    """Another connection commits the link after the apply's transaction began (PostgreSQL, MariaDB:
    SELECT ... FOR UPDATE reads the committed row, even under MariaDB's REPEATABLE READ)."""
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has one writer at a time: no other connection can commit during the apply")
    other = User.objects.create_user("mallory-admin", "someone.else@example.com")
    StripeUser.objects.filter(customer_id="cus_DemoAlice00001").update(synced_at=None)
    Product.objects.count()  # the apply's transaction reads before the link step, as a real one does

    def other_connection():
        try:
            StripeUser.objects.filter(customer_id="cus_DemoAlice00001").update(user=other)
        finally:
            connections.close_all()

    def webhook():
        StripeUser.objects.filter(customer_id="cus_DemoBob0000001").exists()  # the snapshot starts here
        thread = threading.Thread(target=other_connection)
        thread.start()
        thread.join(30)

    link_before(monkeypatch, webhook)
    result = run("update_stripe_customers")
    assert result.code == 0, result.err
    assert StripeUser.objects.get(customer_id="cus_DemoAlice00001").user_id == other.pk
    assert f"conflict StripeUser cus_DemoAlice00001: linked to user {other.pk}" in result.out


def test_a_saved_subscriptions_plan_is_refused_when_a_customer_it_creates_appeared_since(fake_stripe, tmp_path):
    plan = str(tmp_path / "plan.json")
    assert run("update_stripe_products").code == 0
    user = User.objects.create_user("bob", "bob@example.com")
    made = run("update_stripe_subscriptions", "--plan-out", plan)
    assert made.code == 0 and "  + create StripeUser cus_DemoBob0000001" in made.out
    # a webhook records the customer, linked by hand to another user, after the plan was made
    StripeUser.objects.create(customer_id="cus_DemoBob0000001", email="bob@example.com", user=user)
    result = run("update_stripe_subscriptions", "--apply-plan", plan)
    assert result.code == 2, result.out
    assert "The database changed since the plan" in result.err
    row = StripeUser.objects.get(customer_id="cus_DemoBob0000001")
    assert (row.email, row.user_id) == ("bob@example.com", user.pk)


# -- plan files ------------------------------------------------------------------------------------
def test_a_plan_file_is_readable_by_its_owner_only(fake_stripe, tmp_path):
    path = tmp_path / "plan.json"
    path.write_text("old")
    path.chmod(0o644)
    assert run("update_stripe_products", "--plan-out", str(path)).code == 0
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    fresh = tmp_path / "fresh.json"
    old_umask = os.umask(0)
    try:
        assert run("update_stripe_products", "--plan-out", str(fresh)).code == 0
    finally:
        os.umask(old_umask)
    assert oct(fresh.stat().st_mode & 0o777) == "0o600"


def test_plan_out_never_follows_a_symlink(fake_stripe, tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    link = tmp_path / "plan.json"
    link.symlink_to(target)
    result = run("update_stripe_products", "--plan-out", str(link))
    assert result.code == 2
    assert (
        f"CommandError: Cannot write the plan to {link}: it is a symlink, and a plan never follows one." in result.err
    )
    assert target.read_text() == "keep me\n"


def test_a_plan_made_against_one_database_is_refused_by_another_in_the_same_state(
    fake_stripe, tmp_path, reconcile_settings
):
    """Two SQLite files, copies of one migrated database: a plan made on the first is refused on the second."""
    first, second = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    shutil.copy(_sqlite_template(), first)
    shutil.copy(_sqlite_template(), second)
    plan = str(tmp_path / "plan.json")
    base = reconcile_settings.RECONCILE["API_BASE"]

    def manage(database, *args):
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=child_env(f"sqlite:///{database}", base, FAKE_KEY),
            capture_output=True,
            text=True,
            timeout=120,
        )

    made = manage(first, "update_stripe_products", "--plan-out", plan)
    assert made.returncode == 0, made.stderr
    refused = manage(second, "update_stripe_products", "--apply-plan", plan)
    assert refused.returncode == 2, refused.stdout
    assert "was made for another database" in refused.stderr
    applied = manage(first, "update_stripe_products", "--apply-plan", plan)
    assert applied.returncode == 0, applied.stderr
    link = tmp_path / "link.sqlite3"
    link.symlink_to(first)
    assert manage(link, "update_stripe_products", "--check").returncode == 0  # the same file by another path


def test_products_stored_intact(start_fake):
    data, _ = hostile_account()
    start_fake(data)
    run("update_stripe_products")
    fine = [p for p in data["products"] if p["id"] in ("prod_Emoji", *[x["id"] for x in demo_data()["products"]])]
    assert {k: v for k, v in stored_products().items() if k in {p["id"] for p in fine}} == expected_products(fine)


def test_billing_fields_the_database_cannot_store_skip_their_object_and_what_needs_it(start_fake, reconcile_settings):
    """Issue 12's fields pass the same checks: an Entitlements feature's name, a price's lookup key.
    A product whose feature is skipped is skipped too (its feature rows would have no feature)."""
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "FEATURES_SOURCE": "entitlements"}
    data = demo_data()
    feature = next(f for f in data["features"] if f["id"] == "feat_DemoSso000001")
    feature["name"] = "Single\x00sign-on"
    owner = {a["product"] for a in data["product_features"] if a["entitlement_feature"] == feature["id"]}
    assert owner == {"prod_DemoPro000001"}
    price = next(p for p in data["prices"] if p["product"] != "prod_DemoPro000001")
    data["prices"].append({**copy.deepcopy(price), "id": "price_NulLookup", "lookup_key": "pro\x00monthly"})
    start_fake(data)
    result = run("update_stripe_products")
    assert result.code == 0, result.err
    nul = "holds a NUL character, which PostgreSQL cannot store"
    assert f"  ! skip Feature feat_DemoSso000001: field 'name' {nul}\n" in result.out
    assert (
        "  ! skip Product prod_DemoPro000001: its feature feat_DemoSso000001 is skipped (it cannot be stored)\n"
        in result.out
    )
    assert f"  ! skip Price price_NulLookup: field 'lookup_key' {nul}\n" in result.out
    assert not Product.objects.filter(id="prod_DemoPro000001").exists()
    assert not Price.objects.filter(id="price_NulLookup").exists()
    assert Product.objects.count() == len(data["products"]) - 1
    again = run("update_stripe_products", "--check")
    assert again.code == 0, again.out


def test_billing_values_are_checked_against_their_columns():
    """Exact decimals against numeric(32, 12); JSON lists (tiers) and nested objects (currency
    options) hold text that must be storable too; the every-shape pull (test_fidelity) shows that
    nothing Stripe sends is wrongly refused."""
    price = PriceRec(
        id="price_X", product_id="prod_X", amount=None, currency="usd", frequency=None, active=True, nickname=None
    )
    assert problem(price) is None
    assert problem(dataclasses.replace(price, unit_amount_decimal=Decimal("12345678901234567890.123456789012"))) is None
    assert problem(dataclasses.replace(price, unit_amount_decimal=Decimal("1e20"))) == (
        "field 'unit_amount_decimal' 1E+20 has more digits than the column holds (20 before the point, 12 after)"
    )
    assert problem(dataclasses.replace(price, unit_amount_decimal=Decimal("0.0000000000001"))) == (
        "field 'unit_amount_decimal' 1E-13 has more digits than the column holds (20 before the point, 12 after)"
    )
    assert problem(dataclasses.replace(price, tiers=[{"up_to": 5}, {"up_to": "in\x00f"}])) == (
        "field 'tiers' [1] 'up_to' holds a NUL character, which PostgreSQL cannot store"
    )
    options = {"eur": {"unit_amount_decimal": "1.5", "tiers": [{"up_to": None, "unit_amount": 5}]}}
    assert problem(dataclasses.replace(price, currency_options=options)) is None
    assert problem(dataclasses.replace(price, currency_options={"eur": {"nickname": "\ud800"}})) == (
        "field 'currency_options' 'eur' 'nickname' holds a lone surrogate (\\ud800), which no database can store "
        "as UTF-8"
    )
    assert problem(dataclasses.replace(price, interval_count=-1)) == (
        "field 'interval_count' -1 is out of the column's range (0 to 2147483647)"
    )


def test_the_screen_copies_the_records_only_when_it_refuses_some():
    """A first pull's dicts of records are kept as they are when every record can be stored (a
    copy of them was 9 MiB at N=100,000); a refused record leaves a copy without it, and a product
    naming a refused feature is refused with it."""
    from reconcile.core.snapshot import FeatureRec, ProductRec, Snapshot
    from reconcile.db.storable import screen

    def product(pid, features=()):
        return ProductRec(id=pid, name="P", description=None, active=True, metadata={}, features=features)

    good = Snapshot(products={"prod_1": product("prod_1")}, features={"f1": FeatureRec(id="f1")})
    kept = screen(good, {})
    assert kept.products is good.products and kept.features is good.features and kept.rejected == ()
    bad_feature = FeatureRec(id="f2", name="N\x00L")  # PostgreSQL stores no NUL: refused on every database
    odd = Snapshot(
        products={"prod_1": product("prod_1"), "prod_2": product("prod_2", (bad_feature.id,))},
        features={bad_feature.id: bad_feature, "f1": FeatureRec(id="f1")},
    )
    kept = screen(odd, {})
    assert (list(kept.products), list(kept.features)) == (["prod_1"], ["f1"])
    assert [(r.model, r.id) for r in kept.rejected] == [("Feature", bad_feature.id), ("Product", "prod_2")]
    assert kept.rejected[1].reason == f"its feature {bad_feature.id} is skipped (it cannot be stored)"


@pytest.mark.django_db
def test_customers_and_subscriptions_are_checked_as_their_pages_are_read(start_fake, monkeypatch):
    """The screen's test runs in the fetch for the customers and subscriptions it keeps (the fetch
    waits on Stripe; the screen would start after it), and the screen reads its answers."""
    from collections import Counter

    from reconcile.conf import get_config
    from reconcile.db import storable
    from reconcile.stripe.remote import fetch_remote
    from reconcile.testing.generate import generate_account

    account = generate_account(30, seed=3, n_products=2)
    odd = account["customers"][0]["id"]
    start_fake(account)
    seen: Counter = Counter()

    def check(record):
        seen[type(record).__name__] += 1
        return "odd, says the test" if record.id == odd else None

    remote = fetch_remote(get_config(), ("products", "customers", "subscriptions"), check=check)
    assert remote.checked == {"customers": {odd: "odd, says the test"}, "subscriptions": {}}
    assert seen == {"CustomerRec": len(remote.customers), "SubscriptionRec": len(remote.subscriptions)} != {}
    original = storable.problem

    def screened(record):
        assert type(record).__name__ not in seen, "checked twice"
        return original(record)

    monkeypatch.setattr(storable, "problem", screened)
    kept = storable.screen(remote, {})
    assert [(r.model, r.id, r.reason) for r in kept.rejected] == [("StripeUser", odd, "odd, says the test")]
    assert odd not in kept.customers and len(kept.customers) == len(remote.customers) - 1


def test_empty_metadata_passes_the_check_without_the_slow_path(monkeypatch):
    """Most records' metadata is an empty dict: the compiled check lets it pass itself (a call to
    ``_value_problem`` per record was a third of the check); a dict with keys is still looked into."""
    from reconcile.db import storable

    calls = []
    slow = storable._value_problem
    monkeypatch.setattr(storable, "_value_problem", lambda *args: calls.append(args[0]) or slow(*args))
    storable._fields_check.cache_clear()
    try:
        customer = CustomerRec(id="cus_X", email="a@example.com", name=None, metadata={}, deleted=False)
        assert problem(customer) is None and calls == []
        assert problem(dataclasses.replace(customer, metadata={"k": "v\x00"})) == (
            "field 'metadata' 'k' holds a NUL character, which PostgreSQL cannot store"
        )
        assert calls[0] == "field 'metadata'"
    finally:
        storable._fields_check.cache_clear()
