"""An order's tax lines, shipping lines, discount applications, refund line items and the
transaction fields the generator does not store, derived from the order record when asked for.

Nothing is stored and nothing is drawn (so the generated data stays what it was): every value is
a function of the stored order (:mod:`shopsync.simulator.order_records`):

- ``taxLines`` of an order (one line of its ``totalTaxSet``, when it has tax) and of a taxable
  line item (its share at the rate of the order's billing city, inclusive or not as the order);
- ``shippingLines``: one line of the order's ``totalShippingPriceSet`` (none when shipping was
  free and no item needs shipping);
- ``discountApplications``: one per discounted line item, in line-item order (``index`` 0, 1, …),
  a code, automatic or manual discount in turn, valued as a percentage (code) or an amount;
- a line item's ``discountAllocations``: none, or for a discounted one the whole discount of its
  units (original less discounted unit price, times the quantity), allocated from its own entry of
  ``discountApplications``;
- a refund's ``refundLineItems`` (every line item for a REFUNDED order, one unit of the first
  for a partial refund), ``transactions`` (the order's REFUND transactions) and ``processedAt``
  (its ``createdAt``);
- a transaction's ``parentTransaction`` (a capture's or void's authorization, a refund's sale or
  capture), ``formattedGateway``, ``manualPaymentGateway``, ``paymentId``, ``authorizationCode``
  and ``errorCode`` (none: every generated transaction went through).

Ids: shipping lines ``SHIPPING_LINE_BASE + order idx * 16 + k``, refund line items
``REFUND_LINE_ITEM_BASE + order idx * 1000 + line item position``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from shopsync.simulator.connections import list_connection
from shopsync.simulator.cursors import numeric_id
from shopsync.simulator.data import ID_BASE
from shopsync.simulator.exec_context import ExecContext
from shopsync.simulator.formats import money_amount, money_bag
from shopsync.simulator.inventory_fields import Special
from shopsync.simulator.plan import PlanField
from shopsync.simulator.vocabulary import ADDRESSES, PRESENTMENT, SHOP_CURRENCY

__all__ = [
    "ORDER_DETAIL_SPECIALS",
    "cents",
    "discount_applications",
    "line_item_discount_allocations",
    "line_item_tax_lines",
    "order_risk",
    "order_tax_lines",
    "presentment",
    "refund_line_items",
    "shipping_lines",
]

SHIPPING_LINE_BASE = 7_100_000_000_000
REFUND_LINE_ITEM_BASE = 5_300_000_000_000
_TAX_TITLES = {"US": "State tax", "CA": "HST"}
_SHIPPING = {499: ("Standard", "STANDARD"), 999: ("Express", "EXPRESS"), 1500: ("Overnight", "OVERNIGHT")}
_DISCOUNT_KINDS = ("DiscountCodeApplication", "AutomaticDiscountApplication", "ManualDiscountApplication")


def cents(bag: dict | None) -> int:
    """The shop-currency amount of a MoneyBag, in cents."""
    return int(Decimal((bag or {}).get("shopMoney", {}).get("amount") or "0") * 100)


def _discounted(item: dict) -> bool:
    """Whether the line item was sold below its price (so it has a discount application)."""
    price = cents(item.get("originalUnitPriceSet"))
    return 0 < price and cents(item.get("discountedUnitPriceSet")) < price


def presentment(order: dict) -> tuple[str, int, int] | None:
    """The order's presentment currency (code and rate, for :func:`money_bag`), or ``None`` in the shop's."""
    code = order.get("presentmentCurrencyCode")
    return next((p for p in PRESENTMENT if p[0] == code), None) if code != SHOP_CURRENCY else None


def _region(order: dict) -> tuple:
    city = (order.get("billingAddress") or {}).get("city")
    return next((a for a in ADDRESSES if a[0] == city), ADDRESSES[0])


def _tax_line(order: dict, amount: int, pres: tuple[str, int, int] | None) -> dict:
    region = _region(order)
    rate = region[7]
    bag = money_bag(amount, pres)
    return {
        "__typename": "TaxLine",
        "title": _TAX_TITLES.get(region[5], "VAT"),
        "rate": rate / 1000,
        "ratePercentage": rate / 10,
        "source": "Shopify",
        "channelLiable": False,
        "priceSet": bag,
        "price": money_amount(amount),
    }


def order_tax_lines(order: dict) -> list[dict]:
    """The order's tax lines: its whole tax at its billing city's rate (pure)."""
    tax = cents(order.get("totalTaxSet"))
    return [_tax_line(order, tax, presentment(order))] if tax > 0 else []


def line_item_tax_lines(order: dict, item: dict) -> list[dict]:
    """A line item's tax lines (pure): its share of the order's tax, none if it is not taxable."""
    if not item.get("taxable"):
        return []
    rate = _region(order)[7]
    line = cents(item.get("discountedUnitPriceSet")) * int(item.get("quantity") or 0)
    tax = line * rate // (1000 + rate) if order.get("taxesIncluded") else line * rate // 1000
    return [_tax_line(order, tax, presentment(order))] if tax > 0 else []


def shipping_lines(order: dict) -> list[dict]:
    """The order's shipping lines (pure)."""
    amount = cents(order.get("totalShippingPriceSet"))
    if amount == 0 and not any(li.get("requiresShipping") for li in order.get("lineItems") or ()):
        return []
    idx = numeric_id(order["id"]) - ID_BASE["Order"]
    title, code = _SHIPPING.get(amount, ("Free shipping", "FREE"))
    bag = order.get("totalShippingPriceSet") or money_bag(0, presentment(order))
    return [{
        "__typename": "ShippingLine",
        "id": f"gid://shopify/ShippingLine/{SHIPPING_LINE_BASE + idx * 16}",
        "title": title,
        "code": code,
        "source": "shopify",
        "carrierIdentifier": None,
        "deliveryCategory": None,
        "phone": None,
        "custom": False,
        "isRemoved": False,
        "shippingRateHandle": f"shopify-{code}-{amount}",
        "originalPriceSet": bag,
        "discountedPriceSet": bag,
        "currentDiscountedPriceSet": bag,
        "taxLines": [],
    }]  # fmt: skip


def discount_applications(order: dict) -> list[dict]:
    """One discount application per discounted line item, in line-item order (pure)."""
    out: list[dict] = []
    pres = presentment(order)
    for item in order.get("lineItems") or ():
        if not _discounted(item):
            continue
        price = cents(item.get("originalUnitPriceSet"))
        paid = cents(item.get("discountedUnitPriceSet"))
        k = len(out)
        kind = _DISCOUNT_KINDS[k % len(_DISCOUNT_KINDS)]
        app: dict[str, Any] = {
            "__typename": kind,
            # DiscountApplication has no id field; this one only numbers the connection's cursors.
            "id": f"gid://shopify/DiscountApplication/{numeric_id(order['id']) * 16 + k}",
            "index": k,
            "allocationMethod": "EACH",
            "targetSelection": "EXPLICIT" if kind == "ManualDiscountApplication" else "ENTITLED",
            "targetType": "LINE_ITEM",
        }
        if kind == "DiscountCodeApplication":
            pct = round(100 * (price - paid) / price, 2)
            app["value"] = {"__typename": "PricingPercentageValue", "percentage": pct}
            app["code"] = f"SAVE{int(pct)}"
        else:
            amount = money_bag(price - paid, pres)["shopMoney"]
            app["value"] = {"__typename": "MoneyV2", **amount}
            app["title"] = "Spring sale" if kind == "AutomaticDiscountApplication" else "Staff discount"
            if kind == "ManualDiscountApplication":
                app["description"] = "Applied at the till"
        out.append(app)
    return out


def line_item_discount_allocations(order: dict, item: dict) -> list[dict]:
    """The discount allocated to line item ``item`` of ``order`` (pure): none if it paid full price,
    else its units' whole discount, from the application :func:`discount_applications` made for it."""
    items = list(order.get("lineItems") or ())
    pos = next((i for i, li in enumerate(items) if li.get("id") == item.get("id")), None)
    if pos is None or not _discounted(item):
        return []
    # The k-th discounted line item has the k-th application.
    app = discount_applications(order)[sum(map(_discounted, items[:pos]))]
    unit_discount = cents(item.get("originalUnitPriceSet")) - cents(item.get("discountedUnitPriceSet"))
    amount = unit_discount * int(item.get("quantity") or 0)
    return [{"__typename": "DiscountAllocation", "allocatedAmountSet": money_bag(amount, presentment(order)), "discountApplication": app}]


#: Shopify's own assessment by the order's index: (risk level, facts as (description, sentiment)).
_RISKS = (
    ("LOW", (("The billing address matches the card's", "POSITIVE"), ("Characteristics of this order resemble past non-fraudulent orders", "POSITIVE"))),
    ("LOW", (("The IP address is in the billing country", "POSITIVE"),)),
    ("MEDIUM", (("The shipping and billing addresses are in different countries", "NEUTRAL"), ("The card was used from 3 locations in 24 hours", "NEGATIVE"))),
    ("LOW", ()),
    ("HIGH", (("The card verification value was incorrect", "NEGATIVE"), ("The order was placed from a high-risk IP address", "NEGATIVE"))),
)  # fmt: skip
_RECOMMENDATION = {"LOW": "ACCEPT", "MEDIUM": "INVESTIGATE", "HIGH": "CANCEL"}
#: A fraud-protection app that also assesses every third order.
_RISK_APP = {"__typename": "App", "id": "gid://shopify/App/1830279", "title": "Fraud Filter"}


def order_risk(order: dict) -> dict:
    """The order's risk summary (pure): Shopify's assessment (provider null), and for every third
    order a fraud app's as well; the recommendation follows the highest level."""
    idx = numeric_id(order["id"]) - ID_BASE["Order"]
    level, facts = _RISKS[idx % len(_RISKS)]
    assessments: list[dict[str, Any]] = [{"__typename": "OrderRiskAssessment", "riskLevel": level, "provider": None,
                    "facts": [{"__typename": "RiskFact", "description": d, "sentiment": s} for d, s in facts]}]  # fmt: skip
    if idx % 3 == 0:
        app_level = "MEDIUM" if level == "LOW" else level
        assessments.append({"__typename": "OrderRiskAssessment", "riskLevel": app_level, "provider": _RISK_APP,
                            "facts": [{"__typename": "RiskFact", "description": "Checked by Fraud Filter", "sentiment": "NEUTRAL"}]})  # fmt: skip
    worst = max((a["riskLevel"] for a in assessments), key=("LOW", "MEDIUM", "HIGH").index)
    return {"__typename": "OrderRiskSummary", "recommendation": _RECOMMENDATION[worst], "assessments": assessments}


def refund_line_items(order: dict, refund: dict) -> list[dict]:
    """The refund's line items (pure): all of a REFUNDED order's, else one unit of the first."""
    items = list(order.get("lineItems") or ())
    full = order.get("displayFinancialStatus") == "REFUNDED"
    if not full:
        items = items[:1]
    idx = numeric_id(order["id"]) - ID_BASE["Order"]
    pres = presentment(order)
    restock = "CANCEL" if order.get("cancelledAt") else "RETURN" if full else "NO_RESTOCK"
    out = []
    for pos, item in enumerate(items):
        qty = int(item.get("quantity") or 0) if full else 1
        unit = cents(item.get("discountedUnitPriceSet"))
        taxes = line_item_tax_lines(order, item)
        tax = sum(cents(t["priceSet"]) for t in taxes) * qty // max(1, int(item.get("quantity") or 1))
        out.append({
            "__typename": "RefundLineItem",
            "id": f"gid://shopify/RefundLineItem/{REFUND_LINE_ITEM_BASE + idx * 1000 + pos}",
            "quantity": qty,
            "restockType": restock,
            "restocked": restock != "NO_RESTOCK",
            "lineItem": item,
            "location": None,
            "priceSet": money_bag(unit, pres),
            "subtotalSet": money_bag(unit * qty, pres),
            "totalTaxSet": money_bag(tax, pres),
        })  # fmt: skip
    return out


def _order_of(ctx: ExecContext, gid: str) -> dict | None:
    """The order holding the child object ``gid`` (a line item, transaction or refund)."""
    loc = ctx.store.data.locate(gid)
    if loc is None or loc[0] != "Order":
        return None
    return ctx.store.get(f"gid://shopify/Order/{ID_BASE['Order'] + loc[1]}")


def _parent_transaction(order: dict, tx: dict) -> dict | None:
    kinds = {"CAPTURE": ("AUTHORIZATION",), "VOID": ("AUTHORIZATION",), "REFUND": ("CAPTURE", "SALE")}.get(tx["kind"])
    if not kinds:
        return None
    earlier = [t for t in order.get("transactions") or () if t["kind"] in kinds and numeric_id(t["id"]) < numeric_id(tx["id"])]
    return earlier[-1] if earlier else None


def _order_tax_lines(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> Any:
    return order_tax_lines(rec)


def _line_item_tax_lines(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> Any:
    order = _order_of(ctx, rec["id"])
    found = line_item_tax_lines(order, rec) if order is not None else []
    first = args.get("first")
    return found[:first] if first is not None else found


def _line_item_discount_allocations(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> Any:
    order = _order_of(ctx, rec["id"])
    return line_item_discount_allocations(order, rec) if order is not None else []


def _order_risk(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> Any:
    return order_risk(rec)


def _shipping_lines(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> Any:
    return list_connection(ctx, rec, f, shipping_lines(rec))


def _discount_applications(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> Any:
    return list_connection(ctx, rec, f, discount_applications(rec))


def _refund_line_items(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> Any:
    order = _order_of(ctx, rec["id"])
    return list_connection(ctx, rec, f, refund_line_items(order, rec) if order is not None else [])


def _refund_transactions(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> Any:
    order = _order_of(ctx, rec["id"])
    found = [t for t in (order or {}).get("transactions") or () if t["kind"] == "REFUND"]
    return list_connection(ctx, rec, f, found)


def _refund_processed_at(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> Any:
    return rec["createdAt"]


def _tx_parent(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> Any:
    order = _order_of(ctx, rec["id"])
    return _parent_transaction(order, rec) if order is not None else None


def _tx_formatted_gateway(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> Any:
    return rec["gateway"].replace("_", " ").title()


def _tx_manual(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> Any:
    return rec["gateway"] == "manual"


def _tx_payment_id(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> Any:
    return f"c{numeric_id(rec['id'])}.1"


def _tx_authorization_code(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> Any:
    ok = rec["kind"] in ("AUTHORIZATION", "SALE") and rec["status"] == "SUCCESS"
    return f"{numeric_id(rec['id']) % 1_000_000:06d}" if ok else None


def _tx_error_code(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> Any:
    return None


#: ``(type, field)`` → special; the executor routes those fields here.
ORDER_DETAIL_SPECIALS: dict[tuple[str, str], Special] = {
    ("Order", "taxLines"): _order_tax_lines,
    ("LineItem", "taxLines"): _line_item_tax_lines,
    ("LineItem", "discountAllocations"): _line_item_discount_allocations,
    ("Order", "shippingLines"): _shipping_lines,
    ("Order", "risk"): _order_risk,
    ("Order", "discountApplications"): _discount_applications,
    ("Refund", "refundLineItems"): _refund_line_items,
    ("Refund", "transactions"): _refund_transactions,
    ("Refund", "processedAt"): _refund_processed_at,
    ("OrderTransaction", "parentTransaction"): _tx_parent,
    ("OrderTransaction", "formattedGateway"): _tx_formatted_gateway,
    ("OrderTransaction", "manualPaymentGateway"): _tx_manual,
    ("OrderTransaction", "paymentId"): _tx_payment_id,
    ("OrderTransaction", "authorizationCode"): _tx_authorization_code,
    ("OrderTransaction", "errorCode"): _tx_error_code,
}
