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

Who sends: the thread that receives a page decides and sends that part's next requests at once,
then hands the page to the walk's reader. The reader's parsing may wait (a page of subscriptions
waits for the further items of those with more than 10, another round trip); requests that waited
with it would leave the account's rate limit idle. The walk runs at most a round of pages ahead of
its reader (a page per part, and one more), so a slow reader does not fill memory with pages: the
parts decided while it lags are held, each keeping its slot among the requests in flight (a lag
must not look like free slots and invite more cuts), and go out as it takes pages, no faster.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from .fetch import Cancelled, Fetcher, Page, check_cursor

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
    """Every page of a list, in no particular order, splitting the list while that helps. The first
    request goes out at once, before the first page is read.

    A page's next requests are decided and sent by the thread that received it, as it arrives:
    the caller's parsing (which may wait on a subscription's further items) does not hold them up,
    until the caller lags a round of pages behind. ``on_page`` sees each page there too, before the
    caller reads it (to start requests the page implies, such as a subscription's further items)."""
    state = _ListWalk(fetcher, pool, path, params, flights or Flights(fetcher), on_page)
    state.start()
    return state.pages()


_END = object()  # the walk's last part is done


class _ListWalk:
    """One list's parts in flight, the density its pages show, and how often its open end was cut.

    Its methods run on the page threads as answers arrive; ``lock`` guards the parts and the
    density, ``arrived`` hands pages (or the first error) to the thread that iterates the walk."""

    def __init__(
        self,
        fetcher: Fetcher,
        pool: ThreadPoolExecutor,
        path: str,
        params: dict,
        flights: Flights,
        on_page: Callable[[Page], None] | None,
    ):
        self.fetcher, self.pool, self.path, self.params, self.flights = fetcher, pool, path, params, flights
        self.on_page = on_page
        self.limit = fetcher.config.page_size
        self.pending: dict[Part, int | None] = {}  # parts in flight -> the created time below which their rest lies
        self.density = Density()
        self.cuts = 0
        self.seen: set[str] = set()  # cursors used: the parts are disjoint, so an id comes back only in a loop
        self.arrived: queue.SimpleQueue = queue.SimpleQueue()
        self.futures: set[Future] = set()
        self.lock = threading.Lock()
        self.closed = False
        self.unread = 0  # pages handed over, not yet taken by the caller
        self.held: list[Part] = []  # next parts decided while the caller lagged, sent when it takes a page
        self.handing = 0  # pages answered and counted, not yet in ``arrived``

    def start(self) -> None:
        with self.lock:
            self.pending[Part()] = None
            self.report()
        self._send([Part()])

    def pages(self) -> Iterator[Page]:
        try:
            while True:
                item = self.arrived.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                self.taken()
                yield item
        finally:
            self.close()
            self.flights.finished_listing(id(self))

    def close(self) -> None:
        with self.lock:
            self.closed = True
            futures = list(self.futures)
            held, self.held = len(self.held), []
        self.flights.add(-held)
        for future in futures:
            future.cancel()

    def _round(self) -> int:
        """The pages the walk may have unread ahead of its caller: one per part of this list (held
        ones included), and one more."""
        return len(self.pending) + 1

    def taken(self) -> None:
        """The caller took a page: send as many of the parts held back while it lagged as keep the
        pages unread, with one more for each part sent, within a round (a page per part of this
        list, held ones included, and one more); the rest wait for the next page it takes."""
        with self.lock:
            self.unread -= 1
            room = max(0, self._round() - self.unread)
            release, self.held = self.held[:room], self.held[room:]
        self._send(release, counted=True)

    def _send(self, parts: list[Part], counted: bool = False) -> None:
        """Submit each part's next page; ``counted``: the parts were held, and already count as in flight."""
        for i, part in enumerate(parts):
            if self.closed:  # the caller stopped reading (an error): nothing more to ask for
                if counted:
                    self.flights.add(i - len(parts))
                return
            if not counted:
                self.flights.add(1)
            try:
                future = self.pool.submit(self.fetcher.page, self.path, part.query(self.params, self.limit))
            except BaseException:
                self.flights.add(-(len(parts) - i) if counted else -1)
                raise
            with self.lock:
                self.futures.add(future)
            future.add_done_callback(lambda f, part=part: self._answered(part, f))

    def _answered(self, part: Part, future: Future) -> None:
        """A page is back (or its request failed): send what comes next, then hand the page over."""
        self.flights.add(-1)
        try:
            with self.lock:
                self.futures.discard(future)
            if future.cancelled():
                raise Cancelled(f"GET {self.path}: cancelled, the walk stopped")
            page = future.result()
            with self.lock:
                if self.closed:
                    return
                del self.pending[part]
                parts: list[Part] = []
                if page.has_more:
                    check_cursor(self.path, part.query(self.params, self.limit), page, self.seen)
                    parts = self.go_on(part, page)
                self.report()
                self.handing += 1
                self.unread += 1
                if parts and (self.unread > self._round() or self.held):  # the caller lags a round behind
                    # A held part keeps its slot among the requests in flight: while the caller
                    # lags, no free slot invites another cut (more parts would only mean more
                    # pages waiting for it).
                    self.flights.add(len(parts))
                    self.held += parts
                    parts = []
            # the next requests go out before the caller reads the page: its parsing overlaps them
            self._send(parts)
            if self.on_page is not None:
                self.on_page(page)
            self.arrived.put(page)
            # The walk ends after its last page is handed over, which is not the last answer's page
            # when another thread still runs ``on_page`` for its own: the reader would stop at the
            # end and never read that page. Whichever thread hands over the last page ends it.
            with self.lock:
                self.handing -= 1
                last = not self.pending and not self.handing
            if last:
                self.arrived.put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the walk's caller, who raises it
            self.arrived.put(exc)

    def go_on(self, part: Part, page: Page) -> list[Part]:
        """The parts that cover the rest of ``part`` after ``page``, registered as pending."""
        self.density.see(page)
        per_second = self.density.per_second
        top = _created(page.data[-1])
        parts = [Part(part.gte, part.lt, page.last_id)]
        if part.gte is None:  # the open end: cut it at least once, the parts doubling until its end is found
            slots = self.flights.slots(len(self.pending) + 1)
            if slots or self.flights.wanted() > 1:
                sizes = [min(CHUNK_PAGES << min(self.cuts + i, 4), MAX_CHUNK_PAGES) for i in range(max(slots, 1))]
                self.cuts += len(sizes)
                parts = split(part, page, sizes, per_second, self.limit)
        elif per_second and top is not None:
            pages = per_second * (top - part.gte) / self.limit
            count = self.flights.pieces(pages) if not self._open() else 1
            if count > 1:
                parts = split(part, page, count, per_second, self.limit)
        for i, new in enumerate(parts):
            self.pending[new] = top if i == 0 else new.lt
        return parts

    def _open(self) -> bool:
        return any(p.gte is None for p in self.pending)

    def report(self) -> None:
        """Tell the flights how many pages this list has left (infinite while its end is unknown)."""
        per_second = self.density.per_second
        if self._open() or not per_second:
            left = math.inf if self.pending else 0.0
        else:
            left = sum(
                max(per_second * ((top or p.gte) - p.gte) / self.limit, 1.0) for p, top in self.pending.items()
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
