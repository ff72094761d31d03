"""The connections of ``shopifyPaymentsAccount`` ("specials", like :mod:`~shopsync.simulator.inventory_fields`).

``ShopifyPaymentsAccount.balanceTransactions``, ``.payouts`` and ``.disputes`` list the tables of
:mod:`shopsync.simulator.finance_records` by id (the only order they are read in here); their
``query:`` accepts ``id`` ranges only, which is all the simulator models of their search (none of
them has an ``updated_at`` filter on Shopify). Each special is called as
``special(ctx, record, args, field, path)``.
"""

from __future__ import annotations

from typing import Any

from shopsync.simulator.connections import search_query, store_connection
from shopsync.simulator.exec_context import ExecContext, ExecutionFieldError
from shopsync.simulator.finance_records import PAYMENTS_TYPES
from shopsync.simulator.inventory_fields import Special
from shopsync.simulator.plan import PlanField

__all__ = ["PAYMENTS_SPECIALS", "PAYMENTS_SORTS"]

#: Sort keys modelled per connection (all list by id).
PAYMENTS_SORTS: dict[str, frozenset[str | None]] = {
    "balanceTransactions": frozenset({None, "ID"}),
    "payouts": frozenset({None, "ID"}),
    "disputes": frozenset({None}),
}


def _account_connection(field_name: str) -> Special:
    type_name = PAYMENTS_TYPES[field_name]
    what = f"ShopifyPaymentsAccount.{field_name}"

    def resolve(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> Any:
        if args.get("sortKey") not in PAYMENTS_SORTS[field_name]:
            raise ExecutionFieldError(
                f"sortKey {args.get('sortKey')} of '{what}' is not modelled by the shopsync simulator", code="NOT_MODELLED"
            )
        q = search_query(args.get("query"), field_name)
        if ctx.mode != "page":
            return [r for _k, _i, r in ctx.store.scan(type_name, query=q, view="live")]
        return store_connection(ctx, type_name, args, sort="id", q=q, view="live" if q is None else "index", what=what)

    return resolve


#: ``(type, field)`` → special; the executor routes those fields here.
PAYMENTS_SPECIALS: dict[tuple[str, str], Special] = {
    ("ShopifyPaymentsAccount", name): _account_connection(name) for name in PAYMENTS_TYPES
}
