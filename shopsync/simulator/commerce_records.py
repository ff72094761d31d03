"""Generated draft orders, abandoned checkouts, fulfillment orders and markets.

Each is a top-level type of its own (a table with ids and timestamps, see
:mod:`shopsync.simulator.data`), few per shop by default (``DataConfig.draft_orders`` …). Line
items are child lists held by the record (served as connections with their own cursors, like an
order's). A fulfillment order belongs to an order (spread evenly over the orders) and lists that
order's line items; its status is CLOSED when the order is fulfilled, and closed ones are listed
only with ``includeClosed: true`` (:func:`fulfillment_order_filter`). Markets have no timestamps
on Shopify, so none here.

Every draw comes from the record's own seeded stream, in a fixed order: moving a draw changes the data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from shopsync.simulator.formats import fmt_ts
from shopsync.simulator.ids import COMMERCE_TYPES, ID_BASE, Ref
from shopsync.simulator.vocabulary import ADDRESSES, LOCATION_NAMES, NOTES, PRESENTMENT, SHOP_CURRENCY, TAGS

if TYPE_CHECKING:
    from shopsync.simulator.data import ShopData

__all__ = [
    "COMMERCE_TYPES",
    "fulfillment_order_filter",
    "generate_abandoned_checkout",
    "generate_draft_order",
    "generate_fulfillment_order",
    "generate_market",
]

#: Child ids: line item ``j`` of record ``idx`` is ``<base> + idx * 1000 + j``.
DRAFT_LINE_ITEM_BASE = 71_000_000_000_000
CHECKOUT_LINE_ITEM_BASE = 72_000_000_000_000
FULFILLMENT_LINE_ITEM_BASE = 73_000_000_000_000
MARKET_REGION_BASE = 74_000_000_000  # + market idx * 100 + k

_DRAFT_STATUSES = ("OPEN", "OPEN", "INVOICE_SENT", "COMPLETED")
_MARKETS = (("United States", "us", ("US",)), ("Europe", "europe", ("DE", "FR", "IT", "ES")),
            ("Middle East", "middle-east", ("IL", "AE")), ("Japan", "japan", ("JP",)), ("Canada", "canada", ("CA",)))  # fmt: skip
_COUNTRY_NAMES = {"US": "United States", "DE": "Germany", "FR": "France", "IT": "Italy", "ES": "Spain",
                  "IL": "Israel", "AE": "United Arab Emirates", "JP": "Japan", "CA": "Canada"}  # fmt: skip


def _ref(type_name: str, idx: int) -> Ref:
    return Ref(f"gid://shopify/{type_name}/{ID_BASE[type_name] + idx}", (type_name, idx, None, 0))


def _product_lines(d: ShopData, rand: Callable[[], float], n: int, base: int, kind: str) -> tuple[list[dict], int]:
    """``n`` line items of products drawn from ``rand``, and their subtotal in cents."""
    n_products = d.counts["Product"]
    items: list[dict] = []
    subtotal = 0
    for j in range(n if n_products else 0):
        p = int(rand() * n_products)
        title, vendor, _on, _vals, variants = d.product_core(p)
        vnum, vtitle, sku, price, taxable, shipping = variants[int(rand() * len(variants))]
        qty = 1 + int(rand() ** 3 * 4)
        subtotal += price * qty
        items.append({
            "__typename": kind,
            "id": f"gid://shopify/{kind}/{base + j}",
            "name": title if vtitle is None else f"{title} - {vtitle}",
            "title": title,
            "sku": sku,
            "vendor": vendor,
            "quantity": qty,
            "taxable": taxable,
            "requiresShipping": shipping,
            "custom": False,
            "variantTitle": vtitle,
            "variant": Ref(f"gid://shopify/ProductVariant/{vnum}", ("Product", p, "ProductVariant", vnum)),
            "product": _ref("Product", p),
            "originalUnitPriceSet": d.bag(price, None),
        })
    return items, subtotal


def generate_draft_order(d: ShopData, idx: int, created: int, updated: int) -> dict:
    """Draft order ``idx``: a quote or an invoice, COMPLETED ones linked to an order."""
    rand = d.rng("DraftOrder", idx).random
    num = ID_BASE["DraftOrder"] + idx
    status = _DRAFT_STATUSES[int(rand() * len(_DRAFT_STATUSES))]
    items, subtotal = _product_lines(d, rand, 1 + int(rand() * 4), DRAFT_LINE_ITEM_BASE + idx * 1000, "DraftOrderLineItem")
    tax = subtotal * 8 // 100 if rand() < 0.7 else 0
    n_customers, n_orders = d.counts["Customer"], d.counts["Order"]
    customer = int(rand() * n_customers) if n_customers and rand() < 0.8 else None
    order = int(rand() * n_orders) if n_orders and status == "COMPLETED" else None
    return {
        "__typename": "DraftOrder",
        "id": f"gid://shopify/DraftOrder/{num}",
        "legacyResourceId": str(num),
        "name": f"#D{1 + idx}",
        "email": f"buyer{idx}@example.com" if rand() < 0.8 else None,
        "status": status,
        "createdAt": fmt_ts(created),
        "updatedAt": fmt_ts(updated),
        "completedAt": fmt_ts(updated) if status == "COMPLETED" else None,
        "invoiceSentAt": fmt_ts(created + 600) if status != "OPEN" else None,
        "note2": NOTES[int(rand() * len(NOTES))] if rand() < 0.3 else None,
        "tags": sorted({TAGS[int(rand() * len(TAGS))] for _ in range(int(rand() * 3))}),
        "taxExempt": rand() < 0.05,
        "taxesIncluded": False,
        "currencyCode": SHOP_CURRENCY,
        "subtotalPriceSet": d.bag(subtotal, None),
        "totalTaxSet": d.bag(tax, None),
        "totalPriceSet": d.bag(subtotal + tax, None),
        "customer": _ref("Customer", customer) if customer is not None else None,
        "order": _ref("Order", order) if order is not None else None,
        "lineItems": items,
    }


def generate_abandoned_checkout(d: ShopData, idx: int, created: int, updated: int) -> dict:
    """Abandoned checkout ``idx``: a cart left at checkout, some recovered later."""
    rand = d.rng("AbandonedCheckout", idx).random
    num = ID_BASE["AbandonedCheckout"] + idx
    items, subtotal = _product_lines(d, rand, 1 + int(rand() * 3), CHECKOUT_LINE_ITEM_BASE + idx * 1000, "AbandonedCheckoutLineItem")
    pres = PRESENTMENT[int(rand() * len(PRESENTMENT))] if rand() < 0.2 else None
    n_customers = d.counts["Customer"]
    customer = int(rand() * n_customers) if n_customers and rand() < 0.6 else None
    return {
        "__typename": "AbandonedCheckout",
        "id": f"gid://shopify/AbandonedCheckout/{num}",
        "name": f"#{num % 100_000_000}",
        "createdAt": fmt_ts(created),
        "updatedAt": fmt_ts(updated),
        "completedAt": fmt_ts(updated) if rand() < 0.15 else None,
        "note": NOTES[int(rand() * len(NOTES))] if rand() < 0.2 else "",
        "taxesIncluded": False,
        "discountCodes": ["WELCOME10"] if rand() < 0.2 else [],
        "lineItemsQuantity": sum(i["quantity"] for i in items),
        "subtotalPriceSet": d.bag(subtotal, pres),
        "totalPriceSet": d.bag(subtotal, pres),
        "customer": _ref("Customer", customer) if customer is not None else None,
        "lineItems": items,
    }


def generate_fulfillment_order(d: ShopData, idx: int, created: int, updated: int) -> dict:
    """Fulfillment order ``idx`` of order ``idx * orders // fulfillment_orders``, with its line items."""
    rand = d.rng("FulfillmentOrder", idx).random
    num = ID_BASE["FulfillmentOrder"] + idx
    n_orders = max(1, d.counts["Order"])
    order_idx = idx * n_orders // max(1, d.counts["FulfillmentOrder"])
    order = d.generate("Order", order_idx) if d.counts["Order"] else None
    fulfilled = order is not None and order["displayFulfillmentStatus"] == "FULFILLED"
    n_loc = max(1, d.counts["Location"])
    loc = int(rand() * n_loc)
    _city, _prov, _pc, _zip, _country, cc, _phone, _t, _streets = ADDRESSES[loc % len(ADDRESSES)]
    lines = []
    for j, li in enumerate(order["lineItems"] if order is not None else ()):
        remaining = 0 if fulfilled else li["quantity"]
        lines.append({
            "__typename": "FulfillmentOrderLineItem",
            "id": f"gid://shopify/FulfillmentOrderLineItem/{FULFILLMENT_LINE_ITEM_BASE + idx * 1000 + j}",
            "sku": li["sku"],
            "productTitle": li["title"],
            "variantTitle": li["variantTitle"],
            "totalQuantity": li["quantity"],
            "remainingQuantity": remaining,
            "requiresShipping": li["requiresShipping"],
            "lineItem": Ref(li["id"], ("Order", order_idx, "LineItem", int(li["id"].rsplit("/", 1)[1]))),
        })
    return {
        "__typename": "FulfillmentOrder",
        "id": f"gid://shopify/FulfillmentOrder/{num}",
        "status": "CLOSED" if fulfilled else ("OPEN" if rand() < 0.8 else "IN_PROGRESS"),
        "requestStatus": "UNSUBMITTED",
        "createdAt": fmt_ts(created),
        "updatedAt": fmt_ts(updated),
        "fulfillAt": fmt_ts(created) if rand() < 0.9 else None,
        "orderId": f"gid://shopify/Order/{ID_BASE['Order'] + order_idx}",
        "orderName": f"#{1001 + order_idx}",
        "orderProcessedAt": order["processedAt"] if order is not None else fmt_ts(created),
        "assignedLocation": {
            "name": LOCATION_NAMES[loc % len(LOCATION_NAMES)] + ("" if loc < len(LOCATION_NAMES) else f" {loc}"),
            "countryCode": cc,
            "location": _ref("Location", loc),
        },
        "lineItems": lines,
    }


def generate_market(d: ShopData, idx: int, created: int, updated: int) -> dict:
    """Market ``idx`` (the first is the primary one) with its countries as regions."""
    rand = d.rng("Market", idx).random
    num = ID_BASE["Market"] + idx
    name, handle, countries = _MARKETS[idx % len(_MARKETS)]
    if idx >= len(_MARKETS):
        name, handle = f"{name} {idx}", f"{handle}-{idx}"
    active = idx == 0 or rand() < 0.8
    return {
        "__typename": "Market",
        "id": f"gid://shopify/Market/{num}",
        "name": name,
        "handle": handle,
        "status": "ACTIVE" if active else "DRAFT",
        "enabled": active,
        "primary": idx == 0,
        "type": "REGION",
        "regions": [
            {"__typename": "MarketRegionCountry", "id": f"gid://shopify/MarketRegionCountry/{MARKET_REGION_BASE + idx * 100 + k}",
             "name": _COUNTRY_NAMES[code], "code": code}
            for k, code in enumerate(countries)
        ],
    }  # fmt: skip


def fulfillment_order_filter(args: Mapping[str, Any]) -> Callable[[int, dict], bool] | None:
    """The fulfillment orders a listing shows: closed ones only with ``includeClosed: true``."""
    if args.get("includeClosed"):
        return None
    return lambda _idx, rec: rec["status"] != "CLOSED"
