"""The HTTP client stripe-python sends our requests through: urllib3's connection pool, directly.

stripe-python's default, ``RequestsClient``, goes through ``requests``, which per request merges
session and environment settings, looks up proxies for the URL and builds a ``PreparedRequest``
before urllib3 does the work: measured against the fake Stripe, 0.94 ms of CPU per list page with
``requests`` and 0.58 ms with urllib3 alone (200 pages of customers, one thread), over a large
account's 2,000-odd pages about a second of a no-op re-pull. Everything above the socket stays
stripe-python's: auth, headers, API version, error classes.

What ``requests`` would have done that matters here is kept: certificates are verified against
stripe-python's CA bundle, connections are reused per host and thread-safe, and when the
environment names a proxy for the API's address (``HTTPS_PROXY``, ``NO_PROXY``...) the run uses
stripe-python's ``RequestsClient``, which honours it, instead.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from urllib.parse import urlsplit

import stripe
import urllib3

POOL_SIZE = 16  # connections kept per host: the most requests a run has in flight, with room


class Urllib3Client(stripe.HTTPClient):
    name = "urllib3"

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=POOL_SIZE,
            block=False,
            timeout=urllib3.Timeout(connect=min(timeout, 30.0), read=timeout),
            retries=False,  # retries are the Fetcher's (it backs off on 429s for every thread)
            cert_reqs="CERT_REQUIRED",
            ca_certs=stripe.ca_bundle_path,
        )
        self._waits = threading.local()

    def request(self, method, url, headers, post_data=None):
        try:
            began = time.monotonic()
            response = self._pool.request(
                method.upper(), url, headers=dict(headers or {}), body=post_data, redirect=False, preload_content=False
            )
            self._waits.seconds = time.monotonic() - began
            try:
                data = response.data
            finally:
                response.release_conn()
        except urllib3.exceptions.SSLError as exc:  # a certificate is not retried, as in stripe-python
            raise stripe.APIConnectionError(_message(exc), should_retry=False) from exc
        except urllib3.exceptions.HTTPError as exc:  # connect, read, timeouts, protocol errors
            raise stripe.APIConnectionError(_message(exc), should_retry=True) from exc
        except Exception as exc:  # noqa: BLE001 - as stripe-python's clients: anything else is a network error
            raise stripe.APIConnectionError(_message(exc), should_retry=False) from exc
        return data, response.status, response.headers

    def waited(self) -> float | None:
        """Seconds this thread's last request waited for its answer's headers (then forgotten): the
        link's and Stripe's time, without reading and decoding the body. The walk decides from it
        whether requests in flight would help; a whole request's time also counts this process's
        work and its wait for the interpreter, which on a loaded machine made loopback look like a
        slow link (answers of 0.2-0.5 s), cut lists into dozens of parts and held their pages."""
        seconds = getattr(self._waits, "seconds", None)
        self._waits.seconds = None
        return seconds

    def request_stream(self, method, url, headers, post_data=None):
        raise NotImplementedError("reconcile never streams a response")

    def close(self) -> None:
        self._pool.clear()


def _message(exc: Exception) -> str:
    # The shape stripe-python's clients give, which fetch.py reads back: "... (Network error: ...)"
    return f"Unexpected error communicating with Stripe. (Network error: {type(exc).__name__}: {exc})"


def http_client(api_base: str | None, timeout: float) -> stripe.HTTPClient:
    """urllib3 directly, unless the environment sends the API's address through a proxy."""
    address = api_base or "https://api.stripe.com"
    host = urlsplit(address).hostname or ""
    scheme = urlsplit(address).scheme or "https"
    proxies = urllib.request.getproxies()
    if proxies.get(scheme) or proxies.get("all"):
        if not urllib.request.proxy_bypass(host):
            return stripe.RequestsClient(timeout=timeout)
    return Urllib3Client(timeout)
