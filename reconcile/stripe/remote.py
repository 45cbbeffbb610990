"""Build the remote snapshot: list every page of each resource, then resolve what items refer to.

Phase 1 lists the resources (concurrently, each on its own thread); phase 2 retrieves the few
objects that subscriptions refer to but that are neither listed nor stored locally (a price's
product, a customer). Objects that do not parse become ``Rejected`` entries, never exceptions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime

from ..conf import Config
from ..core.parse import BadObject, parse_customer, parse_price, parse_product, parse_subscription
from ..core.snapshot import KnownIds, Rejected, Snapshot
from ..errors import FetchError
from ..progress import Progress
from .fetch import Cancelled, Fetcher, Page, assert_no_transaction
from .walk import Flights, walk


@dataclass(frozen=True)
class Window:
    """``--limit`` / ``--starting_after``: one page of at most ``limit`` objects after a cursor."""

    limit: int | None = None
    starting_after: str | None = None

    @property
    def active(self) -> bool:
        return self.limit is not None or self.starting_after is not None


@dataclass
class _Builder:
    features_key: str
    products: dict = field(default_factory=dict)
    prices: dict = field(default_factory=dict)
    customers: dict = field(default_factory=dict)
    subscriptions: dict = field(default_factory=dict)
    rejected: list = field(default_factory=list)
    fetched_at: dict = field(default_factory=dict)
    complete: set = field(default_factory=set)
    deleted_customers: set = field(default_factory=set)
    next_cursor: dict = field(default_factory=dict)
    embedded_prices: dict = field(default_factory=dict)
    progress: Progress = field(default_factory=Progress)

    def add(self, model: str, target: dict, parse: Callable, obj, requested_at: datetime) -> None:
        oid = obj.get("id") if isinstance(obj, dict) else None
        try:
            rec = parse(obj)
        except BadObject as exc:
            self.rejected.append(Rejected(model, str(oid or "?"), str(exc)))
            return
        target[rec.id] = rec
        self.fetched_at[(model, rec.id)] = requested_at

    def snapshot(self) -> Snapshot:
        return Snapshot(
            products=self.products,
            prices=self.prices,
            customers=self.customers,
            subscriptions=self.subscriptions,
            features=frozenset(f for p in self.products.values() for f in p.features),
            complete=frozenset(self.complete),
            rejected=tuple(sorted(set(self.rejected), key=lambda r: (r.model, r.id))),
            fetched_at=self.fetched_at,
            deleted_customers=frozenset(self.deleted_customers),
            next_cursor=self.next_cursor,
        )


def _walk(ctx: _Context, path: str, params: dict, window: Window | None, resource: str):
    """Pages of one listing; records the next cursor of a windowed run, or that the listing is whole."""
    b, fetcher = ctx.builder, ctx.fetcher
    if window and window.active:
        pages = list(fetcher.pages(path, params, limit=window.limit, starting_after=window.starting_after, max_pages=1))
        last = pages[-1] if pages else None
        if last and last.has_more and last.data:
            b.next_cursor[resource] = last.last_id
        yield from pages
        return
    yield from walk(fetcher, ctx.pool, path, params, ctx.flights)
    b.complete.add(resource)


def _list(ctx: _Context, resource: str, model: str, parse: Callable, params: dict, window: Window | None = None):
    """Walk one listing into the builder's dict of that resource."""
    b = ctx.builder
    target = getattr(b, resource)
    for page in _walk(ctx, f"/v1/{resource}", params, window, resource):
        b.progress.page(resource, len(page.data))
        for obj in page.data:
            b.add(model, target, parse, obj, page.requested_at)


def _list_subscriptions(ctx: _Context, window: Window | None) -> None:
    b = ctx.builder
    for page in _walk(ctx, "/v1/subscriptions", {"status": "all"}, window, "subscriptions"):
        b.progress.page("subscriptions", len(page.data))
        for obj in page.data:
            _add_subscription(ctx.fetcher, b, obj, page)


def _add_subscription(fetcher: Fetcher, b: _Builder, obj, page: Page) -> None:
    def parse(obj):
        items = obj.get("items") if isinstance(obj, dict) else None
        if not isinstance(items, dict) or not isinstance(items.get("data"), list):
            raise BadObject("field 'items' should be a list object")
        data = items["data"]
        if items.get("has_more"):
            data = [
                item for p in fetcher.pages("/v1/subscription_items", {"subscription": obj["id"]}) for item in p.data
            ]
        rec, prices = parse_subscription(obj, data)
        for price in prices:
            b.embedded_prices.setdefault(price.get("id"), (price, page.requested_at))
        return rec

    b.add("Subscription", b.subscriptions, parse, obj, page.requested_at)


def _resolve_references(fetcher: Fetcher, b: _Builder, known: KnownIds) -> None:
    """Phase 2: items' prices, their products and subscriptions' customers that no side has yet."""
    for price_id, (obj, requested_at) in sorted(b.embedded_prices.items(), key=lambda kv: str(kv[0])):
        if price_id not in b.prices and price_id not in known.prices:
            b.add("Price", b.prices, parse_price, obj, requested_at)
    wanted_products = {p.product_id for p in b.prices.values()} - set(b.products) - known.products
    for product_id in sorted(wanted_products):
        _retrieve(fetcher, b, "Product", b.products, lambda o: parse_product(o, b.features_key), "products", product_id)
    wanted_customers = {s.customer_id for s in b.subscriptions.values()} - set(b.customers) - known.customers
    for customer_id in sorted(wanted_customers):
        _retrieve(fetcher, b, "StripeUser", b.customers, parse_customer, "customers", customer_id)


def _retrieve(fetcher: Fetcher, b: _Builder, model: str, target: dict, parse, resource: str, oid: str) -> None:
    try:
        body, requested_at = fetcher.get(f"/v1/{resource}/{oid}")
    except FetchError as exc:
        if exc.status == 404:  # gone from Stripe: what refers to it is skipped with the reason
            return
        raise
    if resource == "customers" and body.get("deleted") is True:
        b.deleted_customers.add(oid)
        return
    b.add(model, target, parse, body, requested_at)


@dataclass
class _Context:
    fetcher: Fetcher
    builder: _Builder
    pool: ThreadPoolExecutor | None  # runs page requests; each listing is walked by a thread of its own
    flights: Flights | None = None  # requests in flight, shared by the listings (the rate limit is per account)


def fetch_remote(
    config: Config,
    resources: Iterable[str],
    *,
    fetcher: Fetcher | None = None,
    window: Window | None = None,
    known: KnownIds | None = None,
    progress: Progress | None = None,
) -> Snapshot:
    """Fetch the named resources ("products", "customers", "subscriptions") into one snapshot.

    "products" brings prices with it, active and archived. Every listing is walked at once, each
    by its own thread, their page requests sharing one pool and the fetcher's rate limit. A
    listing's records go to its own dict, so no two threads write the same key.
    """
    assert_no_transaction()
    fetcher = fetcher or Fetcher(config)
    b = _Builder(config.features_metadata_key, progress=progress or Progress())
    resources = list(dict.fromkeys(resources))
    jobs: list[Callable[[], None]] = []
    ctx = _Context(fetcher, b, None)
    if "products" in resources:
        product = lambda obj: parse_product(obj, b.features_key)  # noqa: E731
        for active in ("true", "false"):
            jobs.append(lambda a=active: _list(ctx, "products", "Product", product, {"active": a}))
            jobs.append(lambda a=active: _list(ctx, "prices", "Price", parse_price, {"active": a}))
    if "customers" in resources:
        jobs.append(lambda: _list(ctx, "customers", "StripeUser", parse_customer, {}, window))
    if "subscriptions" in resources:
        jobs.append(lambda: _list_subscriptions(ctx, window))
    # CONCURRENCY requests in flight per listing, all listings at once, sharing the rate limit;
    # CONCURRENCY 1 means one request at a time in all, the listings one after the other.
    listings = max(1, len(jobs)) if config.concurrency > 1 else 1
    if listings > 1:
        # subscriptions and customers first: they are the long lists, whose first pages tell how
        # to cut them, so they take the rate limit's first slots
        jobs.reverse()
    ctx.flights = Flights(fetcher, len(jobs))
    with ThreadPoolExecutor(config.concurrency * listings, thread_name_prefix="stripe-page") as pages:
        ctx.pool = pages
        with ThreadPoolExecutor(listings, thread_name_prefix="stripe-list") as lists:
            futures = [lists.submit(job) for job in jobs]
            for future in as_completed(futures):
                if future.exception() is not None:
                    fetcher.cancelled.set()  # the other listings stop at their next request
            errors = [f.exception() for f in futures if f.exception() is not None]
            first = next((e for e in errors if not isinstance(e, Cancelled)), errors[0] if errors else None)
            if first is not None:
                raise first
    _resolve_references(fetcher, b, known or KnownIds())
    return b.snapshot()
