"""``Collection.products``: which products a collection holds (collection membership).

Collection ``c`` holds ``productsCount.count`` products (its generated count, so the two agree),
drawn from its own seeded stream and listed in product-id order; products deleted since are left
out, as Shopify drops them from their collections. Pages come from
:func:`~shopsync.simulator.connections.list_connection` (list cursors), bulk exports get the list.
"""

from __future__ import annotations

import random
from typing import Any

from shopsync.simulator.connections import list_connection
from shopsync.simulator.cursors import numeric_id
from shopsync.simulator.data import ID_BASE
from shopsync.simulator.exec_context import ExecContext
from shopsync.simulator.ids import seed_of
from shopsync.simulator.inventory_fields import Special
from shopsync.simulator.plan import PlanField

__all__ = ["COLLECTION_SPECIALS", "collection_members"]

#: Salt of the membership draws (apart from every record type's, see ``ids.SALT``).
_MEMBERS_SALT = 40


def collection_members(seed: int, collection_idx: int, count: int, n_products: int) -> list[int]:
    """The product indexes collection ``collection_idx`` holds, in order (pure)."""
    rng = random.Random(seed_of(seed, _MEMBERS_SALT, collection_idx))
    return sorted(rng.sample(range(n_products), min(max(0, count), n_products)))


def _collection_products(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> Any:
    store = ctx.store
    idx = numeric_id(rec["id"]) - ID_BASE["Collection"]
    count = (rec.get("productsCount") or {}).get("count", 0)
    products = store.tables["Product"]
    items = [
        p for p in (products.record(i) for i in collection_members(store.data.seed, idx, count, store.data.count("Product")))
        if p is not None
    ]
    return list_connection(ctx, rec, f, items)


#: ``(type, field)`` → special; the executor routes those fields here.
COLLECTION_SPECIALS: dict[tuple[str, str], Special] = {("Collection", "products"): _collection_products}
