"""The read-only admin: every page answers, shows Stripe's data readably, escapes it, and writes nothing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils.html import escape

from reconcile.admin import format_amount
from reconcile.models import (
    Feature,
    Price,
    Product,
    ProductFeature,
    StripeUser,
    Subscription,
    SubscriptionItem,
    SyncRun,
)

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)
SCRIPT = "<script>alert('x')</script>"

REPORT = {
    "schema": "reconcile.plan/v1",
    "in_sync": False,
    "summary": {
        "create": 1,
        "update": 1,
        "recreate_items": 0,
        "link_user": 0,
        "create_user": 0,
        "orphan": 0,
        "skip": 1,
    },
    "operations": [
        {
            "action": "create",
            "symbol": "+",
            "model": "Price",
            "id": "price_new",
            "changes": [{"field": "amount", "old": None, "new": 900}, {"field": "currency", "old": None, "new": "eur"}],
            "reason": None,
            "description": "create Price price_new",
        },
        {
            "action": "update",
            "symbol": "~",
            "model": "Product",
            "id": "prod_pro",
            "changes": [
                {"field": "name", "old": "Pro", "new": "Pro 2"},
                {"field": "active", "old": True, "new": False},
            ],
            "reason": None,
            "description": "update Product prod_pro: name, active",
        },
        {
            "action": "skip",
            "symbol": "!",
            "model": "Subscription",
            "id": "sub_bad",
            "changes": [],
            "reason": f"price {SCRIPT} is not in Stripe",
            "description": "skip Subscription sub_bad",
        },
    ],
    "notes": [{"model": "StripeUser", "id": "cus_dup", "message": "2 users share 'a@b.c' (4, 9); linked none"}],
    "next_cursor": {"customers": "cus_456"},
    "conflicts": [
        {
            "model": "Subscription",
            "id": "sub_kept",
            "reason": "the stored row was written after Stripe's page was fetched; kept the newer row",
        }
    ],
}


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """The admin_client fixture hashes a password per test; a fast hasher keeps these tests quick."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def url(model, view: str = "changelist", obj=None) -> str:
    name = f"admin:reconcile_{model._meta.model_name}_{view}"
    return reverse(name, args=[quote(obj.pk)] if obj is not None else [])


@pytest.fixture
def rows(db):
    user = get_user_model().objects.create_user("alice", email="alice@example.com", password="x")
    product = Product.objects.create(id="prod_pro", name="Pro", active=True, synced_at=T0)
    Product.objects.create(id="prod_old", name="Old", active=False)
    usd = Price.objects.create(id="price_usd", product=product, amount=1200, currency="usd", frequency="month_1")
    jpy = Price.objects.create(id="price_jpy", product=product, amount=1500, currency="jpy", frequency="year_1")
    tiered = Price.objects.create(id="price_tiered", product=product, amount=None, currency="usd", active=False)
    shapes = dict(product=product, currency="usd", type="recurring", billing_scheme="per_unit", interval="month",
                  interval_count=1, usage_type="licensed")
    Price.objects.create(id="price_half_cent", amount=None, unit_amount_decimal=Decimal("0.5"), **shapes)
    Price.objects.create(id="price_pack", amount=1000, unit_amount_decimal=Decimal("1000"), transform_divide_by=10,
                         transform_round="up", **shapes)
    Price.objects.create(
        id="price_graduated", amount=None, tiers_mode="graduated",
        tiers=[{"up_to": 10, "unit_amount": 1000, "unit_amount_decimal": "1000", "flat_amount": None,
                "flat_amount_decimal": None},
               {"up_to": None, "unit_amount": 800, "unit_amount_decimal": "800", "flat_amount": None,
                "flat_amount_decimal": None}],
        **{**shapes, "billing_scheme": "tiered"},
    )
    Price.objects.create(id="price_choose", amount=None, custom_unit_amount={"minimum": 500, "maximum": None,
                                                                            "preset": 2000}, **shapes)
    Price.objects.create(
        id="price_multi", amount=2000, unit_amount_decimal=Decimal("2000"),
        currency_options={"eur": {"unit_amount": 1900, "unit_amount_decimal": "1900", "tax_behavior": "exclusive",
                                  "custom_unit_amount": None, "tiers": []}},
        **shapes,
    )
    feature = Feature.objects.create(id="seats", description="Seats")
    product_feature = ProductFeature.objects.create(product=product, feature=feature)
    customer = StripeUser.objects.create(customer_id="cus_alice", user=user, email="billing@acme.test", name="Acme")
    StripeUser.objects.create(customer_id="cus_bob", email="bob@example.com", name="Bob")
    subscription = Subscription.objects.create(
        id="sub_alice",
        stripe_user=customer,
        status="canceled",
        current_period_end=T0 + timedelta(days=30),
        canceled_at=T0,
        ended_at=T0,
    )
    item_usd = SubscriptionItem.objects.create(id="si_usd", subscription=subscription, price=usd, quantity=2)
    SubscriptionItem.objects.create(id="si_jpy", subscription=subscription, price=jpy, quantity=1)
    run = SyncRun.objects.create(
        started_at=T0,
        finished_at=T0 + timedelta(seconds=2.5),
        command="reconcile_all",
        options={"resources": ["products", "customers", "subscriptions"], "format": "text"},
        outcome="applied with conflicts",
        counts={"create": 1, "update": 1, "link_user": 0},
        report=REPORT,
    )
    return {
        "user": user,
        "product": product,
        "usd": usd,
        "jpy": jpy,
        "tiered": tiered,
        "feature": feature,
        "product_feature": product_feature,
        "customer": customer,
        "subscription": subscription,
        "item": item_usd,
        "run": run,
    }


OBJECTS = ["product", "usd", "tiered", "feature", "product_feature", "customer", "subscription", "item", "run"]
MODELS = [Product, Price, Feature, ProductFeature, StripeUser, Subscription, SubscriptionItem, SyncRun]


def test_format_amount():
    assert format_amount(1200, "usd") == "12.00 USD"
    assert format_amount(5, "eur") == "0.05 EUR"
    assert format_amount(1500, "jpy") == "1500 JPY"
    assert format_amount(1500, "bhd") == "1.500 BHD"
    assert format_amount(None, "usd") == "tiered / custom"
    assert format_amount(-5, "eur") == "-0.05 EUR"


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_changelists_answer(admin_client, rows, model):
    response = admin_client.get(url(model))
    assert response.status_code == 200
    assert response.context["cl"].result_count > 0
    assert url(model, "add") not in response.content.decode()  # no add button


@pytest.mark.django_db
@pytest.mark.parametrize("key", OBJECTS)
def test_change_pages_are_view_pages(admin_client, rows, key):
    obj = rows[key]
    response = admin_client.get(url(type(obj), "change", obj))
    assert response.status_code == 200
    html = response.content.decode()
    assert "View " in html  # the title of a view-only page
    assert 'name="_save"' not in html
    assert "deletelink" not in html


@pytest.mark.django_db
def test_price_changelist_formats_amounts(admin_client, rows):
    html = admin_client.get(url(Price)).content.decode()
    assert '<td class="field-amount_display">12.00 USD per unit</td>' in html
    assert '<td class="field-amount_display">1500 JPY per unit</td>' in html
    assert '<td class="field-amount_display">tiered / custom</td>' in html  # stored before the shapes were
    assert "By active" in html
    assert "month_1" in html


@pytest.mark.django_db
def test_price_changelist_shows_amounts_as_stripe_means_them(admin_client, rows):
    html = admin_client.get(url(Price)).content.decode()
    cells = [
        "0.005 USD per unit",  # half a cent: only unit_amount_decimal
        "10.00 USD per package of 10 (rounded up)",
        "graduated tiers: 10.00 USD per unit for units 1-10, then 1 more tier",
        "customer chooses (min 5.00 USD, preset 20.00 USD)",
        "20.00 USD per unit; 19.00 EUR per unit",
    ]
    for cell in cells:
        assert f'<td class="field-amount_display">{cell}</td>' in html, cell


@pytest.mark.django_db
def test_product_change_page_lists_its_prices_and_features(admin_client, rows):
    html = admin_client.get(url(Product, "change", rows["product"])).content.decode()
    assert f'<a href="{url(Price, "change", rows["usd"])}">price_usd</a>' in html
    assert "12.00 USD per unit" in html and "1500 JPY per unit" in html and "tiered / custom" in html
    assert f'<a href="{url(Feature, "change", rows["feature"])}">seats</a>' in html


@pytest.mark.django_db
def test_subscription_changelist(admin_client, rows):
    html = admin_client.get(url(Subscription)).content.decode()
    assert "By status" in html
    assert 'href="?status=canceled"' in html
    customer_link = f'<a href="{url(StripeUser, "change", rows["customer"])}">cus_alice</a>'
    assert customer_link in html
    # the linked user and the products of its items (two prices of one product: named once)
    user_url = reverse("admin:auth_user_change", args=[rows["user"].pk])
    assert f'<td class="field-user"><a href="{user_url}">alice</a></td>' in html
    assert f'<td class="field-products"><a href="{url(Product, "change", rows["product"])}">Pro</a></td>' in html


@pytest.mark.django_db
def test_price_changelist_names_the_product(admin_client, rows):
    html = admin_client.get(url(Price)).content.decode()
    assert f'<td class="field-product_link"><a href="{url(Product, "change", rows["product"])}">Pro</a></td>' in html


@pytest.mark.django_db
def test_subscription_page_links_customer_and_items(admin_client, rows):
    html = admin_client.get(url(Subscription, "change", rows["subscription"])).content.decode()
    assert url(StripeUser, "change", rows["customer"]) in html
    for item_id in ("si_usd", "si_jpy"):
        item = SubscriptionItem.objects.get(id=item_id)
        assert f'<a href="{url(SubscriptionItem, "change", item)}">{item_id}</a>' in html
    assert f'<a href="{url(Price, "change", rows["jpy"])}">price_jpy</a>' in html
    assert "1500 JPY" in html and "12.00 USD" in html
    assert "canceled" in html
    assert html.index("field-id") < html.index("field-stripe_user") < html.index("field-synced_at")


@pytest.mark.django_db
def test_customer_changelist_and_page(admin_client, rows):
    html = admin_client.get(url(StripeUser)).content.decode()
    assert "Stripe customers" in html
    assert '<td class="field-email">billing@acme.test</td>' in html
    user_url = reverse("admin:auth_user_change", args=[rows["user"].pk])
    assert f'<td class="field-user_link"><a href="{user_url}">alice</a></td>' in html
    assert '<td class="field-user_link">-</td>' in html  # cus_bob has no user
    html = admin_client.get(url(StripeUser, "change", rows["customer"])).content.decode()
    assert f'<a href="{url(Subscription, "change", rows["subscription"])}">sub_alice</a>' in html


@pytest.mark.django_db
def test_search_by_email(admin_client, rows):
    response = admin_client.get(url(StripeUser), {"q": "billing@acme.test"})
    assert [c.customer_id for c in response.context["cl"].result_list] == ["cus_alice"]
    response = admin_client.get(url(StripeUser), {"q": "alice@example.com"})  # the linked user's email
    assert [c.customer_id for c in response.context["cl"].result_list] == ["cus_alice"]
    response = admin_client.get(url(StripeUser), {"q": "cus_bob"})
    assert [c.customer_id for c in response.context["cl"].result_list] == ["cus_bob"]
    for q in ("billing@acme.test", "alice@example.com", "sub_alice"):
        response = admin_client.get(url(Subscription), {"q": q})
        assert [s.id for s in response.context["cl"].result_list] == ["sub_alice"], q
    response = admin_client.get(url(Subscription), {"q": "bob@example.com"})
    assert list(response.context["cl"].result_list) == []
    response = admin_client.get(url(Price), {"q": "price_jpy"})
    assert [p.id for p in response.context["cl"].result_list] == ["price_jpy"]


@pytest.mark.django_db
def test_syncrun_changelist(admin_client, rows):
    html = admin_client.get(url(SyncRun)).content.decode()
    assert "reconcile_all" in html
    assert "applied with conflicts" in html
    assert "2025-01-01 12:00:00 UTC</a>" in html  # to the second, linking to the run
    assert '<td class="field-duration_display">2.5 s</td>' in html
    assert '<td class="field-counts_summary">1 created, 1 updated</td>' in html  # the Applied line's words


@pytest.mark.django_db
def test_syncrun_page_shows_the_report(admin_client, rows):
    html = admin_client.get(url(SyncRun, "change", rows["run"])).content.decode()
    # summary counts
    assert "<th>recreate items</th>" in html
    assert "<td>1</td>" in html
    # an applied run says what happened to it, never "changes planned"
    assert "schema reconcile.plan/v1 &middot; applied with conflicts" in html and "planned" not in html
    # operations: symbol, action, model, id (a link to the stored object), changes as "field: old -> new", reason
    assert (
        '<tr title="update Product prod_pro: name, active"><td>~</td><td>update</td><td>Product</td>'
        f'<td><a href="{url(Product, "change", rows["product"])}"><code>prod_pro</code></a></td>'
        f"<td>name: {escape(repr('Pro'))} -&gt; {escape(repr('Pro 2'))}<br>"
        "active: True -&gt; False</td><td></td></tr>"
    ) in html
    # creates are folded into one collapsed list, without their field lists
    assert (
        '<details class="reconcile-creates"><summary>1 created (Price 1): show</summary>'
        '<table class="reconcile-created"><thead><tr><th>model</th><th>id</th><th>created</th></tr></thead><tbody>'
        "<tr><td>Price</td><td><code>price_new</code></td><td>create Price price_new</td></tr>"
    ) in html
    assert "amount: None -&gt; 900" not in html
    # not stored (any more): no link
    assert "<td>!</td><td>skip</td><td>Subscription</td><td><code>sub_bad</code></td><td></td>" in html
    # values from Stripe are escaped
    assert f"<td>price {escape(SCRIPT)} is not in Stripe</td>" in html
    assert "&lt;script&gt;" in html
    assert SCRIPT not in html
    # notes, conflicts, next cursor
    assert escape("2 users share 'a@b.c' (4, 9); linked none") in html
    assert "<td>Subscription</td><td><code>sub_kept</code></td>" in html  # not stored: no link
    assert escape("kept the newer row") in html
    assert "customers: --starting_after cus_456" in html
    # the run itself
    assert "2025-01-01 12:00:02 UTC" in html  # finished at
    assert "2.5 s" in html
    assert "1 created, 1 updated" in html


@pytest.mark.django_db
def test_syncrun_page_with_an_empty_or_odd_report(admin_client, rows):
    empty = SyncRun.objects.create(
        started_at=T0, finished_at=T0, command="reconcile_products", outcome="applied", counts={}, report={}
    )
    html = admin_client.get(url(SyncRun, "change", empty)).content.decode()
    assert "schema unknown" in html
    odd = SyncRun.objects.create(
        started_at=T0,
        finished_at=T0,
        command="reconcile_products",
        outcome="applied",
        report={"summary": [], "operations": ["x", {"changes": "y"}], "notes": None, "next_cursor": 3},
    )
    assert admin_client.get(url(SyncRun, "change", odd)).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_add_is_forbidden(admin_client, rows, model):
    assert admin_client.get(url(model, "add")).status_code == 403
    assert admin_client.post(url(model, "add"), {"id": "x"}).status_code == 403


@pytest.mark.django_db
def test_post_to_a_change_page_writes_nothing(admin_client, rows):
    product = rows["product"]
    response = admin_client.post(
        url(Product, "change", product), {"id": "prod_pro", "name": "Hacked", "active": "", "_save": "Save"}
    )
    assert response.status_code == 403
    product.refresh_from_db()
    assert (product.name, product.active) == ("Pro", True)

    subscription = rows["subscription"]
    response = admin_client.post(url(Subscription, "change", subscription), {"status": "active"})
    assert response.status_code == 403
    subscription.refresh_from_db()
    assert subscription.status == "canceled"

    run = rows["run"]
    response = admin_client.post(url(SyncRun, "change", run), {"outcome": "fine", "report": "{}"})
    assert response.status_code == 403
    run.refresh_from_db()
    assert (run.outcome, run.report) == ("applied with conflicts", REPORT)


@pytest.mark.django_db
def test_delete_is_forbidden(admin_client, rows):
    for key in ("product", "subscription", "run"):
        obj = rows[key]
        assert admin_client.post(url(type(obj), "delete", obj), {"post": "yes"}).status_code == 403
        assert type(obj).objects.filter(pk=obj.pk).exists()
    response = admin_client.post(
        url(Subscription), {"action": "delete_selected", "_selected_action": ["sub_alice"], "post": "yes"}
    )
    assert Subscription.objects.filter(pk="sub_alice").exists()
    assert response.status_code == 200  # the changelist again: no delete action is offered


@pytest.fixture
def many(rows):
    """30 subscriptions of 30 customers linked to 30 users, 2 items each, and 30 runs."""
    User = get_user_model()
    for n in range(30):
        user = User.objects.create_user(f"user{n}", email=f"user{n}@example.com")
        customer = StripeUser.objects.create(customer_id=f"cus_{n:02}", user=user, email=f"c{n}@example.com")
        subscription = Subscription.objects.create(id=f"sub_{n:02}", stripe_user=customer, status="active")
        SubscriptionItem.objects.create(id=f"si_{n:02}a", subscription=subscription, price=rows["usd"])
        SubscriptionItem.objects.create(id=f"si_{n:02}b", subscription=subscription, price=rows["jpy"])
        Price.objects.create(id=f"price_{n:02}", product=rows["product"], amount=n, currency="usd")
        SyncRun.objects.create(
            started_at=T0, finished_at=T0, command="reconcile_all", outcome="applied", counts={}, report=REPORT
        )


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_changelist_queries_are_bounded(admin_client, many, django_assert_max_num_queries, model):
    admin_client.get(url(model))  # warm up (content types, session)
    with django_assert_max_num_queries(10):
        response = admin_client.get(url(model))
    assert response.status_code == 200
    listing = response.context["cl"]
    assert listing.result_count == model.objects.count()
    assert len(listing.result_list) == min(listing.list_per_page, listing.result_count)


@pytest.mark.django_db
def test_syncrun_ids_link_to_the_stored_objects(admin_client, rows, django_assert_max_num_queries):
    def op(action, model, oid):
        return {"action": action, "symbol": "", "model": model, "id": oid, "changes": [], "description": action}

    report = {
        "schema": "reconcile.plan/v1",
        "operations": [
            op("link_user", "StripeUser", "cus_alice"),
            op("create_user", "User", "cus_bob"),  # a created user is seen from its customer
            op("recreate_items", "SubscriptionItem", "sub_alice"),  # an item set from its subscription
            op("create", "Price", "price_usd"),
            op("skip", "Price", "price_gone"),
        ],
        "notes": [{"model": "StripeUser", "id": "cus_alice", "message": "note"}],
        "conflicts": [{"model": "Subscription", "id": "sub_alice", "reason": "kept"}],
    }
    run = SyncRun.objects.create(started_at=T0, finished_at=T0, command="pull_stripe", outcome="applied", report=report)
    with django_assert_max_num_queries(12):  # one query per model named, not per row
        html = admin_client.get(url(SyncRun, "change", run)).content.decode()
    bob = StripeUser.objects.get(customer_id="cus_bob")
    for model, obj, oid in [
        (StripeUser, rows["customer"], "cus_alice"),
        (StripeUser, bob, "cus_bob"),
        (Subscription, rows["subscription"], "sub_alice"),
        (Price, rows["usd"], "price_usd"),
    ]:
        assert f'<a href="{url(model, "change", obj)}"><code>{oid}</code></a>' in html, oid
    assert html.count(f'<a href="{url(StripeUser, "change", rows["customer"])}"><code>cus_alice</code></a>') == 2
    assert html.count(f'<a href="{url(Subscription, "change", rows["subscription"])}"><code>sub_alice</code></a>') == 2
    assert "<td><code>price_gone</code></td>" in html  # not stored: no link
