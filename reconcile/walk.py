"""Walk a whole Stripe list with several requests in flight, when latency is what limits.

A list is newest first. After a page, the objects still to come are those after its last object,
all created no later than it. When more requests in flight would help, the walk splits that rest
at a time ``mid`` into two disjoint parts, each walked on its own:

- created >= mid, after the cursor (the part this walk continues), and
- created <  mid, from its newest (a new part; every such object comes after the cursor).

Parts never overlap and together hold exactly the rest, so the union of all pages is the list a
sequential walk returns. Splitting pays off only when one request takes longer than the rate
limit's spacing (``latency * rate > 1``) and a real network round trip (50 ms or more); on
loopback or a fast link it would only add requests, so the walk stays sequential and makes the
minimum number of requests.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from .fetch import Fetcher, Page

STRIPE_EPOCH = 1_293_840_000  # 2011-01-01: no Stripe object was created before
MIN_LATENCY = 0.05  # seconds: below a real network round trip, splitting only adds requests


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

    def submit(part: Part) -> None:
        pending[pool.submit(fetcher.page, path, part.query(params, limit))] = part

    submit(Part())
    while pending:
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            part = pending.pop(future)
            page = future.result()
            yield page
            if not page.has_more or not page.data:
                continue
            rest = Part(part.gte, part.lt, page.last_id)
            last_created = page.data[-1].get("created")
            low = part.gte if part.gte is not None else STRIPE_EPOCH
            if len(pending) + 1 < parallelism(fetcher) and isinstance(last_created, int) and last_created - low > 1:
                mid = low + (last_created - low) // 2
                submit(Part(part.gte, mid, None))
                rest = Part(mid, part.lt, page.last_id)
            submit(rest)
