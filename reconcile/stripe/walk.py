"""Walk a whole Stripe list with several requests in flight, when latency is what limits.

A list is newest first. After a page, the objects still to come are those after its last object,
all created no later than it. When more requests in flight would help, the walk cuts that rest at
created times b1 > b2 > ... > bk into disjoint parts, each walked on its own:

- created >= b1, after the cursor (the part this walk continues),
- b2 <= created < b1, ..., bk <= created < b(k-1), from their newest, and
- created < bk (whatever is older).

Every object with created < b1 comes after the cursor, so the parts never overlap and together hold
exactly the rest: the union of all pages is the list a sequential walk returns.

Splitting pays off only when one request takes longer than the rate limit's spacing
(``latency * rate > 1``) and longer than 150 ms (a round trip to Stripe); on loopback or a fast
link it would only add requests, so the walk stays sequential and makes the minimum of requests.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from .fetch import Fetcher, Page, check_cursor

STRIPE_EPOCH = 1_293_840_000  # 2011-01-01: no Stripe object was created before
MIN_LATENCY = 0.15  # seconds: below, the client (its own CPU, loopback, a LAN) is what limits, not round trips
AHEAD = 3  # parts queued per request in flight: the rate limit, not the round trips, paces the walk


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


def parallelism(fetcher: Fetcher) -> int:
    """How many requests in flight one list needs to use its rate limit, given the latency seen."""
    if fetcher.latency < MIN_LATENCY:
        return 1
    wanted = math.ceil(fetcher.latency * fetcher.config.rate_limit)
    return max(1, min(wanted, fetcher.config.concurrency))


def walk(fetcher: Fetcher, pool: ThreadPoolExecutor, path: str, params: dict) -> Iterator[Page]:
    """Every page of a list, in no particular order, splitting the list while that helps."""
    limit = fetcher.config.page_size
    pending: dict[Future, Part] = {}
    seen: set[str] = set()  # cursors used: the parts are disjoint, so an id comes back only in a loop

    def submit(part: Part) -> None:
        pending[pool.submit(fetcher.page, path, part.query(params, limit))] = part

    submit(Part())
    while pending:
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            part = pending.pop(future)
            page = future.result()
            if page.has_more:
                check_cursor(path, part.query(params, limit), page, seen)
            yield page
            if page.has_more:
                wanted = parallelism(fetcher)
                slots = AHEAD * wanted - len(pending) if wanted > 1 else 1
                for new in split(part, page, slots):
                    submit(new)


def split(part: Part, page: Page, slots: int) -> list[Part]:
    """The parts that cover what remains of ``part`` after ``page``: the part itself, continued
    after the page's last object, cut into up to ``slots`` parts when there are slots.

    The cuts assume the objects keep the density the page showed: each new part spans the time
    that ~95 objects took, so that most fit one page, and the last part takes whatever is older.
    """
    rest = Part(part.gte, part.lt, page.last_id)
    created = [o.get("created") for o in (page.data[0], page.data[-1]) if isinstance(o, dict)]
    first, last = created if len(created) == 2 else (None, None)  # an odd object: no cut, no guess
    if slots < 2 or not isinstance(first, int) or not isinstance(last, int):
        return [rest]
    low = part.gte if part.gte is not None else STRIPE_EPOCH
    width = max(1, (first - last) * 95 // max(len(page.data) - 1, 1))
    bounds = [last - width * k for k in range(1, slots)]
    bounds = [b for b in bounds if b > low]
    if not bounds:
        return [rest]
    parts = [Part(bounds[0], part.lt, page.last_id)]
    parts += [Part(lower, upper, None) for upper, lower in zip(bounds, bounds[1:], strict=False)]
    parts.append(Part(part.gte, bounds[-1], None))
    return parts
