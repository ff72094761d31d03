"""Generated metafields: a few on the shop, on each product, variant, collection, customer and order.

One top-level ``Metafield`` table holds every owner's metafields, owner after owner in the order
of :data:`OWNERS` (the shop's first, then product 0's, product 1's, …), so an owner's metafields
are one contiguous index range (:func:`owner_range`) and ``<Owner>.metafields`` is a page over it
(:mod:`shopsync.simulator.metafield_fields`). How many each owner has is ``DataConfig``'s
``<owner>_metafields`` (few by default; orders and customers none). A metafield is created with
its owner. Every draw comes from the record's own seeded stream, in a fixed order: moving a draw
changes the data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shopsync.simulator.formats import fmt_ts
from shopsync.simulator.ids import ID_BASE, VARIANT_BASE, Ref

if TYPE_CHECKING:
    from shopsync.simulator.config import DataConfig
    from shopsync.simulator.data import ShopData

__all__ = ["OWNERS", "generate_metafield", "metafield_layout", "owner_range"]

#: Owner type → (``ownerType`` value, ``DataConfig`` field with the metafields per owner), in table order.
OWNERS: dict[str, tuple[str, str]] = {
    "Shop": ("SHOP", "shop_metafields"),
    "Product": ("PRODUCT", "product_metafields"),
    "ProductVariant": ("PRODUCTVARIANT", "variant_metafields"),
    "Collection": ("COLLECTION", "collection_metafields"),
    "Customer": ("CUSTOMER", "customer_metafields"),
    "Order": ("ORDER", "order_metafields"),
}

#: (namespace, key, type) of the k-th metafield of an owner (cycled).
_DEFINITIONS = (
    ("custom", "care_guide", "multi_line_text_field"),
    ("custom", "material", "single_line_text_field"),
    ("reviews", "rating_count", "number_integer"),
    ("specs", "dimensions", "json"),
)
_TEXTS = ("Machine wash cold", "100% organic cotton", "Handmade in Lisbon", "Lavar à mão · 手洗い", "שטיפה עדינה")


def metafield_layout(config: DataConfig, owner_counts: dict[str, int]) -> tuple[tuple[str, int, int, int], ...]:
    """Per owner type in table order: ``(type, first index, owners, metafields per owner)`` (pure)."""
    out = []
    start = 0
    for owner_type, (_value, field_name) in OWNERS.items():
        per = getattr(config, field_name)
        owners = owner_counts[owner_type]
        out.append((owner_type, start, owners, per))
        start += owners * per
    return tuple(out)


def owner_range(d: ShopData, owner_type: str, owner_idx: int = 0) -> tuple[int, int]:
    """The inclusive index range of the metafields of owner ``owner_idx`` of ``owner_type`` (empty
    when ``hi < lo``: an owner beyond the base data, such as an order created later, has none)."""
    for t, start, owners, per in d.metafield_layout:
        if t == owner_type:
            if not 0 <= owner_idx < owners:
                return 0, -1
            lo = start + owner_idx * per
            return lo, lo + per - 1
    raise KeyError(owner_type)


def _owner(d: ShopData, idx: int) -> tuple[str, int, int]:
    """Metafield ``idx`` → (owner type, owner index, k-th of its owner)."""
    for t, start, owners, per in d.metafield_layout:
        if per and start <= idx < start + owners * per:
            owner_idx, k = divmod(idx - start, per)
            return t, owner_idx, k
    raise IndexError(f"no metafield {idx}")


def _owner_ref(d: ShopData, owner_type: str, owner_idx: int) -> object:
    if owner_type == "Shop":
        return {"__typename": "Shop", "id": f"gid://shopify/Shop/{70_000_000_000 + (d.seed % 1_000_000)}"}
    if owner_type == "ProductVariant":
        p, v = d.product_of_item(owner_idx)
        num = VARIANT_BASE + p * 64 + v
        return Ref(f"gid://shopify/ProductVariant/{num}", ("Product", p, "ProductVariant", num))
    return Ref(f"gid://shopify/{owner_type}/{ID_BASE[owner_type] + owner_idx}", (owner_type, owner_idx, None, 0))


def _owner_created(d: ShopData, owner_type: str, owner_idx: int) -> int | None:
    if owner_type == "ProductVariant":
        return d.created["InventoryItem"][owner_idx]  # an item is created with its variant
    times = d.created.get(owner_type)
    return times[owner_idx] if times is not None and owner_idx < len(times) else None


def _value(rand, kind: str) -> str:
    if kind == "number_integer":
        return str(int(rand() * 5000))
    if kind == "json":
        height, width = 10 + int(rand() * 90), 10 + int(rand() * 90)
        return f'{{"height_cm":{height},"width_cm":{width}}}'
    text = _TEXTS[int(rand() * len(_TEXTS))]
    return text if kind == "single_line_text_field" else f"{text}\nTumble dry low"


def generate_metafield(d: ShopData, idx: int, created: int, updated: int) -> dict:
    """Metafield ``idx`` (see the module docstring for whose it is)."""
    rand = d.rng("Metafield", idx).random
    num = ID_BASE["Metafield"] + idx
    owner_type, owner_idx, k = _owner(d, idx)
    born = _owner_created(d, owner_type, owner_idx)
    if born is not None:
        created = max(created, born)
        updated = max(updated, created)
    namespace, key, kind = _DEFINITIONS[k % len(_DEFINITIONS)]
    if k >= len(_DEFINITIONS):
        key = f"{key}_{k // len(_DEFINITIONS)}"
    return {
        "__typename": "Metafield",
        "id": f"gid://shopify/Metafield/{num}",
        "legacyResourceId": str(num),
        "namespace": namespace,
        "key": key,
        "type": kind,
        "value": _value(rand, kind),
        "description": None,
        "createdAt": fmt_ts(created),
        "updatedAt": fmt_ts(updated),
        "ownerType": OWNERS[owner_type][0],
        "owner": _owner_ref(d, owner_type, owner_idx),
    }
