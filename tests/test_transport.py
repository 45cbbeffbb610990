"""How requests leave: a kept-alive http.client connection per thread and host (requests when a
proxy is set), and without stripe-python's per-request log formatting unless its logging is on."""

from __future__ import annotations

import logging

import pytest
import stripe

from reconcile.conf import get_config
from reconcile.stripe import fetch
from reconcile.stripe.fetch import Fetcher
from reconcile.stripe.transport import KeepAliveClient, http_client
from reconcile.testing.generate import generate_account


def test_urllib3_unless_the_environment_names_a_proxy(monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(http_client("https://api.stripe.com", 30), KeepAliveClient)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert isinstance(http_client("https://api.stripe.com", 30), stripe.RequestsClient)
    monkeypatch.setenv("NO_PROXY", "api.stripe.com")
    assert isinstance(http_client("https://api.stripe.com", 30), KeepAliveClient)


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
    client = KeepAliveClient(timeout=10)
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


class _OneAnswerPerConnection:
    """A loopback server that answers one request per connection and then closes it without saying
    so (no "Connection: close"), as a server does with a connection idle past its timeout."""

    def __init__(self, body: bytes = b'{"object": "list"}') -> None:
        import socket
        import threading

        self.body, self.connections, self.requests, self.stopping = body, 0, [], False
        self.closed = threading.Event()
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(4)
        self.server.settimeout(10)
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import socket

        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:  # no client for 10 s
                return
            if self.stopping:
                conn.close()
                return
            self.connections += 1
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    request += chunk
                self.requests.append(request.split(b"\r\n", 1)[0].decode())
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(self.body) + self.body)
                conn.shutdown(socket.SHUT_RDWR)
            self.closed.set()

    def stop(self) -> None:
        import socket

        self.stopping = True
        socket.create_connection(self.server.getsockname(), timeout=10).close()  # wakes the accept
        self.thread.join(10)
        self.server.close()


def test_a_connection_the_server_closed_while_idle_is_not_reused():
    server = _OneAnswerPerConnection()
    client = KeepAliveClient(timeout=10)
    try:
        for method in ("get", "post", "get"):
            assert client.request(method, server.url + "/v1/customers?limit=1", {})[:2] == (server.body, 200)
            assert server.closed.wait(10)  # its end is on its way to the client before the next request
            server.closed.clear()
    finally:
        client.close()
        server.stop()
    assert server.requests == [f"{m} /v1/customers?limit=1 HTTP/1.1" for m in ("GET", "POST", "GET")]
    assert server.connections == 3


def test_a_certificate_the_ca_bundle_does_not_vouch_for_is_refused_and_not_retried(tmp_path):
    """A TLS server with a self-signed certificate: stripe-python's CA bundle does not trust it."""
    import shutil
    import ssl
    import subprocess
    import threading

    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make a certificate with")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert)]
        + ["-days", "1", "-subj", "/CN=127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(10)

    def serve():
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            try:
                context.wrap_socket(conn, server_side=True).close()
            except (ssl.SSLError, OSError):
                pass  # the client hung up on the certificate

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = KeepAliveClient(timeout=10)
    try:
        with pytest.raises(stripe.APIConnectionError) as raised:
            client.request("get", f"https://127.0.0.1:{server.getsockname()[1]}/v1/customers", {})
        assert not raised.value.should_retry
        assert "CERTIFICATE_VERIFY_FAILED" in str(raised.value)
    finally:
        client.close()
        server.close()
        thread.join(10)
