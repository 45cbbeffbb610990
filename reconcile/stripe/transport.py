"""The HTTP client stripe-python sends our requests through: the standard library's ``http.client``,
kept-alive connections shared by the threads.

stripe-python's default, ``RequestsClient``, goes through ``requests``, which per request merges
session and environment settings, looks up proxies for the URL and builds a ``PreparedRequest``
before urllib3 does the work: measured against the fake Stripe, 0.94 ms of CPU per list page with
``requests`` and 0.58 ms with urllib3's pool alone (200 pages of customers, one thread). urllib3
in turn parses the URL, finds the pool, checks the connection and wraps the response in layers of
its own: 0.29-0.31 ms of CPU per page of 100 subscriptions (270 KB), against 0.14-0.17 ms through
this client and 0.12 ms for a bare ``http.client`` loop (200 pages each, one thread, the fake
Stripe on loopback); over a large account's 2,272 pages, about 0.35 s of a no-op re-pull. Everything above
the socket stays stripe-python's: auth, headers, API version, error classes.

What the pools did that matters here is kept: certificates are verified against stripe-python's
CA bundle (host names too), connections are reused (a few idle ones kept per host and shared by
the threads, the last given back first), a connection the server closed while idle is opened again
before the request goes, and when the environment names a proxy for the API's address
(``HTTPS_PROXY``, ``NO_PROXY``...) the run uses stripe-python's ``RequestsClient``, which honours
it, instead.
"""

from __future__ import annotations

import http.client
import select
import ssl
import threading
import time
import urllib.request
from urllib.parse import urlsplit

import stripe

POOL_SIZE = 16  # idle connections kept per host: the most requests a run has in flight, with room


class KeepAliveClient(stripe.HTTPClient):
    name = "http.client"

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout
        self._context: ssl.SSLContext | None = None  # made at the first HTTPS request
        self._local = threading.local()  # this thread's last wait for headers
        self._lock = threading.Lock()
        # idle connections by (scheme, host, port), the last one given back first; a request takes
        # one (or makes one) and gives it back once its answer is read, so that the threads of a
        # fetch, and a process's webhook requests (a thread each, under runserver or ASGI), share a
        # few kept-alive connections instead of leaving one per thread open
        self._idle: dict[tuple[str, str, int], list[http.client.HTTPConnection]] = {}

    def request(self, method, url, headers, post_data=None):
        parts = urlsplit(url)
        target = parts.path + ("?" + parts.query if parts.query else "")
        method = method.upper()
        try:
            key = _key(parts.scheme, parts.hostname or "", parts.port)
            connection = self._take(key)
            try:
                began = time.monotonic()
                connection.request(method, target, body=post_data, headers=dict(headers or {}))
                response = connection.getresponse()
                self._local.waited = time.monotonic() - began
                data = response.read()
            except BaseException:
                connection.close()  # a request or body half done leaves the connection unusable
                raise
            self._give_back(key, connection)
        except ssl.SSLCertVerificationError as exc:  # a certificate is not retried, as in stripe-python
            raise stripe.APIConnectionError(_message(exc), should_retry=False) from exc
        except (OSError, http.client.HTTPException) as exc:  # connect, read, TLS, timeouts, protocol errors
            raise stripe.APIConnectionError(_message(exc), should_retry=True) from exc
        except Exception as exc:  # noqa: BLE001 - as stripe-python's clients: anything else is a network error
            raise stripe.APIConnectionError(_message(exc), should_retry=False) from exc
        # the headers as http.client parsed them: looked up by any case, as stripe-python does
        return data, response.status, response.headers

    def _take(self, key: tuple[str, str, int]) -> http.client.HTTPConnection:
        """An idle connection to the host, or a new one. One the server closed while it was idle (it
        has something to read: its end) is closed here and opens again at its request, as urllib3's
        pool checks before each reuse. A connection that fails once a request is sent is not tried
        again here: the Fetcher's retries count it and back off."""
        with self._lock:
            idle = self._idle.get(key)
            connection = idle.pop() if idle else None
        if connection is None:
            scheme, host, port = key
            if scheme == "https":
                if self._context is None:
                    self._context = ssl.create_default_context(cafile=stripe.ca_bundle_path)
                return http.client.HTTPSConnection(host, port, timeout=self._timeout, context=self._context)
            return http.client.HTTPConnection(host, port, timeout=self._timeout)
        if connection.sock is not None and _readable(connection.sock):
            connection.close()
        return connection

    def _give_back(self, key: tuple[str, str, int], connection: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < POOL_SIZE:
                idle.append(connection)
                return
        connection.close()  # more idle ones than a run has requests in flight

    def waited(self) -> float | None:
        """Seconds this thread's last request waited for its answer's headers (then forgotten): the
        link's and Stripe's time, without reading and decoding the body. The walk decides from it
        whether requests in flight would help; a whole request's time also counts this process's
        work and its wait for the interpreter, which on a loaded machine made loopback look like a
        slow link (answers of 0.2-0.5 s), cut lists into dozens of parts and held their pages."""
        seconds = getattr(self._local, "waited", None)
        self._local.waited = None
        return seconds

    def request_stream(self, method, url, headers, post_data=None):
        raise NotImplementedError("reconcile never streams a response")

    def close(self) -> None:
        """Close the idle connections (one in use closes when it is next given back, if the pool is full)."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()


def _key(scheme: str, host: str, port: int | None) -> tuple[str, str, int]:
    """The pool's key; the port always given (http.client would read an IPv6 address's last part
    as one)."""
    if scheme not in ("http", "https"):
        raise ValueError(f"an address that is neither http nor https: {scheme}://{host}")
    return scheme, host, port or (443 if scheme == "https" else 80)


def _readable(sock) -> bool:
    """An idle kept-alive socket with something to read: the server closed it (or broke the protocol)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])


def _message(exc: Exception) -> str:
    # The shape stripe-python's clients give, which fetch.py reads back: "... (Network error: ...)"
    return f"Unexpected error communicating with Stripe. (Network error: {type(exc).__name__}: {exc})"


def http_client(api_base: str | None, timeout: float) -> stripe.HTTPClient:
    """http.client directly, unless the environment sends the API's address through a proxy."""
    address = api_base or "https://api.stripe.com"
    host = urlsplit(address).hostname or ""
    scheme = urlsplit(address).scheme or "https"
    proxies = urllib.request.getproxies()
    if proxies.get(scheme) or proxies.get("all"):
        if not urllib.request.proxy_bypass(host):
            return stripe.RequestsClient(timeout=timeout)
    return KeepAliveClient(timeout)
