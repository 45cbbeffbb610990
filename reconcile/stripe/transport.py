"""The HTTP client stripe-python sends our requests through: the standard library's ``http.client``,
one kept-alive connection per thread and host.

stripe-python's default, ``RequestsClient``, goes through ``requests``, which per request merges
session and environment settings, looks up proxies for the URL and builds a ``PreparedRequest``
before urllib3 does the work: measured against the fake Stripe, 0.94 ms of CPU per list page with
``requests`` and 0.58 ms with urllib3's pool alone (200 pages of customers, one thread). urllib3
in turn parses the URL, finds the pool, checks the connection and wraps the response in layers of
its own: 0.29 ms of CPU per page of 100 subscriptions (270 KB), against 0.12 ms for a kept-alive
``http.client`` connection doing the same request (200 pages each, one thread, the fake Stripe on
loopback); over a large account's 2,272 pages, about 0.4 s of a no-op re-pull. Everything above
the socket stays stripe-python's: auth, headers, API version, error classes.

What the pools did that matters here is kept: certificates are verified against stripe-python's
CA bundle (host names too), connections are reused (one per thread and host: the fetch's threads
each have one request in flight), a connection the server closed while idle is opened again
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


class KeepAliveClient(stripe.HTTPClient):
    name = "http.client"

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout
        self._context: ssl.SSLContext | None = None  # made at the first HTTPS request
        self._local = threading.local()  # this thread's connections by (scheme, host, port), its last wait
        self._lock = threading.Lock()
        self._all: set[http.client.HTTPConnection] = set()  # every thread's, for close()

    def request(self, method, url, headers, post_data=None):
        parts = urlsplit(url)
        target = parts.path + ("?" + parts.query if parts.query else "")
        method = method.upper()
        try:
            connection = self._connection(parts.scheme, parts.hostname or "", parts.port)
            try:
                began = time.monotonic()
                connection.request(method, target, body=post_data, headers=dict(headers or {}))
                response = connection.getresponse()
                self._local.waited = time.monotonic() - began
                data = response.read()
            except BaseException:
                connection.close()  # a request or body half done leaves the connection unusable
                raise
        except ssl.SSLError as exc:  # a certificate is not retried, as in stripe-python
            raise stripe.APIConnectionError(_message(exc), should_retry=False) from exc
        except (OSError, http.client.HTTPException) as exc:  # connect, read, timeouts, protocol errors
            raise stripe.APIConnectionError(_message(exc), should_retry=True) from exc
        except Exception as exc:  # noqa: BLE001 - as stripe-python's clients: anything else is a network error
            raise stripe.APIConnectionError(_message(exc), should_retry=False) from exc
        # the headers as http.client parsed them: looked up by any case, as stripe-python does
        return data, response.status, response.headers

    def _connection(self, scheme: str, host: str, port: int | None) -> http.client.HTTPConnection:
        """This thread's connection to the host; one the server closed while it was idle (it has
        something to read: its end) is closed here and opens again at its next request, as urllib3's
        pool checks before each reuse. A connection that fails once a request is sent is not
        retried here: the Fetcher's retries count it and back off."""
        mine = getattr(self._local, "connections", None)
        if mine is None:
            mine = self._local.connections = {}
        key = (scheme, host, port)
        connection = mine.get(key)
        if connection is None:
            if scheme == "https":
                if self._context is None:
                    self._context = ssl.create_default_context(cafile=stripe.ca_bundle_path)
                connection = http.client.HTTPSConnection(host, port, timeout=self._timeout, context=self._context)
            elif scheme == "http":
                connection = http.client.HTTPConnection(host, port, timeout=self._timeout)
            else:
                raise ValueError(f"an address that is neither http nor https: {scheme}://{host}")
            mine[key] = connection
        elif connection.sock is not None:
            if not _readable(connection.sock):
                return connection
            connection.close()
        with self._lock:  # new, or closed (it opens at its next request): close() must find it
            self._all.add(connection)
        return connection

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
        with self._lock:
            connections, self._all = self._all, set()
        for connection in connections:
            connection.close()


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
