"""``Order.fulfillments`` and ``Order.returns``, derived from the order record when asked for.

Nothing is stored and nothing is drawn: a FULFILLED order has one fulfillment (PARTIALLY_FULFILLED
one for part of its items), stamped with the order's ``updatedAt`` (the fulfilment is what last
changed the order), so an update that fulfils an order shows its fulfillment at once; an order
with refunds has one return per refund, closed when the refund was made. Fulfillment ids are
``FULFILLMENT_BASE + order idx * 16 + k``, returns ``RETURN_BASE + …``.
"""

from __future__ import annotations

from typing import Any

from shopsync.simulator.connections import list_connection
from shopsync.simulator.cursors import numeric_id
from shopsync.simulator.data import ID_BASE
from shopsync.simulator.exec_context import ExecContext
from shopsync.simulator.ids import Ref
from shopsync.simulator.inventory_fields import Special
from shopsync.simulator.plan import PlanField

__all__ = ["FULFILMENT_SPECIALS", "order_fulfillments", "order_returns"]

FULFILLMENT_BASE = 4_700_000_000_000
RETURN_BASE = 1_900_000_000_000
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
    quantity = rec["subtotalLineItemsQuantity"]
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
        "totalQuantity": quantity if status == "FULFILLED" else max(1, quantity // 2),
        "requiresShipping": True,
        "location": Ref(f"gid://shopify/Location/{ID_BASE['Location'] + idx % max(1, n_locations)}",
                        ("Location", idx % max(1, n_locations), None, 0)),
        "trackingInfo": [{"company": company, "number": number, "url": url + number}],
    }]  # fmt: skip


def order_returns(rec: dict) -> list[dict]:
    """The returns of order record ``rec``: one per refund (pure)."""
    idx = numeric_id(rec["id"]) - ID_BASE["Order"]
    return [
        {
            "__typename": "Return",
            "id": f"gid://shopify/Return/{RETURN_BASE + idx * 16 + k}",
            "name": f"{rec['name']}-R{k + 1}",
            "status": "CLOSED",
            "createdAt": refund["createdAt"],
            "requestApprovedAt": refund["createdAt"],
            "closedAt": refund["createdAt"],
            "totalQuantity": 1,
        }
        for k, refund in enumerate(rec.get("refunds") or ())
    ]


def _fulfillments(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> Any:
    found = order_fulfillments(rec, ctx.store.data.count("Location"))
    first = args.get("first")
    return found[:first] if first is not None else found


def _returns(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> Any:
    return list_connection(ctx, rec, f, order_returns(rec))


#: ``(type, field)`` → special; the executor routes those fields here.
FULFILMENT_SPECIALS: dict[tuple[str, str], Special] = {("Order", "fulfillments"): _fulfillments, ("Order", "returns"): _returns}
