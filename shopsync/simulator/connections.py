"""Pages of connections: child lists held by a record, store-backed listings, small in-memory sorts.

Root listings with a ``query:`` filter or sorted by ``UPDATED_AT`` read the store's lagging
*index view* (see :mod:`shopsync.simulator.store`); the caller chooses the view. Nested
connections over child lists (``Order.lineItems``, ``Product.variants``) have their own cursors,
so a client drains a 400-line-item order through ``node(id:)`` with ``lineItems(after:)``.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping
from itertools import islice
from typing import Any

from shopsync.simulator.compiler import field_args
from shopsync.simulator.cursors import (
    connection_page,
    decode_cursor,
    encode_cursor,
    list_position,
    numeric_id,
    page_size,
    window,
)
from shopsync.simulator.data import fmt_ts
from shopsync.simulator.exec_context import ExecContext, ExecutionFieldError, Where
from shopsync.simulator.plan import PlanField
from shopsync.simulator.search import CONNECTION_FIELDS, SearchQuery, parse_search
from shopsync.simulator.store import ShopStore
from shopsync.timeutil import parse_ts

__all__ = ["LIST_SORTS", "MEM_SORT_LIMIT", "list_connection", "mem_connection", "search_query", "store_connection"]

#: Child-list connections (records hold the full list) and the sort keys they model.
LIST_SORTS = {None, "POSITION", "ID", "RELEVANCE"}
#: The page-size cap for in-memory sorts (sorting by a non-indexed field of a small table).
MEM_SORT_LIMIT = 10_000


def search_query(text: Any, connection: str) -> SearchQuery | None:
    """The parsed ``query:`` argument of ``connection`` (``None`` when absent or blank)."""
    if text is None or not str(text).strip():
        return None
    return parse_search(str(text), allowed=CONNECTION_FIELDS[connection], connection=connection)


def list_connection(ctx: ExecContext, rec: dict, f: PlanField, items: list) -> Any:
    """A connection over a child list held by the record (line items, variants)."""
    args = field_args(ctx, f)
    sort_key = args.get("sortKey")
    if sort_key not in LIST_SORTS:
        raise ExecutionFieldError(
            f"sortKey {sort_key} of '{f.parent_type}.{f.name}' is not modelled by the shopsync simulator",
            code="NOT_MODELLED",
        )
    if ctx.mode != "page":
        return items
    first, last = page_size(args, f"{f.parent_type}.{f.name}")
    n = len(items)
    desc = bool(args.get("reverse"))
    lo, hi = 0, n
    after, before = args.get("after"), args.get("before")
    if after is not None:
        pos = list_position(after)
        if desc:
            hi = min(hi, max(0, pos))
        else:
            lo = max(lo, pos + 1)
    if before is not None:
        pos = list_position(before)
        if desc:
            lo = max(lo, pos + 1)
        else:
            hi = min(hi, max(0, pos))
    lo = min(lo, n)
    hi = max(hi, lo)
    order, has_next, has_prev = window(n, lo, hi, desc, first, last)
    edges: list[tuple[str | None, dict]]
    if f.edge_cursors:
        edges = [(encode_cursor(numeric_id(items[i]["id"]), i), items[i]) for i in order]
    else:  # only pageInfo's start and end cursors can be asked for: skip encoding the rest
        last_pos = len(order) - 1
        edges = [
            (encode_cursor(numeric_id(items[i]["id"]), i) if j == 0 or j == last_pos else None, items[i])
            for j, i in enumerate(order)
        ]
    return connection_page(edges, has_next, has_prev)


def store_connection(
    ctx: ExecContext,
    type_name: str,
    args: Mapping[str, Any],
    *,
    sort: str,
    q: SearchQuery | None,
    view: str,
    what: str,
    where: Where | None = None,
    bounds: tuple[int, int] | None = None,
) -> dict:
    """One page of a store-backed listing (roots, Location.inventoryLevels)."""
    first, last = page_size(args, what)
    store = ctx.store
    desc = bool(args.get("reverse"))
    after = _store_key(store, type_name, sort, args.get("after"))
    before = _store_key(store, type_name, sort, args.get("before"))
    if bounds is not None:  # a sub-range of ids, e.g. one item's levels
        lo, hi = bounds
        if desc:
            after = hi + 1 if after is None else min(after, hi + 1)
            before = lo - 1 if before is None else max(before, lo - 1)
        else:
            after = lo - 1 if after is None else max(after, lo - 1)
            before = hi + 1 if before is None else min(before, hi + 1)

    def scan(reverse: bool, start: int | None, stop: int | None) -> Iterator[tuple[int, int, dict]]:
        return store.scan(
            type_name, sort=sort, descending=reverse, query=q, view=view, start_after=start, stop_before=stop, where=where
        )

    def exists_beyond(reverse: bool, edge: int | None) -> bool:
        # Any match at or beyond ``edge`` (inclusive) walking in direction ``reverse``?
        if edge is None:
            return False
        start = edge - 1 if not reverse else edge + 1
        return next(iter(scan(reverse, start, None)), None) is not None

    if first is not None:
        items = list(islice(scan(desc, after, before), first + 1))
        has_next = len(items) > first
        items = items[:first]
        if args.get("after") is not None:
            has_prev = exists_beyond(not desc, after)
        else:
            has_prev = False
        if last is not None:
            has_prev = has_prev or len(items) > last
            items = items[len(items) - last :] if last else []
    else:
        assert last is not None
        items = list(islice(scan(not desc, before, after), last + 1))
        has_prev = len(items) > last
        items = items[:last]
        items.reverse()
        has_next = exists_beyond(desc, before) if args.get("before") is not None else False
    edges: list[tuple[str | None, dict]] = []
    for key, _idx, rec in items:
        value, num = store.position_of(type_name, sort, key)
        edges.append((encode_cursor(num, value if sort == "id" else fmt_ts(value)), rec))
    return connection_page(edges, has_next, has_prev)


def _store_key(store: ShopStore, type_name: str, sort: str, cursor: str | None) -> int | None:
    if cursor is None:
        return None
    num, value = decode_cursor(cursor)
    if sort == "id":
        return store.key_for(type_name, sort, num, num)
    if not isinstance(value, str):
        raise ExecutionFieldError(f"Invalid cursor '{cursor}' for this sort key.", code="BAD_REQUEST")
    try:
        seconds = int(parse_ts(value).timestamp())
    except ValueError as exc:
        raise ExecutionFieldError(f"Invalid cursor '{cursor}'.", code="BAD_REQUEST") from exc
    return store.key_for(type_name, sort, seconds, num)


def mem_connection(
    ctx: ExecContext,
    type_name: str,
    args: Mapping[str, Any],
    *,
    field_name: str,
    q: SearchQuery | None,
    view: str,
    what: str,
    where: Where | None,
) -> dict:
    """A page of a small table sorted in memory by a non-indexed field (NAME, TITLE …)."""
    first, last = page_size(args, what)
    if ctx.store.live_count(type_name) > MEM_SORT_LIMIT:
        raise ExecutionFieldError(
            f"sorting {what} by {field_name} is not modelled by the shopsync simulator for more than"
            f" {MEM_SORT_LIMIT} records",
            code="NOT_MODELLED",
        )
    rows = sorted(
        ((str(rec.get(field_name) or ""), numeric_id(rec["id"])), rec)
        for _k, _i, rec in ctx.store.scan(type_name, query=q, view=view, where=where)
    )
    keys = [k for k, _ in rows]
    desc = bool(args.get("reverse"))
    lo, hi = 0, len(keys)
    for name in ("after", "before"):
        cursor = args.get(name)
        if cursor is None:
            continue
        num, value = decode_cursor(cursor)
        if not isinstance(value, str):
            raise ExecutionFieldError(f"Invalid cursor '{cursor}' for this sort key.", code="BAD_REQUEST")
        k = (value, num)
        if (name == "after") != desc:
            lo = max(lo, bisect_right(keys, k))
        else:
            hi = min(hi, bisect_left(keys, k))
    hi = max(hi, lo)
    order, has_next, has_prev = window(len(keys), lo, hi, desc, first, last)
    edges: list[tuple[str | None, dict]] = [(encode_cursor(keys[i][1], keys[i][0]), rows[i][1]) for i in order]
    return connection_page(edges, has_next, has_prev)
