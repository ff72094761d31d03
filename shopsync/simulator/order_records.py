"""Generated orders: line items, payment transactions, refunds, addresses and the order itself.

All of an order's values come from one seeded stream (``d.rng("Order", idx)``), drawn in a fixed
order: the header, the line items, statuses, transactions and refunds, addresses, then the order's
remaining fields. The helpers below are called in that order; moving a draw changes the data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from shopsync.simulator.customer_records import mailing_address
from shopsync.simulator.formats import fmt_ts
from shopsync.simulator.ids import (
    ADDRESS_BASE,
    ID_BASE,
    LINE_ITEM_BASE,
    MAX_LINE_ITEMS,
    REFUND_BASE,
    TRANSACTION_BASE,
    Ref,
)
from shopsync.simulator.vocabulary import (
    ADDRESSES,
    CANCEL_REASONS,
    FIRST_NAMES,
    GATEWAYS,
    LAST_NAMES,
    NOTES,
    PRESENTMENT,
    SHOP_CURRENCY,
    TAGS,
)

if TYPE_CHECKING:
    from shopsync.simulator.data import ShopData

__all__ = ["generate_order"]

Rand = Callable[[], float]
Presentment = tuple[str, int, int] | None


def generate_order(d: ShopData, idx: int, created: int, updated: int, line_items: int | None = None) -> dict:
    """Order ``idx``; ``line_items`` overrides its number of line items (capped at ``MAX_LINE_ITEMS``).

    About 80 lines because half of it is the record's 35-field literal; the parts with their own
    draws (line items, statuses, payments, addresses) are the helpers below.
    """
    rand = d.rng("Order", idx).random
    num = ID_BASE["Order"] + idx
    n_customers = d.counts["Customer"]
    n_orders = max(1, d.counts["Order"])
    # Customers are numbered by creation time too: pick one who existed when the order was placed.
    customer_idx = int(rand() * n_customers * min(1.0, (idx + 1) / n_orders)) if n_customers else -1
    has_customer = customer_idx >= 0 and rand() >= 0.04
    first = FIRST_NAMES[int(rand() * len(FIRST_NAMES))]
    last = LAST_NAMES[int(rand() * len(LAST_NAMES))]
    region = int(rand() * len(ADDRESSES))
    pres = PRESENTMENT[int(rand() * len(PRESENTMENT))] if rand() < 0.3 else None
    taxes_included = ADDRESSES[region][5] not in ("US", "CA")
    tax_rate = ADDRESSES[region][7]

    n_items = 1 + int(rand() ** 2 * 5)  # drawn even when overridden, so the later draws stay put
    if line_items is not None:
        n_items = max(0, min(MAX_LINE_ITEMS, line_items))
    elif idx in d.big_orders:
        n_items = d.config.big_order_line_items
    items, subtotal, discounts, quantity_total = _line_items(d, rand, idx, n_items, pres)
    shipping_cents = (0, 499, 999, 1500)[int(rand() * 4)]
    tax = subtotal * tax_rate // (1000 + tax_rate) if taxes_included else subtotal * tax_rate // 1000
    total = subtotal + shipping_cents + (0 if taxes_included else tax)

    financial, cancelled, fulfillment = _statuses(rand)
    created_s = fmt_ts(created)
    updated_s = fmt_ts(updated)
    transactions, refunds = _payments(d, rand, idx, financial, total, pres, created, updated)
    if financial == "REFUNDED":
        for li in items:
            li["currentQuantity"] = 0
    ship, bill = _addresses(rand, idx, first, last, region)
    tags = sorted({TAGS[int(rand() * len(TAGS))] for _ in range(int(rand() * 3.5))})
    closed = financial == "PAID" and fulfillment == "FULFILLED" and rand() < 0.6
    # The remaining draws, in the order the record's fields were always drawn.
    email = f"customer{customer_idx}@example.com" if has_customer and rand() < 0.97 else None
    phone = f"{ADDRESSES[region][6]}{int(rand() * 9000) + 1000}" if rand() < 0.15 else None
    cancel_reason = CANCEL_REASONS[int(rand() * len(CANCEL_REASONS))] if cancelled else None
    note = NOTES[int(rand() * len(NOTES))] if rand() < 0.2 else None
    test = rand() < 0.01
    bag = d.bag
    return {
        "__typename": "Order",
        "id": f"gid://shopify/Order/{num}",
        "legacyResourceId": str(num),
        "name": f"#{1001 + idx}",
        "email": email,
        "phone": phone,
        "createdAt": created_s,
        "updatedAt": updated_s,
        "processedAt": created_s,
        "cancelledAt": updated_s if cancelled else None,
        "cancelReason": cancel_reason,
        "closedAt": updated_s if closed or cancelled else None,
        "closed": closed or cancelled,
        "confirmed": True,
        "displayFinancialStatus": financial,
        "displayFulfillmentStatus": fulfillment,
        "currencyCode": SHOP_CURRENCY,
        "presentmentCurrencyCode": pres[0] if pres else SHOP_CURRENCY,
        "note": note,
        "tags": tags,
        "test": test,
        "taxesIncluded": taxes_included,
        "subtotalLineItemsQuantity": quantity_total,
        "totalPriceSet": bag(total, pres),
        "subtotalPriceSet": bag(subtotal, pres),
        "totalTaxSet": bag(tax, pres),
        "totalDiscountsSet": bag(discounts, pres),
        "totalShippingPriceSet": bag(shipping_cents, pres),
        "customer": Ref(f"gid://shopify/Customer/{ID_BASE['Customer'] + customer_idx}", ("Customer", customer_idx, None, 0))
        if has_customer
        else None,
        "shippingAddress": ship,
        "billingAddress": bill,
        "transactions": transactions,
        "refunds": refunds,
        "lineItems": items,
    }


def _line_items(d: ShopData, rand: Rand, idx: int, n_items: int, pres: Presentment) -> tuple[list[dict], int, int, int]:
    """``n_items`` line items of order ``idx`` and their (subtotal, discounts, total quantity)."""
    n_products = d.counts["Product"]
    items: list[dict] = []
    subtotal = 0
    discounts = 0
    quantity_total = 0
    li_base = LINE_ITEM_BASE + idx * 1000
    for j in range(n_items if n_products else 0):
        p = int(rand() * n_products)
        title, vendor, _on, _vals, variants = d.product_core(p)
        vnum, vtitle, sku, price, taxable, shipping = variants[int(rand() * len(variants))]
        qty = 1 + int(rand() ** 3 * 4)
        disc = price - (price * (5 + int(rand() * 20)) // 100 if rand() < 0.15 else 0)
        subtotal += disc * qty
        discounts += (price - disc) * qty
        quantity_total += qty
        items.append({
            "__typename": "LineItem",
            "id": f"gid://shopify/LineItem/{li_base + j}",
            "name": title if vtitle is None else f"{title} - {vtitle}",
            "title": title,
            "sku": sku,
            "vendor": vendor,
            "quantity": qty,
            "currentQuantity": qty,
            "taxable": taxable,
            "requiresShipping": shipping,
            "variantTitle": vtitle,
            "variant": Ref(f"gid://shopify/ProductVariant/{vnum}", ("Product", p, "ProductVariant", vnum)),
            "product": Ref(f"gid://shopify/Product/{ID_BASE['Product'] + p}", ("Product", p, None, 0)),
            "originalUnitPriceSet": d.bag(price, pres),
            "discountedUnitPriceSet": d.bag(disc, pres),
        })
    return items, subtotal, discounts, quantity_total


def _statuses(rand: Rand) -> tuple[str, bool, str]:
    """(displayFinancialStatus, cancelled, displayFulfillmentStatus)."""
    x = rand()
    financial = (
        "PAID" if x < 0.8 else "PARTIALLY_REFUNDED" if x < 0.86 else "REFUNDED" if x < 0.9
        else "PENDING" if x < 0.95 else "AUTHORIZED" if x < 0.98 else "VOIDED"
    )  # fmt: skip
    cancelled = financial == "VOIDED" or (financial == "REFUNDED" and rand() < 0.5)
    y = rand()
    fulfillment = (
        "UNFULFILLED" if cancelled or financial in ("PENDING", "AUTHORIZED")
        else "FULFILLED" if y < 0.65 else "UNFULFILLED" if y < 0.9 else "PARTIALLY_FULFILLED" if y < 0.95 else "IN_PROGRESS"
    )  # fmt: skip
    return financial, cancelled, fulfillment


def _payments(
    d: ShopData, rand: Rand, idx: int, financial: str, total: int, pres: Presentment, created: int, updated: int
) -> tuple[list[dict], list[dict]]:
    """The transactions and refunds that explain ``financial`` for an order of ``total`` cents."""
    created_s = fmt_ts(created)
    updated_s = fmt_ts(updated)
    span = updated - created

    def between() -> str:
        return fmt_ts(created + int(rand() * span)) if span > 0 else created_s

    transactions: list[dict] = []
    refunds: list[dict] = []
    tx_base = TRANSACTION_BASE + idx * 16
    gateway = GATEWAYS[int(rand() * len(GATEWAYS))]

    def tx(k: int, kind: str, status: str, cents: int, at: str) -> dict:
        return {
            "__typename": "OrderTransaction",
            "id": f"gid://shopify/OrderTransaction/{tx_base + k}",
            "kind": kind,
            "status": status,
            "gateway": gateway,
            "createdAt": at,
            "processedAt": at,
            "amountSet": d.bag(cents, pres),
            "test": False,
        }

    if financial == "PENDING":
        transactions.append(tx(0, "SALE", "PENDING", total, created_s))
    elif financial in ("AUTHORIZED", "VOIDED"):
        transactions.append(tx(0, "AUTHORIZATION", "SUCCESS", total, created_s))
        if financial == "VOIDED":
            transactions.append(tx(1, "VOID", "SUCCESS", total, updated_s))
    else:
        if rand() < 0.2:
            transactions.append(tx(0, "AUTHORIZATION", "SUCCESS", total, created_s))
            transactions.append(tx(1, "CAPTURE", "SUCCESS", total, between()))
        else:
            transactions.append(tx(0, "SALE", "SUCCESS", total, created_s))
        if financial in ("PARTIALLY_REFUNDED", "REFUNDED"):
            refunded = total if financial == "REFUNDED" else max(1, total * (10 + int(rand() * 60)) // 100)
            at = between()
            transactions.append(tx(len(transactions), "REFUND", "SUCCESS", refunded, at))
            refunds.append({
                "__typename": "Refund",
                "id": f"gid://shopify/Refund/{REFUND_BASE + idx * 16}",
                "createdAt": at,
                "updatedAt": at,
                "note": NOTES[int(rand() * len(NOTES))] if rand() < 0.4 else None,
                "totalRefundedSet": d.bag(refunded, pres),
            })
    return transactions, refunds


def _addresses(rand: Rand, idx: int, first: str, last: str, region: int) -> tuple[dict | None, dict]:
    """(shippingAddress or None, billingAddress); the billing address is often a copy of the shipping one."""
    ship = mailing_address(rand, idx * 4, first, last, region, rand() < 0.1) if rand() < 0.95 else None
    bill = dict(ship) if ship and rand() < 0.8 else mailing_address(rand, idx * 4 + 1, first, last, region, False)
    bill["id"] = f"gid://shopify/MailingAddress/{ADDRESS_BASE + idx * 4 + 1}?model_name=Address"
    return ship, bill
