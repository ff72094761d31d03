"""The sync engine: runs every (shop, resource) stream up to "now" and reports how it went.

One stream's run:

1. Load its state. A window left in flight by an earlier process (and any bulk operation it
   started) is resumed where it stopped; otherwise the next window is ``[watermark − overlap,
   now − safety margin]`` (shopsync.engine.windows).
2. Pick the path: bulk for a backfill; otherwise the one estimated sooner done from the shop's
   measured costs and the window's count (path_choice.py, planner.py; ``bulk_threshold`` and
   ``[sync] path`` override it).
3. Read the window, committing records and cursor together page by page (paginated.py) or file
   batch by batch (bulk.py); a large bulk window in slices exported at once (slices.py). A paged
   window whose rest would be sooner exported hands it to the bulk path between pages.
4. Guards: the records read are compared with Shopify's count for the same filter (paginated) or
   the operation's ``rootObjectCount`` (bulk); a shortfall is logged, counted and the window read
   again — never accepted.
5. Commit the watermark (the window's end), then record deletions from ``destroy`` events.

Every shop's streams share that shop's client and cost budget; shops are independent of each
other, so one shop failing never stalls another.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from shopsync.client import CostBudget, ShopClient, make_session, token_provider_for
from shopsync.client.retry import RetryPolicy
from shopsync.engine import paginated, path_choice, planner, singular, slices
from shopsync.engine.context import MAX_CONCURRENT_INGEST, ShopRuntime, StreamContext
from shopsync.engine.slots import BulkSlots
from shopsync.engine.windows import Window, floor_second, next_window
from shopsync.errors import IntegrityError, LeaseLostError, ShopsyncError, ShopUnavailableError
from shopsync.observability.events import EngineObserver, NullObserver, RequestObserver
from shopsync.queries import Resource, builder
from shopsync.settings import Secret, Settings, ShopConfig
from shopsync.shopify.shape import PageShape, check_page, page_nodes
from shopsync.state import Deletion, StateStore, StreamState
from shopsync.timeutil import epoch_to_ts, format_ts, from_epoch, parse_optional_ts, parse_ts

log = logging.getLogger(__name__)

#: Times a window is read again after its count guard failed, before the stream fails loudly.
MAX_COUNT_RETRIES = 2
#: Suffix of the state row that tracks a resource's deletion events.
DELETIONS_SUFFIX = "@deletions"


@dataclass(frozen=True)
class StreamResult:
    shop: str
    resource: str
    ok: bool
    records: int = 0
    path: str | None = None
    watermark: str | None = None
    error: str | None = None
    parked: bool = False
    #: The error itself (the daemon parks by its class, HTTP status and ``resource_only``).
    exception: ShopsyncError | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class ShopReport:
    shop: str
    requests: int
    throttled: int
    points_requested: float
    points_spent: float
    utilisation: float

    @property
    def throttled_ratio(self) -> float:
        return self.throttled / self.requests if self.requests else 0.0


@dataclass
class SyncReport:
    streams: list[StreamResult] = field(default_factory=list)
    shops: list[ShopReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.streams)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def failures(self) -> list[StreamResult]:
        return [s for s in self.streams if not s.ok]


class _CountingObserver:
    """Tallies records per stream for the report, then forwards every event to the caller's observer."""

    def __init__(self, inner: EngineObserver) -> None:
        self.inner = inner
        self.records: dict[tuple[str, str], int] = {}

    def on_records(self, shop: str, resource: str, path: str, count: int) -> None:
        self.records[(shop, resource)] = self.records.get((shop, resource), 0) + count
        self.inner.on_records(shop, resource, path, count)

    def on_bulk_status(self, shop: str, resource: str, status: str, object_count: int) -> None:
        self.inner.on_bulk_status(shop, resource, status, object_count)

    def on_bulk_finished(self, shop: str, resource: str, status: str, duration: float, objects: int) -> None:
        self.inner.on_bulk_finished(shop, resource, status, duration, objects)

    def on_guard_mismatch(self, shop: str, resource: str, kind: str) -> None:
        self.inner.on_guard_mismatch(shop, resource, kind)

    def on_path_decision(self, shop: str, resource: str, path: str, reason: str) -> None:
        self.inner.on_path_decision(shop, resource, path, reason)

    def on_checkpoint(self, shop: str, resource: str, watermark: str | None) -> None:
        self.inner.on_checkpoint(shop, resource, watermark)


class SyncEngine:
    """Owns the HTTP session and one :class:`ShopRuntime` per shop; runs streams on demand.

    Use as an async context manager. ``run_once()`` syncs everything once (``shopsync sync``); the
    daemon calls :meth:`sync_stream` from its scheduler.

    ``shopify_guard(shop, mutation)`` is awaited before each request to a shop is sent
    (:data:`~shopsync.client.graphql.SendGuard`): the daemon's lease check when several daemons
    share the shops. What it raises fails the stream's run; nothing is sent.
    """

    def __init__(
        self,
        settings: Settings,
        state_store: StateStore,
        *,
        work_dir: Path,
        observer: EngineObserver | None = None,
        request_observer: RequestObserver | None = None,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        shopify_guard: Callable[[str, bool], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self.state_store = state_store
        self._shopify_guard = shopify_guard
        self.work_dir = work_dir
        self.observer = _CountingObserver(observer or NullObserver())
        self.request_observer = request_observer
        self._session = session
        self._owns_session = session is None
        self.clock = clock
        self.sleep = sleep
        self._runtimes: dict[str, ShopRuntime] = {}
        self._shop_configs: dict[str, _Connection] = {}
        self._ingest_slots = asyncio.Semaphore(MAX_CONCURRENT_INGEST)

    async def __aenter__(self) -> SyncEngine:
        if self._session is None:
            sync = self.settings.sync
            self._session = make_session(sync.max_connections, sync.request_timeout.total_seconds())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        """The HTTP session (the engine must be entered: ``async with SyncEngine(...)``)."""
        if self._session is None:
            raise RuntimeError("SyncEngine used outside 'async with'")
        return self._session

    # -- per-shop runtime -----------------------------------------------------------------------
    def runtime(self, shop: ShopConfig) -> ShopRuntime:
        """The shop's client and budget, created on first use and kept while the way to reach the
        shop is the same. Schedule, resources or position in the file may change (a reload) without
        a new budget: one Shopify bucket must be modelled by one budget, even with runs in flight."""
        existing = self._runtimes.get(shop.name)
        if existing is not None and self._shop_configs.get(shop.name) == _connection(shop):
            return existing
        sync = self.settings.sync
        budget = CostBudget()
        session = self._http()
        client = ShopClient(
            shop=shop.name,
            api_url=shop.api_url,
            api_version=self.settings.api_version,
            session=session,
            budget=budget,
            # A static token when the shop has one, else client credentials (Settings has one of them).
            tokens=token_provider_for(shop, session),
            retry=RetryPolicy.from_settings(sync),
            observer=self.request_observer,
            request_timeout=sync.request_timeout.total_seconds(),
            max_response_bytes=sync.max_response_bytes,
            sleep=self.sleep,
            guard=partial(self._shopify_guard, shop.name) if self._shopify_guard is not None else None,
        )
        runtime = ShopRuntime(name=shop.name, client=client, budget=budget, bulk_slots=BulkSlots(sync.max_concurrent_bulk))
        self._runtimes[shop.name] = runtime
        self._shop_configs[shop.name] = _connection(shop)
        return runtime

    def existing_runtime(self, name: str) -> ShopRuntime | None:
        """The shop's runtime if one was made (read-only: never creates one)."""
        return self._runtimes.get(name)

    def forget_shop(self, name: str) -> None:
        self._runtimes.pop(name, None)
        self._shop_configs.pop(name, None)

    def shop_report(self, name: str) -> ShopReport | None:
        runtime = self._runtimes.get(name)
        if runtime is None:
            return None
        snap = runtime.budget.snapshot()
        return ShopReport(
            shop=name,
            requests=snap.requests,
            throttled=snap.throttled,
            points_requested=snap.points_requested,
            points_spent=snap.points_spent,
            utilisation=runtime.budget.utilisation(),
        )

    # -- running --------------------------------------------------------------------------------
    async def run_once(self, shops: Iterable[ShopConfig] | None = None) -> SyncReport:
        """Sync every resource of every shop up to now, concurrently; never raises for a stream."""
        shops = list(shops if shops is not None else self.settings.shops)
        results = await asyncio.gather(*(self._sync_shop(shop) for shop in shops))
        report = SyncReport()
        for shop, streams in zip(shops, results, strict=True):
            report.streams.extend(streams)
            shop_report = self.shop_report(shop.name)
            if shop_report is not None:
                report.shops.append(shop_report)
        return report

    async def _sync_shop(self, shop: ShopConfig) -> list[StreamResult]:
        resources = [self.settings.resources[name] for name in shop.resources]
        return list(await asyncio.gather(*(self.sync_stream(shop, r) for r in resources)))

    async def sync_stream(self, shop: ShopConfig, resource: Resource, *, priority: int | None = None) -> StreamResult:
        """Bring one stream up to now. Errors are recorded in its state and returned, not raised."""
        runtime = self.runtime(shop)
        label = f"{shop.name}/{resource.name}"
        try:
            return await self._sync_stream(shop, runtime, resource, priority)
        except ShopsyncError as exc:
            parked = isinstance(exc, ShopUnavailableError)
            message = f"{type(exc).__name__}: {exc}"
            log.error("%s: sync failed: %s", label, exc)
            if not isinstance(exc, LeaseLostError):  # else the state is the new owner's to write
                await self._record_error(shop.name, resource.name, message)
            return StreamResult(
                shop=shop.name, resource=resource.name, ok=False, error=message, parked=parked, exception=exc
            )

    async def _record_error(self, shop: str, resource: str, message: str) -> None:
        # Re-read the committed state so that recording the error changes nothing but the error.
        try:
            state = await self.state_store.get_stream(shop, resource) or StreamState(shop=shop, resource=resource)
            await self.state_store.save_stream(state.failed(message, self._now_ts()))
        except ShopsyncError as exc:
            log.error("%s/%s: could not record the error in the state store: %s", shop, resource, exc)

    def _now_ts(self) -> str:
        return epoch_to_ts(self.clock())

    def _context(self, runtime: ShopRuntime, resource: Resource, priority: int) -> StreamContext:
        return StreamContext(
            shop=runtime,
            resource=resource,
            state_store=self.state_store,
            settings=self.settings.sync,
            session=self._http(),
            work_dir=self.work_dir,
            ingest_slots=self._ingest_slots,
            observer=self.observer,
            priority=priority,
            clock=self.clock,
            sleep=self.sleep,
        )

    async def _sync_stream(
        self, shop: ShopConfig, runtime: ShopRuntime, resource: Resource, priority: int | None
    ) -> StreamResult:
        state = await self.state_store.get_stream(shop.name, resource.name)
        if state is None:
            state = StreamState(shop=shop.name, resource=resource.name)
        if priority is None:
            # Incremental work goes before a backfill in the same shop's budget.
            priority = 1 if state.watermark is None else 0
        ctx = self._context(runtime, resource, priority)
        before = self.observer.records.get((shop.name, resource.name), 0)
        started = time.monotonic()

        # "Up to now" means up to the safety margin before this run began. A window left in flight
        # by an earlier, interrupted run ends before that, so the stream reads on after it.
        # (Compared at Shopify's one-second precision, which window ends are stored with.)
        target = parse_ts(format_ts(from_epoch(self.clock()) - self.settings.sync.safety_margin))
        paths: list[str] = []
        while True:
            bound: int | None = None  # an EXACT count of the window taken before it was read
            if state.window_end is None:
                window = self._next_window(shop, resource, state)
                if window is None:
                    break
                decision = await path_choice.choose(ctx, state, window)
                bound = decision.count if decision.count_exact else None
                state = state.with_window(format_ts(window.start) if window.start else None, format_ts(window.end), decision.path)
                # A window read page by page is saved with its first page (or its plan of slices):
                # a crash before that leaves nothing of it written, so the next run chooses a
                # window afresh and loses nothing, and the opening costs no transaction of its
                # own. An export's window is saved now: its operation is started next.
                if decision.path != "paginated":
                    await self.state_store.save_stream(state)
            else:
                log.info("%s: resuming the %s window left in flight (%s .. %s)", ctx.label, state.path, state.window_start, state.window_end)
            began_on = state.path or ""
            state = await self._read_window(ctx, state, counted_before=bound)
            # Different after a hand-over (paginated+bulk); None when closed with its last page.
            paths.extend((began_on, state.path or began_on))
            if state.window_end is not None:  # not closed with its last page
                state = state.completed(state.window_end, self._now_ts())
                await self.state_store.commit(state)
            ctx.observer.on_checkpoint(shop.name, resource.name, state.watermark)
            # completed() moved the watermark to the window's end, which is never None.
            if parse_ts(state.watermark or "") >= target:
                break
        if paths:
            await self._sync_deletions(ctx, shop, resource)
        records = self.observer.records.get((shop.name, resource.name), 0) - before
        via = "+".join(dict.fromkeys(paths)) or None
        if paths:
            log.info("%s: up to %s, %d records via %s in %.1fs", ctx.label, state.watermark, records, via, time.monotonic() - started)
        return StreamResult(shop=shop.name, resource=resource.name, ok=True, records=records, path=via, watermark=state.watermark)

    async def _read_window(
        self, ctx: StreamContext, state: StreamState, *, counted_before: int | None = None
    ) -> StreamState:
        """Read the window in flight to its end (the state still names it), with the count guard.

        ``counted_before``: Shopify's EXACT count of the window, taken before this read. A window
        whose end is past only loses records (an update moves a record past the end, a deletion
        removes it), so a read that delivered at least that many missed none, and the guard's
        count after the read, which could only be lower, is not asked for: one request less per
        run of every small window (the daemon's steady state).

        The state returned has the window still in flight for the caller to close, or already
        closed (``window_end`` None) when it was closed with its last page: a window read as one
        chain whose count guard is met by the read itself (:meth:`_closing`)."""
        if ctx.resource.singular:
            return await singular.read_object(ctx, state)
        search = (
            builder.window_search(parse_optional_ts(state.window_start), parse_ts(_in_flight(state)))
            if ctx.resource.incremental
            else None
        )
        for attempt in range(MAX_COUNT_RETRIES + 1):
            # A window in flight on the bulk path of a resource now read page by page only (its
            # file changed to bulk: no) is read page by page.
            if state.path == "bulk" and ctx.resource.exportable:
                return await slices.read_window(ctx, state)
            handed: list[StreamState] = []
            with _paginating(ctx, self._paging_demand(ctx, state)):
                state = await paginated.read_window(
                    ctx, state, search, hand_over=self._hand_over_check(ctx, handed),
                    finish=self._closing(ctx, counted_before),
                )  # fmt: skip
            if state.window_end is None:  # closed with its last page: its guard was met
                return state
            if handed:
                state = handed[0]
                await self.state_store.save_stream(state)
                return await slices.read_window(ctx, state)
            if counted_before is not None and state.records_in_window >= counted_before:
                return state
            shortfall = await self._count_shortfall(ctx, state, search)
            if shortfall is None:
                return state
            ctx.observer.on_guard_mismatch(ctx.shop.name, ctx.resource.name, "count")
            if attempt == MAX_COUNT_RETRIES:
                raise IntegrityError(f"{ctx.label}: {shortfall}; the window was read {attempt + 1} times")
            log.warning("%s: %s; reading the window again", ctx.label, shortfall)
            state = state.rewound()
            await self.state_store.save_stream(state)
        return state

    def _closing(self, ctx: StreamContext, counted_before: int | None) -> paginated.Finish:
        """How a window read page by page is closed with its last page, when nothing is left to
        check after it: the resource has no count guard, or the read delivered at least the
        EXACT count taken before it (the guard's count after could only be lower)."""
        guarded = _count_guarded(ctx.resource)

        def close(read: StreamState) -> StreamState | None:
            if guarded and (counted_before is None or read.records_in_window < counted_before):
                return None
            return read.completed(read.window_end, self._now_ts())

        return close

    @staticmethod
    def _paging_demand(ctx: StreamContext, state: StreamState) -> float | None:
        """The points this window is expected to spend page by page: from the count its path was
        chosen by, else what the stream's last paged window spent (None: never paged yet)."""
        decision = ctx.shop.decisions.get(ctx.resource.name)
        if decision is not None and decision.count is not None:
            return path_choice.points_for(ctx, max(0, decision.count - state.records_in_window))
        return ctx.shop.last_paged_points.get(ctx.resource.name)

    def _hand_over_check(self, ctx: StreamContext, handed: list[StreamState]) -> paginated.HandOver | None:
        """The check, after each page, whether the rest of the window is sooner exported (None
        where it cannot be: a forced path or a fixed threshold, a resource whose pages are not in
        ``updatedAt`` order, or a window whose count is not known to this process).

        The rest of a window read in ``updatedAt`` order is everything from the last record's
        second on (inclusive: that second's records are read again, none is skipped). On a hand-
        over ``handed`` receives the state of that rest, on the bulk path."""
        decision = ctx.shop.decisions.get(ctx.resource.name)
        sync = self.settings.sync
        if (
            sync.path != "auto" or sync.bulk_threshold is not None or ctx.resource.sort_key != "UPDATED_AT"
            or not ctx.resource.exportable
            or decision is None or decision.count is None or decision.path != "paginated"
        ):  # fmt: skip
            return None
        counted = decision.count

        async def check(state: StreamState, last_updated_at: str | None) -> bool:
            if last_updated_at is None:
                return False
            est = path_choice.estimate(ctx, max(0, counted - state.records_in_window))
            if not planner.should_hand_over(est):
                return False
            start = format_ts(floor_second(parse_ts(last_updated_at)))
            handed.append(state.replace(path="bulk", window_start=start, cursor=None))
            await path_choice.record(ctx, planner.Decision(path="bulk", reason="hand_over", estimate=est, count=counted))
            log.info("%s: handing the rest of the window, %s .. %s, to a bulk export", ctx.label, start, state.window_end)
            return True

        return check

    def _next_window(self, shop: ShopConfig, resource: Resource, state: StreamState) -> Window | None:
        sync = self.settings.sync
        now = from_epoch(self.clock())
        if not resource.incremental:
            # Full-refresh resources are read whole every run, up to the same safety margin.
            return Window(None, now - sync.safety_margin)
        return next_window(
            parse_optional_ts(state.watermark),
            now,
            safety_margin=sync.safety_margin,
            overlap=sync.overlap,
            start_date=shop.start_date,
        )

    async def _count_shortfall(self, ctx: StreamContext, state: StreamState, search: str | None) -> str | None:
        """Compare what the window delivered with Shopify's count for the same filter.

        Records updated while the window was read move past its end (their new ``updatedAt`` is
        "now"), so Shopify may count *fewer* than we read; it can never rightly count more.
        """
        if not _count_guarded(ctx.resource):
            return None
        counted = await paginated.count_records(ctx, search)
        if counted is None or counted <= state.records_in_window:
            return None
        return f"Shopify counts {counted} records in the window but {state.records_in_window} were read"

    async def _sync_deletions(self, ctx: StreamContext, shop: ShopConfig, resource: Resource) -> None:
        """Mark records deleted from the shop, from ``destroy`` events since the last look."""
        if not resource.deletion_subject:
            return
        key = resource.name + DELETIONS_SUFFIX
        runtime = ctx.shop
        # This process's own look is the freshest (its row may lag it, below); else the saved row.
        dstate = runtime.deletion_looks.get(key) or await self.state_store.get_stream(shop.name, key)
        dstate = dstate or StreamState(shop=shop.name, resource=key)
        sync = self.settings.sync
        end = from_epoch(self.clock()) - sync.safety_margin
        since = parse_optional_ts(dstate.watermark)
        if since is not None:
            since = since - sync.overlap
        search = builder.deletion_search(resource.deletion_subject, since, end)
        document = builder.deletions_query()
        after: str | None = None
        seen: set[str] = set()
        while True:
            variables = {"first": 250, "after": after, "query": search}
            fetch = partial(self._execute_events, ctx, document, variables)
            conn = await paginated.read_advancing_page(ctx, fetch, _EVENTS_SHAPE, after, seen, "deletion events page")
            if conn is None:  # cannot happen: events is not under a node
                return
            deletions = [
                Deletion(shop=shop.name, resource=resource.name, id=node["subjectId"], deleted_at=node["createdAt"])
                for node in page_nodes(conn)
                if node.get("action") == "destroy" and isinstance(node.get("subjectId"), str)
                and isinstance(node.get("createdAt"), str)
            ]
            has_next = conn["pageInfo"]["hasNextPage"]
            if deletions or not has_next:
                done = not has_next
                new_state = dstate.succeeded(format_ts(end) if done else None, self._now_ts())
                # A look that found nothing only moves the row's watermark on: that is written at
                # most every STORE_EVERY seconds (one commit less per run of a daemon's streams).
                # Until then a restart reads the events since the row's older watermark again,
                # which marks nothing twice (a tombstone leaves a row already marked alone:
                # state/table.py): the row never claims more than was looked at.
                now = self.clock()
                stored = runtime.deletion_looks_stored.get(key)
                if deletions or not done or stored is None or now - stored >= path_choice.STORE_EVERY:
                    await self.state_store.commit(new_state, deletions=deletions)
                    runtime.deletion_looks_stored[key] = now
                dstate = new_state
                runtime.deletion_looks[key] = dstate
            if not has_next:
                return
            after = conn["pageInfo"]["endCursor"]
            seen.add(conn["pageInfo"]["endCursor"])

    async def _execute_events(self, ctx: StreamContext, document: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = await ctx.shop.client.execute(
            document,
            variables,
            priority=ctx.priority,
            operation=paginated.operation(ctx, "deletions"),
            check=partial(check_page, shape=_EVENTS_SHAPE),
        )
        return response.data


#: A page of ``events`` (builder.deletions_query): nodes outside ``... on BasicEvent`` are ``{}``.
_EVENTS_SHAPE = PageShape(path=("events",), node_id=False)

#: What identifies a shop's client and bucket: where and as whom shopsync connects.
_Connection = tuple[str, str, Secret | None, Secret | None, Secret | None]


def _connection(shop: ShopConfig) -> _Connection:
    return (shop.api_url, shop.token_url, shop.access_token, shop.client_id, shop.client_secret)


@contextmanager
def _paginating(ctx: StreamContext, demand: float | None) -> Iterator[None]:
    """Count the stream among the shop's streams reading pages (they share its restore rate),
    with the points it expects to spend (None: not known)."""
    shop, name = ctx.shop, ctx.resource.name
    shop.paginating[name] += 1
    if demand is not None:
        shop.paging_points[name] = demand
    spent = ctx.meter.points
    try:
        yield
    finally:
        shop.paginating[name] -= 1
        shop.paging_points.pop(name, None)
        shop.last_paged_points[name] = ctx.meter.points - spent


def _count_guarded(resource: Resource) -> bool:
    """Whether a window of ``resource`` read page by page is checked against Shopify's count of
    it: an incremental resource with a count field, not read per parent."""
    return bool(resource.count_field) and resource.incremental and not resource.parent_field


def _in_flight(state: StreamState) -> str:
    """The end of the window ``state`` is reading (a window is in flight when it is read)."""
    if state.window_end is None:
        raise ValueError(f"{state.shop}/{state.resource}: no window in flight")
    return state.window_end
