"""A window's path, chosen from the shop's measured costs and said where a user looks.

The arithmetic is :mod:`shopsync.engine.planner` (pure); this module gathers its inputs from the
stream's context (the window's count, the shop's budget, its page and export models), and records
each decision: a log line with both estimates, the ``shopsync_path_decisions_total`` metric (through
the observer) and the state row ``<resource>@path`` that ``/status`` and ``shopsync status`` show.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import orjson

from shopsync.engine import paginated, planner
from shopsync.engine.context import StreamContext
from shopsync.engine.planner import Decision, Estimate
from shopsync.engine.windows import Window
from shopsync.queries import builder
from shopsync.state.models import StreamState
from shopsync.timeutil import epoch_to_ts

log = logging.getLogger(__name__)

#: Suffix of the state row holding a stream's last path decision (JSON in its ``cursor``).
PATH_SUFFIX = "@path"
#: Seconds an unchanged decision (same path, same reason) may go without its row being rewritten;
#: the engine's ``@deletions`` rows after a look that found nothing go as long.
STORE_EVERY = 300.0


def _prior(ctx: StreamContext) -> float:
    """Points per record before pages were measured; costed once per resource and shop."""
    prior = ctx.shop.prior_points.get(ctx.resource.name)
    if prior is None:
        prior = ctx.shop.prior_points[ctx.resource.name] = paginated.prior_points_per_record(ctx)
    return prior


def points_for(ctx: StreamContext, records: int) -> float:
    """The points ``records`` records of this stream are expected to cost, read page by page."""
    measured = ctx.shop.page_model(ctx.resource.name).points_per_record
    return records * (measured if measured is not None else _prior(ctx))


def estimate(ctx: StreamContext, records: int) -> Estimate:
    """Both paths' estimated seconds for ``records`` root records of this stream, now."""
    runtime = ctx.shop
    name = ctx.resource.name
    prior_ppr = _prior(ctx)
    # What a full page holds now: the page planner sizes pages by the child counts seen, so the
    # first pages' size (before those were known) says nothing about today's.
    page_size = paginated.planned_page_size(ctx)
    others = tuple(
        runtime.paging_points.get(r, math.inf) for r, n in runtime.paginating.items() if r != name for _ in range(n)
    )
    return planner.estimate(
        records,
        pages=runtime.page_model(name),
        prior_points_per_record=prior_ppr,
        page_size=page_size,
        exports=runtime.exports,
        resource=name,
        prior_objects_per_root=_prior_objects_per_root(ctx),
        budget=planner.Budget(
            restore_rate=runtime.budget.restore_rate,
            available=runtime.budget.available(),
            others=others,
            free_bulk_slots=runtime.bulk_slots.free,
        ),
    )


def _prior_objects_per_root(ctx: StreamContext) -> float:
    """1 + the median size of each nested list seen on pages (1 each before any page)."""
    objects = 1.0
    for nested in ctx.resource.nested:
        median = ctx.shop.stats_for(ctx.resource.name, nested.path).percentile(0.5)
        objects += median if median is not None else 1.0
    return objects


async def choose(ctx: StreamContext, state: StreamState, window: Window) -> Decision:
    """The path of a new window (see :mod:`shopsync.engine.planner`); recorded before it is returned."""
    settings = ctx.settings
    if not ctx.resource.exportable:
        # bulk: no — its fragment holds a connection Shopify's bulk queries refuse.
        decision = Decision(path="paginated", reason="not_exportable")
    elif not ctx.resource.incremental:
        # Read whole. Paged under each parent (metafields of every product) that is one request per
        # parent at least, while one export lists every parent's children: exported unless forced.
        per_parent = bool(ctx.resource.parent_field) and settings.path != "paginated"
        decision = Decision(path="bulk" if per_parent else "paginated", reason="full_refresh")
    elif settings.path in ("bulk", "paginated"):
        decision = Decision(path="bulk" if settings.path == "bulk" else "paginated", reason="forced")
    elif state.watermark is None:
        # A backfill: its count is unbounded (Shopify's counts stop at a limit) and it is what
        # bulk operations exist for; it is cut into slices for the shop's bulk slots.
        decision = Decision(path="bulk", reason="backfill")
    else:
        decision = await _by_count(ctx, window)
    await record(ctx, decision)
    return decision


async def _by_count(ctx: StreamContext, window: Window) -> Decision:
    if not ctx.resource.count_field or ctx.resource.parent_field:
        return Decision(path="paginated", reason="no_count")
    counted = await paginated.count_with_precision(ctx, builder.window_search(window.start, window.end))
    if counted is None:
        return Decision(path="paginated", reason="no_count")
    count, exact = counted
    threshold = ctx.settings.bulk_threshold
    if threshold is not None:
        path: planner.Path = "bulk" if count > threshold else "paginated"
        return Decision(path=path, reason="threshold", count=count, count_exact=exact)
    previous = ctx.shop.decisions.get(ctx.resource.name)
    decision = planner.decide(estimate(ctx, count), previous=previous.path if previous else None, count=count)
    return replace(decision, count_exact=exact)


async def paginated_is_faster(ctx: StreamContext, part: Window) -> bool:
    """Whether ``part`` (of a window whose export failed) is sooner read page by page: by the
    estimates, or by ``bulk_threshold`` when it is set. Unknown without a count: no."""
    count = await paginated.count_records(ctx, builder.window_search(part.start, part.end))
    if count is None:
        return False
    if ctx.settings.bulk_threshold is not None:
        return count <= ctx.settings.bulk_threshold
    return estimate(ctx, count).faster() == "paginated"


async def record(ctx: StreamContext, decision: Decision) -> None:
    """Log, count and store ``decision`` as the stream's latest.

    Logged at INFO when the path or its reason changes (DEBUG when it is the same again). The
    ``@path`` row is written when the path or its reason changes, else at most once per
    :data:`STORE_EVERY` seconds: a daemon with hundreds of streams decides many times a second,
    and an unchanged decision's fresher estimates are not worth a write each."""
    previous = ctx.shop.decisions.get(ctx.resource.name)
    ctx.shop.decisions[ctx.resource.name] = decision
    same = previous is not None and (previous.path, previous.reason) == (decision.path, decision.reason)
    # A change of path (or of why) is news at INFO; the same again, run after run, is DEBUG.
    level = logging.INFO if decision.estimate is not None and not same else logging.DEBUG
    log.log(level, "%s: path %s", ctx.label, decision.describe())
    ctx.observer.on_path_decision(ctx.shop.name, ctx.resource.name, decision.path, decision.reason)
    now = ctx.clock()
    stored = ctx.shop.decisions_stored.get(ctx.resource.name)
    if same and stored is not None and now - stored < STORE_EVERY:
        return
    ctx.shop.decisions_stored[ctx.resource.name] = now
    row = StreamState(
        shop=ctx.shop.name,
        resource=ctx.resource.name + PATH_SUFFIX,
        watermark=epoch_to_ts(now),
        cursor=orjson.dumps(decision_json(decision)).decode(),
    )
    await ctx.state_store.save_stream(row)


def decision_json(decision: Decision) -> dict[str, object]:
    e = decision.estimate
    return {
        "path": decision.path,
        "reason": decision.reason,
        "records": decision.count,
        "paginated_seconds": round(e.paginated, 1) if e else None,
        "bulk_seconds": round(e.bulk, 1) if e else None,
    }


def decision_summary(state: StreamState | None) -> dict[str, object] | None:
    """The decision stored in a ``@path`` row, with when it was made (pure; None: none yet)."""
    if state is None or not state.cursor:
        return None
    try:
        loaded = orjson.loads(state.cursor)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(loaded, dict):
        return None
    return {**loaded, "at": state.watermark}


__all__ = ["PATH_SUFFIX", "choose", "decision_summary", "estimate", "paginated_is_faster", "points_for", "record"]
