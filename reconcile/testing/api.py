"""Stripe's list and retrieve semantics for the fake Stripe (a test double): no sockets here.

``handle_get(fake, path, pairs)`` answers one authenticated GET under /v1/ with (status, body).
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from .events import EventQueryError, list_events
from .store import INCLUDABLE, RESOURCES, SINGULAR, FakeStripe, dumps, resource_of
from .versions import DEFAULT_VERSION, invalid_version_message, legacy_item, legacy_subscription, periods_on_items

LISTABLE = ("products", "prices", "customers", "subscriptions", "subscription_items")
COMMON_PARAMS = frozenset({"limit", "starting_after", "ending_before", "expand", "created"})
LIST_PARAMS: dict[str, frozenset[str]] = {
    "products": frozenset({"active", "ids"}),
    "prices": frozenset({"active", "product", "currency", "type", "lookup_keys"}),
    "customers": frozenset({"email"}),
    "subscriptions": frozenset({"customer", "status", "price"}),
    "subscription_items": frozenset({"subscription"}),
}
STATUSES = frozenset(
    {"active", "past_due", "unpaid", "canceled", "incomplete", "incomplete_expired", "trialing", "paused"}
)
HIDDEN_BY_DEFAULT = frozenset({"canceled", "incomplete_expired"})
_NOT_FILTERS = frozenset({"limit", "starting_after", "ending_before", "expand", "created"})
MAX_EXPAND_DEPTH = 4
_ARRAY_KEY = re.compile(r"^([a-z_]+)\[(\d*)\]$")
_NESTED_KEY = re.compile(r"^([a-z_]+)\[([a-z_]+)\]$")


class ApiError(Exception):
    """An error answered with Stripe's envelope."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> str:
        error: dict[str, Any] = {"type": "invalid_request_error"}
        if self.code:
            error["code"] = self.code
        if self.param:
            error["param"] = self.param
        error["message"] = self.message
        return dumps({"error": error})


def parse_query(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Form-encoded pairs to params: ``a[]=``/``a[0]=`` -> list, ``created[gte]=`` -> dict."""
    params: dict[str, Any] = {}
    for key, value in pairs:
        if m := _ARRAY_KEY.match(key):
            params.setdefault(m.group(1), []).append(value)
        elif m := _NESTED_KEY.match(key):
            params.setdefault(m.group(1), {})[m.group(2)] = value
        else:
            params[key] = value
    return params


def _int(value: Any, param: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"Invalid integer: {value}", param=param) from None


def _bool(value: str, param: str) -> bool:
    if value not in ("true", "false"):
        raise ApiError(400, f"Invalid boolean: {value}", param=param)
    return value == "true"


def _created_filter(value: Any) -> Callable[[dict], bool]:
    if isinstance(value, str):
        exact = _int(value, "created")
        return lambda o: o.get("created") == exact
    if not isinstance(value, dict):
        raise ApiError(400, "Invalid created: expected an integer or a hash", param="created")
    ops = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}
    bounds = []
    for op, raw in value.items():
        if op not in ops:
            raise ApiError(400, f"Received unknown parameter: created[{op}]", param=f"created[{op}]")
        bounds.append((ops[op], _int(raw, f"created[{op}]")))
    return lambda o: all(cmp(o.get("created") or 0, bound) for cmp, bound in bounds)


def _filters(resource: str, params: dict[str, Any]) -> list[Callable[[dict], bool]]:
    """The predicates of every filter but ``created`` (which ``_list`` applies by bisection);
    the order of their checks is the order in which bad values are reported."""
    preds: list[Callable[[dict], bool]] = [lambda o: not o.get("deleted")]
    if "active" in params:
        active = _bool(params["active"], "active")
        preds.append(lambda o: o.get("active") is active)
    if "ids" in params:
        ids = set(params["ids"])
        preds.append(lambda o: o["id"] in ids)
    for name in ("product", "currency", "type", "customer", "email"):
        if name in params:
            want = params[name]
            preds.append(lambda o, name=name, want=want: o.get(name) == want)
    if "lookup_keys" in params:
        keys = set(params["lookup_keys"])
        preds.append(lambda o: o.get("lookup_key") in keys)
    if "price" in params:
        price = params["price"]
        preds.append(lambda o: any(_price_id(i) == price for i in o["items"]["data"]))
    if resource == "subscriptions":
        status = params.get("status")
        if status is None:
            preds.append(lambda o: o.get("status") not in HIDDEN_BY_DEFAULT)
        elif status == "ended":
            preds.append(lambda o: o.get("status") in HIDDEN_BY_DEFAULT)
        elif status in STATUSES:
            preds.append(lambda o: o.get("status") == status)
        elif status != "all":
            raise ApiError(
                400, f"Invalid status: must be one of {', '.join(sorted(STATUSES))}, all or ended", param="status"
            )
    return preds


def _price_id(item: dict) -> str | None:
    price = item.get("price")
    return price.get("id") if isinstance(price, dict) else price


def _limit(params: dict[str, Any]) -> int:
    if "limit" not in params:
        return 10
    limit = _int(params["limit"], "limit")
    if limit < 1:
        raise ApiError(400, "This value must be greater than or equal to 1.", param="limit")
    if limit > 100:
        raise ApiError(400, f"This value must be less than or equal to 100 (it currently is '{limit}').", param="limit")
    return limit


def _created_span(keys: list[int], created: Any) -> tuple[int, int]:
    """The index range of a newest-first list that a ``created`` range can match, by bisection on
    ``keys`` (minus each ``created``, ascending), so a narrow range costs a page, not a scan."""
    if isinstance(created, str):
        created = {"gte": created, "lte": created}  # the range holding the exact value
    if not isinstance(created, dict):
        return 0, len(keys)
    start, stop = 0, len(keys)
    for op, raw in created.items():
        try:
            bound = -int(raw)
        except (TypeError, ValueError):
            continue  # the filter itself reports the bad value
        if op == "lt":
            start = max(start, bisect_right(keys, bound))
        elif op == "lte":
            start = max(start, bisect_left(keys, bound))
        elif op == "gte":
            stop = min(stop, bisect_right(keys, bound))
        elif op == "gt":
            stop = min(stop, bisect_left(keys, bound))
    return start, max(start, stop)


def _page(
    objs: list[dict],
    positions: dict[str, int],
    params: dict[str, Any],
    kind: str,
    preds: list[Callable[[dict], bool]],
    span: tuple[int, int],
) -> tuple[list[dict], bool]:
    """One page of a newest-first list: the objects in ``span`` that ``preds`` keep, after or
    before the cursor; and has_more."""
    keep = (lambda i: all(p(objs[i]) for p in preds)) if preds else None
    chosen, has_more = _page_positions(range(len(objs)), positions, params, kind, span, keep)
    return [objs[i] for i in chosen], has_more


def _page_positions(
    members: Sequence[int],
    positions: dict[str, int],
    params: dict[str, Any],
    kind: str,
    span: tuple[int, int],
    keep: Callable[[int], bool] | None = None,
) -> tuple[Sequence[int], bool]:
    """A page of a filter's ``members`` (ascending positions in the newest-first list) within
    ``span`` (positions too): the page's positions, and has_more. A cursor is any object of the
    list, kept by the filter or not, found by bisection; without ``keep`` (a check the members do
    not make) the page is a slice of the members, so that it costs O(limit + log n)."""
    limit = _limit(params)
    after, before = params.get("starting_after"), params.get("ending_before")
    if after is not None and before is not None:
        raise ApiError(
            400, "You may only specify one of these parameters: ending_before, starting_after.", param="ending_before"
        )
    cursor = after if after is not None else before
    if cursor is not None and cursor not in positions:
        raise ApiError(
            400,
            f"No such {kind}: '{cursor}'",
            param="starting_after" if after else "ending_before",
            code="resource_missing",
        )
    low, high = bisect_left(members, span[0]), bisect_left(members, span[1])
    if before is not None:
        stop = min(bisect_left(members, positions[before]), high)
        if keep is None:
            start = max(low, stop - limit)
            return members[start:stop], start > low
        page: list[int] = []
        for k in range(stop - 1, low - 1, -1):
            if keep(members[k]):
                if len(page) == limit:
                    return page[::-1], True
                page.append(members[k])
        return page[::-1], False
    start = max(bisect_right(members, positions[after]) if after is not None else 0, low)
    if keep is None:
        stop = min(start + limit, high)
        return members[start:stop], stop < high
    page = []
    for k in range(start, high):
        if keep(members[k]):
            if len(page) == limit:
                return page, True
            page.append(members[k])
    return page, False


def _expand_paths(params: dict[str, Any], *, listing: bool) -> list[list[str]]:
    raw = params.get("expand", [])
    if isinstance(raw, str):
        raw = [raw]
    paths = []
    for path in raw:
        parts = path.split(".")
        if len(parts) > MAX_EXPAND_DEPTH:
            raise ApiError(
                400,
                f"You cannot expand more than {MAX_EXPAND_DEPTH} levels of a property. Property: {path}",
                param="expand",
            )
        if listing:
            if parts[0] != "data" or len(parts) < 2:
                raise ApiError(
                    400,
                    f"This property cannot be expanded ({path}). You may want to try expanding 'data.{path}' instead.",
                    param="expand",
                )
            parts = parts[1:]
        paths.append(parts)
    return paths


def _resolve(fake: FakeStripe, obj_id: str, path: str) -> dict:
    resource = resource_of(obj_id)
    obj = fake.get(resource, obj_id) if resource else None
    if obj is None:
        raise ApiError(400, f"This property cannot be expanded ({path}).", param="expand")
    return json.loads(fake.encoded(resource, obj)) if resource in RESOURCES else json.loads(dumps(obj))


def _expand(fake: FakeStripe, node: Any, parts: list[str], path: str) -> Any:
    if isinstance(node, list):
        return [_expand(fake, n, parts, path) for n in node]
    if isinstance(node, str):
        node = _resolve(fake, node, path)
    if not isinstance(node, dict) or not parts:
        return node
    key, rest = parts[0], parts[1:]
    if key not in node and key in INCLUDABLE.get(_resource_of_node(node), ()):
        stored = fake.get("prices", node.get("id", ""))
        if stored is None or key not in stored:
            return node  # nothing to include (a per-unit price has no tiers)
        node[key] = json.loads(dumps(stored[key]))
    if key not in node:
        raise ApiError(400, f"This property cannot be expanded ({path}).", param="expand")
    if node[key] is not None:
        node[key] = _expand(fake, node[key], rest, path)
    return node


def _resource_of_node(node: dict) -> str | None:
    return "prices" if node.get("object") == "price" else None


def _with_expansions(fake: FakeStripe, resource: str, obj: dict, paths: list[list[str]], version: str) -> str:
    text = fake.encoded(resource, obj)
    legacy = resource in ("subscriptions", "subscription_items") and not periods_on_items(version)
    if not paths and not legacy:
        return text
    node = json.loads(text)
    for parts in paths:
        node = _expand(fake, node, parts, ".".join(parts))
    if legacy:
        node = legacy_subscription(node) if resource == "subscriptions" else legacy_item(node)
    return dumps(node)


def _check_params(params: dict[str, Any], allowed: frozenset[str]) -> None:
    for key in params:
        if key not in allowed:
            raise ApiError(400, f"Received unknown parameter: {key}", param=key)


def handle_get(
    fake: FakeStripe, path: str, pairs: list[tuple[str, str]], version: str | None = None
) -> tuple[int, str]:
    """Answer ``GET path?pairs`` (path under /v1/) with (status, JSON body), rendered as API
    ``version`` (the ``Stripe-Version`` header; None: the account's default) renders it."""
    version = version or DEFAULT_VERSION
    message = invalid_version_message(version)
    if message is not None:
        return 400, dumps({"error": {"message": message, "type": "invalid_request_error"}})
    try:
        return 200, _route(fake, path, parse_query(pairs), version)
    except ApiError as error:
        return error.status, error.body()


def _route(fake: FakeStripe, path: str, params: dict[str, Any], version: str = DEFAULT_VERSION) -> str:
    from .entitlements import route_entitlements  # the Entitlements endpoints live in their own module

    handled = route_entitlements(fake, path, params)
    if handled is not None:
        return handled
    parts = path.strip("/").split("/")
    if parts[:2] == ["v1", "events"] and len(parts) in (2, 3):
        return _events(fake, parts, params)
    if len(parts) not in (2, 3) or parts[0] != "v1" or parts[1] not in LISTABLE:
        raise ApiError(
            404,
            f"Unrecognized request URL (GET: {path}). Please see https://stripe.com/docs "
            "or we can help at https://support.stripe.com/.",
        )
    resource = parts[1]
    if len(parts) == 3:
        return _retrieve(fake, resource, parts[2], params, version)
    _check_params(params, COMMON_PARAMS | LIST_PARAMS[resource])
    paths = _expand_paths(params, listing=True)
    url = f"/v1/{resource}"
    with fake.lock:
        if resource == "subscription_items":
            objs, positions, preds = _items_of(fake, params)
            page, has_more = _page(objs, positions, params, SINGULAR[resource], preds, (0, len(objs)))
            data = ",".join(_with_expansions(fake, resource, o, paths, version) for o in page)
        else:
            data, has_more = _list(fake, resource, params, paths, version)
    return f'{{"object":"list","data":[{data}],"has_more":{"true" if has_more else "false"},"url":"{url}"}}'


def _list(
    fake: FakeStripe, resource: str, params: dict[str, Any], paths: list[list[str]], version: str
) -> tuple[str, bool]:
    """One page of a top-level list (the caller holds the lock): the objects' texts joined, has_more.
    The filter's members are cached per filter; ``created`` narrows them by bisection (an exact
    ``created`` is also checked object by object: the span counts a missing ``created`` as 0)."""
    created = _created_filter(params["created"]) if "created" in params else None  # its errors come first
    preds = _filters(resource, params)
    objs, positions = fake.sorted_objects(resource)
    members = fake.members(resource, _filter_key(params), lambda o: all(p(o) for p in preds))
    span = _created_span(fake.created_keys(resource), params.get("created"))
    keep = (lambda i: created(objs[i])) if isinstance(params.get("created"), str) else None
    chosen, has_more = _page_positions(members, positions, params, SINGULAR[resource], span, keep)
    legacy = resource == "subscriptions" and not periods_on_items(version)
    if not paths and not legacy:
        return ",".join(fake.texts(resource, chosen)), has_more
    cache = fake.rendered((resource, tuple(map(tuple, paths)), legacy))
    texts = []
    for i in chosen:
        obj = objs[i]
        text = cache.get(obj["id"])
        if text is None:
            text = _with_expansions(fake, resource, obj, paths, version)
            cache[obj["id"]] = text
        texts.append(text)
    return ",".join(texts), has_more


def _filter_key(params: dict[str, Any]) -> tuple:
    """What names a list's filter: every parameter but paging, expansion and ``created``, made
    hashable (a list as a tuple, a hash as its sorted pairs)."""
    return tuple((name, _hashable(value)) for name, value in sorted(params.items()) if name not in _NOT_FILTERS)


def _hashable(value: Any) -> Hashable:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def _events(fake: FakeStripe, parts: list[str], params: dict[str, Any]) -> str:
    if len(parts) == 3:
        event = fake.recorder.get(parts[2])
        if event is None:
            raise ApiError(404, f"No such event: '{parts[2]}'", param="id", code="resource_missing")
        return dumps(event)
    try:
        return list_events(fake.recorder, params)
    except EventQueryError as error:
        raise ApiError(400, str(error), param=error.param) from None


def _items_of(fake: FakeStripe, params: dict[str, Any]) -> tuple[list[dict], dict[str, int], list]:
    sub_id = params.get("subscription")
    if not sub_id:
        raise ApiError(400, "Missing required param: subscription.", param="subscription")
    sub = fake.get("subscriptions", sub_id)
    if sub is None:
        raise ApiError(400, f"No such subscription: '{sub_id}'", param="subscription", code="resource_missing")
    items = (sub.get("items") or {}).get("data", [])
    preds = [_created_filter(params["created"])] if "created" in params else []
    return items, {item["id"]: i for i, item in enumerate(items)}, preds


def _retrieve(fake: FakeStripe, resource: str, obj_id: str, params: dict[str, Any], version: str) -> str:
    _check_params(params, frozenset({"expand"}))
    paths = _expand_paths(params, listing=False)
    with fake.lock:
        obj = fake.get(resource, obj_id)
        if obj is None:
            raise ApiError(404, f"No such {SINGULAR[resource]}: '{obj_id}'", param="id", code="resource_missing")
        if obj.get("deleted"):
            return fake.encoded(resource, obj)
        return _with_expansions(fake, resource, obj, paths, version)
