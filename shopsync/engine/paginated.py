"""The paginated path: an ``updated_at`` window read page by page with cursors.

Each page's records and the cursor that follows them are committed together (one transaction when
the sink shares the state database), so a crash at any instant resumes at the first page not yet
committed. Nested connections longer than one page (an order with 400 line items) are drained with
follow-up ``node(id:)`` queries before the record is written: records are never truncated.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import orjson

from shopsync.engine.context import StreamContext
from shopsync.engine.crashpoints import crashpoint
from shopsync.engine.records import append_drained, normalize_node
from shopsync.errors import QueryTooCostlyError
from shopsync.queries import builder
from shopsync.state.models import Record, StreamState

log = logging.getLogger(__name__)

#: How far above the observed child-count percentile a nested page reaches.
CHILD_PERCENTILE = 0.95


def _page_size(ctx: StreamContext) -> builder.PageSize:
    counts = {}
    for nested in ctx.resource.nested:
        p = ctx.shop.stats_for(ctx.resource.name, nested.path).percentile(CHILD_PERCENTILE)
        if p is not None:
            counts[nested.path] = p
    return builder.plan_page_size(ctx.resource, child_counts=counts or None, bucket_size=ctx.shop.budget.snapshot().capacity)


async def _execute_page(ctx: StreamContext, make_doc, variables: dict[str, Any]) -> tuple[dict, builder.PageSize]:
    """Run one page query, shrinking the page on MAX_COST_EXCEEDED instead of resending it."""
    size = _page_size(ctx)
    while True:
        document = make_doc(size)
        try:
            response = await ctx.shop.client.execute(
                document, {**variables, "first": size.first}, priority=ctx.priority
            )
            return response.data, size
        except QueryTooCostlyError:
            smaller = builder.shrink(size)
            if smaller == size:
                raise
            log.info("%s: page cost over the limit; shrinking first %d -> %d", ctx.label, size.first, smaller.first)
            size = smaller


async def _complete(ctx: StreamContext, node: dict) -> dict:
    """Normalise one node and drain every nested connection that has more pages."""
    record, pending = normalize_node(node, ctx.resource)
    for nested in ctx.resource.nested:
        if nested.depth == 1:
            items = record.get(nested.field)
            if isinstance(items, list):
                ctx.shop.stats_for(ctx.resource.name, nested.path).add(len(items))
    while pending:
        drain = pending.pop(0)
        after = drain.after
        while True:
            document = builder.drain_query(ctx.resource, drain.nested, builder.DRAIN_PAGE)
            response = await ctx.shop.client.execute(
                document,
                {"id": drain.parent_id, "first": builder.DRAIN_PAGE, "after": after},
                priority=ctx.priority,
            )
            conn = (response.data.get("node") or {}).get(drain.nested.field)
            if conn is None:
                # The parent vanished between the page and the drain (deleted): keep what we have;
                # the deletion pass records it.
                break
            more = append_drained(record, drain, conn)
            pending.extend(more)
            info = conn.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                break
            after = info.get("endCursor")
        if drain.nested.depth == 1:
            items = record.get(drain.nested.field)
            if isinstance(items, list):
                ctx.shop.stats_for(ctx.resource.name, drain.nested.path).add(len(items))
    return record


def to_record(ctx: StreamContext, data: dict) -> Record:
    return Record.from_node(shop=ctx.shop.name, resource=ctx.resource.name, data=data)


async def read_window(ctx: StreamContext, state: StreamState, search: str | None) -> StreamState:
    """Read the in-flight window of ``state`` from its cursor to the end, committing every page."""
    if ctx.resource.parent_field:
        return await _read_children_window(ctx, state, search)
    root = ctx.resource.root_field
    cursor = state.cursor
    while True:
        variables = {"after": cursor, "query": search}
        data, _ = await _execute_page(
            ctx, lambda s: builder.page_query(ctx.resource, s.first, s.nested_first), variables
        )
        conn = data[root]
        records = [to_record(ctx, await _complete(ctx, edge["node"])) for edge in conn["edges"]]
        crashpoint("mid_page")
        info = conn["pageInfo"]
        end_cursor = info.get("endCursor") or cursor
        state = replace(state, cursor=end_cursor, records_in_window=state.records_in_window + len(records))
        await ctx.state_store.commit(state, records)
        ctx.observer.on_records(ctx.shop.name, ctx.resource.name, "paginated", len(records))
        crashpoint("after_commit")
        if not info.get("hasNextPage"):
            return state
        cursor = end_cursor


async def _parent_ids(ctx: StreamContext) -> list[str]:
    ids: list[str] = []
    after = None
    document = builder.parent_ids_query(ctx.resource)
    while True:
        response = await ctx.shop.client.execute(document, {"first": 250, "after": after}, priority=ctx.priority)
        conn = response.data[ctx.resource.parent_field]
        ids.extend(edge["node"]["id"] for edge in conn["edges"])
        if not conn["pageInfo"]["hasNextPage"]:
            return ids
        after = conn["pageInfo"]["endCursor"]


async def _read_children_window(ctx: StreamContext, state: StreamState, search: str | None) -> StreamState:
    """``parent.child`` resources (inventory levels per location): page the children of each parent.

    Progress is ``{"done": [parent ids finished], "parent": current, "after": cursor}`` in the
    state's cursor, so a restart continues with the parent and page it stopped at.
    """
    progress = orjson.loads(state.cursor) if state.cursor else {"done": [], "parent": None, "after": None}
    done = set(progress["done"])
    child = ctx.resource.root_field
    for parent_id in await _parent_ids(ctx):
        if parent_id in done:
            continue
        after = progress["after"] if progress.get("parent") == parent_id else None
        while True:
            variables = {"parentId": parent_id, "after": after, "query": search}
            data, _ = await _execute_page(
                ctx, lambda s: builder.page_query(ctx.resource, s.first, s.nested_first), variables
            )
            conn = (data.get("node") or {}).get(child)
            if conn is None:  # the parent disappeared meanwhile
                break
            records = [to_record(ctx, await _complete(ctx, edge["node"])) for edge in conn["edges"]]
            crashpoint("mid_page")
            info = conn["pageInfo"]
            after = info.get("endCursor") or after
            finished = not info.get("hasNextPage")
            if finished:
                done.add(parent_id)
            progress = {"done": sorted(done), "parent": None if finished else parent_id, "after": None if finished else after}
            state = replace(
                state,
                cursor=orjson.dumps(progress).decode(),
                records_in_window=state.records_in_window + len(records),
            )
            await ctx.state_store.commit(state, records)
            ctx.observer.on_records(ctx.shop.name, ctx.resource.name, "paginated", len(records))
            crashpoint("after_commit")
            if finished:
                break
    return state
