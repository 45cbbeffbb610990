"""Talking to Stripe: the only module that imports ``stripe``.

Every list is walked to the end (``limit`` 100, ``has_more``, ``starting_after``). Requests go through
stripe-python's ``raw_request`` (its auth, headers and API version) and are read as plain JSON,
skipping the cost of building a StripeObject per nested dict. Retries are ours, not the SDK's, so
that 429s back off whether or not Stripe sends ``Stripe-Should-Retry``. A shared token bucket keeps
concurrent requests under the rate limit. Never call this inside a database transaction.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlencode, urlsplit

import stripe
from django.db import connections

from ..conf import KEY_CHARACTERS, Config, key_hint
from ..core.escape import escape
from ..errors import ConfigError, FetchError, TransactionError
from .decode import decode, page_decoder
from .transport import http_client

log = logging.getLogger(__name__)
_KEY = re.compile(r"\b(sk|rk|pk)_(test|live)_[A-Za-z0-9*]+")


def redact(text: str) -> str:
    """Key-shaped text replaced: for any exception text that may carry a request header."""
    return _KEY.sub(r"\1_\2_[redacted]", text)


class RedactKeys(logging.Filter):
    """stripe-python logs Stripe's error bodies, which show a key's prefix and last characters
    ("sk_test_****abcd"); rewrite any key-shaped text before a handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _KEY.search(message):
            record.msg, record.args = redact(message), None
        return True


_STRIPE_LOGGER = logging.getLogger("stripe")
_STRIPE_LOGGER.addFilter(RedactKeys())



@dataclass(frozen=True, slots=True)
class Page:
    data: list
    has_more: bool
    requested_at: datetime

    @property
    def last_id(self) -> str:
        return self.data[-1]["id"]


class TokenBucket:
    """At most ``total`` requests a second for the whole account (Stripe's limit is per account),
    and ``rate`` per endpoint when one is set, shared by every thread.

    Each request reserves the next free slot of the account (and of its endpoint), then sleeps
    until that slot: requests are spaced evenly instead of bursting into 429s. A 429 seen by any
    thread slows every thread down (:meth:`back_off`): the next slot moves past the backoff and
    the spacing widens, then narrows again as requests succeed.
    """

    SLOWER = 0.5  # a 429 halves the account's pace ...
    RECOVER = 0.05  # ... and each success gives back 5% of the configured pace

    def __init__(
        self,
        rate: float | None,
        total: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep=time.sleep,
    ):
        self.rate, self.total = rate, total
        self._clock, self._sleep = clock, sleep
        self._next: dict[str, float] = {}
        self._scale = 1.0  # the share of ``total`` in use: below 1 after a 429
        self._lock = threading.Lock()

    def take(self, endpoint: str) -> None:
        with self._lock:
            now = self._clock()
            start = max(now, self._next.get("*", now))
            if self.rate:
                start = max(start, self._next.get(endpoint, now))
                self._next[endpoint] = start + 1.0 / self.rate
            if self.total:
                self._next["*"] = start + 1.0 / (self.total * self._scale)
        if start > now:
            self._sleep(start - now)

    def back_off(self, delay: float) -> None:
        """A 429: no thread sends before ``delay`` seconds from now, and the account's pace halves."""
        with self._lock:
            now = self._clock()
            self._next["*"] = max(self._next.get("*", now), now + delay)
            self._scale = max(0.1, self._scale * self.SLOWER)

    def succeeded(self) -> None:
        if self._scale < 1.0:
            with self._lock:
                self._scale = min(1.0, self._scale + self.RECOVER)

    @property
    def pace(self) -> float:
        """Requests a second for the whole account right now (inf when unlimited)."""
        return self.total * self._scale if self.total else float("inf")


def _endpoint(path: str) -> str:
    parts = path.strip("/").split("/")
    return parts[1] if len(parts) > 1 else path


def _describe(path: str, params: dict) -> str:
    """The request as a person reads it: lists in Stripe's notation, ``expand[]=data.tiers``; ids from
    Stripe (cursors) are escaped for messages and logs."""
    pairs = [(f"{k}[]", x) if isinstance(v, list | tuple) else (k, v) for k, v in params.items() for x in _each(v)]
    return escape(f"GET {path}?{urlencode(pairs, safe='[]')}" if params else f"GET {path}")


def _each(value) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]


def assert_no_transaction() -> None:
    """Refuse to call Stripe inside a transaction (a test case's own wrapping atomic is not one)."""
    for conn in connections.all(initialized_only=True):
        if any(not getattr(block, "_from_testcase", False) for block in conn.atomic_blocks):
            raise TransactionError(
                "reconcile does not call Stripe inside a database transaction: run it outside transaction.atomic()."
            )


class Fetcher:
    def __init__(self, config: Config, *, sleep: Callable[[float], None] | None = None, client=None):
        if not config.api_key:
            raise ConfigError(f"No Stripe API key is set. {key_hint()}")
        if not KEY_CHARACTERS.fullmatch(config.api_key):
            raise ConfigError(
                "The Stripe API key has a character no Stripe key has (a space, a line break or a control "
                f"character?). {key_hint()}"
            )
        refuse_plain_http(config)
        self.config = config
        self.cancelled = threading.Event()  # set when the run stops (an error, Ctrl-C): every listing stops
        # Backoffs and rate-limit waits end at once when the run stops, so Ctrl-C is never kept waiting.
        self._sleep = sleep or self.cancelled.wait
        transport = None if client is not None else http_client(config.api_base, config.timeout)
        self.client = client or stripe.StripeClient(
            config.api_key,
            base_addresses={"api": config.api_base} if config.api_base else None,
            stripe_version=config.api_version,
            max_network_retries=0,
            http_client=transport,
        )
        waited = getattr(transport, "waited", None)  # RequestsClient (a proxy) does not tell
        self._waited: Callable[[], float | None] = waited or (lambda: None)
        requestor = getattr(self.client, "_requestor", None)
        fast = all(hasattr(requestor, name) for name in ("request_raw", "_interpret_response"))
        self._requestor = requestor if fast else None
        self.bucket = TokenBucket(config.rate_limit, config.rate_limit_total, sleep=self._sleep)
        self._count_lock = threading.Lock()
        self.requests = 0
        self.latency = 0.0  # what a request costs at best lately: the fastest of the last few, in seconds
        self._durations: deque[float] = deque(maxlen=8)

    # -- one request -------------------------------------------------------------------------------
    def get(self, path: str, params: dict | None = None, decoder=None) -> tuple[dict, datetime]:
        """GET a Stripe path, retrying 5xx, 429 and network errors with backoff.

        Returns the decoded body (with ``decoder``'s schema where it fits: ``decode``) and the time
        the successful request was sent.
        """
        assert_no_transaction()
        params = dict(params or {})
        what = _describe(path, params)
        attempt = 0
        while True:
            if self.cancelled.is_set():
                raise Cancelled(f"{what} not sent: another request failed")
            self.bucket.take(_endpoint(path))
            if self.cancelled.is_set():  # stopped while waiting for the rate limit
                raise Cancelled(f"{what} not sent: the run stopped")
            requested_at = datetime.now(timezone.utc)
            with self._count_lock:
                self.requests += 1
            began = time.monotonic()
            try:
                body = self._send(path, params, decoder)
                waited = self._waited()  # until the headers, where the transport tells
                self._observe(time.monotonic() - began if waited is None else waited)
                self.bucket.succeeded()
            except stripe.StripeError as exc:
                reason = self._retry_reason(exc)
                if reason is None or attempt >= self.config.max_retries:
                    raise self._error(exc, what, attempt) from None
                attempt += 1
                delay = self._delay(attempt, rate_limited=isinstance(exc, stripe.RateLimitError))
                log.warning("%s: %s; retry %d of %d in %.1fs", what, reason, attempt, self.config.max_retries, delay)
                if isinstance(exc, stripe.RateLimitError) or exc.http_status == 429:
                    self.bucket.back_off(delay)  # every thread waits, not only this one
                else:
                    self._sleep(delay)
                continue
            if not isinstance(body, dict):
                raise FetchError(f"Stripe answered {what} with JSON that is not an object.")
            return body, requested_at

    def _send(self, path: str, params: dict, decoder=None):
        """One GET through stripe-python (its auth, headers, API version, error classes).

        ``raw_request`` decodes every body into OrderedDicts, a third of the time a page of 100
        subscriptions costs; when the client exposes its requestor (stripe-python 16), successful
        bodies are decoded with ``decode`` (msgspec) and everything else still goes through the
        SDK's own response handling, so errors are the SDK's.
        """
        requestor = self._requestor
        if requestor is None:
            return self.client.raw_request("get", path, **params).data
        rbody, rcode, rheaders = self._quiet(requestor, path, params) or requestor.request_raw(
            "get", path, params=params, options={}, base_address="api", api_mode="V1", usage=["raw_request"]
        )
        if 200 <= rcode < 300:
            try:
                return decode(rbody, decoder)
            except ValueError:
                pass  # the SDK raises its own error for a body that is not JSON
        return requestor._interpret_response(rbody, rcode, rheaders, "V1").data

    @staticmethod
    def _quiet(requestor, path: str, params: dict) -> tuple | None:
        """``request_raw`` without its log lines: stripe-python formats them whether or not any
        logging is on, one of them the whole response body (270 KB for a page of subscriptions),
        0.45 s of GIL time in a 2,272-page pull. The request itself is built and sent by
        stripe-python as ``request_raw`` does it (its ``_args_for_request_with_retries`` and HTTP
        client). None, and ``request_raw`` is used, when stripe-python's logging is on
        (``stripe.log``, ``STRIPE_LOG``, or the "stripe" logger at INFO) or this stripe-python has
        another shape."""
        if getattr(stripe, "log", None) or os.environ.get("STRIPE_LOG") or _STRIPE_LOGGER.isEnabledFor(logging.INFO):
            return None
        build = getattr(requestor, "_args_for_request_with_retries", None)
        client = getattr(requestor, "_get_http_client", None)
        if build is None or client is None:
            return None
        args = build("get", path, params, {}, base_address="api", api_mode="V1", usage=["raw_request"])
        if not (isinstance(args, tuple) and len(args) == 8):
            return None
        method, url, headers, post_data, retries, usage, _, _ = args
        return client().request_with_retries(method, url, headers, post_data, max_network_retries=retries, _usage=usage)

    def _observe(self, seconds: float) -> None:
        with self._count_lock:
            # the fastest of the last 8, not an average: one stalled answer (a pause on a loaded
            # machine) must not make a fast link look slow and start cutting lists into parts
            self._durations.append(seconds)
            self.latency = min(self._durations)

    @staticmethod
    def _retry_reason(exc: stripe.StripeError) -> str | None:
        status = exc.http_status
        if isinstance(exc, stripe.RateLimitError) or status == 429:
            return "rate limited (429)"
        if isinstance(exc, stripe.APIConnectionError):  # not a certificate Stripe's CA bundle refuses
            return "network error" if getattr(exc, "should_retry", True) else None
        if status is not None and (status >= 500 or status == 409):
            return f"HTTP {status}"
        return None

    def _delay(self, attempt: int, *, rate_limited: bool) -> float:
        base = self.config.retry_base_delay * (2 if rate_limited else 1)
        delay = min(base * 2 ** (attempt - 1), self.config.retry_max_delay)
        return delay * (0.5 + random.random() / 2)

    def _error(self, exc: stripe.StripeError, what: str, attempt: int) -> FetchError:
        status = exc.http_status
        request_id = f" (request id {exc.request_id})" if getattr(exc, "request_id", None) else ""
        tries = f" after {attempt + 1} tries" if attempt else ""
        if isinstance(exc, stripe.AuthenticationError) or status == 401:
            return FetchError(f"Stripe rejected the API key (HTTP 401) on {what}. {key_hint()}")
        if isinstance(exc, stripe.PermissionError) or status == 403:
            return FetchError(f"The API key may not read {what} (HTTP 403): a restricted key needs read access.")
        if isinstance(exc, stripe.APIConnectionError):
            base = self.config.api_base or "Stripe"
            return FetchError(f"Could not reach {base} for {what}{tries}: {redact(_network_reason(exc.user_message))}")
        if status is not None and 200 <= status < 300:
            return FetchError(f"Stripe answered {what} with a body that is not JSON (HTTP {status}){request_id}.")
        if status is not None and status >= 500 or status == 429:
            return FetchError(f"Stripe kept failing on {what}{tries}: HTTP {status}{request_id}.")
        message = redact(_first_line(exc.user_message)) or type(exc).__name__
        return FetchError(f"Stripe refused {what} (HTTP {status}): {message}{request_id}", status)

    # -- lists -------------------------------------------------------------------------------------
    def pages(
        self,
        path: str,
        params: dict | None = None,
        *,
        limit: int | None = None,
        starting_after: str | None = None,
        max_pages: int | None = None,
    ) -> Iterator[Page]:
        """Every page of a list, newest first, one after the other; ``max_pages`` stops early."""
        params = dict(params or {})
        params["limit"] = limit or self.config.page_size
        cursor = starting_after
        seen = {starting_after} if starting_after else set()
        count = 0
        while True:
            query = dict(params, starting_after=cursor) if cursor else params
            page = self.page(path, query)
            if page.has_more:
                check_cursor(path, query, page, seen)
            yield page
            count += 1
            if not page.has_more or (max_pages is not None and count >= max_pages):
                return
            cursor = page.last_id

    def page(self, path: str, query: dict) -> Page:
        """One list page, checked for the shape Stripe documents."""
        body, requested_at = self.get(path, query, page_decoder(path))
        data, has_more = body.get("data"), body.get("has_more")
        if not isinstance(data, list) or not isinstance(has_more, bool):
            raise FetchError(f"Stripe answered {_describe(path, query)} with something that is not a list page.")
        if data and not (isinstance(data[-1], dict) and isinstance(data[-1].get("id"), str)):
            raise FetchError(f"Stripe answered {_describe(path, query)} with an object without an id.")
        if has_more and not data:  # taken as the end, it would make every stored row an orphan
            raise FetchError(
                f"Stripe answered {_describe(path, query)} with an empty page that says it has more: "
                "the list cannot be read to its end. Nothing was written."
            )
        return Page(data, has_more, requested_at)


def check_cursor(path: str, query: dict, page: Page, seen: set[str]) -> None:
    """Stop a list that would never end: a page whose last object is a cursor already used (a
    server or proxy that ignores ``starting_after`` sends the same page again and again)."""
    cursor = page.last_id
    if cursor in seen:
        raise FetchError(
            f"Stripe answered {_describe(path, query)} with a page it had already sent (the cursor {cursor} "
            "came back): the list would never end. Nothing was written."
        )
    seen.add(cursor)


def refuse_plain_http(config: Config) -> None:
    """A live key goes over https, or over plain http to this machine only (a local proxy or test
    server): anyone on the path of a plain http request reads the key in its Authorization header."""
    base = config.api_base or ""
    if not config.api_key.startswith(("sk_live_", "rk_live_")) or urlsplit(base).scheme != "http":
        return
    host = urlsplit(base).hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ConfigError(
            f"RECONCILE['API_BASE'] is {base}: a live key is never sent over plain http, except to this machine "
            "(localhost, 127.0.0.1, ::1). Use https."
        )


class Cancelled(FetchError):
    """A request not sent because the run already failed; the first error is the one reported."""


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def _network_reason(text: str | None) -> str:
    """The useful part of stripe-python's network error text: the underlying error, shortened."""
    text = " ".join((text or "").split())
    match = re.search(r"\(Network error: (.*)\)\s*$", text)
    reason = match.group(1) if match else text
    return reason if len(reason) <= 300 else reason[:297] + "..."
