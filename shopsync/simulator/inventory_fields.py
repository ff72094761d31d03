"""Inventory fields computed rather than read from records ("specials").

Levels are stored as one table indexed by ``item × location``; ``Location.inventoryLevels``,
``InventoryItem.inventoryLevels``, ``InventoryItem.inventoryLevel``, ``Location.inventoryLevel``
and ``InventoryLevel.quantities`` are answered from it. Each special is called as
``special(ctx, record, args, field, path)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shopsync.simulator.connections import search_query, store_connection
from shopsync.simulator.cursors import numeric_id
from shopsync.simulator.data import ID_BASE, gid_type
from shopsync.simulator.exec_context import ExecContext, ExecutionFieldError
from shopsync.simulator.plan import PlanField

__all__ = ["INVENTORY_QUANTITY_NAMES", "SPECIALS", "Special"]

INVENTORY_QUANTITY_NAMES = (
    "available", "committed", "damaged", "incoming", "on_hand", "quality_control", "reserved", "safety_stock",
)  # fmt: skip

Special = Callable[[ExecContext, dict, dict, PlanField, tuple], Any]


def _location_levels(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> Any:
    n_loc = max(1, ctx.store.data.count("Location"))
    loc_idx = numeric_id(rec["id"]) - ID_BASE["Location"]
    include_inactive = bool(args.get("includeInactive"))
    q = search_query(args.get("query"), "inventoryLevels")
    view = "index" if q is not None else "live"

    def where(idx: int, level: dict) -> bool:
        return idx % n_loc == loc_idx and (include_inactive or level["isActive"])

    if ctx.mode != "page":
        return [r for _k, _i, r in ctx.store.scan("InventoryLevel", query=q, view=view, where=where)]
    return store_connection(
        ctx, "InventoryLevel", args, sort="id", q=q, view=view, what="Location.inventoryLevels", where=where
    )


def _item_levels(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> Any:
    n_loc = ctx.store.data.count("Location")
    item_idx = numeric_id(rec["id"]) - ID_BASE["InventoryItem"]
    include_inactive = bool(args.get("includeInactive"))
    q = search_query(args.get("query"), "inventoryLevels")
    view = "index" if q is not None else "live"
    lo, hi = item_idx * n_loc, item_idx * n_loc + n_loc - 1

    def where(_idx: int, level: dict) -> bool:
        return include_inactive or level["isActive"]

    if ctx.mode != "page":
        return [
            r
            for _k, _i, r in ctx.store.scan(
                "InventoryLevel", query=q, view=view, start_after=lo - 1, stop_before=hi + 1, where=where
            )
        ]
    return store_connection(
        ctx, "InventoryLevel", args, sort="id", q=q, view=view, what="InventoryItem.inventoryLevels",
        where=where, bounds=(lo, hi),
    )  # fmt: skip


def _quantities(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> list[dict]:
    names = args.get("names") or []
    q = rec["_quantities"]
    at = rec["_quantities_at"]
    level_num = numeric_id(rec["id"])
    out = []
    for name in names:
        if name not in q:
            raise ExecutionFieldError(
                f"'{name}' is not a valid inventory quantity name (valid: {', '.join(INVENTORY_QUANTITY_NAMES)})",
                code="BAD_REQUEST",
            )
        out.append({
            "id": f"gid://shopify/InventoryQuantity/{level_num}?name={name}",
            "name": name,
            "quantity": q[name],
            "updatedAt": at[name],
        })
    return out


def _item_level(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> dict | None:
    loc = args.get("locationId")
    if gid_type(str(loc)) != "Location":
        return None
    return _level(ctx, numeric_id(rec["id"]) - ID_BASE["InventoryItem"], numeric_id(str(loc)) - ID_BASE["Location"])


def _location_level(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> dict | None:
    item = args.get("inventoryItemId")
    if gid_type(str(item)) != "InventoryItem":
        return None
    return _level(ctx, numeric_id(str(item)) - ID_BASE["InventoryItem"], numeric_id(rec["id"]) - ID_BASE["Location"])


def _level(ctx: ExecContext, item_idx: int, loc_idx: int) -> dict | None:
    data = ctx.store.data
    if not (0 <= loc_idx < data.count("Location")) or item_idx < 0:
        return None
    return ctx.store.tables["InventoryLevel"].record(data.level_idx(item_idx, loc_idx))


#: ``(type, field)`` → special; the compiler routes those fields here.
SPECIALS: dict[tuple[str, str], Special] = {
    ("Location", "inventoryLevels"): _location_levels,
    ("InventoryItem", "inventoryLevels"): _item_levels,
    ("InventoryLevel", "quantities"): _quantities,
    ("InventoryItem", "inventoryLevel"): _item_level,
    ("Location", "inventoryLevel"): _location_level,
}
