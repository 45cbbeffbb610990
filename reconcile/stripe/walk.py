"""Walk Stripe lists with several requests in flight, when latency is what limits.

A list is newest first. After a page, the objects still to come are those after its last object,
all created no later than it. When more requests in flight would help, the walk cuts that rest at
created times b1 > b2 > ... > bk into disjoint parts, each walked on its own:

- created >= b1, after the cursor (the part this walk continues),
- b2 <= created < b1, ..., bk <= created < b(k-1), from their newest, and
- created < bk, or ``gte`` <= created < bk when the part had a lower bound.

Every object with created < b1 comes after the cursor, so the parts never overlap and together hold
exactly the rest: the union of all pages is the list a sequential walk returns.

Where to cut: the list's density (objects per second of ``created``, from every page seen so far)
predicts how many objects a range holds, and each part is cut to hold a whole number of pages
(a little under, so that an estimate slightly short does not cost a page with a few objects).
Parts are cut at once when the first page arrives, and again whenever a page comes back while
the account has room for more requests in flight (parts of other lists finished, or this list's
parts are nearly done): a part is re-split as it goes, so that no list ends with one long part
walked a page at a time. Each part costs at most one partial page; the walk cuts no more parts
than the requests in flight it needs.

How many requests in flight: one request takes ``latency`` seconds and the account allows
``pace`` a second (Stripe's limit is per account), so ``latency * pace`` requests in flight
keep the limit busy; the lists walked at once share them. Splitting pays off only when one
request takes longer than 150 ms (a round trip to Stripe); on loopback or a fast link it would
only add requests, so every list stays sequential and makes the minimum of requests.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from .fetch import Fetcher, Page

STRIPE_EPOCH = 1_293_840_000  # 2011-01-01: no Stripe object was created before
MIN_LATENCY = 0.15  # seconds: below, the client (its own CPU, loopback, a LAN) is what limits, not round trips
SPARE = 2  # requests in flight beyond latency * pace: a page's parsing and the scheduler's own delays
CHUNK_PAGES = 4  # pages per part cut from a list's open end, whose length is unknown


@dataclass(frozen=True)
class Part:
    gte: int | None = None  # created >= gte
    lt: int | None = None  # created < lt
    cursor: str | None = None

    def query(self, params: dict, limit: int) -> dict:
        query = dict(params, limit=limit)
        if self.gte is not None:
            query["created[gte]"] = self.gte
        if self.lt is not None:
            query["created[lt]"] = self.lt
        if self.cursor:
            query["starting_after"] = self.cursor
        return query


class Flights:
    """Requests in flight for every list of one fetch, and how many the account can use."""

    def __init__(self, fetcher: Fetcher, listings: int = 1) -> None:
        self.fetcher = fetcher
        self.in_flight = 0
        self.unfinished = max(1, listings)
        self.open_ends = 0  # parts still in flight with no lower bound: how much is left is unknown
        self._lock = threading.Lock()

    def wanted(self) -> int:
        """Requests in flight that keep the account's rate limit busy; 1 when latency does not bind."""
        f = self.fetcher
        if f.latency < MIN_LATENCY or f.config.concurrency <= 1:
            return 1
        pace = f.bucket.pace
        if f.config.rate_limit:
            pace = min(pace, f.config.rate_limit * self.unfinished)
        if not math.isfinite(pace):
            return f.config.concurrency * self.unfinished
        if f.latency * pace <= 1:
            return 1  # one request at a time already uses the limit
        return max(1, min(math.ceil(f.latency * pace) + SPARE, f.config.concurrency * self.unfinished))

    def slots(self, own: int, bounded: bool = False) -> int:
        """New parts a list with ``own`` requests in flight may start now: its share of what is free.

        A ``bounded`` part (one with a lower bound) is split only at the end, when no list has an
        open end left and the account has fewer requests in flight than its limit can take:
        before that, the open ends give the free slots work without the partial page a split costs.
        """
        wanted = self.wanted()
        if wanted <= 1:
            return 0
        with self._lock:
            if bounded and self.open_ends:
                return 0
            free = wanted - self.in_flight - 1  # the part that goes on is not submitted yet
            if bounded:
                free -= SPARE
            share = math.ceil(wanted / self.unfinished)
        per_list = self.fetcher.config.rate_limit and math.ceil(self.fetcher.latency * self.fetcher.config.rate_limit)
        cap = min(share, per_list + SPARE) if per_list else share
        return max(0, min(free, cap - own))

    def add(self, count: int) -> None:
        with self._lock:
            self.in_flight += count

    def add_open(self, count: int) -> None:
        with self._lock:
            self.open_ends += count

    def finished_listing(self) -> None:
        with self._lock:
            self.unfinished = max(1, self.unfinished - 1)


class Density:
    """Objects per second of ``created`` in one list, from the pages seen so far."""

    def __init__(self) -> None:
        self.objects = 0
        self.seconds = 0

    def see(self, page: Page) -> None:
        first, last = page.data[0].get("created"), page.data[-1].get("created")
        if isinstance(first, int) and isinstance(last, int) and len(page.data) > 1:
            self.objects += len(page.data) - 1
            self.seconds += first - last

    @property
    def per_second(self) -> float | None:
        return self.objects / self.seconds if self.seconds > 0 and self.objects else None


def walk(
    fetcher: Fetcher, pool: ThreadPoolExecutor, path: str, params: dict, flights: Flights | None = None
) -> Iterator[Page]:
    """Every page of a list, in no particular order, splitting the list while that helps."""
    flights = flights or Flights(fetcher)
    limit = fetcher.config.page_size
    pending: dict[Future, Part] = {}
    density = Density()

    def submit(part: Part) -> None:
        flights.add(1)
        if part.gte is None:
            flights.add_open(1)
        future = pool.submit(fetcher.page, path, part.query(params, limit))
        future.add_done_callback(lambda _: flights.add(-1))
        pending[future] = part

    submit(Part())
    try:
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                part = pending.pop(future)
                if part.gte is None:
                    flights.add_open(-1)
                page = future.result()
                yield page
                if page.has_more and page.data:
                    density.see(page)
                    slots = flights.slots(len(pending) + 1, bounded=part.gte is not None)
                    for new in split(part, page, slots, density.per_second, limit):
                        submit(new)
    finally:
        flights.finished_listing()
        for future, part in pending.items():
            future.cancel()
            if part.gte is None:
                flights.add_open(-1)


def split(part: Part, page: Page, slots: int, per_second: float | None, limit: int = 100) -> list[Part]:
    """The parts that cover what remains of ``part`` after ``page``: the part itself, continued
    after the page's last object, cut into up to ``slots + 1`` parts of whole pages.

    ``per_second`` is the list's density (objects per second of ``created``); without it, or
    without room for another request, the part just goes on.
    """
    rest = Part(part.gte, part.lt, page.last_id)
    top = page.data[-1].get("created")
    if slots < 1 or not per_second or not isinstance(top, int):
        return [rest]
    low = part.gte if part.gte is not None else STRIPE_EPOCH
    if part.gte is not None:
        pages = math.ceil(per_second * (top - low) / limit)
        if pages < 2:
            return [rest]
        count = min(slots + 1, pages)
        sizes = [pages // count + (1 if i < pages % count else 0) for i in range(count)][:-1]
    else:
        sizes = [CHUNK_PAGES] * slots  # the open end keeps whatever is older
    bounds, edge = [], top
    for size in sizes:
        objects = size * limit - max(1, size * limit // 100)  # a little under whole pages
        edge = math.floor(edge - objects / per_second)
        if edge <= low:
            break
        bounds.append(edge)
    if not bounds:
        return [rest]
    parts = [Part(bounds[0], part.lt, page.last_id)]
    parts += [Part(lower, upper, None) for upper, lower in zip(bounds, bounds[1:], strict=False)]
    parts.append(Part(part.gte, bounds[-1], None))
    return parts
