"""How requests leave: kept-alive http.client connections shared by the threads (requests when a
proxy is set), and without stripe-python's per-request log formatting unless its logging is on."""

from __future__ import annotations

import logging

import pytest
import stripe

from reconcile.conf import get_config
from reconcile.stripe import fetch
from reconcile.stripe.fetch import Fetcher
from reconcile.stripe.transport import POOL_SIZE, KeepAliveClient, _key, http_client
from reconcile.testing.generate import generate_account


def test_http_client_unless_the_environment_names_a_proxy(monkeypatch):
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


def test_a_certificate_the_ca_bundle_does_not_vouch_for_is_refused_and_not_retried(tmp_path, settings):
    """A TLS server with a self-signed certificate: stripe-python's CA bundle does not trust it, and
    the Fetcher fails at once instead of backing off five times."""
    import shutil
    import socket
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
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.settimeout(10)
    accepted = []
    stopping = threading.Event()

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            if stopping.is_set():
                conn.close()
                return
            accepted.append(1)
            with conn:
                try:
                    context.wrap_socket(conn, server_side=True).close()
                except (ssl.SSLError, OSError):
                    pass  # the client hung up on the certificate

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    base = f"https://127.0.0.1:{server.getsockname()[1]}"
    client = KeepAliveClient(timeout=10)
    try:
        with pytest.raises(stripe.APIConnectionError) as raised:
            client.request("get", f"{base}/v1/customers", {})
        assert not raised.value.should_retry
        assert "CERTIFICATE_VERIFY_FAILED" in str(raised.value)
        settings.RECONCILE = {"API_KEY": "sk_test_FakeKey000", "API_BASE": base, "RETRY_BASE_DELAY": 30.0}
        fetcher = Fetcher(get_config())
        with pytest.raises(fetch.FetchError) as failed:
            fetcher.get("/v1/customers")  # with a retry, the 30 s backoff would hold the test
        assert "CERTIFICATE_VERIFY_FAILED" in str(failed.value) and fetcher.requests == 1
    finally:
        client.close()
        stopping.set()
        socket.create_connection(server.getsockname(), timeout=10).close()  # wakes the accept
        thread.join(10)
        server.close()
    assert len(accepted) == 2


class _KeepAliveServer:
    """A loopback HTTP/1.1 server that keeps connections open and counts them."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        owner = self
        self.connections = 0
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                import socket

                with owner.lock:
                    owner.connections += 1
                super().setup()
                # headers and body go out in two writes: without this each answer waits ~40 ms
                # for the client's delayed ACK (Nagle)
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self):
                body = b'{"object": "list"}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()  # (serve_forever notices within its 0.5 s poll)
        self.httpd.server_close()
        self.thread.join(10)


def test_threads_that_come_and_go_share_the_kept_alive_connections():
    """A webhook request runs on a thread of its own (runserver, ASGI): each one that ends gives its
    connection back for the next, and no more than the pool holds stay open."""
    import threading

    server = _KeepAliveServer()
    client = KeepAliveClient(timeout=10)
    try:
        for _ in range(40):  # one after another: each thread finds the last one's connection idle
            thread = threading.Thread(target=client.request, args=("get", server.url + "/v1/events/evt_1", {}))
            thread.start()
            thread.join(10)
        assert server.connections == 1
        barrier = threading.Barrier(POOL_SIZE + 4)

        def at_once():
            barrier.wait(10)
            client.request("get", server.url + "/v1/events/evt_2", {})

        threads = [threading.Thread(target=at_once) for _ in range(POOL_SIZE + 4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert sum(len(idle) for idle in client._idle.values()) <= POOL_SIZE
    finally:
        client.close()
        server.stop()
    assert client._idle == {}


def test_an_ipv6_address_without_a_port_gets_its_schemes_port():
    assert _key("https", "::1", None) == ("https", "::1", 443)
    assert _key("http", "::1", None) == ("http", "::1", 80)
    assert _key("https", "api.stripe.com", 8443) == ("https", "api.stripe.com", 8443)
    with pytest.raises(ValueError, match="neither http nor https"):
        _key("ftp", "example.com", None)
