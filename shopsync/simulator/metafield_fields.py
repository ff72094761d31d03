"""``<Owner>.metafields`` (shop, product, variant, collection, customer, order): pages over the
owner's range of the Metafield table (:mod:`shopsync.simulator.metafield_records`), filtered by
``namespace``/``keys`` when given."""

from __future__ import annotations

from typing import Any

from shopsync.simulator.connections import store_connection
from shopsync.simulator.cursors import numeric_id
from shopsync.simulator.data import ID_BASE
from shopsync.simulator.exec_context import ExecContext
from shopsync.simulator.ids import VARIANT_BASE
from shopsync.simulator.inventory_fields import Special
from shopsync.simulator.metafield_records import OWNERS, owner_range
from shopsync.simulator.plan import PlanField

__all__ = ["METAFIELD_SPECIALS"]


def _owner_idx(ctx: ExecContext, owner_type: str, gid: str) -> int:
    if owner_type == "Shop":
        return 0
    num = numeric_id(gid)
    if owner_type == "ProductVariant":  # variant v of product p is inventory item offsets[p] + v
        p, v = divmod(num - VARIANT_BASE, 64)
        offsets = ctx.store.data.variant_offsets
        return offsets[p] + v if 0 <= p < len(offsets) - 1 else -1
    return num - ID_BASE[owner_type]


def _owner_metafields(owner_type: str) -> Special:
    def resolve(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> Any:
        lo, hi = owner_range(ctx.store.data, owner_type, _owner_idx(ctx, owner_type, rec["id"]))
        namespace, keys = args.get("namespace"), args.get("keys")

        def where(_idx: int, mf: dict) -> bool:
            return (namespace is None or mf["namespace"] == namespace) and (
                not keys or f"{mf['namespace']}.{mf['key']}" in keys
            )

        if ctx.mode != "page":
            if hi < lo:
                return []
            return [
                r for _k, _i, r in ctx.store.scan("Metafield", start_after=lo - 1, stop_before=hi + 1, where=where)
            ]
        if hi < lo:  # no metafields: an empty range (bounds below every id)
            lo, hi = -2, -2
        return store_connection(
            ctx, "Metafield", args, sort="id", q=None, view="live", what=f"{owner_type}.metafields",
            where=where, bounds=(lo, hi),
        )  # fmt: skip

    return resolve


#: ``(type, field)`` → special; the executor routes those fields here.
METAFIELD_SPECIALS: dict[tuple[str, str], Special] = {(t, "metafields"): _owner_metafields(t) for t in OWNERS}
