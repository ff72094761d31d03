"""The paginated path: an ``updated_at`` window read page by page with cursors.

Each page's records and the cursor that follows them are committed together (one transaction when
the sink shares the state database), so a crash at any instant resumes at the first page not yet
committed. Nested connections longer than one page (an order with 400 line items) are drained with
follow-up ``node(id:)`` queries before the record is written: records are never truncated.

Answers are checked, never trusted: each page's shape against what its document selected
(:mod:`shopsync.shopify.shape`, through the client's ``check``: a malformed answer is resent like a
5xx), then that it moves its walk on — the same ``endCursor`` again, a null ``endCursor`` or an
empty page while ``hasNextPage`` is true is read once more, then fails the stream
(:class:`~shopsync.errors.PaginationStalledError`). Every walk is bounded by the cursors it saw.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

import orjson

from shopsync.crashpoints import crashpoint
from shopsync.engine import planner, window_slices
from shopsync.engine.context import StreamContext
from shopsync.engine.records import append_drained, drain_shape, normalize_node, page_shape, parents_shape
from shopsync.engine.windows import Window, floor_second
from shopsync.errors import PaginationStalledError, QueryTooCostlyError
from shopsync.queries import NestedConnection, Resource, builder
from shopsync.shopify.shape import (
    PageShape,
    check_page,
    connection_at,
    count_problem,
    page_nodes,
    stall_problem,
)
from shopsync.state.models import Record, StreamState
from shopsync.timeutil import epoch_to_ts, format_ts, parse_ts

log = logging.getLogger(__name__)

#: How far above the observed child-count percentile a nested page reaches.
CHILD_PERCENTILE = 0.95
#: Times a page that does not advance its cursor is read again before the stream fails.
STALL_RETRIES = 1
#: At most this many cursor chains page one latency-bound window at once (1: never cut).
MAX_CHAINS = planner.MAX_PAGE_CHAINS
#: Refinement rounds when cutting a paged window (an export's cuts take up to six). Each is a
#: round trip during which the chain waits and a full bucket overflows; chains share one budget,
#: so slices a few per cent uneven cost little, and two rounds already narrow a cut 81-fold.
CUT_ROUNDS = 2


def _page_size(ctx: StreamContext) -> builder.PageSize:
    counts: dict[tuple[str, ...], float] = {}
    for nested in ctx.resource.nested:
        p = ctx.shop.stats_for(ctx.resource.name, nested.path).percentile(CHILD_PERCENTILE)
        if p is not None:
            counts[nested.path] = p
    return builder.plan_page_size(ctx.resource, child_counts=counts or None, bucket_size=ctx.shop.budget.snapshot().capacity)


def planned_page_size(ctx: StreamContext) -> int:
    """The records the stream's next full page would hold (its ``first``)."""
    return _page_size(ctx).first


async def _execute_page(
    ctx: StreamContext,
    make_doc: Callable[[builder.PageSize], str],
    variables: dict[str, Any],
    check: Callable[[dict[str, Any]], str | None],
) -> dict[str, Any]:
    """Run one page query, shrinking the page on MAX_COST_EXCEEDED instead of resending it."""
    size = _page_size(ctx)
    while True:
        document = make_doc(size)
        try:
            response = await ctx.shop.client.execute(
                document,
                {**variables, "first": size.first},
                priority=ctx.priority,
                operation=operation(ctx),
                check=check,
            )
            ctx.meter.add(response)
            return response.data
        except QueryTooCostlyError:
            smaller = builder.shrink(size)
            if smaller == size:
                raise
            log.info("%s: page cost over the limit; shrinking first %d -> %d", ctx.label, size.first, smaller.first)
            size = smaller


def operation(ctx: StreamContext, what: str | None = None) -> str:
    """The label of a request in logs and errors: ``resource orders`` (``resource orders (count)``),
    so that a failure's message names the shop (the client adds it) and the resource."""
    return f"resource {ctx.resource.name}" + (f" ({what})" if what else "")


def checker(shape: PageShape) -> Callable[[dict[str, Any]], str | None]:
    """The answer check of a page of ``shape`` (for :meth:`ShopClient.execute`'s ``check``)."""
    return partial(check_page, shape=shape)


async def read_advancing_page(
    ctx: StreamContext,
    fetch: Callable[[], Awaitable[dict[str, Any]]],
    shape: PageShape,
    after: str | None,
    seen: set[str],
    what: str = "page",
) -> Mapping[str, Any] | None:
    """One page of a cursor walk that moves the walk on (or is its last); ``None``: the node vanished.

    ``fetch`` sends the page's request (its answer already passed the shape check), ``after`` is
    the cursor it asks with, ``seen`` the end cursors of the walk's earlier pages. A page that does
    not advance (:func:`~shopsync.shopify.shape.stall_problem`) is read :data:`STALL_RETRIES` more
    times; still stalled, the stream fails with :class:`PaginationStalledError` rather than loop.
    The caller adds the returned page's ``endCursor`` to ``seen``.
    """
    for attempt in range(STALL_RETRIES + 1):
        conn = connection_at(await fetch(), shape)
        if conn is None:
            return None
        problem = stall_problem(after, conn["pageInfo"], len(page_nodes(conn)), seen)
        if problem is None:
            return conn
        ctx.observer.on_guard_mismatch(ctx.shop.name, ctx.resource.name, "pagination")
        if attempt < STALL_RETRIES:
            log.warning("%s: %s after %r does not advance (%s); reading it again", ctx.label, what, after, problem)
            await ctx.sleep(ctx.settings.backoff_base.total_seconds())
    raise PaginationStalledError(
        f"shop {ctx.shop.name}: {operation(ctx)}: pagination does not advance: {what} after {after!r}: "
        f"{problem}; read {STALL_RETRIES + 1} times, the stream stops here instead of looping"
    )


async def _complete(ctx: StreamContext, node: Mapping[str, Any]) -> dict[str, Any]:
    """Normalise one node and drain every nested connection that has more pages."""
    record, pending = normalize_node(node, ctx.resource)
    for nested in ctx.resource.nested:
        if nested.depth == 1:
            items = _depth_one_list(record, nested)
            if items is not None:
                ctx.shop.stats_for(ctx.resource.name, nested.path).add(len(items))
    while pending:
        drain = pending.pop(0)
        after: str | None = drain.after
        shape = drain_shape(drain.nested)
        first = builder.drain_first(ctx.resource, drain.nested)
        document = builder.drain_query(ctx.resource, drain.nested, first)
        what = f"drain of {drain.nested.field} of {drain.parent_id}"
        seen: set[str] = set()
        while True:
            fetch = partial(
                _execute_drain, ctx, document, {"id": drain.parent_id, "first": first, "after": after}, shape
            )
            conn = await read_advancing_page(ctx, fetch, shape, after, seen, what)
            if conn is None:
                # The parent vanished between the page and the drain (deleted): keep what we have;
                # the deletion pass records it.
                break
            more = append_drained(record, drain, conn)
            pending.extend(more)
            info = conn["pageInfo"]
            if not info["hasNextPage"]:
                break
            after = info["endCursor"]
            seen.add(info["endCursor"])
        if drain.nested.depth == 1:
            items = _depth_one_list(record, drain.nested)
            if items is not None:
                ctx.shop.stats_for(ctx.resource.name, drain.nested.path).add(len(items))
    return record


def _depth_one_list(record: Mapping[str, Any], nested: NestedConnection) -> list | None:
    """The record's list of a depth-1 connection (in its object, for one selected in an object of
    the record: a discount's codes), or ``None`` where the record holds none."""
    owner: Any = record
    for name in nested.within:
        owner = owner.get(name) if isinstance(owner, Mapping) else None
    items = owner.get(nested.field) if isinstance(owner, Mapping) else None
    return items if isinstance(items, list) else None


async def _execute_drain(ctx: StreamContext, document: str, variables: dict[str, Any], shape: PageShape) -> dict[str, Any]:
    response = await ctx.shop.client.execute(
        document, variables, priority=ctx.priority, operation=operation(ctx, "drain"), check=checker(shape)
    )
    ctx.meter.add(response)
    return response.data


def to_record(ctx: StreamContext, data: dict[str, Any]) -> Record:
    return Record.from_node(shop=ctx.shop.name, resource=ctx.resource.name, data=data)


#: Asked after each committed page with the state and the page's last ``updatedAt``: True stops
#: the read there (the engine hands the rest of the window to a bulk export).
HandOver = Callable[[StreamState, str | None], Awaitable[bool]]
#: Asked with the state after the window's last page, before that page is committed: the state
#: that closes the window (committed with the page, one transaction), or None when the caller has
#: to check the window first (its count guard) and closes it after.
Finish = Callable[[StreamState], StreamState | None]


async def read_window(
    ctx: StreamContext,
    state: StreamState,
    search: str | None,
    *,
    hand_over: HandOver | None = None,
    finish: Finish | None = None,
) -> StreamState:
    """Read the in-flight window of ``state`` from its cursor to the end, committing every page.

    Every answer is checked before anything of it is used (its shape, then that it advances the
    cursor): a bad page is never committed, and the cursor stays at the last good one. Each
    page's cost (drains included) and round trips feed the shop's page model (the path planner).
    ``hand_over``, when given, may stop the read after any page; the state returned then still
    has its cursor (the caller decides what is left).

    A latency-bound window (one chain's round trips, not the restore rate, are the limit:
    :func:`~shopsync.engine.planner.page_chains`) has its rest cut into time slices paged at once,
    each its own cursor chain (:func:`_split`); a window whose state already holds such a plan
    resumes its unfinished slices. The state returned then counts every slice's records.

    ``finish``, when given, may close a window read as one chain with its last page: the state
    returned is then the closed one (no window in flight). A daemon's small windows are mostly
    one page, and this saves their run a commit of its own.
    """
    if ctx.resource.parent_field:
        return await _read_children_window(ctx, state, search, ctx.resource.parent_field)
    plan = window_slices.plan_of(state)
    if plan is not None:
        return await _read_chains(ctx, state, plan)
    split = _splitter(ctx) if _may_split(ctx, state, search) else None
    state, plan = await _read_chain(ctx, state, search, hand_over=hand_over, split=split, finish=finish)
    if plan is None:
        return state
    return await _read_chains(ctx, state, plan)


#: Asked after a committed page with the state and the page's last ``updatedAt``: the slices the
#: rest of the window is to be paged in at once (their plan already saved), or None to go on.
_Split = Callable[[StreamState, str | None], Awaitable[tuple[StreamState, list[Window] | None]]]


async def _read_chain(
    ctx: StreamContext,
    state: StreamState,
    search: str | None,
    *,
    hand_over: HandOver | None = None,
    split: _Split | None = None,
    finish: Finish | None = None,
) -> tuple[StreamState, list[Window] | None]:
    """One cursor chain from ``state``'s cursor to the end of ``search``; or, when ``split`` says
    so after a page, to that page only, with the plan of slices that read the rest. ``finish``
    may close the window with the chain's last page (:data:`Finish`)."""
    shape = page_shape(ctx.resource)
    make_doc = partial(_page_document, ctx.resource)
    cursor = state.cursor
    seen: set[str] = set()
    model = ctx.shop.page_model(ctx.resource.name)
    while True:
        points, seconds = ctx.meter.points, ctx.meter.seconds
        fetch = partial(_execute_page, ctx, make_doc, {"after": cursor, "query": search}, checker(shape))
        conn = await read_advancing_page(ctx, fetch, shape, cursor, seen)
        if conn is None and ctx.resource.root_path:  # the shop has no such object (no Shopify Payments)
            return state, None
        if conn is None:  # only a vanishing shape has no connection; a root page always has one
            raise PaginationStalledError(f"shop {ctx.shop.name}: {operation(ctx)}: a page without its connection")
        records = [to_record(ctx, await _complete(ctx, node)) for node in page_nodes(conn)]
        crashpoint("mid_page")
        info = conn["pageInfo"]
        end_cursor = info["endCursor"] or cursor
        state = state.with_page(end_cursor, len(records))
        closed = finish(state) if finish is not None and not info["hasNextPage"] else None
        await ctx.state_store.commit(closed or state, records)
        ctx.observer.on_records(ctx.shop.name, ctx.resource.name, "paginated", len(records))
        spent = ctx.meter.points - points
        model.add_page(len(records), spent, ctx.meter.seconds - seconds, full=info["hasNextPage"])
        ctx.shop.page_spent(ctx.resource.name, spent)
        crashpoint("after_commit")
        if not info["hasNextPage"]:
            return closed or state, None
        last_updated_at = records[-1].updated_at if records else None
        if hand_over is not None and await hand_over(state, last_updated_at):
            return state, None
        if split is not None and last_updated_at is not None:
            state, plan = await split(state, last_updated_at)
            if plan is not None:
                return state, plan
        cursor = end_cursor
        seen.add(info["endCursor"])  # not None: a page with more after it has one (stall_problem)


def _may_split(ctx: StreamContext, state: StreamState, search: str | None) -> bool:
    """Whether the window's rest may be cut into slices by ``updatedAt``: pages in that order, a
    count to balance the slices by, a search to bound them with, and more than one chain allowed."""
    r = ctx.resource
    return (
        MAX_CHAINS > 1
        and search is not None
        and state.window_end is not None
        and r.incremental
        and r.sort_key == "UPDATED_AT"
        and bool(r.count_field)
    )


def _splitter(ctx: StreamContext) -> _Split:
    """The check, after each page of one window, whether its rest is to be paged as several chains.

    While the pages measured so far say one chain is enough it costs nothing; once they say it is
    latency-bound, the rest is counted (one query) and, if large enough, cut — at most once per
    window: a rest too small to cut stays one chain without being counted again.
    """
    counted = False

    async def split(state: StreamState, last_updated_at: str | None) -> tuple[StreamState, list[Window] | None]:
        nonlocal counted
        model = ctx.shop.page_model(ctx.resource.name)
        # The rate left to this stream: the shop's other paginated streams share it.
        rate = ctx.shop.budget.restore_rate / max(1, sum(ctx.shop.paginating.values()))
        # Before counting: could any rest want more than one chain at these round trips?
        if counted or last_updated_at is None or planner.page_chains(model, rate, 1 << 62, max_chains=MAX_CHAINS) < 2:
            return state, None
        counted = True
        plan = await _plan_rest(ctx, state, floor_second(parse_ts(last_updated_at)), rate)
        if plan is None:
            return state, None
        return await window_slices.save_plan(ctx, state, plan, "paginated"), plan

    return split


async def _plan_rest(ctx: StreamContext, state: StreamState, start: datetime, rate: float) -> list[Window] | None:
    """The slices of the rest of the window, from ``start`` (the last record's second, inclusive:
    its records are read again, none is skipped) to its end, cut where their counts are about
    equal; None when it is too small to cut (or one dense second)."""
    model = ctx.shop.page_model(ctx.resource.name)
    end = parse_ts(state.window_end or "")
    total = await count_records(ctx, builder.window_search(start, end)) if start < end else None
    chains = planner.page_chains(model, rate, total or 0, max_chains=MAX_CHAINS)
    if not total or chains < 2:
        return None

    async def count_up_to(t: datetime) -> int:
        return await count_records(ctx, builder.window_search(start, t)) or 0

    cuts = await window_slices.balanced_cuts(count_up_to, start, end, total, chains, rounds=CUT_ROUNDS)
    if not cuts:
        return None
    plan = window_slices.plan_windows(start, cuts, end)
    log.info(
        "%s: pages are latency-bound (%.3fs a page × %.0f points/s > %.0f points a page); the rest, "
        "%d records in %s .. %s, is paged as %d cursor chains at once: %s",
        ctx.label, model.seconds_per_page or 0.0, rate, (model.points_per_record or 0.0) * (model.records_per_page or 0.0),
        total, format_ts(start), state.window_end, len(plan), ", ".join(str(w) for w in plan),
    )  # fmt: skip
    return plan


async def _read_chains(ctx: StreamContext, state: StreamState, plan: list[Window]) -> StreamState:
    """Page every unfinished slice of ``plan`` at once under the shop's one cost budget."""
    state = await window_slices.read_slices(ctx, state, plan, _read_slice, what="paging")
    rows = await window_slices.slice_rows(ctx, state, plan)
    read = state.records_in_window + sum(row.records_in_window for row in rows if row is not None)
    # The window is read: the plan is spent (the caller completes or, on a count shortfall, rewinds it).
    return state.replace(cursor=None, records_in_window=read)


async def _read_slice(ctx: StreamContext, index: int, row: StreamState, w: Window) -> None:
    """One slice as one cursor chain from its row's cursor (``ctx`` has the slice's own meter)."""
    row, _ = await _read_chain(ctx, row, builder.window_search(w.start, w.end))
    # Closed, its records still counted: the window's count guard adds them up.
    done = row.completed(row.window_end, epoch_to_ts(ctx.clock())).replace(records_in_window=row.records_in_window)
    await ctx.state_store.save_stream(done)
    crashpoint("after_slice")


async def count_records(ctx: StreamContext, search: str | None) -> int | None:
    """Shopify's count of the resource's records matching ``search`` (None: no count field)."""
    counted = await count_with_precision(ctx, search)
    return None if counted is None else counted[0]


async def count_with_precision(ctx: StreamContext, search: str | None) -> tuple[int, bool] | None:
    """Shopify's count of the records matching ``search`` and whether it says the count is
    ``EXACT`` (else it is ``AT_LEAST``, a lower bound); None: the resource has no count field."""
    document = builder.count_query(ctx.resource)
    count_field = ctx.resource.count_field
    if document is None or count_field is None:
        return None
    response = await ctx.shop.client.execute(
        document,
        {"query": search},
        priority=ctx.priority,
        operation=operation(ctx, "count"),
        check=partial(count_problem, field=count_field),
    )
    answer = response.data[count_field]
    return int(answer["count"]), answer.get("precision") == "EXACT"  # an int: count_problem checked it


def _page_document(resource: Resource, size: builder.PageSize) -> str:
    return builder.page_query(resource, size.first, size.nested_first)


def prior_points_per_record(ctx: StreamContext) -> float:
    """What a record costs before any page was read.

    The requested cost of one record with each nested list at its typical length: the median seen
    on pages, else the shop's exports' objects per record spread over the lists, else the
    fragment's page size (an upper bound: Shopify charges what is returned, usually less)."""
    resource = ctx.resource
    per_root = ctx.shop.exports.objects_per_root.get(resource.name)
    lists = list(resource.all_nested())
    typical: dict[tuple[str, ...], float] = {}
    for nested in lists:
        median = ctx.shop.stats_for(resource.name, nested.path).percentile(0.5)
        if median is not None:
            typical[nested.path] = max(1.0, median)
        elif per_root is not None:
            typical[nested.path] = max(1.0, (per_root - 1) / len(lists))
    return float(builder.record_cost(resource, typical))


async def parent_ids(ctx: StreamContext, *, page_label: str, operation_label: str = "parents") -> list[str]:
    """Every parent id of a ``parent.child`` resource (locations of inventory levels), page by page
    with the advancing check; ``page_label`` names a page in a stall's message, ``operation_label``
    the requests in logs and errors."""
    ids: list[str] = []
    after: str | None = None
    seen: set[str] = set()
    shape = parents_shape(ctx.resource)
    document = builder.parent_ids_query(ctx.resource)
    while True:
        fetch = partial(_execute_parents, ctx, document, {"first": 250, "after": after}, shape, operation_label)
        conn = await read_advancing_page(ctx, fetch, shape, after, seen, page_label)
        if conn is None:
            return ids
        ids.extend(node["id"] for node in page_nodes(conn))
        if not conn["pageInfo"]["hasNextPage"]:
            return ids
        after = conn["pageInfo"]["endCursor"]
        seen.add(conn["pageInfo"]["endCursor"])


async def _execute_parents(
    ctx: StreamContext, document: str, variables: dict[str, Any], shape: PageShape, label: str
) -> dict[str, Any]:
    response = await ctx.shop.client.execute(
        document, variables, priority=ctx.priority, operation=operation(ctx, label), check=checker(shape)
    )
    return response.data


async def _read_children_window(
    ctx: StreamContext, state: StreamState, search: str | None, parent_field: str
) -> StreamState:
    """``parent.child`` resources (inventory levels per location): page the children of each parent.

    Progress is ``{"done": [parent ids finished], "parent": current, "after": cursor}`` in the
    state's cursor, so a restart continues with the parent and page it stopped at.
    """
    progress = orjson.loads(state.cursor) if state.cursor else {"done": [], "parent": None, "after": None}
    done = set(progress["done"])
    shape = page_shape(ctx.resource)
    make_doc = partial(_page_document, ctx.resource)
    for parent_id in await parent_ids(ctx, page_label=f"{parent_field} page"):
        if parent_id in done:
            continue
        after = progress["after"] if progress.get("parent") == parent_id else None
        seen: set[str] = set()
        while True:
            variables = {"parentId": parent_id, "after": after, "query": search}
            fetch = partial(_execute_page, ctx, make_doc, variables, checker(shape))
            conn = await read_advancing_page(ctx, fetch, shape, after, seen, f"page of {parent_id}")
            if conn is None:  # the parent disappeared meanwhile
                break
            records = [to_record(ctx, await _complete(ctx, node)) for node in page_nodes(conn)]
            crashpoint("mid_page")
            info = conn["pageInfo"]
            after = info["endCursor"] or after
            finished = not info["hasNextPage"]
            if finished:
                done.add(parent_id)
            progress = {"done": sorted(done), "parent": None if finished else parent_id, "after": None if finished else after}
            state = state.with_page(orjson.dumps(progress).decode(), len(records))
            await ctx.state_store.commit(state, records)
            ctx.observer.on_records(ctx.shop.name, ctx.resource.name, "paginated", len(records))
            crashpoint("after_commit")
            if finished:
                break
            seen.add(info["endCursor"])
    return state
