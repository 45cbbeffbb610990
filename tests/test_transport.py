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


def test_the_wait_for_an_answer_is_timed_to_its_headers_not_its_body():
    """A body that takes long to arrive (or to read and decode, on a loaded machine) is not the
    link's latency: the walk would cut lists into parts for nothing. ``waited`` is the time until the
    headers, once per request; the same connection serves the next request (it went back to the pool)."""
    import socket
    import threading
    import time

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(10)
    body = b'{"object": "list"}'

    def serve():
        conn, _ = server.accept()
        with conn:
            for _ in range(2):
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
                time.sleep(0.4)  # the body comes late
                conn.sendall(body)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = Urllib3Client(timeout=10)
    url = f"http://127.0.0.1:{server.getsockname()[1]}/v1/customers"
    try:
        for _ in range(2):
            began = time.monotonic()
            data, status, _ = client.request("get", url, {})
            whole = time.monotonic() - began
            waited = client.waited()
            assert (data, status) == (body, 200)
            # the body's 0.4 s are not in it (a margin for a loaded machine, not a timing pin)
            assert waited is not None and whole >= 0.4 and whole - waited > 0.2
            assert client.waited() is None  # told once
    finally:
        thread.join(10)
        server.close()
        client.close()
