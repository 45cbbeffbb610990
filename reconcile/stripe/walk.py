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
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from .fetch import Fetcher, Page, check_cursor

STRIPE_EPOCH = 1_293_840_000  # 2011-01-01: no Stripe object was created before
MIN_LATENCY = 0.15  # seconds: below, the client (its own CPU, loopback, a LAN) is what limits, not round trips
SPARE = 2  # requests in flight beyond latency * pace: a page's parsing and the scheduler's own delays
CHUNK_PAGES = 4  # pages of the first part cut from a list's open end, whose length is unknown ...
MAX_CHUNK_PAGES = 64  # ... each next one twice as long, up to this: the list's end is found early


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
    """Requests in flight for every list of one fetch, how many the account can use, and the
    pages each list still has to fetch (an estimate; infinite while a list's end is unknown)."""

    def __init__(self, fetcher: Fetcher, listings: int = 1) -> None:
        self.fetcher = fetcher
        self.in_flight = 0
        self.unfinished = max(1, listings)
        self._left: dict[int, float] = {}
        self._lock = threading.Lock()

    def wanted(self) -> int:
        """Requests in flight that keep the account's rate limit busy; 1 when latency does not bind."""
        f = self.fetcher
        if f.latency < MIN_LATENCY or f.config.concurrency <= 1:
            return 1
        pace = self.pace()
        if not math.isfinite(pace):
            return f.config.concurrency * self.unfinished
        if f.latency * pace <= 1:
            return 1  # one request at a time already uses the limit
        return max(1, min(math.ceil(f.latency * pace) + SPARE, f.config.concurrency * self.unfinished))

    def pace(self) -> float:
        pace = self.fetcher.bucket.pace
        if self.fetcher.config.rate_limit:
            pace = min(pace, self.fetcher.config.rate_limit * self.unfinished)
        return pace

    def slots(self, own: int) -> int:
        """New parts a list with ``own`` requests in flight may start now: its share of what is free."""
        wanted = self.wanted()
        if wanted <= 1:
            return 0
        with self._lock:
            free = wanted - self.in_flight - 1  # the part that goes on is not submitted yet
            share = wanted - (self.unfinished - 1)  # one for each other list still walking
        per_list = self.fetcher.config.rate_limit and math.ceil(self.fetcher.latency * self.fetcher.config.rate_limit)
        cap = min(share, per_list + SPARE) if per_list else share
        return max(0, min(free, cap - own))

    def pieces(self, pages: float) -> int:
        """Into how many parts to cut a part with ``pages`` left (1: leave it whole): as many as the
        account has requests in flight to spare, and as many as make it end, walked a page at a
        time, no later than the account's remaining pages allow at its pace (this one only once
        every list's end is known; before, the estimate of what is left is infinite).
        """
        wanted = self.wanted()
        if wanted <= 1 or pages < 2:
            return 1
        with self._lock:
            left = sum(self._left.values())
            idle = max(0, wanted - SPARE - self.in_flight - 1)  # slots the limit leaves unused
        count = 1 + idle
        if math.isfinite(left):
            latency = self.fetcher.latency
            horizon = max(left / self.pace(), latency)  # seconds until every list is done at full pace
            count = max(count, math.ceil(pages * latency / horizon))
        return max(1, min(math.floor(pages), wanted, count))

    def left(self, key: int, pages: float) -> None:
        with self._lock:
            self._left[key] = pages

    def add(self, count: int) -> None:
        with self._lock:
            self.in_flight += count

    def finished_listing(self, key: int | None = None) -> None:
        with self._lock:
            self.unfinished = max(1, self.unfinished - 1)
            self._left.pop(key, None)


class Density:
    """Objects per second of ``created`` in one list, from the pages seen so far."""

    def __init__(self) -> None:
        self.objects = 0
        self.seconds = 0

    def see(self, page: Page) -> None:
        first, last = _created(page.data[0]), _created(page.data[-1])
        if first is not None and last is not None and len(page.data) > 1:
            self.objects += len(page.data) - 1
            self.seconds += first - last

    @property
    def per_second(self) -> float | None:
        return self.objects / self.seconds if self.seconds > 0 and self.objects else None


def walk(
    fetcher: Fetcher,
    pool: ThreadPoolExecutor,
    path: str,
    params: dict,
    flights: Flights | None = None,
    on_page: Callable[[Page], None] | None = None,
) -> Iterator[Page]:
    """Every page of a list, in no particular order, splitting the list while that helps.

    ``on_page`` sees each page as it arrives, before the caller reads it (to start requests the
    page implies, such as a subscription's further items)."""
    flights = flights or Flights(fetcher)
    state = _ListWalk(fetcher, pool, path, params, flights)
    seen: set[str] = set()  # cursors used: the parts are disjoint, so an id comes back only in a loop
    state.submit(Part(), None)
    state.report()
    try:
        while state.pending:
            done, _ = wait(state.pending, return_when=FIRST_COMPLETED)
            ready = []
            for future in done:
                part = state.pending.pop(future)
                state.tops.pop(part, None)
                page = future.result()
                if page.has_more:
                    check_cursor(path, part.query(params, state.limit), page, seen)
                    # the next requests go out before the caller reads the pages: their parsing
                    # overlaps these round trips
                    state.go_on(part, page)
                if on_page is not None:
                    on_page(page)
                ready.append(page)
            state.report()
            yield from ready
    finally:
        flights.finished_listing(id(state))
        for future in state.pending:
            future.cancel()


class _ListWalk:
    """One list's parts in flight, the density its pages show, and how often its open end was cut."""

    def __init__(self, fetcher: Fetcher, pool: ThreadPoolExecutor, path: str, params: dict, flights: Flights):
        self.fetcher, self.pool, self.path, self.params, self.flights = fetcher, pool, path, params, flights
        self.limit = fetcher.config.page_size
        self.pending: dict[Future, Part] = {}
        self.tops: dict[Part, int | None] = {}  # the created time below which a part's rest lies
        self.density = Density()
        self.cuts = 0

    def submit(self, part: Part, top: int | None) -> None:
        self.flights.add(1)
        future = self.pool.submit(self.fetcher.page, self.path, part.query(self.params, self.limit))
        future.add_done_callback(lambda _: self.flights.add(-1))
        self.pending[future] = part
        self.tops[part] = top if top is not None else part.lt

    def go_on(self, part: Part, page: Page) -> None:
        self.density.see(page)
        per_second = self.density.per_second
        top = _created(page.data[-1])
        if part.gte is None:  # the open end: cut it at least once, the parts doubling until its end is found
            slots = self.flights.slots(len(self.pending) + 1)
            if slots or self.flights.wanted() > 1:
                sizes = [min(CHUNK_PAGES << min(self.cuts + i, 4), MAX_CHUNK_PAGES) for i in range(max(slots, 1))]
                self.cuts += len(sizes)
                self._submit_all(split(part, page, sizes, per_second, self.limit), top)
                return
        elif per_second and top is not None:
            pages = per_second * (top - part.gte) / self.limit
            count = self.flights.pieces(pages) if not self._open() else 1
            if count > 1:
                self._submit_all(split(part, page, count, per_second, self.limit), top)
                return
        self._submit_all([Part(part.gte, part.lt, page.last_id)], top)

    def _submit_all(self, parts: list[Part], top: int | None = None) -> None:
        for i, new in enumerate(parts):
            self.submit(new, top if i == 0 else None)

    def _open(self) -> bool:
        return any(p.gte is None for p in self.pending.values())

    def report(self) -> None:
        """Tell the flights how many pages this list has left (infinite while its end is unknown)."""
        per_second = self.density.per_second
        if self._open() or not per_second:
            left = math.inf if self.pending else 0.0
        else:
            left = sum(
                max(per_second * ((self.tops.get(p) or p.gte) - p.gte) / self.limit, 1.0) for p in self.pending.values()
            )
        self.flights.left(id(self), left)


def _created(obj) -> int | None:
    created = obj.get("created") if isinstance(obj, dict) else None
    return created if isinstance(created, int) and not isinstance(created, bool) else None


def split(
    part: Part, page: Page, sizes: list[int] | int, per_second: float | None = None, limit: int = 100
) -> list[Part]:
    """The parts that cover what remains of ``part`` after ``page``: the part itself, continued
    after the page's last object, cut in parts of whole pages.

    ``sizes``: for an open part, the pages of each part cut from its top (the rest stays open);
    for a bounded one, into how many parts of about equal pages to cut it. ``per_second`` is the
    list's density (objects per second of ``created``); without it the part just goes on.
    """
    rest = Part(part.gte, part.lt, page.last_id)
    top = _created(page.data[-1])  # an odd object: no cut, no guess
    if not per_second or top is None:
        return [rest]
    low = part.gte if part.gte is not None else STRIPE_EPOCH
    if part.gte is not None:
        pages = math.ceil(per_second * (top - low) / limit)
        count = min(sizes if isinstance(sizes, int) else len(sizes) + 1, pages)
        if count < 2:
            return [rest]
        sizes = [pages // count + (1 if i < pages % count else 0) for i in range(count)][:-1]
    elif isinstance(sizes, int):
        sizes = [CHUNK_PAGES] * sizes
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
