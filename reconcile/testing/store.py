"""In-memory store behind the fake Stripe (a test double, never the real Stripe API).

Holds Stripe-shaped objects per resource, thread-safe mutation helpers, request records,
injected faults and the per-endpoint rate-limit windows. The HTTP layer lives in server.py,
the Stripe list/retrieve semantics in api.py.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESOURCES: tuple[str, ...] = ("products", "prices", "customers", "subscriptions", "features", "product_features")
ID_PREFIXES: dict[str, str] = {
    "prod_": "products",
    "price_": "prices",
    "cus_": "customers",
    "sub_": "subscriptions",
    "si_": "subscription_items",
    "feat_": "features",
    "prodft_": "product_features",
}
SINGULAR: dict[str, str] = {
    "products": "product",
    "prices": "price",
    "customers": "customer",
    "subscriptions": "subscription",
    "subscription_items": "subscription_item",
    "features": "entitlements.feature",
    "product_features": "product_feature",
}
# Price fields Stripe leaves out unless a request expands them (``expand[]=data.tiers`` in a list);
# a price embedded in a subscription item never carries them (that path is deeper than 4 levels).
INCLUDABLE: dict[str, tuple[str, ...]] = {"prices": ("tiers", "currency_options")}
FAULT_KINDS = frozenset({"status", "reset", "not_json", "truncated", "sleep"})
MEMBER_FILTERS = 32  # filters whose members a resource keeps (each an array of positions)


def dumps(obj: Any) -> str:
    """The one JSON encoding the fake uses for everything it serves."""
    return json.dumps(obj, separators=(",", ":"))


def _without_includable(price: dict) -> dict:
    hidden = INCLUDABLE["prices"]
    return {k: v for k, v in price.items() if k not in hidden} if any(k in price for k in hidden) else price


def _item_served(item: dict) -> dict:
    price = item.get("price")
    return {**item, "price": _without_includable(price)} if isinstance(price, dict) else item


def resource_of(obj_id: str) -> str | None:
    """The resource an id names, from its prefix (``cus_`` -> ``customers``), or None."""
    for prefix, resource in ID_PREFIXES.items():
        if obj_id.startswith(prefix):
            return resource
    return None


@dataclass
class Fault:
    """A fault fired on the next ``times`` requests whose path starts with ``path_prefix``."""

    kind: str
    path_prefix: str = "/v1/"
    times: int = 1
    status: int = 500
    should_retry: bool | None = None
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULT_KINDS)}")


@dataclass(frozen=True)
class RequestRecord:
    """One request the fake received; ``query`` maps each key to its value (a list if repeated)."""

    method: str
    path: str
    query: dict[str, Any] = field(default_factory=dict)
    version: str | None = None  # the Stripe-Version header, when one was sent


class FakeStripe:
    """Stripe-shaped data plus the knobs of the fake server (latency, rate limit, faults)."""

    def __init__(
        self,
        data: dict[str, list[dict]] | None = None,
        *,
        api_key: str | None = None,
        latency: float = 0.0,
        rate_limit: float | None = None,
        items_page_size: int = 10,
        account_rate_limit: float | None = None,
    ) -> None:
        unknown = set(data or {}) - set(RESOURCES)
        if unknown:
            raise ValueError(f"unknown resources {sorted(unknown)}; expected {RESOURCES}")
        self.api_key = api_key
        self.latency = latency
        self.rate_limit = rate_limit
        self.account_rate_limit = account_rate_limit
        self._account_tokens = account_rate_limit or 0.0
        self._account_stamp = time.monotonic()
        self.items_page_size = items_page_size
        self.lock = threading.RLock()
        self._objects: dict[str, dict[str, dict]] = {r: {} for r in RESOURCES}
        for resource in RESOURCES:
            for obj in copy.deepcopy((data or {}).get(resource, [])):
                self._objects[resource][obj["id"]] = obj
        self.requests: list[RequestRecord] = []
        self.faults: list[Fault] = []
        self.rate_limited = 0
        self._windows: dict[str, deque[float]] = {}
        self._invalidate()
        from .events import EventRecorder  # every mutation below records a Stripe-shaped event

        self.recorder = EventRecorder(self.served)

    @classmethod
    def from_dir(cls, path: str | Path, **kwargs: Any) -> FakeStripe:
        """Load ``products.json``, ``prices.json``, ``customers.json``, ``subscriptions.json``."""
        directory = Path(path)
        if not directory.is_dir():
            raise FileNotFoundError(f"no fixtures directory {directory}")
        data: dict[str, list[dict]] = {}
        for resource in RESOURCES:
            file = directory / f"{resource}.json"
            data[resource] = json.loads(file.read_text()) if file.exists() else []
        return cls(data, **kwargs)

    # -- caches -------------------------------------------------------------------------------
    # A list page is read from caches built once per change, so that serving one costs O(page)
    # plus O(log n) to find its cursor, whatever the list's size: the resource's objects sorted
    # newest first, id -> position, the sorted ``created`` keys, each object's encoding at its
    # position, and per filter the positions of the objects it keeps. A change drops what it
    # makes stale: its resource's lists and the object's own encoding (a price also every
    # subscription's, which embed it), and every rendering that may have expanded anything.

    def _invalidate(self, resource: str | None = None, obj_id: str | None = None) -> None:
        if resource is None:
            self._sorted: dict[str, list[dict]] = {}
            self._positions: dict[str, dict[str, int]] = {}
            self._keys: dict[str, list[int]] = {}
            self._texts: dict[str, list[str | None]] = {}
            self._members: dict[str, dict[Hashable, array]] = {}
            self._encoded: dict[str, dict[str, str]] = {r: {} for r in RESOURCES}
            self._rendered: dict[Hashable, dict[str, str]] = {}
            self._items: dict[str, dict] | None = None
            return
        for cache in (self._sorted, self._positions, self._keys, self._texts, self._members):
            cache.pop(resource, None)
        if obj_id is not None:
            self._encoded.setdefault(resource, {}).pop(obj_id, None)
        if resource == "prices":  # subscription items embed the price as it now is
            self._texts.pop("subscriptions", None)
            self._encoded["subscriptions"] = {}
        if resource in ("prices", "subscriptions"):
            self._encoded.pop("subscription_items", None)
            self._items = None
        self._rendered = {}  # an expansion may have embedded any object

    def sorted_objects(self, resource: str) -> tuple[list[dict], dict[str, int]]:
        """Every stored object, newest first (created desc, id desc), and id -> position."""
        with self.lock:
            if resource not in self._sorted:
                objs = sorted(
                    self._objects[resource].values(),
                    key=lambda o: (o.get("created") or 0, o["id"]),
                    reverse=True,
                )
                self._sorted[resource] = objs
                self._positions[resource] = {o["id"]: i for i, o in enumerate(objs)}
            return self._sorted[resource], self._positions[resource]

    def created_keys(self, resource: str) -> list[int]:
        """Minus each object's ``created``, in the order of ``sorted_objects`` (so ascending)."""
        with self.lock:
            keys = self._keys.get(resource)
            if keys is None:
                objs, _ = self.sorted_objects(resource)
                keys = self._keys[resource] = [-(o.get("created") or 0) for o in objs]
            return keys

    def members(self, resource: str, key: Hashable, keep: Callable[[dict], bool]) -> array:
        """The positions in ``sorted_objects`` (ascending) of the objects ``keep`` keeps, cached
        under ``key`` (which must name the filter) until the resource changes; a few filters per
        resource are kept, the oldest dropped first."""
        with self.lock:
            cached = self._members.setdefault(resource, {})
            found = cached.get(key)
            if found is None:
                objs, _ = self.sorted_objects(resource)
                found = array("q", [i for i, o in enumerate(objs) if keep(o)])
                if len(cached) >= MEMBER_FILTERS:
                    del cached[next(iter(cached))]
                cached[key] = found
            return found

    def texts(self, resource: str, positions: Sequence[int]) -> list[str]:
        """``encoded`` of the objects at these positions of ``sorted_objects``."""
        with self.lock:
            objs, _ = self.sorted_objects(resource)
            texts = self._texts.get(resource)
            if texts is None:
                texts = self._texts[resource] = [None] * len(objs)
            out = [texts[i] for i in positions]
            if None in out:  # encoded once, then kept at its position
                for k, i in enumerate(positions):
                    if out[k] is None:
                        out[k] = texts[i] = self.encoded(resource, objs[i])
            return out

    def rendered(self, how: Hashable) -> dict[str, str]:
        """A cache of renderings (id -> text) for one way of rendering (expansions, version),
        emptied by any change."""
        with self.lock:
            return self._rendered.setdefault(how, {})

    def get(self, resource: str, obj_id: str) -> dict | None:
        """The stored object (not a copy: do not mutate), an item for ``subscription_items``."""
        with self.lock:
            if resource == "subscription_items":
                return self._item_index().get(obj_id)
            return self._objects.get(resource, {}).get(obj_id)

    def _item_index(self) -> dict[str, dict]:
        if self._items is None:
            self._items = {
                item["id"]: item
                for sub in self._objects["subscriptions"].values()
                for item in (sub.get("items") or {}).get("data", [])
            }
        return self._items

    def served(self, resource: str, obj: dict) -> dict:
        """The object as the API returns it: deleted stubs, subscriptions' first page of items,
        prices without the fields that must be expanded."""
        if obj.get("deleted"):
            return {"id": obj["id"], "object": obj.get("object", SINGULAR[resource]), "deleted": True}
        if resource == "prices":
            return _without_includable(obj)
        if resource == "subscription_items":
            return _item_served(obj)
        if resource != "subscriptions" or "items" not in obj:
            return obj
        items = obj["items"] or {}
        data = items.get("data", [])
        page = self.items_page_size
        return {
            **obj,
            "items": {
                **items,
                "object": "list",
                "data": [_item_served(item) for item in data[:page]],
                "has_more": len(data) > page,
                "url": f"/v1/subscription_items?subscription={obj['id']}",
            },
        }

    def encoded(self, resource: str, obj: dict) -> str:
        """``dumps(served(obj))``, cached until the next mutation."""
        with self.lock:
            cache = self._encoded.setdefault(resource, {})
            text = cache.get(obj["id"])
            if text is None:
                text = cache[obj["id"]] = dumps(self.served(resource, obj))
            return text

    # -- mutation helpers ---------------------------------------------------------------------

    def _check(self, resource: str) -> None:
        if resource not in RESOURCES:
            raise ValueError(f"unknown resource {resource!r}; expected one of {RESOURCES}")

    def upsert(self, resource: str, obj: dict) -> dict:
        """Insert or replace an object (a deep copy is stored and returned)."""
        self._check(resource)
        stored = copy.deepcopy(obj)
        with self.lock:
            before = copy.deepcopy(self._objects[resource].get(stored["id"]))
            self._objects[resource][stored["id"]] = stored
            if resource == "prices":
                self._propagate_price(stored)
            self._invalidate(resource, stored["id"])
            self.recorder.record(resource, before, stored)
        return copy.deepcopy(stored)

    def update(self, resource: str, obj_id: str, **fields: Any) -> dict:
        """Shallow-merge ``fields`` into a stored object; returns the new object (a copy)."""
        self._check(resource)
        with self.lock:
            current = self._objects[resource].get(obj_id)
            if current is None:
                raise KeyError(f"no {SINGULAR[resource]} {obj_id!r}")
            return self.upsert(resource, {**current, **copy.deepcopy(fields)})

    def delete_customer(self, obj_id: str, *, cancel_subscriptions: bool = True) -> dict:
        """Mark a customer deleted; like Stripe, its live subscriptions are canceled at once."""
        with self.lock:
            customer = self.update("customers", obj_id, deleted=True)
            if cancel_subscriptions:
                for sub in list(self._objects["subscriptions"].values()):
                    if sub.get("customer") == obj_id and sub.get("status") not in (
                        "canceled",
                        "incomplete_expired",
                    ):
                        self.cancel_subscription(sub["id"])
            return customer

    def cancel_subscription(self, obj_id: str, *, at: int | None = None) -> dict:
        """Cancel now: status canceled, ``canceled_at`` and ``ended_at`` set to ``at`` (default now)."""
        when = int(time.time()) if at is None else at
        return self.update("subscriptions", obj_id, status="canceled", canceled_at=when, ended_at=when)

    def remove(self, resource: str, obj_id: str) -> None:
        """Remove an object entirely (as if it had never existed)."""
        self._check(resource)
        with self.lock:
            before = self._objects[resource].pop(obj_id, None)
            if before is None:
                raise KeyError(f"no {SINGULAR[resource]} {obj_id!r}")
            self._invalidate(resource, obj_id)
            self.recorder.record(resource, before, None)

    def all(self, resource: str) -> list[dict]:
        """Deep copies of every stored object of a resource, in stored order."""
        self._check(resource)
        with self.lock:
            return copy.deepcopy(list(self._objects[resource].values()))

    def _propagate_price(self, price: dict) -> None:
        # Stripe embeds the price's current state in subscription items.
        for sub in self._objects["subscriptions"].values():
            for item in (sub.get("items") or {}).get("data", []):
                if isinstance(item.get("price"), dict) and item["price"].get("id") == price["id"]:
                    item["price"] = copy.deepcopy(price)

    # -- requests, faults, rate limit ---------------------------------------------------------

    def record(self, method: str, path: str, query: dict[str, Any], version: str | None = None) -> None:
        with self.lock:
            self.requests.append(RequestRecord(method, path, query, version))

    def reset_requests(self) -> None:
        with self.lock:
            self.requests.clear()
            self.rate_limited = 0

    def inject(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def take_fault(self, path: str) -> Fault | None:
        """The first pending fault matching ``path``, consuming one of its ``times``."""
        with self.lock:
            for fault in self.faults:
                if path.startswith(fault.path_prefix):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def allow(self, endpoint: str) -> bool:
        """The account's token bucket (``account_rate_limit`` a second, bursts up to one second's
        worth, the algorithm Stripe describes for its request rate limiter), then a sliding
        one-second window per endpoint; False (and counted) when over either limit."""
        if self.account_rate_limit is not None and not self._take_account_token():
            return False
        if self.rate_limit is None:
            return True
        now = time.monotonic()
        with self.lock:
            window = self._windows.setdefault(endpoint, deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= self.rate_limit:
                self.rate_limited += 1
                return False
            window.append(now)
            return True

    def _take_account_token(self) -> bool:
        rate = self.account_rate_limit or 0.0
        with self.lock:
            now = time.monotonic()
            self._account_tokens = min(rate, self._account_tokens + (now - self._account_stamp) * rate)
            self._account_stamp = now
            if self._account_tokens < 1.0:
                self.rate_limited += 1
                return False
            self._account_tokens -= 1.0
            return True
