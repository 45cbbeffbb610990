"""Stripe's Entitlements endpoints in the fake Stripe (a test double): features and product features.

- ``GET /v1/entitlements/features`` lists the account's features (filters ``archived``, ``lookup_key``);
- ``GET /v1/entitlements/features/{id}`` retrieves one;
- ``GET /v1/products/{id}/features`` lists a product's attachments (``product_feature`` objects, each
  embedding its whole ``entitlements.feature``); ``.../features/{prodft_id}`` retrieves one.

The store keeps an attachment as ``{"id", "object": "product_feature", "product", "entitlement_feature":
feature id, "livemode"}``; the ``product`` key is the fake's own bookkeeping and is never served.
"""

from __future__ import annotations

from typing import Any

from .api import COMMON_PARAMS, ApiError, _bool, _check_params, _page
from .store import FakeStripe, dumps

FEATURE_PARAMS = frozenset({"limit", "starting_after", "ending_before", "expand", "archived", "lookup_key"})
PRODUCT_FEATURE_PARAMS = COMMON_PARAMS - {"created"}


def route_entitlements(fake: FakeStripe, path: str, params: dict[str, Any]) -> str | None:
    """The answer to an Entitlements GET, or None when ``path`` is not one of these endpoints."""
    parts = path.strip("/").split("/")
    if parts[:3] == ["v1", "entitlements", "features"] and len(parts) in (3, 4):
        return _features(fake, params) if len(parts) == 3 else _feature(fake, parts[3], params)
    if len(parts) in (4, 5) and parts[:2] == ["v1", "products"] and parts[3] == "features":
        return _product_features(fake, parts[2], parts[4] if len(parts) == 5 else None, params)
    return None


def feature_served(fake: FakeStripe, feature_id: str) -> dict:
    feature = fake.get("features", feature_id) or {}
    return {k: v for k, v in feature.items() if k != "created"}


def _attachment_served(fake: FakeStripe, attachment: dict) -> dict:
    return {
        "id": attachment["id"],
        "object": "product_feature",
        "entitlement_feature": feature_served(fake, attachment["entitlement_feature"]),
        "livemode": attachment.get("livemode", False),
    }


def _list_body(data: list[dict], has_more: bool, url: str) -> str:
    return dumps({"object": "list", "data": data, "has_more": has_more, "url": url})


def _features(fake: FakeStripe, params: dict[str, Any]) -> str:
    _check_params(params, FEATURE_PARAMS)
    preds = []
    if "archived" in params:
        archived = _bool(params["archived"], "archived")
        preds.append(lambda f: f.get("active") is not archived)
    if "lookup_key" in params:
        key = params["lookup_key"]
        preds.append(lambda f: f.get("lookup_key") == key)
    with fake.lock:
        objs, positions = fake.sorted_objects("features")
        page, has_more = _page(objs, positions, params, "feature", preds, (0, len(objs)))
        data = [feature_served(fake, f["id"]) for f in page]
    return _list_body(data, has_more, "/v1/entitlements/features")


def _feature(fake: FakeStripe, feature_id: str, params: dict[str, Any]) -> str:
    _check_params(params, frozenset({"expand"}))
    with fake.lock:
        if fake.get("features", feature_id) is None:
            raise ApiError(404, f"No such feature: '{feature_id}'", param="id", code="resource_missing")
        return dumps(feature_served(fake, feature_id))


def _product_features(fake: FakeStripe, product_id: str, attachment_id: str | None, params: dict[str, Any]) -> str:
    _check_params(params, PRODUCT_FEATURE_PARAMS if attachment_id is None else frozenset({"expand"}))
    with fake.lock:
        if fake.get("products", product_id) is None:
            raise ApiError(404, f"No such product: '{product_id}'", param="product", code="resource_missing")
        objs, _ = fake.sorted_objects("product_features")
        mine = [a for a in objs if a.get("product") == product_id]
        if attachment_id is not None:
            found = next((a for a in mine if a["id"] == attachment_id), None)
            if found is None:
                raise ApiError(404, f"No such product feature: '{attachment_id}'", param="id", code="resource_missing")
            return dumps(_attachment_served(fake, found))
        positions = {a["id"]: i for i, a in enumerate(mine)}
        page, has_more = _page(mine, positions, params, "product feature", [], (0, len(mine)))
        data = [_attachment_served(fake, a) for a in page]
    return _list_body(data, has_more, f"/v1/products/{product_id}/features")
