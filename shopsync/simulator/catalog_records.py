"""Generated catalog records: products with their variants, inventory items and levels, locations, collections.

Every draw comes from the record's own seeded stream, in a fixed order: moving a draw changes the data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shopsync.simulator.formats import decimal_amount, fmt_ts, money_amount
from shopsync.simulator.ids import ID_BASE, OPTION_BASE, VARIANT_BASE, Ref
from shopsync.simulator.vocabulary import (
    ADDRESSES,
    ADJECTIVES,
    COLLECTION_SORTS,
    COLORS,
    LOCATION_NAMES,
    NOUNS,
    PRODUCT_TYPES,
    SHOP_CURRENCY,
    SIZES,
    TAGS,
    UNICODE_TITLES,
    VENDORS,
)

if TYPE_CHECKING:
    from shopsync.simulator.data import ShopData

__all__ = [
    "generate_collection",
    "generate_inventory_item",
    "generate_inventory_level",
    "generate_location",
    "generate_product",
    "level_quantities",
    "product_core",
]

def product_core(d: ShopData, p: int) -> tuple:
    """What line items need of a product, computed once: title, vendor and variants as
    (numeric id, title or None, sku, price cents, taxable, requires shipping)."""
    r = d.rng("Product", p)
    rand = r.random
    if rand() < 0.15:
        title = UNICODE_TITLES[int(rand() * len(UNICODE_TITLES))]
    else:
        title = f"{ADJECTIVES[int(rand() * len(ADJECTIVES))]} {NOUNS[int(rand() * len(NOUNS))]}"
    vendor = VENDORS[int(rand() * len(VENDORS))]
    base = 500 + int(rand() * 19_500)  # $5 .. $200
    n = d.variant_offsets[p + 1] - d.variant_offsets[p]
    option_name = "Title" if n == 1 else ("Size" if rand() < 0.6 else "Color")
    values = ("Default Title",) if n == 1 else (SIZES if option_name == "Size" else COLORS)[:n]
    taxable = rand() < 0.9
    shipping = rand() < 0.92
    variants = []
    for v in range(n):
        price = base + (v * 200 if option_name == "Size" else 0)
        vt = None if n == 1 else values[v]
        variants.append((VARIANT_BASE + p * 64 + v, vt, f"SKU-{p:05d}-{v}", price, taxable, shipping))
    return title, vendor, option_name, values, tuple(variants)


def level_quantities(d: ShopData, level: int) -> tuple[int, int, int, int]:
    """(available, committed, incoming, reserved) of inventory level ``level``."""
    rand = d.rng("InventoryLevel", level).random
    available = int(rand() * 130) - 10  # a few oversold (negative) levels
    committed = int(rand() * 6) if rand() < 0.5 else 0
    incoming = int(rand() * 50) if rand() < 0.2 else 0
    reserved = 1 + int(rand() * 2) if rand() < 0.1 else 0
    return available, committed, incoming, reserved


def generate_product(d: ShopData, idx: int, created: int, updated: int) -> dict:
    """Product ``idx`` with its variants (their common part comes from :func:`product_core`)."""
    title, vendor, option_name, values, variants = d.product_core(idx)
    rand = d.rng("ProductDetail", idx).random
    num = ID_BASE["Product"] + idx
    gid = f"gid://shopify/Product/{num}"
    x = rand()
    status = "ACTIVE" if x < 0.85 else "DRAFT" if x < 0.95 else "ARCHIVED"
    created_s, updated_s = fmt_ts(created), fmt_ts(updated)
    ascii_title = title.isascii()
    handle = (title.lower().replace(" ", "-") + f"-{idx}") if ascii_title else f"product-{idx}"
    offset = d.variant_offsets[idx]
    n_loc = d.counts["Location"]
    out_variants = []
    total_inventory = 0
    for v, (vnum, vtitle, sku, price, taxable, _shipping) in enumerate(variants):
        item = offset + v
        qty = 0
        for loc in range(n_loc):
            qty += d.level_quantities(item * n_loc + loc)[0]
        total_inventory += qty
        vt = vtitle if vtitle is not None else "Default Title"
        out_variants.append({
            "__typename": "ProductVariant",
            "id": f"gid://shopify/ProductVariant/{vnum}",
            "legacyResourceId": str(vnum),
            "title": vt,
            "displayName": f"{title} - {vt}",
            "sku": sku,
            "barcode": str(4_000_000_000_000 + vnum % 1_000_000_000) if rand() < 0.7 else None,
            "price": money_amount(price),
            "compareAtPrice": money_amount(price + 500) if rand() < 0.2 else None,
            "position": v + 1,
            "taxable": taxable,
            "inventoryPolicy": "CONTINUE" if rand() < 0.1 else "DENY",
            "inventoryQuantity": qty,
            "createdAt": created_s,
            "updatedAt": updated_s,
            "selectedOptions": [{"name": option_name, "value": vt}],
            "inventoryItem": Ref(f"gid://shopify/InventoryItem/{ID_BASE['InventoryItem'] + item}", ("InventoryItem", item, None, 0)),
            "product": Ref(gid, ("Product", idx, None, 0)),
        })
    return {
        "__typename": "Product",
        "id": gid,
        "legacyResourceId": str(num),
        "title": title,
        "handle": handle,
        "descriptionHtml": f"<p>{title} by <strong>{vendor}</strong>.</p>" if rand() < 0.9 else "",
        "vendor": vendor,
        "productType": PRODUCT_TYPES[int(rand() * len(PRODUCT_TYPES))],
        "status": status,
        "tags": sorted({TAGS[int(rand() * len(TAGS))] for _ in range(int(rand() * 3.5))}),
        "createdAt": created_s,
        "updatedAt": updated_s,
        "publishedAt": None if status == "DRAFT" else created_s,
        "templateSuffix": "alternate" if rand() < 0.1 else None,
        "totalInventory": total_inventory,
        "options": [{"id": f"gid://shopify/ProductOption/{OPTION_BASE + idx * 8}", "name": option_name, "position": 1, "values": list(values)}],
        "variants": out_variants,
    }


def generate_inventory_item(d: ShopData, idx: int, created: int, updated: int) -> dict:
    """Inventory item ``idx`` (variant ``v`` of product ``p``: see :meth:`ShopData.product_of_item`)."""
    rand = d.rng("InventoryItem", idx).random
    p, v = d.product_of_item(idx)
    vnum, _vt, sku, price, _tax, shipping = d.product_core(p)[4][v]
    num = ID_BASE["InventoryItem"] + idx
    return {
        "__typename": "InventoryItem",
        "id": f"gid://shopify/InventoryItem/{num}",
        "legacyResourceId": str(num),
        "sku": sku,
        "tracked": rand() < 0.9,
        "requiresShipping": shipping,
        "countryCodeOfOrigin": ("US", "CN", "DE", "IL", "JP")[int(rand() * 5)] if rand() < 0.4 else None,
        "harmonizedSystemCode": ("610910", "420292", "691200", "330741")[int(rand() * 4)] if rand() < 0.3 else None,
        "unitCost": {"amount": decimal_amount(price * 4 // 10), "currencyCode": SHOP_CURRENCY} if rand() < 0.7 else None,
        "createdAt": fmt_ts(created),
        "updatedAt": fmt_ts(updated),
        "variant": Ref(f"gid://shopify/ProductVariant/{vnum}", ("Product", p, "ProductVariant", vnum)),
    }


def generate_inventory_level(d: ShopData, idx: int, created: int, updated: int) -> dict:
    """Inventory level ``idx``: item ``idx // locations`` at location ``idx % locations``."""
    n_loc = max(1, d.counts["Location"])
    item, loc = divmod(idx, n_loc)
    available, committed, incoming, reserved = d.level_quantities(idx)
    updated_s = fmt_ts(updated)
    q = {
        "available": available,
        "committed": committed,
        "incoming": incoming,
        "reserved": reserved,
        "on_hand": available + committed + reserved,
        "damaged": 0,
        "quality_control": 0,
        "safety_stock": 0,
    }
    return {
        "__typename": "InventoryLevel",
        "id": d.gid("InventoryLevel", idx),
        "createdAt": fmt_ts(created),
        "updatedAt": updated_s,
        "isActive": True,
        "canDeactivate": True,
        "item": Ref(f"gid://shopify/InventoryItem/{ID_BASE['InventoryItem'] + item}", ("InventoryItem", item, None, 0)),
        "location": Ref(f"gid://shopify/Location/{ID_BASE['Location'] + loc}", ("Location", loc, None, 0)),
        "_quantities": q,
        # When each quantity last changed; never-touched zero quantities have none.
        "_quantities_at": {k: (updated_s if v else None) for k, v in q.items()},
    }


def generate_location(d: ShopData, idx: int, created: int, updated: int) -> dict:
    """Location ``idx``."""
    rand = d.rng("Location", idx).random
    n = d.counts["Location"]
    # With 3+ locations the last is deactivated; with 4+ the one before is a legacy
    # fulfilment-service location (hidden unless includeLegacy / includeInactive).
    inactive = n >= 3 and idx == n - 1
    legacy = n >= 4 and idx == n - 2
    region = idx % len(ADDRESSES)
    city, prov, pcode, zip_, country, cc, phone, _t, streets = ADDRESSES[region]
    name = LOCATION_NAMES[idx % len(LOCATION_NAMES)] + ("" if idx < len(LOCATION_NAMES) else f" {idx}")
    return {
        "__typename": "Location",
        "id": f"gid://shopify/Location/{ID_BASE['Location'] + idx}",
        "legacyResourceId": str(ID_BASE["Location"] + idx),
        "name": name,
        "isActive": not inactive,
        "fulfillsOnlineOrders": not inactive and rand() < 0.8,
        "shipsInventory": not inactive,
        "createdAt": fmt_ts(created),
        "updatedAt": fmt_ts(updated),
        "deactivatedAt": fmt_ts(updated) if inactive else None,
        "isFulfillmentService": legacy,
        "address": {
            "address1": streets[0],
            "address2": None,
            "city": city,
            "province": prov,
            "provinceCode": pcode,
            "zip": zip_,
            "country": country,
            "countryCode": cc,
            "phone": f"{phone}0000" if rand() < 0.7 else None,
        },
        "_legacy": legacy,
    }


def generate_collection(d: ShopData, idx: int, created: int, updated: int) -> dict:
    """Collection ``idx``."""
    rand = d.rng("Collection", idx).random
    num = ID_BASE["Collection"] + idx
    title = (f"{ADJECTIVES[idx % len(ADJECTIVES)]} picks" if rand() < 0.8 else UNICODE_TITLES[idx % len(UNICODE_TITLES)])
    return {
        "__typename": "Collection",
        "id": f"gid://shopify/Collection/{num}",
        "legacyResourceId": str(num),
        "title": title,
        "handle": f"collection-{idx}",
        "descriptionHtml": f"<p>{title}</p>" if rand() < 0.7 else "",
        "sortOrder": COLLECTION_SORTS[int(rand() * len(COLLECTION_SORTS))],
        "templateSuffix": None if rand() < 0.85 else "",
        "updatedAt": fmt_ts(updated),
        "productsCount": {"count": int(rand() * min(60, d.counts["Product"] + 1)), "precision": "EXACT"},
    }
