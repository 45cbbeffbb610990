"""HTTP layer of the fake Stripe (a test double on loopback; it never talks to Stripe).

``serve(fake)`` runs a ThreadingHTTPServer in a daemon thread and returns a RunningServer.
Order per request: record, injected fault, latency, auth (401), rate limit (429), route.
Control endpoints under /_fake/ (no auth, not Stripe) let a demo mutate the data.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import re
import secrets
import socket
import string
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .api import ApiError, handle_get
from .store import FakeStripe, Fault, dumps

KEY_PATTERN = re.compile(r"^(sk|rk)_(test|live)_[A-Za-z0-9]+$")
_ALNUM = string.ascii_letters + string.digits
RATE_LIMIT_MESSAGE = (
    "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits."
)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def mask_key(key: str) -> str:
    """Mask an API key the way Stripe's error messages do: ``sk_test_****abcd``."""
    m = re.match(r"^([a-z]+_(?:test|live)_)", key)
    prefix = m.group(1) if m else ""
    return f"{prefix}****{key[-4:]}" if len(key) > len(prefix) + 4 else f"{prefix}****"


def _request_id() -> str:
    # One read of random bytes rather than one per character (a modulo bias is fine for an id).
    return "req_" + "".join([_ALNUM[b % len(_ALNUM)] for b in secrets.token_bytes(14)])


def _envelope(message: str, *, type_: str = "invalid_request_error", code: str | None = None) -> str:
    error: dict[str, Any] = {"type": type_}
    if code:
        error["code"] = code
    error["message"] = message
    return dumps({"error": error})


class FakeStripeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # A response goes out in one send (see _send); TCP_NODELAY still spares anything written in
    # pieces (a truncated body, a reset) the ~40 ms that Nagle and delayed ACKs would add.
    disable_nagle_algorithm = True
    server_version = "FakeStripe/1 (test double)"
    fake: FakeStripe  # set on the subclass built by serve()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    # -- plumbing -----------------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: str | bytes,
        *,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
        length: int | None = None,
    ) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data) if length is None else length))
        self.send_header("Request-Id", _request_id())
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.request_version == "HTTP/0.9":  # no headers at all
            self.wfile.write(data)
            return
        # Headers and body in one write (one syscall, one segment to wake the client for),
        # through the stdlib's own header buffer so that the bytes are what end_headers sends.
        self._headers_buffer += [b"\r\n", data]
        self.flush_headers()

    def _reset(self) -> None:
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        path, pairs = split.path, parse_qsl(split.query, keep_blank_values=True)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path.startswith("/_fake/"):
            self._control(method, path, body)
            return
        query: dict[str, Any] = {}
        for key, value in pairs:
            query[key] = (
                [*query[key], value]
                if isinstance(query.get(key), list)
                else ([query[key], value] if key in query else value)
            )
        self.fake.record(method, path, query, self.headers.get("Stripe-Version"))
        fault = self.fake.take_fault(path)
        if fault is not None and self._fault(fault):
            return
        if self.fake.latency:
            time.sleep(self.fake.latency)
        status, text, headers = self._answer(method, path, pairs)
        if fault is not None and fault.kind == "truncated":
            half = text.encode()[: len(text.encode()) // 2]
            self.close_connection = True
            self._send(200, half, headers=headers)
            return
        self._send(status, text, headers=headers)

    def _fault(self, fault: Fault) -> bool:
        """Act on a fault; True when the response has been handled."""
        if fault.kind == "sleep":
            time.sleep(fault.delay)
            return False
        if fault.kind == "reset":
            self._reset()
            return True
        if fault.kind == "not_json":
            html = "<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"
            self._send(200, html, content_type="text/html")
            return True
        if fault.kind == "status":
            headers = {}
            if fault.status == 429:
                body = _envelope(RATE_LIMIT_MESSAGE, code="rate_limit")
                if fault.should_retry is not None:
                    headers["Stripe-Should-Retry"] = "true" if fault.should_retry else "false"
            elif fault.status >= 500:
                body = _envelope("An unknown error occurred (injected by the fake Stripe).", type_="api_error")
            else:
                body = _envelope(f"Injected error {fault.status} (fake Stripe).")
            self._send(fault.status, body, headers=headers)
            return True
        return False  # "truncated" is applied to the normal answer

    def _answer(self, method: str, path: str, pairs: list[tuple[str, str]]) -> tuple[int, str, dict]:
        key_error = self._auth_error()
        if key_error:
            return 401, _envelope(key_error), {}
        parts = path.strip("/").split("/")
        if len(parts) >= 2 and parts[0] == "v1" and not self.fake.allow(parts[1]):
            return 429, _envelope(RATE_LIMIT_MESSAGE, code="rate_limit"), {}
        if method != "GET":
            return (
                405,
                _envelope(f"The fake Stripe (a test double) is read-only: {method} {path} is not supported."),
                {},
            )
        status, text = handle_get(self.fake, path, pairs, self.headers.get("Stripe-Version"))
        return status, text, {}

    def _auth_error(self) -> str | None:
        header = self.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        key = credentials.strip()
        if scheme.lower() == "basic":
            try:
                key = base64.b64decode(key).decode().partition(":")[0]
            except ValueError:
                key = ""
        elif scheme.lower() != "bearer":
            key = ""
        if not key:
            return (
                "You did not provide an API key. You need to provide your API key in the Authorization "
                "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
            )
        expected = self.fake.api_key
        if not KEY_PATTERN.match(key) or (expected is not None and key != expected):
            return f"Invalid API Key provided: {mask_key(key)}"
        return None

    # -- control endpoints (not Stripe) -------------------------------------------------------

    def _control(self, method: str, path: str, body: bytes) -> None:
        parts = path.strip("/").split("/")[1:]
        fake = self.fake
        try:
            if method == "GET" and parts == ["requests"]:
                with fake.lock:
                    result: Any = {"count": len(fake.requests), "rate_limited": fake.rate_limited}
            elif method != "POST":
                raise ApiError(405, f"Use POST for {path}")
            elif parts == ["reset_requests"]:
                fake.reset_requests()
                result = {"count": 0}
            elif len(parts) == 3 and parts[0] == "update":
                result = fake.update(parts[1], parts[2], **json.loads(body or b"{}"))
            elif len(parts) == 2 and parts[0] == "upsert":
                result = fake.upsert(parts[1], json.loads(body))
            elif len(parts) == 3 and parts[0] == "remove":
                fake.remove(parts[1], parts[2])
                result = {"id": parts[2], "removed": True}
            elif parts[:2] == ["delete", "customers"] and len(parts) == 3:
                result = fake.delete_customer(parts[2])
            elif parts[:2] == ["cancel", "subscriptions"] and len(parts) == 3:
                result = fake.cancel_subscription(parts[2])
            elif parts in (["webhooks"], ["deliver"]):
                from .webhooks import control  # webhooks imports this module

                result = control(fake, parts, json.loads(body or b"{}"))
            else:
                raise ApiError(404, f"Unknown control endpoint {method} {path}")
        except KeyError as error:
            self._send(404, _envelope(str(error.args[0]), code="resource_missing"))
        except (ValueError, TypeError) as error:
            self._send(400, _envelope(str(error)))
        except ApiError as error:
            self._send(error.status, error.body())
        else:
            self._send(200, dumps(result))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._open: set[socket.socket] = set()  # connections being served (kept alive between requests)
        self._open_lock = threading.Lock()

    def process_request(self, request, client_address) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def end_connections(self) -> None:
        """End the reading side of the kept-alive connections: their threads, waiting for a next
        request that a pooled client may never send, see the end and finish (else they outlive
        the server); one still answering a request writes its answer first."""
        with self._open_lock:
            open_now = list(self._open)
        for request in open_now:
            with contextlib.suppress(OSError):
                request.shutdown(socket.SHUT_RD)


class _Server6(_Server):
    address_family = socket.AF_INET6


class RunningServer:
    """A fake Stripe serving in a daemon thread; ``.url``, ``.stop()``, usable as a context manager."""

    def __init__(self, fake: FakeStripe, host: str, port: int) -> None:
        handler = type("BoundFakeStripeHandler", (FakeStripeHandler,), {"fake": fake})
        self.fake = fake
        self.httpd = (_Server6 if ":" in host else _Server)((host, port), handler)
        self.host = host
        self.port = self.httpd.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-stripe", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.end_connections()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(fake: FakeStripe, host: str = "127.0.0.1", port: int = 0, *, allow_any_host: bool = False) -> RunningServer:
    """Serve ``fake`` on loopback (port 0 = any free port); refuses non-loopback hosts unless told
    it runs inside a private container network."""
    if not is_loopback(host) and not allow_any_host:
        raise ValueError(f"the fake Stripe serves on loopback only, not {host!r}")
    return RunningServer(fake, host, port)


__all__ = ["FakeStripeHandler", "RunningServer", "is_loopback", "mask_key", "serve"]
