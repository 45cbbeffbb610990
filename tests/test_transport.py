"""How requests leave: urllib3's pool (requests when a proxy is set), and without stripe-python's
per-request log formatting unless its logging is on."""

from __future__ import annotations

import logging

import pytest
import stripe

from reconcile.conf import get_config
from reconcile.stripe import fetch
from reconcile.stripe.fetch import Fetcher
from reconcile.stripe.transport import Urllib3Client, http_client
from reconcile.testing.generate import generate_account


def test_urllib3_unless_the_environment_names_a_proxy(monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(http_client("https://api.stripe.com", 30), Urllib3Client)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert isinstance(http_client("https://api.stripe.com", 30), stripe.RequestsClient)
    monkeypatch.setenv("NO_PROXY", "api.stripe.com")
    assert isinstance(http_client("https://api.stripe.com", 30), Urllib3Client)


@pytest.fixture
def logged(monkeypatch):
    """The log lines stripe-python's requestor formats, counted."""
    lines: list[str] = []
    for name in ("log_info", "log_debug"):
        monkeypatch.setattr(f"stripe._api_requestor.{name}", lambda message, **params: lines.append(message))
    return lines


def _walk_customers() -> int:
    fetcher = Fetcher(get_config())
    return sum(len(page.data) for page in fetcher.pages("/v1/customers"))


def test_pages_are_fetched_without_stripe_pythons_log_lines_when_its_logging_is_off(start_fake, logged):
    start_fake(generate_account(250, seed=3, n_products=2))
    assert _walk_customers() > 200
    assert logged == []


def test_stripe_pythons_log_lines_are_kept_when_its_logging_is_on(start_fake, logged):
    start_fake(generate_account(250, seed=3, n_products=2))
    level = fetch._STRIPE_LOGGER.level
    fetch._STRIPE_LOGGER.setLevel(logging.INFO)  # (setLevel clears the loggers' isEnabledFor cache)
    try:
        pages = -(-_walk_customers() // 100)
    finally:
        fetch._STRIPE_LOGGER.setLevel(level)
    # per request: "Request to Stripe api", "Post details", "Stripe API response", "API response body",
    # and the dashboard link of its request id
    first = ["Request to Stripe api", "Post details", "Stripe API response", "API response body"]
    assert logged[:5] == [*first, "Dashboard link for request"]
    assert len(logged) == 5 * pages
