"""Build the remote snapshot: list every page of each resource, then resolve what items refer to.

Phase 1 lists the resources (concurrently, each on its own thread); phase 2 retrieves the few
objects that subscriptions refer to but that are neither listed nor stored locally (a price's
product, a customer). Objects that do not parse become ``Rejected`` entries, never exceptions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from ..conf import Config
from ..core.fingerprint import PRUNED, object_fingerprint
from ..core.parse import BadObject, object_id, parse_customer, parse_price, parse_product, parse_subscription
from ..core.prune import LatePruner, Pruner
from ..core.registry import BY_MODEL, CUSTOMERS, PRICES, PRODUCTS, RESOURCES, SUBSCRIPTIONS, Resource
from ..core.snapshot import FeatureRec, KnownIds, Rejected, Snapshot, Stamps
from ..errors import FetchError
from ..progress import Progress
from . import entitlements
from .affinity import one_cpu
from .fetch import Cancelled, Fetcher, Page, assert_no_transaction
from .walk import Flights, walk

# a pruned resource's object fingerprint (``fingerprint.object_fingerprint``), by model
_FINGERPRINTS = {r.model: object_fingerprint(r) for r in PRUNED}


@dataclass(frozen=True)
class Window:
    """``--limit`` / ``--starting_after``: one page of at most ``limit`` objects after a cursor."""

    limit: int | None = None
    starting_after: str | None = None

    @property
    def active(self) -> bool:
        return self.limit is not None or self.starting_after is not None


CHECKED_EARLY = ("StripeUser", "Subscription")  # models whose records are checked as they are fetched


@dataclass
class _Builder:
    features_key: str
    features_source: str = "metadata"
    features: dict = field(default_factory=dict)  # Entitlements features, when the source includes them
    products: dict = field(default_factory=dict)
    prices: dict = field(default_factory=dict)
    customers: dict = field(default_factory=dict)
    subscriptions: dict = field(default_factory=dict)
    rejected: list = field(default_factory=list)
    fetched_at: Stamps = field(init=False)  # read through the records (``add`` stamps each)
    complete: set = field(default_factory=set)
    deleted_customers: set = field(default_factory=set)
    next_cursor: dict = field(default_factory=dict)
    embedded_prices: dict = field(default_factory=dict)
    progress: Progress = field(default_factory=Progress)
    listed_features: bool = False  # the account's whole feature list was read (a products pull)
    # ``prune(model, record)``: True when the record equals its stored row and needs nothing more;
    # such a record is not kept, only its id (in ``unchanged``), so that a re-pull holds only what
    # changed. One set per model, made up front: the listings' threads add to them at once.
    prune: Callable[[str, Any], bool] | None = None
    unchanged: dict = field(default_factory=lambda: {r.model: set() for r in RESOURCES})
    # One string per customer id, for its record and its subscriptions' records: a decoder makes a
    # new string each time an id occurs (6 MiB of a first pull at N=100,000). Emptied with the
    # snapshot, so that it costs only while the fetch runs.
    customer_ids: dict = field(default_factory=dict)
    # ``check(record)``: why the database cannot store a record, or None (the storability screen's
    # test). Customers and subscriptions, whose records no later step replaces, are checked as
    # their page is read: the fetch waits on Stripe while the screen would only start after it.
    check: Callable[[Any], str | None] | None = None
    problems: dict = field(default_factory=dict)  # model -> {id: why it cannot be stored}

    def __post_init__(self) -> None:
        if self.check is not None:
            self.problems = {model: {} for model in CHECKED_EARLY}
        self.fetched_at = Stamps(records={r.model: getattr(self, r.name) for r in RESOURCES})

    def parse_product(self, obj) -> object:
        return parse_product(obj, self.features_key)

    def parse_customer(self, obj) -> object:
        self.share_customer_id(obj, "id")
        return parse_customer(obj)

    def share_customer_id(self, obj, key: str) -> None:
        """``obj[key]`` (a customer's id) made the one string of that id (the page's own dict)."""
        value = obj.get(key) if type(obj) is dict else None
        if type(value) is str:
            obj[key] = self.customer_ids.setdefault(value, value)

    def add(
        self, model: str, target: dict, parse: Callable, obj, requested_at: datetime, sighted: Callable | None = None
    ) -> None:
        """``obj``'s record into ``target``, or its id into ``unchanged`` when the prune drops it:
        ``sighted(oid, obj)`` may tell so before the record is made (``_Context.sighting``)."""
        oid = obj.get("id") if isinstance(obj, dict) else None
        try:
            if sighted is not None and type(oid) is str and sighted(oid, obj):
                self.unchanged[model].add(oid)
                return
            rec = parse(obj)
        except BadObject as exc:
            self.rejected.append(Rejected(model, str(oid or "?"), str(exc)))
            return
        if self.prune is not None and self.prune(model, rec):
            self.unchanged[model].add(rec.id)
            return
        # the one attribute set after a record is made: its page's time, before the record is
        # anyone else's (frozen records keep it in a slot that no comparison reads)
        object.__setattr__(rec, "fetched_at", requested_at)
        target[rec.id] = rec
        problems = self.problems.get(model)
        if problems is not None:
            reason = self.check(rec)
            if reason is not None:
                problems[rec.id] = reason
            else:  # the record kept is this one: an earlier one's reason is not its own
                problems.pop(rec.id, None)

    def sweep(self, everyone: bool = False) -> None:
        """Drop the records a ``LatePruner`` kept before their table arrived that are unchanged:
        this thread's, for a resource that only this thread's listing adds to (no other thread
        writes the keys it drops), or every thread's once the listings have ended."""
        late = self.prune
        if not isinstance(late, LatePruner):
            return
        for model, rec in late.take(everyone):
            target = getattr(self, BY_MODEL[model].name)
            # a record a later page replaced (the same id listed twice) is not this one
            if target.get(rec.id) is rec and late(model, rec):
                del target[rec.id]
                self.unchanged[model].add(rec.id)
                problems = self.problems.get(model)
                if problems is not None:
                    problems.pop(rec.id, None)

    def snapshot(self, listed_at: datetime | None = None) -> Snapshot:
        self.customer_ids.clear()
        named = {f for p in self.products.values() for f in p.features}
        features = {fid: FeatureRec(id=fid) for fid in sorted(named - self.features.keys())}
        features.update((fid, rec) for fid, rec in self.features.items() if fid in named or self.listed_features)
        return Snapshot(
            listed_at=listed_at,
            products=self.products,
            prices=self.prices,
            customers=self.customers,
            subscriptions=self.subscriptions,
            features=features,
            complete=frozenset(self.complete),
            rejected=tuple(sorted(set(self.rejected), key=lambda r: (r.model, r.id))),
            fetched_at=self.fetched_at,
            deleted_customers=frozenset(self.deleted_customers),
            next_cursor=self.next_cursor,
            # the sets themselves, no longer added to: a frozen copy of 200,000 ids would cost 8 MiB more
            unchanged={BY_MODEL[model].name: ids for model, ids in self.unchanged.items() if ids},
            checked={BY_MODEL[model].name: found for model, found in self.problems.items()},
        )


def _walk(ctx: _Context, path: str, params: dict, window: Window | None, resource: str, on_page=None):
    """Pages of one listing; records the next cursor of a windowed run, or that the listing is whole."""
    b, fetcher = ctx.builder, ctx.fetcher
    if window and window.active:
        pages = list(fetcher.pages(path, params, limit=window.limit, starting_after=window.starting_after, max_pages=1))
        last = pages[-1] if pages else None
        if last and last.has_more and last.data:
            b.next_cursor[resource] = last.last_id
        yield from pages
        return
    yield from walk(fetcher, ctx.pool, path, params, ctx.flights, on_page)
    b.complete.add(resource)


def _list(ctx: _Context, resource: Resource, params: Mapping[str, str], window: Window | None) -> None:
    """Walk one listing into the builder's dict of that resource."""
    b = ctx.builder
    target = getattr(b, resource.name)
    window = window if resource.windowed else None
    query = {**params, "expand": list(resource.expand)} if resource.expand else dict(params)
    on_page = ctx.prefetch if resource is SUBSCRIPTIONS else None
    for page in _walk(ctx, f"/v1/{resource.name}", query, window, resource.name, on_page):
        b.progress.page(resource.name, len(page.data))
        parse, sighted = ctx.parser(resource, page), ctx.sighting(resource)
        for obj in page.data:
            b.add(resource.model, target, parse, obj, page.requested_at, sighted)
        if len(resource.filters) == 1:
            # once its table has come, what this listing kept before it; a resource listed by two
            # listings at once (prices, active and archived) waits for the listings' end, as an id
            # may move from one to the other and only its own thread may drop a key
            b.sweep()


def _item_pages(fetcher: Fetcher, sid: str) -> list:
    return [item for p in fetcher.pages("/v1/subscription_items", {"subscription": sid}) for item in p.data]


def _parse_subscription(fetcher: Fetcher, b: _Builder, obj, page: Page, prefetched: Mapping[str, Future] = {}):  # noqa: B006
    """A subscription with all its items (their overflow pages fetched); keeps the prices they embed."""
    sid = object_id(obj, "subscription")  # before its items are paged: they are listed by its id
    b.share_customer_id(obj, "customer")
    items = obj.get("items")
    if not isinstance(items, dict) or not isinstance(items.get("data"), list):
        raise BadObject("field 'items' should be a list object")
    data = items["data"]
    if items.get("has_more"):
        future = prefetched.get(sid)
        data = future.result() if future is not None else _item_pages(fetcher, sid)
    rec, prices = parse_subscription(obj, data)
    for price in prices:
        b.embedded_prices.setdefault(price.get("id"), (price, page.requested_at))
    return rec


def _resolve_references(fetcher: Fetcher, b: _Builder, known: KnownIds) -> None:
    """Phase 2: items' prices, their products and subscriptions' customers that no side has yet.

    An item's price lacks its tiers and currency options (Stripe expands them only on the price
    itself), so a price neither listed nor stored is retrieved with them."""
    for price_id in sorted(str(k) for k in b.embedded_prices):
        if price_id not in b.prices and price_id not in known.prices:
            query = {"expand": [path.removeprefix("data.") for path in PRICES.expand]}
            _retrieve(fetcher, b, "Price", b.prices, parse_price, "prices", price_id, query)
    # Each id is looked up where it may be, not taken from set differences: on a first pull,
    # sets of every customer id (the subscriptions' and the listing's) held 8 MiB at N=100,000
    # for a moment, the fetch's highest point of memory.
    products, customers = b.products, b.customers
    wanted_products = {
        pid for p in b.prices.values() if (pid := p.product_id) not in products and pid not in known.products
    }
    for product_id in sorted(wanted_products):
        _retrieve(fetcher, b, "Product", b.products, b.parse_product, "products", product_id)
    if wanted_products and b.features_source != "metadata":
        if not b.listed_features:
            entitlements.list_features(fetcher, b)
        entitlements.attach_features(fetcher, b, wanted_products, b.features_source)
    wanted_customers = {
        cid for s in b.subscriptions.values() if (cid := s.customer_id) not in customers and cid not in known.customers
    }
    for customer_id in sorted(wanted_customers):
        _retrieve(fetcher, b, "StripeUser", b.customers, parse_customer, "customers", customer_id)


def _retrieve(
    fetcher: Fetcher, b: _Builder, model: str, target: dict, parse, resource: str, oid: str, query: dict | None = None
) -> None:
    try:
        body, requested_at = fetcher.get(f"/v1/{resource}/{oid}", query)
    except FetchError as exc:
        if exc.status == 404:  # gone from Stripe: what refers to it is skipped with the reason
            return
        raise
    if resource == "customers" and body.get("deleted") is True:
        b.deleted_customers.add(oid)
        return
    b.add(model, target, parse, body, requested_at)


def _wait_for(futures: list, fetcher: Fetcher) -> None:
    """Wait for every listing; when one fails, the others stop at their next request. Waits in short
    slices: a thread blocked in a wait without a timeout would not see Ctrl-C until the wait ends."""
    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
        if any(f.exception() is not None for f in done):
            fetcher.cancelled.set()


@dataclass
class _Context:
    fetcher: Fetcher
    builder: _Builder
    pool: ThreadPoolExecutor | None  # runs page requests; each listing is walked by a thread of its own
    flights: Flights | None = None  # requests in flight, shared by the listings (the rate limit is per account)
    prefetched: dict = field(default_factory=dict)  # id(page) -> its subscriptions' further items, requested

    def prefetch(self, page: Page) -> None:
        """As a page of subscriptions arrives: request the further items it implies at once."""
        self.prefetched[id(page)] = self._overflow_items(page)

    def _overflow_items(self, page: Page) -> dict[str, Future]:
        """The item pages of a page's subscriptions with more than 10 items, requested at once on
        the page pool (when requests may run concurrently) instead of one subscription after the
        other while the page is parsed: with 0.3 s a request, 26 such lists cost 8 s one by one."""
        if self.pool is None or self.fetcher.config.concurrency <= 1:
            return {}
        wanted: dict[str, Future] = {}
        for obj in page.data:
            items = obj.get("items") if isinstance(obj, dict) else None
            sid = obj.get("id") if isinstance(obj, dict) else None
            if isinstance(items, dict) and items.get("has_more") and isinstance(sid, str) and sid not in wanted:
                wanted[sid] = self._submit_counted(_item_pages, self.fetcher, sid)
        return wanted

    def _submit_counted(self, fn, *args) -> Future:
        """A job of one request at a time on the page pool, counted with the listings' requests in
        flight: the walks cut no part for a slot that these requests already take."""
        flights = self.flights
        if flights is not None:
            flights.add(1)
        future = self.pool.submit(fn, *args)
        if flights is not None:
            future.add_done_callback(lambda _: flights.add(-1))
        return future

    def sighting(self, resource: Resource) -> Callable[[str, Any], bool] | None:
        """``sighted(oid, obj)``: True when the prune drops ``obj`` on its fingerprint alone, before
        its record is made (``Pruner.sighted``); None where the prune has no such way. A
        subscription with further item pages is left to its parsing, which pages them once."""
        prune = self.builder.prune
        fingerprint = _FINGERPRINTS.get(resource.model)
        if fingerprint is None or not isinstance(prune, LatePruner | Pruner):
            return None
        model, sighted = resource.model, prune.sighted
        if resource is not SUBSCRIPTIONS:
            return lambda oid, obj: sighted(model, oid, fingerprint, obj)

        def subscription(oid: str, obj: dict) -> bool:
            items = obj.get("items")
            if type(items) is not dict or items.get("has_more") or type(items.get("data")) is not list:
                return False
            return sighted(model, oid, fingerprint, obj, items["data"])

        return subscription

    def parser(self, resource: Resource, page: Page) -> Callable[[dict], object]:
        """How one object of ``resource`` on ``page`` becomes a record."""
        if resource is SUBSCRIPTIONS:
            prefetched = self.prefetched.pop(id(page), None)
            if prefetched is None:
                prefetched = self._overflow_items(page)
            return lambda obj: _parse_subscription(self.fetcher, self.builder, obj, page, prefetched)
        if resource is PRODUCTS:
            return self.builder.parse_product
        if resource is CUSTOMERS:
            return self.builder.parse_customer
        return resource.parse


def fetch_remote(
    config: Config,
    resources: Iterable[str],
    *,
    fetcher: Fetcher | None = None,
    window: Window | None = None,
    known: KnownIds | None = None,
    progress: Progress | None = None,
    prune: Callable[[str, Any], bool] | None = None,
    check: Callable[[Any], str | None] | None = None,
) -> Snapshot:
    """Fetch the named resources ("products", "customers", "subscriptions") into one snapshot.

    "products" brings prices with it, active and archived. Every listing is walked at once, each
    by its own thread, their page requests sharing one pool and the fetcher's rate limit. A
    listing's records go to its own dict, so no two threads write the same key. With ``prune``,
    records it finds unchanged are dropped as their page is read and only their ids kept
    (``Snapshot.unchanged``). With ``check``, the customers and subscriptions kept are checked as
    their page is read (``Snapshot.checked``).
    """
    assert_no_transaction()
    listed_at = datetime.now(timezone.utc)
    fetcher = fetcher or Fetcher(config)
    b = _Builder(
        config.features_metadata_key, config.features_source, progress=progress or Progress(), prune=prune, check=check
    )
    resources = list(dict.fromkeys(resources))
    ctx = _Context(fetcher, b, None)
    jobs = _listing_jobs(ctx, resources, window)
    # CONCURRENCY requests in flight per listing, all listings at once, sharing the rate limit;
    # CONCURRENCY 1 means one request at a time in all, the listings one after the other.
    listings = max(1, len(jobs)) if config.concurrency > 1 else 1
    if listings > 1:
        # subscriptions and customers first: they are the long lists, whose first pages tell how
        # to cut them, so they take the rate limit's first slots
        jobs.reverse()
    ctx.flights = Flights(fetcher, len(jobs))
    pin = one_cpu() if config.fetch_on_one_cpu else None  # the pools' threads on this CPU (affinity.py)
    pages = ThreadPoolExecutor(config.concurrency * listings, thread_name_prefix="stripe-page", initializer=pin)
    lists = ThreadPoolExecutor(listings, thread_name_prefix="stripe-list", initializer=pin)
    ctx.pool = pages
    try:
        futures = [lists.submit(job) for job in jobs]
        _wait_for(futures, fetcher)
        _raise_first_error(futures)
        b.sweep(everyone=True)
        if "products" in resources and b.features_source != "metadata":
            entitlements.list_features(fetcher, b)
            b.listed_features = True
            entitlements.attach_features(fetcher, b, list(b.products), b.features_source, pages)
    except BaseException:  # an error, or Ctrl-C (KeyboardInterrupt) in this thread
        fetcher.cancelled.set()  # every listing stops at its next request or backoff
        raise
    finally:
        lists.shutdown(wait=True, cancel_futures=True)
        pages.shutdown(wait=True, cancel_futures=True)
    _resolve_references(fetcher, b, known or KnownIds())
    return b.snapshot(listed_at)


def _listing_jobs(ctx: _Context, resources: list[str], window: Window | None) -> list[Callable[[], None]]:
    """One job per listing, in the pipeline's order; each group's listings filter by filter
    (products and prices active, then both archived)."""
    rank = {r.name: n for n, r in enumerate(RESOURCES)}
    listings = [(r, n, p) for r in RESOURCES if r.listed and r.group in resources for n, p in enumerate(r.filters)]
    ordered = sorted(listings, key=lambda listing: (rank[listing[0].group], listing[1]))
    return [lambda r=resource, p=params: _list(ctx, r, p, window) for resource, _, params in ordered]


def _raise_first_error(futures: list[Future]) -> None:
    """The first listing's error that is not a mere consequence of another (``Cancelled``)."""
    errors = [f.exception() for f in futures if f.exception() is not None]
    first = next((e for e in errors if not isinstance(e, Cancelled)), errors[0] if errors else None)
    if first is not None:
        raise first


def snapshot_of(
    config: Config,
    fetcher: Fetcher,
    objects: Iterable[tuple[str, dict, datetime, bool]],
    lookup: Callable[[set[str], set[str], set[str]], KnownIds],
) -> Snapshot:
    """A small remote snapshot of a few objects (an event's), with what they refer to resolved.

    ``objects`` are (model, Stripe object, when it was true, deleted in Stripe). ``lookup(products,
    prices, customers)`` says which of those referenced ids are stored, so that only the others
    are fetched (a subscription's unknown customer or price, a price's unknown product). A price
    without the fields Stripe sends only when expanded (an event's ``data.object``) is retrieved
    with them; with Entitlements features, a product's attached features are read too.
    """
    assert_no_transaction()
    b = _Builder(config.features_metadata_key, config.features_source)
    parsers = {
        "Product": (b.products, b.parse_product),
        "Price": (b.prices, parse_price),
        "StripeUser": (b.customers, parse_customer),
    }
    gone = []
    for model, obj, stamp, deleted in objects:
        if model == "Subscription":
            page = Page([], False, stamp)
            b.add(model, b.subscriptions, lambda o, page=page: _parse_subscription(fetcher, b, o, page), obj, stamp)
            continue
        if model == "Price" and not deleted and any(key not in obj for key in _PRICE_EXPANSIONS):
            _retrieve(fetcher, b, "Price", b.prices, parse_price, "prices", obj["id"], {"expand": _PRICE_EXPANSIONS})
            if obj["id"] in b.prices:
                continue
            deleted = True  # gone from Stripe since the event: its last known state, marked deleted
        b.add(model, parsers[model][0], parsers[model][1], obj, stamp)
        if deleted:
            gone.append((model, obj.get("id")))
    for model, oid in gone:
        target = parsers[model][0]
        if oid in target:
            target[oid] = replace(target[oid], deleted=True)
    embedded = [obj for obj, _ in b.embedded_prices.values()]
    products = {p.product_id for p in b.prices.values()} | {_ref(p.get("product")) for p in embedded}
    prices = {i.price_id for s in b.subscriptions.values() for i in s.items}
    customers = {s.customer_id for s in b.subscriptions.values()}
    named = set(b.products)
    _resolve_references(fetcher, b, lookup(products - {None}, prices, customers))
    if named and b.features_source != "metadata":
        if not b.listed_features:
            entitlements.list_features(fetcher, b)
        entitlements.attach_features(fetcher, b, named, b.features_source)
    return b.snapshot()


_PRICE_EXPANSIONS = [path.removeprefix("data.") for path in PRICES.expand]


def _ref(value) -> str | None:
    return value.get("id") if isinstance(value, dict) else value
