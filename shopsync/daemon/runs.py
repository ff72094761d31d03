"""Runs of streams, each a task of its own, and the parking their failures start.

Each stream run is a task named ``sync shop/resource`` and tagged with
``log_context(shop=…, resource=…)``, so every log line carries its shop and resource. At most one
run of a stream is in flight; a parked stream's run returns at once. After a run,
:class:`~shopsync.daemon.parking.Parking` decides what its outcome parks (the whole shop, or the
stream alone), the parking is recorded in the stream's state row and the parked streams' next
runs move to its end.

:class:`StreamRuns` is created by :class:`~shopsync.daemon.app.Daemon` once storage and the engine
are open; the daemon's scheduler jobs and ``run_once()`` both come here, so a scheduled run and a
deterministic one take the same path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime

from shopsync.daemon.hooks import DaemonHooks
from shopsync.daemon.parking import Park, Parked, Parking, clear_persisted_park, persist_park
from shopsync.daemon.status import BudgetView
from shopsync.daemon.view import StreamView
from shopsync.engine.engine import StreamResult, SyncEngine
from shopsync.engine.reconcile import Reconciler, reconcile_key
from shopsync.errors import LeaseLostError, ShopsyncError
from shopsync.observability.logs import log_context
from shopsync.settings import Settings, ShopConfig, StreamKey
from shopsync.state.models import StreamState
from shopsync.state.store import StateStore
from shopsync.timeutil import epoch_to_ts

log = logging.getLogger(__name__)

StreamTask = asyncio.Task[StreamResult | None]


class StreamRuns:
    """The stream runs in flight, and what happens around each one.

    ``accepting()`` says whether new runs may start (the daemon is running); ``run_at(job_id,
    when)`` moves a scheduler job's next run (a no-op without scheduled jobs, as with
    ``run_once()``); ``forget(shop)`` drops a removed shop's runtime, metrics and caches once it is idle.
    ``settings`` is the configuration new runs read (a reload replaces it).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        engine: SyncEngine,
        store: StateStore,
        parking: Parking,
        view: StreamView,
        clock: Callable[[], float],
        hooks: DaemonHooks,
        accepting: Callable[[], bool],
        run_at: Callable[[str, datetime], None],
        forget: Callable[[str], None],
        reconciler: Reconciler | None = None,
        owns: Callable[[str], bool] = lambda shop: True,
        lease_lost: Callable[[LeaseLostError], Awaitable[None]] | None = None,
        confirm: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        #: Whether this daemon holds the shop's lease (always, without several daemons).
        self._owns = owns
        self._lease_lost = lease_lost
        #: The shop's lease checked in the database before a run's first request (LeaseLostError).
        self._confirm = confirm
        self._reconciler = reconciler
        self._engine = engine
        self._store = store
        self._parking = parking
        self._view = view
        self._clock = clock
        self._hooks = hooks
        self._accepting = accepting
        self._run_at = run_at
        self._forget = forget
        #: The run in flight of each stream.
        self.tasks: dict[StreamKey, StreamTask] = {}
        #: Shops that ran at least once (only they have a budget worth showing).
        self.ran_shops: set[str] = set()
        #: Shops a reload removed whose runs are still in flight.
        self._removed: set[str] = set()
        #: Streams with one more run due right after the run in flight (run_again_after).
        self._again: set[StreamKey] = set()

    # ------------------------------------------------------------------------------------------
    # starting runs

    async def job(self, shop: str, resource: str) -> None:
        """One scheduled run (an APScheduler job): start the stream's task and wait for it."""
        task = self.spawn(shop, resource)
        if task is None:
            return
        try:
            # wait(), not await: a run cancelled by stop() ends this job quietly.
            await asyncio.wait([task])
        except asyncio.CancelledError:
            # The scheduler shutting down cancels its jobs; the run itself is stop()'s business.
            return

    def spawn(self, shop: str, resource: str) -> StreamTask | None:
        """Start a run of the stream as a task; None when one is in flight or the daemon is not running."""
        key = (shop, resource)
        if key in self.tasks or not self._accepting():
            return None
        task = asyncio.create_task(self._run_stream(shop, resource), name=f"sync {shop}/{resource}")
        self.tasks[key] = task

        def done(t: StreamTask) -> None:
            if self.tasks.get(key) is t:
                del self.tasks[key]
            self.forget_if_idle(shop)

        task.add_done_callback(done)
        return task

    def run_again_after(self, shop: str, resource: str) -> None:
        """Start one more run of the stream as soon as its run in flight ends (a scheduled run came
        due meanwhile). Coalesced: however many came due, one run follows; nothing when idle."""
        key = (shop, resource)
        task = self.tasks.get(key)
        if task is None or key in self._again:
            return
        self._again.add(key)

        def again(_: StreamTask) -> None:
            self._again.discard(key)
            self.spawn(shop, resource)

        task.add_done_callback(again)

    async def run_all(self, shops: Iterable[str] | None = None) -> list[StreamResult]:
        """Run every configured stream (of ``shops``, default all) once, concurrently, and wait.

        Parked streams and streams already running are skipped (no result).
        """
        wanted = set(shops) if shops is not None else None
        tasks = [
            t
            for shop in self.settings.shops
            if wanted is None or shop.name in wanted
            for resource in shop.resources
            if (t := self.spawn(shop.name, resource)) is not None
        ]
        results = await asyncio.gather(*tasks)
        return [r for r in results if r is not None]

    async def cancel_all(self, *, within: Callable[[], float]) -> None:
        """Cancel every run in flight and wait for them, at most ``within()`` seconds (asked once
        they are cancelled): a storage write that started finishes first (its commit is shielded)."""
        tasks = list(self.tasks.values())
        log.info("stopping: cancelling %d in-flight stream runs", len(tasks))
        for task in tasks:
            task.cancel()
        if tasks:
            wait_for = within()
            _, pending = await asyncio.wait(tasks, timeout=wait_for)
            if pending:
                log.error(
                    "stopping: %d stream runs did not finish within %.1fs; abandoning them",
                    len(pending), wait_for,
                )

    async def cancel_shop(self, shop: str, *, within: float, spare: asyncio.Task[object] | None = None) -> None:
        """Cancel the shop's runs in flight (but the calling one and ``spare``) and wait for them,
        at most ``within`` seconds (a storage write that started finishes first)."""
        keep = {asyncio.current_task(), spare}
        tasks = [t for k, t in self.tasks.items() if k[0] == shop and t not in keep]
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=within)
            if pending:
                log.error("%d runs of shop %s did not stop within %.1fs", len(pending), shop, within)

    def budgets(self) -> dict[str, BudgetView]:
        """The cost budget of each configured shop that ran since the start (only those have one)."""
        budgets = {}
        for shop in self.settings.shops:
            runtime = self._engine.existing_runtime(shop.name) if shop.name in self.ran_shops else None
            if runtime is not None:
                budgets[shop.name] = BudgetView.of(runtime.budget)
        return budgets

    # ------------------------------------------------------------------------------------------
    # one run

    async def _run_stream(self, shop_name: str, resource_name: str) -> StreamResult | None:
        with log_context(shop=shop_name, resource=resource_name):
            shop = _find_shop(self.settings, shop_name)
            if shop is None or resource_name not in shop.resources:
                return None
            key = (shop_name, resource_name)
            if not self._owns(shop_name):
                log.debug("not run: another daemon holds the shop's lease")
                return None
            now = self._clock()
            park = self._parking.active(key, now)
            if park is not None:
                log.debug(
                    "parked until %s: %s", epoch_to_ts(park.until) if park.until else "further notice", park.reason
                )
                return None
            await self._clear_persisted_park(key, now)
            resource = self.settings.resources[resource_name]
            self.ran_shops.add(shop_name)
            try:
                if self._confirm is not None:
                    # A daemon back from a pause must not spend the new owner's budget on reads.
                    await self._confirm(shop_name)
                result = await self._engine.sync_stream(shop, resource)
            except ShopsyncError as exc:  # the engine returns its errors; be safe anyway
                result = _failure(shop_name, resource_name, exc)
            except Exception as exc:
                # A bug below must cost one run of one stream, never the daemon.
                log.exception("unexpected error; the stream is retried on its next run")
                result = _failure(shop_name, resource_name, exc)
                await self._save_error(key, result.error or "")
            if isinstance(result.exception, LeaseLostError):
                # Another daemon owns the shop now: no parking, no error recorded (its state is
                # the new owner's to write); the shop's other runs stop too.
                log.warning("run stopped: %s", result.exception)
                if self._lease_lost is not None:
                    await self._lease_lost(result.exception)
                await self._hooks.run_finished(result)
                return result
            if result.ok:
                await self._reconcile_if_due(shop, resource_name)
            await self._after_run(shop, result)
            return result

    async def _reconcile_if_due(self, shop: ShopConfig, resource_name: str) -> None:
        """The stream's reconciliation, when due, inside its run and after its sync: it never runs
        beside the stream's own sync, and its requests wait behind every stream's on the budget.
        Its failure is recorded in its own state row; the stream's run stays a success."""
        if self._reconciler is None:
            return
        try:
            if await self._reconciler.due(shop, resource_name):
                await self._reconciler.reconcile_stream(shop, self.settings.resources[resource_name])
                await self._view.refresh_stream(self._store, (shop.name, reconcile_key(resource_name)))
        except LeaseLostError as exc:
            log.warning("reconcile stopped: %s", exc)
            if self._lease_lost is not None:
                await self._lease_lost(exc)
        except ShopsyncError as exc:
            log.error("reconcile could not run: %s", exc)

    async def _after_run(self, shop: ShopConfig, result: StreamResult) -> None:
        key = (result.shop, result.resource)
        now = self._clock()
        if _find_shop(self.settings, shop.name) is None:
            pass  # removed by a reload while this run was in flight: nothing to park or retry
        elif result.ok:
            self._parking.succeeded(key)
        else:
            parked = self._parking.failed(key, result.exception, now)
            if parked is not None:
                await self._announce_park(shop, key, parked, now)
        # A shop parked by a sibling's failure: record it for this stream too, now that it is idle.
        park = self._parking.active(key, now)
        if park is not None:
            await self._persist_park(key, park, now)
        await self._view.refresh_stream(self._store, key)
        await self._hooks.run_finished(result)

    # ------------------------------------------------------------------------------------------
    # parking

    async def _announce_park(self, shop: ShopConfig, key: StreamKey, parked: Parked, now: float) -> None:
        """Log a new parking, record it in the state rows and move the parked runs to its end."""
        park = parked.park
        if not parked.whole_shop:
            log.error("resource parked until %s: %s", epoch_to_ts(park.until or now), park.reason)
            await self._persist_park(key, park, now)
            self._retry_at([key], park)
            return
        log.error("shop parked until %s: %s", epoch_to_ts(park.until or now), park.reason)
        keys = [(shop.name, r) for r in shop.resources]
        for k in keys:
            # Running siblings record it when they finish (they might still write their state).
            if k not in self.tasks or self.tasks[k] is asyncio.current_task():
                await self._persist_park(k, park, now)
        self._retry_at(keys, park)

    def _retry_at(self, keys: Iterable[StreamKey], park: Park) -> None:
        """Run the parked streams again right when the parking ends (then on their schedule)."""
        if park.until is None:
            return
        when = datetime.fromtimestamp(park.until, UTC)
        for shop, resource in keys:
            self._run_at(f"{shop}/{resource}", when)

    def parked_first_runs(self) -> dict[str, datetime]:
        """When each parked stream may run next, by scheduler job id (for arming the schedules)."""
        keys = [(s.name, r) for s in self.settings.shops for r in s.resources]
        return self._parking.first_runs(keys, self._clock())

    async def _persist_park(self, key: StreamKey, park: Park, now: float) -> None:
        saved = await persist_park(self._store, key, park, now)
        if saved is not None:
            self._view.put(saved)

    async def _clear_persisted_park(self, key: StreamKey, now: float) -> None:
        # The view holds every row read or written since the last refresh: skip the read if clear.
        cached = self._view.state(key)
        if cached is None or cached.parked_reason is None:
            return
        saved = await clear_persisted_park(self._store, key, now)
        if saved is not None:
            self._view.put(saved)

    async def _save_error(self, key: StreamKey, message: str) -> None:
        try:
            state = await self._store.get_stream(*key) or StreamState(shop=key[0], resource=key[1])
            await self._store.save_stream(state.failed(message, self._clock()))
        except ShopsyncError as exc:
            log.error("could not record the error in the state database: %s", exc)

    # ------------------------------------------------------------------------------------------
    # shops a reload removed or added

    def shops_changed(self, *, added: Iterable[str], removed: Iterable[str]) -> None:
        """A reload removed and added these shops: forget the removed ones once idle."""
        for name in removed:
            self._removed.add(name)
            self.forget_if_idle(name)
        for name in added:
            self._removed.discard(name)

    def forget_if_idle(self, shop: str) -> None:
        """Drop a removed shop's runtime, metrics and caches once none of its runs is in flight."""
        if shop not in self._removed or any(k[0] == shop for k in self.tasks):
            return
        self._removed.discard(shop)
        self.ran_shops.discard(shop)
        self._forget(shop)
        log.info("shop %s removed from the configuration; its state stays in the database", shop)


def _find_shop(settings: Settings, name: str) -> ShopConfig | None:
    for shop in settings.shops:
        if shop.name == name:
            return shop
    return None


def _failure(shop: str, resource: str, exc: BaseException) -> StreamResult:
    return StreamResult(
        shop=shop,
        resource=resource,
        ok=False,
        error=f"{type(exc).__name__}: {exc}",
        exception=exc if isinstance(exc, ShopsyncError) else None,
    )
