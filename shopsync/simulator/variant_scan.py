"""The ``productVariants`` listing: every product's variants as one table, scanned through products.

The simulator keeps variants inside their product's record (``Product.variants``), not in a table
of their own, so a QueryRoot listing of variants walks the products in id order and yields their
variants. A variant's number is ``VARIANT_BASE + product index × 64 + position``, so product order
then position order *is* id order, and a scan key (the variant number less ``VARIANT_BASE``)
names the product it lives in: a page after a cursor starts at that product.

Search (``updated_at``, ``created_at``, ``id``) is matched against each variant's own current
values. The variants' listing reads no lagging index (the index lag of
:mod:`~shopsync.simulator.store` is modelled for top-level tables only); a sync engine's safety
margin covers the lag either way. A variant's ``updatedAt`` is never later than its product's
(an update that changes a variant moves both to the same second).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from shopsync.simulator.ids import VARIANT_BASE
from shopsync.simulator.search import SearchQuery
from shopsync.timeutil import parse_ts

if TYPE_CHECKING:
    from shopsync.simulator.store import ShopStore

__all__ = ["VARIANT_TYPE", "VARIANTS_PER_PRODUCT", "scan_variants", "variant_key"]

#: The type whose listing this module serves.
VARIANT_TYPE = "ProductVariant"
#: Variant numbers per product (see :func:`~shopsync.simulator.catalog_records.product_core`).
VARIANTS_PER_PRODUCT = 64


def variant_key(gid_number: int) -> int:
    """The scan key of variant number ``gid_number``."""
    return gid_number - VARIANT_BASE


def _search_values(variant: dict) -> dict[str, object]:
    return {
        "id": int(variant["id"].rsplit("/", 1)[-1]),
        "updated_at": int(parse_ts(variant["updatedAt"]).timestamp()),
        "created_at": int(parse_ts(variant["createdAt"]).timestamp()),
    }


def scan_variants(
    store: ShopStore,
    *,
    descending: bool = False,
    query: SearchQuery | None = None,
    start_after: int | None = None,
    stop_before: int | None = None,
    where: Callable[[int, dict], bool] | None = None,
) -> Iterator[tuple[int, int, dict]]:
    """Every live product's variants matching ``query`` as ``(key, key, variant)`` in id order
    (``descending`` reverses); ``start_after``/``stop_before`` are exclusive keys (cursors)."""
    # The product holding the cursor's variant is scanned again (its later variants follow).
    product_after = None
    if start_after is not None:
        p = start_after // VARIANTS_PER_PRODUCT
        product_after = p + 1 if descending else p - 1
    for _pkey, _pidx, product in store.scan("Product", sort="id", descending=descending, start_after=product_after):
        variants = product.get("variants") or ()
        for variant in reversed(variants) if descending else variants:
            key = variant_key(int(variant["id"].rsplit("/", 1)[-1]))
            if start_after is not None and (key >= start_after if descending else key <= start_after):
                continue
            if stop_before is not None and (key <= stop_before if descending else key >= stop_before):
                return
            if query is not None and not query.matches(_search_values(variant)):
                continue
            if where is not None and not where(key, variant):
                continue
            yield key, key, variant
