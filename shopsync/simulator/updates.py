"""Changes to generated records: realistic edits, the events of deletions, one sample per type.

The store applies :func:`apply_update` to a copy of a record with its own seeded stream; the base
data is never changed (see :mod:`shopsync.simulator.store`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shopsync.simulator.formats import fmt_ts, money_amount
from shopsync.simulator.ids import ID_BASE, TOP_TYPES
from shopsync.simulator.vocabulary import NOTES, TAGS

if TYPE_CHECKING:
    from shopsync.simulator.data import ShopData

__all__ = ["apply_update", "destroy_event", "sample_records"]


def apply_update(type_name: str, record: dict, rand: Callable[[], float], at: int) -> dict:
    """A changed copy of ``record`` (never mutated): updatedAt := ``at`` plus a few realistic edits."""
    rec = copy.deepcopy(record)
    ts = fmt_ts(at)
    rev = rec.get("_rev", 0) + 1
    rec["_rev"] = rev
    rec["updatedAt"] = ts
    x = rand()
    if type_name == "Order":
        if x < 0.35:
            rec["tags"] = sorted(set(rec["tags"]) | {TAGS[int(rand() * len(TAGS))]})
        elif x < 0.6:
            rec["note"] = NOTES[int(rand() * len(NOTES))] + f" (#{rev})"
        elif rec["displayFulfillmentStatus"] != "FULFILLED" and rec["cancelledAt"] is None:
            rec["displayFulfillmentStatus"] = "FULFILLED"
            if rec["displayFinancialStatus"] == "PAID":
                rec["closedAt"] = ts
                rec["closed"] = True
        else:
            rec["note"] = None
    elif type_name == "Product":
        if x < 0.4 and rec["variants"]:
            v = rec["variants"][int(rand() * len(rec["variants"]))]
            cents = int(round(float(v["price"]) * 100)) + 100 * (1 + int(rand() * 5))
            v["price"] = money_amount(cents)
            v["updatedAt"] = ts
        elif x < 0.7:
            rec["tags"] = sorted(set(rec["tags"]) ^ {TAGS[int(rand() * len(TAGS))]})
        else:
            rec["status"] = "ACTIVE" if rec["status"] != "ACTIVE" else "ARCHIVED"
    elif type_name == "Customer":
        if x < 0.5:
            rec["note"] = NOTES[int(rand() * len(NOTES))] + f" (#{rev})"
        else:
            rec["tags"] = sorted(set(rec["tags"]) ^ {TAGS[int(rand() * len(TAGS))]})
    elif type_name == "InventoryLevel":
        q = rec["_quantities"]
        at_map = rec["_quantities_at"]
        moved = 1 + int(rand() * 3)
        if x < 0.7:  # a sale commits stock
            q["available"] -= moved
            q["committed"] += moved
            at_map["available"] = at_map["committed"] = ts
        else:  # a restock
            q["available"] += moved * 10
            at_map["available"] = ts
        q["on_hand"] = q["available"] + q["committed"] + q["reserved"]
        at_map["on_hand"] = ts
    elif type_name == "InventoryItem":
        rec["tracked"] = not rec["tracked"]
    elif type_name == "Location":
        if rec["isActive"]:
            rec["fulfillsOnlineOrders"] = not rec["fulfillsOnlineOrders"]
    elif type_name == "Collection":
        rec["title"] = rec["title"].split(" (")[0] + f" ({rev})"
    elif type_name == "DiscountNode":  # the node keeps its timestamps in its discount
        del rec["updatedAt"]
        rec["discount"]["updatedAt"] = ts
        rec["discount"]["asyncUsageCount"] += 1 + int(x * 5)
    return rec


def sample_records(data: ShopData) -> dict[str, dict]:
    """One generated record per type (used to check :data:`~shopsync.simulator.modelled_fields.MODELLED_FIELDS` against the generator)."""
    out: dict[str, Any] = {}
    for t in TOP_TYPES:
        if t != "BasicEvent" and data.count(t):
            out[t] = data.generate(t, 0)
    return out


def destroy_event(idx: int, *, subject_type: str, subject_id: str, subject_name: str, at: int) -> dict:
    """A ``destroy`` BasicEvent (number ``idx``) for a deleted record."""
    noun = subject_type.capitalize()
    return {
        "__typename": "BasicEvent",
        "id": f"gid://shopify/BasicEvent/{ID_BASE['BasicEvent'] + idx}",
        "action": "destroy",
        "subjectType": subject_type,
        "subjectId": subject_id,
        "createdAt": fmt_ts(at),
        "message": f"{noun} {subject_name} was deleted.",
        "appTitle": None,
        "attributeToApp": False,
        "attributeToUser": True,
        "criticalAlert": False,
        "hasAdditionalContent": False,
        "arguments": [subject_name],
        "additionalContent": None,
        "additionalData": None,
        "secondaryMessage": None,
        "subject": None,
    }
