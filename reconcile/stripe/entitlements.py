"""Products' features from Stripe's Entitlements API (``RECONCILE['FEATURES_SOURCE']``).

Requests, for a pull of P products and F features (each product with at most 100 features):

- ``"metadata"`` (the default): none beyond the listings; features come from the products'
  metadata key;
- ``"entitlements"`` or ``"both"``: ``ceil(F / 100)`` pages of ``/v1/entitlements/features``
  (at least 1), then, only when the account has features, one ``/v1/products/{id}/features``
  page per product (another per further 100 features of a product): ``ceil(F/100) + P`` in all,
  or 1 when the account has no features. Stripe has no listing of every product's features at
  once, so P requests is the least that reads them.

The per-product requests run on the fetch's page pool, so they share its concurrency and rate
limit like every other request. Never called inside a database transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from ..core.parse import parse_feature
from ..core.read import BadObject
from ..core.snapshot import Rejected
from .fetch import Fetcher

FEATURES_PATH = "/v1/entitlements/features"


def list_features(fetcher: Fetcher, builder) -> None:
    """Every feature of the account (archived ones too) into ``builder.features``."""
    for page in fetcher.pages(FEATURES_PATH):
        for obj in page.data:
            builder.add("Feature", builder.features, parse_feature, obj, page.requested_at)


def _attached(fetcher: Fetcher, product_id: str) -> tuple[str, ...]:
    ids = set()
    for page in fetcher.pages(f"/v1/products/{product_id}/features"):
        for attachment in page.data:
            feature = attachment.get("entitlement_feature") if isinstance(attachment, dict) else None
            fid = feature.get("id") if isinstance(feature, dict) else feature
            if not isinstance(fid, str) or not fid:
                raise BadObject(f"a product feature of {product_id} without its feature's id")
            ids.add(fid)
    return tuple(sorted(ids))


def _safely(fetcher: Fetcher, product_id: str) -> tuple[str, ...] | BadObject:
    """A product's feature ids, or the reason they cannot be read (the product is then skipped)."""
    try:
        return _attached(fetcher, product_id)
    except BadObject as exc:
        return exc


def attach_features(
    fetcher: Fetcher, builder, product_ids: Iterable[str], source: str, pool: ThreadPoolExecutor | None = None
) -> None:
    """Replace (``"entitlements"``) or extend (``"both"``) the features of the products named with
    the Entitlements features Stripe attaches to them. Needs ``builder.features`` listed first."""
    wanted = sorted(pid for pid in product_ids if pid in builder.products)
    if not builder.features or not wanted:  # no feature in the account: no product has one
        attached = {pid: () for pid in wanted}
    elif pool is None:
        attached = {pid: _safely(fetcher, pid) for pid in wanted}
    else:
        futures = {pid: pool.submit(_safely, fetcher, pid) for pid in wanted}
        attached = {pid: future.result() for pid, future in futures.items()}
    for pid in wanted:
        product = builder.products[pid]
        found = attached[pid]
        unknown = [] if isinstance(found, BadObject) else [f for f in found if f not in builder.features]
        if isinstance(found, BadObject) or unknown:  # unknown: attached after the list was read; next run has it
            why = str(found) if isinstance(found, BadObject) else f"its features {', '.join(unknown)} were not listed"
            builder.rejected.append(Rejected("Product", pid, why))
            del builder.products[pid]
            continue
        own = found if source == "entitlements" else tuple(sorted({*product.features, *found}))
        builder.products[pid] = replace(product, features=own)
