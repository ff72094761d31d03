"""``Order.fulfillments`` and ``Order.returns`` with their line items, derived from the order
record when asked for.

Nothing is stored and nothing is drawn: a FULFILLED order has one fulfillment (PARTIALLY_FULFILLED
one for part of its items), stamped with the order's ``updatedAt`` (the fulfilment is what last
changed the order), so an update that fulfils an order shows its fulfillment at once; an order
with refunds has one return per refund, closed when the refund was made.

- A fulfillment's ``fulfillmentLineItems``: every line item with its whole quantity (FULFILLED),
  or the line items in order until half the units (at least one) are filled (PARTIALLY_FULFILLED):
  their quantities add up to the fulfillment's ``totalQuantity``.
- A return's ``returnLineItems``: one per line item of its refund
  (:func:`~shopsync.simulator.order_detail_fields.refund_line_items`), processed and refunded in
  full, with a reason; ``totalQuantity`` is their sum. Each names the fulfillment line item of its
  line item (the id the order's fulfillment would give it; the simulator does not tie refunds to
  fulfilment, so an unfulfilled order's return names one its fulfillments do not list).

Ids: fulfillments ``FULFILLMENT_BASE + order idx * 16 + k``, returns ``RETURN_BASE + order idx *
16 + k`` (``node(id:)`` finds both, for the drains of their line items), fulfillment line items
``FULFILLMENT_LINE_ITEM_BASE + order idx * 1000 + line item position``, return line items
``RETURN_LINE_ITEM_BASE + (order idx * 16 + k) * 1000 + position``.
"""

from __future__ import annotations

from typing import Any

from shopsync.simulator.connections import list_connection
from shopsync.simulator.cursors import numeric_id
from shopsync.simulator.data import ID_BASE
from shopsync.simulator.exec_context import ExecContext, Resolver
from shopsync.simulator.formats import money_bag
from shopsync.simulator.ids import Ref
from shopsync.simulator.inventory_fields import Special
from shopsync.simulator.order_detail_fields import cents, presentment, refund_line_items
from shopsync.simulator.plan import PlanField

__all__ = [
    "FULFILMENT_NODES",
    "FULFILMENT_SPECIALS",
    "fulfillment_line_items",
    "order_fulfillments",
    "order_returns",
    "return_line_items",
]

FULFILLMENT_BASE = 4_700_000_000_000
RETURN_BASE = 1_900_000_000_000
FULFILLMENT_LINE_ITEM_BASE = 4_800_000_000_000
RETURN_LINE_ITEM_BASE = 2_000_000_000_000
#: Return reasons, in turn by return line item: (ReturnReasonDefinition id, handle, name).
_REASONS = ((101, "size-too-small", "Size too small"), (102, "defective", "Item is defective"),
            (103, "not-as-described", "Not as described"), (104, "changed-mind", "Changed mind"))  # fmt: skip
_CARRIERS = (("UPS", "https://www.ups.com/track?tracknum="), ("DHL Express", "https://www.dhl.com/track?id="),
             ("Israel Post", "https://israelpost.co.il/track?id="), ("Canada Post", "https://www.canadapost.ca/track?id="))  # fmt: skip


def order_fulfillments(rec: dict, n_locations: int) -> list[dict]:
    """The fulfillments of order record ``rec`` (pure)."""
    status = rec["displayFulfillmentStatus"]
    if status not in ("FULFILLED", "PARTIALLY_FULFILLED") or rec.get("cancelledAt"):
        return []
    idx = numeric_id(rec["id"]) - ID_BASE["Order"]
    company, url = _CARRIERS[idx % len(_CARRIERS)]
    number = f"1Z{idx:010d}"
    delivered = idx % 3 != 0
    return [{
        "__typename": "Fulfillment",
        "id": f"gid://shopify/Fulfillment/{FULFILLMENT_BASE + idx * 16}",
        "name": f"{rec['name']}-F1",
        "status": "SUCCESS",
        "displayStatus": "DELIVERED" if delivered else "IN_TRANSIT",
        "createdAt": rec["updatedAt"],
        "updatedAt": rec["updatedAt"],
        "inTransitAt": rec["updatedAt"],
        "deliveredAt": rec["updatedAt"] if delivered else None,
        "estimatedDeliveryAt": None,
        "totalQuantity": _fulfilled_units(rec),
        "requiresShipping": True,
        "location": Ref(f"gid://shopify/Location/{ID_BASE['Location'] + idx % max(1, n_locations)}",
                        ("Location", idx % max(1, n_locations), None, 0)),
        "trackingInfo": [{"company": company, "number": number, "url": url + number}],
    }]  # fmt: skip


def _fulfilled_units(rec: dict) -> int:
    """How many units the order's fulfillment holds: all of them, or half (at least one)."""
    quantity = int(rec["subtotalLineItemsQuantity"])
    return quantity if rec["displayFulfillmentStatus"] == "FULFILLED" else max(1, quantity // 2)


def _order_idx(rec: dict) -> int:
    return numeric_id(rec["id"]) - ID_BASE["Order"]


def _fulfillment_line_item(order: dict, pos: int, quantity: int) -> dict:
    """The fulfillment line item of the order's line item at ``pos``, for ``quantity`` units."""
    item = order["lineItems"][pos]
    pres = presentment(order)
    return {
        "__typename": "FulfillmentLineItem",
        "id": f"gid://shopify/FulfillmentLineItem/{FULFILLMENT_LINE_ITEM_BASE + _order_idx(order) * 1000 + pos}",
        "quantity": quantity,
        "lineItem": item,
        "originalTotalSet": money_bag(cents(item.get("originalUnitPriceSet")) * quantity, pres),
        "discountedTotalSet": money_bag(cents(item.get("discountedUnitPriceSet")) * quantity, pres),
    }


def fulfillment_line_items(order: dict) -> list[dict]:
    """The line items of the order's fulfillment (pure), in line-item order, filled up to its
    ``totalQuantity``; none for an order without one."""
    if not order_fulfillments(order, 1):
        return []
    left = _fulfilled_units(order)
    out = []
    for pos, item in enumerate(order.get("lineItems") or ()):
        take = min(left, int(item.get("quantity") or 0))
        if take <= 0:
            continue
        out.append(_fulfillment_line_item(order, pos, take))
        left -= take
    return out


def return_line_items(order: dict, k: int) -> list[dict]:
    """The line items of the order's ``k``-th return (pure): its refund's, processed and refunded."""
    refunds = order.get("refunds") or ()
    if not 0 <= k < len(refunds):
        return []
    positions = {li["id"]: pos for pos, li in enumerate(order.get("lineItems") or ())}
    base = RETURN_LINE_ITEM_BASE + (_order_idx(order) * 16 + k) * 1000
    out = []
    for i, refunded in enumerate(refund_line_items(order, refunds[k])):
        reason_id, handle, name = _REASONS[(base + i) % len(_REASONS)]
        qty = refunded["quantity"]
        out.append({
            "__typename": "ReturnLineItem",
            "id": f"gid://shopify/ReturnLineItem/{base + i}",
            "quantity": qty,
            "processedQuantity": qty,
            "unprocessedQuantity": 0,
            "processableQuantity": 0,
            "refundableQuantity": 0,
            "refundedQuantity": qty,
            "customerNote": None,
            "returnReasonNote": "",
            "returnReasonDefinition": {"__typename": "ReturnReasonDefinition", "id": f"gid://shopify/ReturnReasonDefinition/{reason_id}",
                                       "handle": handle, "name": name, "deleted": False},
            "fulfillmentLineItem": _fulfillment_line_item(order, positions[refunded["lineItem"]["id"]], qty),
        })  # fmt: skip
    return out


def order_returns(rec: dict) -> list[dict]:
    """The returns of order record ``rec``: one per refund (pure)."""
    idx = _order_idx(rec)
    return [
        {
            "__typename": "Return",
            "id": f"gid://shopify/Return/{RETURN_BASE + idx * 16 + k}",
            "name": f"{rec['name']}-R{k + 1}",
            "status": "CLOSED",
            "createdAt": refund["createdAt"],
            "requestApprovedAt": refund["createdAt"],
            "closedAt": refund["createdAt"],
            "totalQuantity": sum(li["quantity"] for li in return_line_items(rec, k)),
        }
        for k, refund in enumerate(rec.get("refunds") or ())
    ]


def _owner(ctx: ExecContext, gid: str, base: int) -> tuple[dict, int] | None:
    """The order holding the fulfillment or return ``gid`` (numbered from ``base``) and its k."""
    offset = numeric_id(gid) - base
    if offset < 0:
        return None
    order = ctx.store.get(f"gid://shopify/Order/{ID_BASE['Order'] + offset // 16}")
    return (order, offset % 16) if order is not None else None


def _fulfillments(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> Any:
    found = order_fulfillments(rec, ctx.store.data.count("Location"))
    first = args.get("first")
    return found[:first] if first is not None else found


def _returns(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> Any:
    return list_connection(ctx, rec, f, order_returns(rec))


def _fulfillment_line_items(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> Any:
    owner = _owner(ctx, rec["id"], FULFILLMENT_BASE)
    return list_connection(ctx, rec, f, fulfillment_line_items(owner[0]) if owner is not None else [])


def _return_line_items(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> Any:
    owner = _owner(ctx, rec["id"], RETURN_BASE)
    return list_connection(ctx, rec, f, return_line_items(*owner) if owner is not None else [])


def _fulfillment_node(args: dict[str, Any], ctx: ExecContext) -> dict | None:
    owner = _owner(ctx, args["id"], FULFILLMENT_BASE)
    found = order_fulfillments(owner[0], ctx.store.data.count("Location")) if owner is not None else []
    return found[owner[1]] if owner is not None and owner[1] < len(found) else None


def _return_node(args: dict[str, Any], ctx: ExecContext) -> dict | None:
    owner = _owner(ctx, args["id"], RETURN_BASE)
    found = order_returns(owner[0]) if owner is not None else []
    return found[owner[1]] if owner is not None and owner[1] < len(found) else None


#: ``(type, field)`` → special; the executor routes those fields here.
FULFILMENT_SPECIALS: dict[tuple[str, str], Special] = {
    ("Order", "fulfillments"): _fulfillments,
    ("Order", "returns"): _returns,
    ("Fulfillment", "fulfillmentLineItems"): _fulfillment_line_items,
    ("Return", "returnLineItems"): _return_line_items,
}
#: ``node(id:)`` for the derived objects whose connections are drained under their ids.
FULFILMENT_NODES: dict[str, Resolver] = {"Fulfillment": _fulfillment_node, "Return": _return_node}
