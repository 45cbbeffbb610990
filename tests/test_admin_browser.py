"""The admin in a real browser (Debian's chromium, headless, through chromedriver) at 1280 and 1400 px.

The data is the demo account after a first ``pull_stripe`` (so its SyncRun holds every create).
Each page is measured in the browser: no horizontal scrolling at either width, the admin's CSS loaded,
the elements the issue asked for present. Screenshots go to ``$ADMIN_SCREENSHOTS`` when set (to
look at them), else to the test's temporary directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from reconcile.models import Price, Product, StripeUser, Subscription, SubscriptionItem, SyncRun

from .conftest import run

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
WIDTHS = (1280, 1400)  # the range of common laptop windows


@pytest.fixture(params=WIDTHS, ids=lambda w: f"{w}px")
def width(request) -> int:
    return request.param


@pytest.fixture
def browser(tmp_path, width):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("chromium and chromedriver are not installed (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        f"--window-size={width},900",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def shots(tmp_path: Path) -> Path:
    target = Path(os.environ.get("ADMIN_SCREENSHOTS") or tmp_path / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    return target


def real_shapes() -> None:
    """One subscription with ids as long as Stripe's own (28-30 characters), a long product name and
    a price in three currencies (the longest amount text), beside the demo's shorter ids."""
    product = Product.objects.create(id="prod_NWjs8kKbJWmuuc", name="Enterprise analytics (annual)")
    price = Price.objects.create(
        id="price_1MoBy5LkdIwHu7ixZhnattbh",
        product=product,
        amount=1_234_500,
        currency="usd",
        frequency="month_12",
        nickname="Enterprise annual, invoiced",
        type="recurring",
        billing_scheme="per_unit",
        interval="month",
        interval_count=12,
        currency_options={"eur": {"unit_amount": 1_150_000}, "gbp": {"unit_amount": 990_000}},  # the longest amount
    )
    customer = StripeUser.objects.create(customer_id="cus_NffrFeUfNV2Hib", email="finance@enterprise.example")
    sub = Subscription.objects.create(
        id="sub_1MowQVLkdIwHu7ixeRlqHVzs", stripe_user=customer, status="incomplete_expired"
    )
    SubscriptionItem.objects.create(id="si_NcLYdDxLHxlFo7", subscription=sub, price=price, quantity=1)


def measure(driver) -> dict:
    return driver.execute_script(
        "const d = document.documentElement, r = document.querySelector('.results');"
        "return {inner: window.innerWidth, scroll: d.scrollWidth, height: d.scrollHeight,"
        " results: r ? r.scrollWidth - r.clientWidth : 0,"
        " header: getComputedStyle(document.querySelector('#header')).backgroundColor};"
    )


@pytest.mark.django_db(transaction=True)
def test_admin_pages_fit_the_window_and_show_what_matters(live_server, browser, width, fake_stripe, tmp_path, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    User = get_user_model()
    User.objects.create_user("alice", "alice.smith@example.com")
    User.objects.create_superuser("admin", "admin@example.com", "pw-for-the-test")
    assert run("pull_stripe").code == 0
    real_shapes()
    out = shots(tmp_path)

    browser.get(live_server.url + reverse("admin:login"))
    browser.find_element("name", "username").send_keys("admin")
    browser.find_element("name", "password").send_keys("pw-for-the-test")
    browser.find_element("css selector", "input[type=submit]").click()
    assert browser.execute_script("return window.innerWidth") == width

    pages = {
        "subscriptions": reverse("admin:reconcile_subscription_changelist"),
        "prices": reverse("admin:reconcile_price_changelist"),
        "customers": reverse("admin:reconcile_stripeuser_changelist"),
        "products": reverse("admin:reconcile_product_changelist"),
        "first-run": reverse("admin:reconcile_syncrun_change", args=[SyncRun.objects.get().pk]),
    }
    for name, path in pages.items():
        browser.get(live_server.url + path)
        browser.save_screenshot(str(out / f"admin-{name}-{width}.png"))
        m = measure(browser)
        # no horizontal scrolling: neither the page nor the changelist's own scroll box
        assert m["scroll"] <= m["inner"] == width and m["results"] == 0, (name, m)
        assert m["header"] not in ("rgba(0, 0, 0, 0)", "transparent"), name  # the admin's CSS is there

    browser.get(live_server.url + pages["subscriptions"])
    rows = browser.find_elements("css selector", "#result_list tbody tr")
    assert len(rows) == Subscription.objects.count() == 9
    alice = browser.find_element("xpath", "//tr[contains(., 'sub_DemoAlice')]")
    assert alice.find_element("css selector", "td.field-user a").text == "alice"
    assert alice.find_element("css selector", "td.field-products").text == "Pro, Team seats, Starter"

    browser.get(live_server.url + pages["prices"])
    assert len(browser.find_elements("css selector", "#result_list tbody tr")) == Price.objects.count() == 9
    enterprise = browser.find_element("xpath", "//tr[contains(., 'price_1MoBy5LkdIwHu7ixZhnattbh')]")
    amount = enterprise.find_element("css selector", "td.field-amount_display").text
    assert amount.replace("\n", " ") == "12345.00 USD per unit; 11500.00 EUR per unit; 9900.00 GBP per unit"

    browser.get(live_server.url + pages["first-run"])
    creates = browser.find_element("css selector", "details.reconcile-creates")
    assert creates.get_attribute("open") is None  # folded
    assert not browser.find_element("css selector", "table.reconcile-created").is_displayed()
    browser.execute_script("document.querySelector('fieldset:nth-of-type(2)').scrollIntoView()")
    browser.save_screenshot(str(out / f"admin-first-run-report-{width}.png"))
    folded = measure(browser)["height"]
    creates.find_element("tag name", "summary").click()
    assert browser.find_element("css selector", "table.reconcile-created").is_displayed()
    assert measure(browser)["height"] > folded
    link = browser.find_element("xpath", "//table[@class='reconcile-created']//a[code='prod_DemoPro000001']")
    link.click()
    assert browser.current_url.endswith(reverse("admin:reconcile_product_change", args=[quote("prod_DemoPro000001")]))
    assert browser.find_element("css selector", "#content h2").text == "Pro (prod_DemoPro000001)"


def test_the_demo_serves_the_admin_static_files_without_debug(settings):
    settings.DEBUG = False
    response = Client().get(settings.STATIC_URL.rstrip("/").join(["/", "/admin/css/base.css"]).replace("//", "/"))
    assert response.status_code == 200
    assert b"#header" in b"".join(response.streaming_content if response.streaming else [response.content])
