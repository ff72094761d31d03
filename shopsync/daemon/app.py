"""The daemon: one owner for everything ``shopsync run`` starts, with an explicit lifecycle.

    daemon = Daemon(settings)
    exit_code = await daemon.run_forever(handle_signals=True)     # shopsync run
    exit_code = await daemon.run_forever(shutdown=event.wait())    # tests: an injected trigger

Lifecycle (:class:`RunState`): NEW → STARTING → RUNNING → STOPPING → STOPPED.

``start()`` opens, in order, each registered on one ``AsyncExitStack`` so that ``stop()`` (or a
failed start) closes exactly what was opened, in reverse: the state store and sink, the engine and
its HTTP session (one connection pool, ``[sync] max_connections``), the HTTP endpoints, the
scheduler with one job per (shop, resource), the watchdog task. Then it tells systemd ``READY=1``.

Each stream run is a task of its own, named and tagged (``log_context(shop=…, resource=…)``), so
every log line carries its shop and resource. Streams of one shop run concurrently on that shop's
one cost budget (the engine's per-shop runtime, incremental work ahead of backfills); shops are
independent. A run that fails with 401/402/404/423 parks the whole shop, a 403 (missing scope)
only that resource, and ``parking.TRANSIENT_RUNS_TO_PARK`` runs in a row failing on 5xx/timeouts park
the shop too: for ``park_backoff``, doubling on each further failure up to ``park_backoff_max``,
with the reason persisted in the stream state (``shopsync status``, ``/status``, metrics). A
parked stream's job returns at once, so parked work never holds anything up.

Signals only set flags (``loop.add_signal_handler``): SIGHUP → :meth:`reload` (re-read the
configuration, reschedule added/removed/changed shops, in-flight runs continue; a bad file is
rejected with its message and the running configuration stays), SIGTERM/SIGINT → :meth:`stop`
(stop scheduling, cancel in-flight runs — a page write that started finishes first, since storage
commits are shielded — close storage, ``STOPPING=1``, all within ``stop_timeout``; exit 0).

The concepts the daemon composes live in their own modules: :mod:`~shopsync.daemon.parking`
(which failures park what, back-off, persisting it), :mod:`~shopsync.daemon.reload` (what a new
configuration changes, what needs a restart), :mod:`~shopsync.daemon.view` (the in-memory view the
metrics, ``STATUS=`` and ``/status`` read), :mod:`~shopsync.daemon.health` (stall detection for
``/healthz``), :mod:`~shopsync.daemon.scheduler`, :mod:`~shopsync.daemon.http`,
:mod:`~shopsync.daemon.sdnotify` and :mod:`~shopsync.daemon.metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from shopsync import __version__
from shopsync.config import Settings, load_settings
from shopsync.daemon.health import Heartbeats
from shopsync.daemon.http import HttpServer
from shopsync.daemon.logs import log_context, register_secrets, setup_logging
from shopsync.daemon.metrics import Metrics, StateSnapshot, format_status
from shopsync.daemon.parking import Park, Parked, Parking, clear_persisted_park, persist_park
from shopsync.daemon.reload import plan_reload
from shopsync.daemon.scheduler import StreamScheduler, quiet_apscheduler, schedule_specs
from shopsync.daemon.sdnotify import DEFAULT_STALL_AFTER, Notifier, Watchdog, watchdog_interval
from shopsync.daemon.status import BudgetView, LiveView
from shopsync.daemon.view import StreamView, ViewObserver
from shopsync.engine.engine import StreamResult, SyncEngine
from shopsync.errors import ConfigError, ShopsyncError, StorageError
from shopsync.state.models import StreamState
from shopsync.storage import Storage, open_storage
from shopsync.timeutil import format_ts, from_epoch

log = logging.getLogger(__name__)

StreamKey = tuple[str, str]

#: How often the stream states and bulk operations are re-read for /status and the metrics.
REFRESH_EVERY = 5.0
#: Part of ``stop_timeout`` kept for closing storage after the runs were cancelled.
CLOSE_RESERVE = 0.25


class RunState(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class StartupError(ShopsyncError):
    """The daemon could not start (storage, listening address); exit code 1."""


def _ts(epoch: float) -> str:
    return format_ts(from_epoch(epoch))


# --------------------------------------------------------------------------------------------
# the daemon


class Daemon:
    """Keeps every configured shop synced on its schedule; see the module docstring.

    ``env`` is what reloads read the configuration with (None: ``os.environ``) and where systemd's
    ``NOTIFY_SOCKET``/``WATCHDOG_USEC`` are looked up. ``stall_after`` is how long without a
    scheduler heartbeat counts as stalled (default: systemd's watchdog interval, else 60 s);
    ``heartbeat_every`` defaults to a quarter of it (at most 5 s). ``registry``, ``notifier``,
    ``clock`` (epoch seconds), ``monotonic``, ``rng`` and ``session`` are injectable for tests.
    ``manage_logging`` lets a reload apply a changed ``log_format``/``log_level`` (the CLI owns logging).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        config_path: Path | str | None = None,
        env: Mapping[str, str] | None = None,
        registry: CollectorRegistry | None = None,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        stall_after: float | None = None,
        heartbeat_every: float | None = None,
        refresh_every: float = REFRESH_EVERY,
        rng: random.Random | None = None,
        session: Any = None,
        manage_logging: bool = False,
    ) -> None:
        self.settings = settings
        self.config_path = Path(config_path) if config_path is not None else Path(settings.path)
        self.env = env
        lookup_env = os.environ if env is None else env
        self.notifier = notifier if notifier is not None else Notifier.from_env(lookup_env)
        self._watchdog_interval = watchdog_interval(lookup_env)
        self.stall_after = stall_after or self._watchdog_interval or DEFAULT_STALL_AFTER
        self.heartbeat_every = heartbeat_every or min(5.0, self.stall_after / 4)
        self.refresh_every = refresh_every
        self.clock = clock
        self.monotonic = monotonic
        self.rng = rng or random.Random()
        self.manage_logging = manage_logging
        self.metrics = Metrics(registry if registry is not None else CollectorRegistry(), clock=clock)
        self.parking = Parking(
            settings.daemon.park_backoff.total_seconds(), settings.daemon.park_backoff_max.total_seconds()
        )
        #: Each stream's state as metrics, STATUS= and /status read it (no I/O at read time).
        self.view = StreamView()
        self.state = RunState.NEW
        self.storage: Storage | None = None
        self.engine: SyncEngine | None = None
        self.http: HttpServer | None = None
        self.scheduler: StreamScheduler | None = None
        self.watchdog: Watchdog | None = None
        self._session = session
        self._stack = contextlib.AsyncExitStack()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: dict[StreamKey, asyncio.Task[StreamResult | None]] = {}
        self._ran_shops: set[str] = set()
        self._removed_shops: set[str] = set()
        self._wake = asyncio.Event()
        self._stop_requested = False
        self._reload_requested = False
        self._stopped = asyncio.Event()
        self._scheduled = False
        self._heartbeats = Heartbeats(self.stall_after, monotonic())
        self.started_at: float | None = None
        #: The last result of each stream, and how many runs of each succeeded (tests read them).
        self.last_results: dict[StreamKey, StreamResult] = {}
        self.successes: dict[StreamKey, int] = {}
        self.runs_completed = 0
        #: Set once RUNNING (start() finished), for callers that started run_forever() as a task.
        self.running = asyncio.Event()
        #: Outcome of each reload (True applied, False rejected), in order.
        self.reloads: list[bool] = []
        #: Notified after every finished run and reload (tests wait on it instead of sleeping).
        self.changed = asyncio.Condition()

    # ------------------------------------------------------------------------------------------
    # lifecycle

    async def start(self, *, schedule: bool = True) -> None:
        """Open storage, the engine, the endpoints, the scheduler; then ``READY=1``.

        ``schedule=False`` arms no stream jobs (the deterministic test mode: call :meth:`run_once`).
        Raises :class:`StartupError` (storage, listening address) after closing what was opened.
        """
        if self.state is not RunState.NEW:
            raise RuntimeError(f"Daemon.start() called in state {self.state.value}")
        self.state = RunState.STARTING
        self._loop = asyncio.get_running_loop()
        self.started_at = self.clock()
        settings = self.settings
        register_secrets(settings)
        try:
            try:
                self.storage = await open_storage(settings)
            except StorageError as exc:
                raise StartupError(f"cannot open the state database: {exc}") from exc
            self._stack.push_async_callback(self.storage.close)
            observer = self.metrics.observer()
            self.engine = SyncEngine(
                settings,
                self.storage.state,
                work_dir=settings.work_dir,
                observer=ViewObserver(observer, self.view, self.clock),
                request_observer=observer,
                session=self._session,
                clock=self.clock,
            )
            await self._stack.enter_async_context(self.engine)
            await self._refresh()
            self.parking.restore_all(self.view.states(), self._shops(), self.clock())
            self.metrics.set_state_provider(self.snapshot)

            d = settings.daemon
            self.http = HttpServer(self, self.metrics, host=d.listen_host, port=d.listen_port)
            try:
                await self.http.start()
            except OSError as exc:
                raise StartupError(
                    f"[daemon] listen: cannot listen on {d.listen}: {exc.strerror or exc}"
                ) from exc
            self._stack.push_async_callback(self.http.close)

            self.scheduler = StreamScheduler(
                self._job,
                heartbeat=self._beat,
                heartbeat_every=self.heartbeat_every,
                refresh=self._refresh,
                refresh_every=self.refresh_every,
                rng=self.rng,
            )
            self.scheduler.start()
            self._stack.callback(self.scheduler.shutdown)
            self._scheduled = schedule
            if schedule:
                self.scheduler.apply(schedule_specs(settings), first_runs=self._parked_first_runs())

            self.watchdog = Watchdog(
                self.notifier,
                interval=self._watchdog_interval,
                stall_after=self.stall_after,
                status=self.status_line,
                clock=self.monotonic,
            )
            self.watchdog.heartbeat()
            self._heartbeats.reset(self.monotonic())
        except BaseException:
            self.state = RunState.STOPPING
            await self._stack.aclose()
            self.state = RunState.STOPPED
            self._stopped.set()
            raise
        self.state = RunState.RUNNING
        self.running.set()
        self.metrics.set_ready(True)
        streams = sum(len(s.resources) for s in settings.shops)
        log.info(
            "shopsync %s daemon started (pid %d): %d shops, %d streams, endpoints on %s",
            __version__, os.getpid(), len(settings.shops), streams, self.http.url,
        )
        # READY first; the watchdog task (STATUS=, WATCHDOG=1) only starts after it.
        self.notifier.ready(status=self.status_line())
        watchdog_task = asyncio.create_task(self.watchdog.run(), name="watchdog")
        self._stack.push_async_callback(_cancel_and_wait, watchdog_task)

    async def stop(self) -> None:
        """Stop within ``stop_timeout``: no new runs, cancel in-flight ones (a started storage write
        finishes first), close everything, ``STOPPING=1``. Idempotent; concurrent callers wait."""
        if self.state in (RunState.STOPPING, RunState.STOPPED):
            await self._stopped.wait()
            return
        if self.state is RunState.NEW:
            self.state = RunState.STOPPED
            self._stopped.set()
            return
        self.state = RunState.STOPPING
        budget = self.settings.daemon.stop_timeout.total_seconds()
        deadline = self.monotonic() + budget
        self.notifier.stopping(status="stopping: finishing in-flight writes")
        self.metrics.set_ready(False)
        if self.scheduler is not None:
            self.scheduler.pause()
        tasks = list(self._tasks.values())
        log.info("stopping: cancelling %d in-flight stream runs", len(tasks))
        for task in tasks:
            task.cancel()
        if tasks:
            wait_for = max(0.0, deadline - self.monotonic() - budget * CLOSE_RESERVE)
            _, pending = await asyncio.wait(tasks, timeout=wait_for)
            if pending:
                log.error(
                    "stopping: %d stream runs did not finish within %.1fs; abandoning them",
                    len(pending), wait_for,
                )
        try:
            async with asyncio.timeout(max(0.1, deadline - self.monotonic())):
                await self._stack.aclose()
        except TimeoutError:
            log.error("stopping: closing storage did not finish within the stop timeout")
        # APScheduler applies shutdown through the loop: let it run before the loop may close.
        await asyncio.sleep(0)
        self.notifier.close()
        self.state = RunState.STOPPED
        self._stopped.set()
        log.info("stopped")

    async def run_forever(
        self, shutdown: Awaitable[object] | None = None, *, handle_signals: bool = False
    ) -> int:
        """Start, serve until ``shutdown`` completes or :meth:`request_stop`, then stop; returns 0.

        ``handle_signals`` installs SIGTERM/SIGINT (stop) and SIGHUP (reload) handlers that only
        set a flag. Reloads requested meanwhile run here, one at a time.
        """
        loop = asyncio.get_running_loop()
        self._loop = loop
        installed: list[int] = []
        if handle_signals:
            for sig, handler in (
                (signal.SIGTERM, self.request_stop),
                (signal.SIGINT, self.request_stop),
                (signal.SIGHUP, self.request_reload),
            ):
                loop.add_signal_handler(sig, handler)
                installed.append(sig)
        trigger: asyncio.Future[object] | None = None
        try:
            await self.start()
            if shutdown is not None:
                trigger = asyncio.ensure_future(shutdown)
                trigger.add_done_callback(lambda _: self.request_stop())
            while not self._stop_requested:
                await self._wake.wait()
                self._wake.clear()
                if self._stop_requested:
                    break
                if self._reload_requested:
                    self._reload_requested = False
                    await self.reload()
        finally:
            if trigger is not None and not trigger.done():
                trigger.cancel()
            await self.stop()
            for sig in installed:
                loop.remove_signal_handler(sig)
        return 0

    def request_stop(self) -> None:
        """Ask :meth:`run_forever` to stop. Safe from a signal handler or another thread."""
        if self._stop_requested:
            log.info("already stopping")
        self._stop_requested = True
        self._poke()

    def request_reload(self) -> None:
        """Ask :meth:`run_forever` to reload the configuration. Safe from a signal handler or thread."""
        self._reload_requested = True
        self._poke()

    def _poke(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    # ------------------------------------------------------------------------------------------
    # reload

    async def reload(self) -> bool:
        """Re-read the configuration file and apply it; False (and nothing changed) if it is bad.

        Added shops and resources get jobs (first run now), removed ones lose theirs (a run in
        flight finishes), changed schedules are re-armed, changed credentials or resources apply
        from the next run. ``database``, ``[sink]``, ``work_dir`` and ``[daemon] listen`` can only
        change with a restart: a file changing them is rejected.
        """
        self.notifier.reloading()
        log.info("reloading the configuration from %s", self.config_path)
        try:
            new = await asyncio.to_thread(load_settings, self.config_path, env=self.env)
            plan = plan_reload(self.settings, new)
        except Exception as exc:  # ConfigError, or anything unexpected: never take the daemon down
            if not isinstance(exc, ConfigError):
                log.exception("unexpected error while reloading the configuration")
            log.error("configuration reload rejected, the running configuration stays: %s", exc)
            self.notifier.ready(status=self.status_line())
            self.reloads.append(False)
            await self._notify_changed()
            return False
        if plan.pool_kept is not None:
            log.warning("sync.max_connections changed: the connection pool keeps %d until a restart", plan.pool_kept)
        register_secrets(new)
        self.settings = new
        if self.engine is not None:
            # New runs read sync settings and resources from here; runs in flight keep theirs.
            self.engine.settings = new
        d = new.daemon
        self.parking.configure(d.park_backoff.total_seconds(), d.park_backoff_max.total_seconds())
        if self.manage_logging and plan.logging_changed:
            setup_logging(format=d.log_format, level=d.log_level)
            quiet_apscheduler(logging.getLogger().level)
        if self.scheduler is not None and self._scheduled:
            self.scheduler.apply(schedule_specs(new), first_runs=self._parked_first_runs())
        for name in plan.removed:
            self._removed_shops.add(name)
            self._forget_if_idle(name)
        for name in plan.added:
            self._removed_shops.discard(name)
        log.info(
            "configuration reloaded: %d shops (added: %s; removed: %s; changed: %s)",
            len(new.shops),
            ", ".join(plan.added) or "none",
            ", ".join(plan.removed) or "none",
            ", ".join(plan.changed) or "none",
        )
        self.notifier.ready(status=self.status_line())
        self.reloads.append(True)
        await self._notify_changed()
        return True

    def _forget_if_idle(self, shop: str) -> None:
        """Drop a removed shop's runtime, metrics and caches once none of its runs is in flight."""
        if shop not in self._removed_shops or any(k[0] == shop for k in self._tasks):
            return
        self._removed_shops.discard(shop)
        if self.engine is not None:
            self.engine.forget_shop(shop)
        self.metrics.forget_shop(shop)
        self.parking.forget_shop(shop)
        self.view.forget_shop(shop)
        self._ran_shops.discard(shop)
        for table in (self.last_results, self.successes):
            for key in [k for k in table if k[0] == shop]:
                del table[key]
        log.info("shop %s removed from the configuration; its state stays in the database", shop)

    # ------------------------------------------------------------------------------------------
    # running streams

    async def _job(self, shop: str, resource: str) -> None:
        """One scheduled run (an APScheduler job): start the stream's task and wait for it."""
        self._heartbeat()
        task = self._spawn(shop, resource)
        if task is None:
            return
        try:
            # wait(), not await: a run cancelled by stop() ends this job quietly.
            await asyncio.wait([task])
        except asyncio.CancelledError:
            # The scheduler shutting down cancels its jobs; the run itself is stop()'s business.
            return

    def _spawn(self, shop: str, resource: str) -> asyncio.Task[StreamResult | None] | None:
        key = (shop, resource)
        if key in self._tasks or self.state is not RunState.RUNNING:
            return None
        task = asyncio.create_task(self._run_stream(shop, resource), name=f"sync {shop}/{resource}")
        self._tasks[key] = task

        def done(t: asyncio.Task[StreamResult | None]) -> None:
            if self._tasks.get(key) is t:
                del self._tasks[key]
            self._forget_if_idle(shop)

        task.add_done_callback(done)
        return task

    async def run_once(self, shops: Iterable[str] | None = None) -> list[StreamResult]:
        """Run every configured stream (of ``shops``, default all) once, concurrently, and wait.

        The deterministic test mode (with ``start(schedule=False)``): the same per-stream code
        path as scheduled runs, including parking. Parked streams and streams already running
        are skipped (no result).
        """
        if self.state is not RunState.RUNNING:
            raise RuntimeError("run_once() needs a started daemon")
        wanted = set(shops) if shops is not None else None
        tasks = [
            t
            for shop in self.settings.shops
            if wanted is None or shop.name in wanted
            for resource in shop.resources
            if (t := self._spawn(shop.name, resource)) is not None
        ]
        results = await asyncio.gather(*tasks)
        return [r for r in results if r is not None]

    async def _run_stream(self, shop_name: str, resource_name: str) -> StreamResult | None:
        with log_context(shop=shop_name, resource=resource_name):
            shop = _find_shop(self.settings, shop_name)
            if shop is None or resource_name not in shop.resources or self.engine is None:
                return None
            key = (shop_name, resource_name)
            now = self.clock()
            park = self.parking.active(key, now)
            if park is not None:
                log.debug("parked until %s: %s", _ts(park.until) if park.until else "further notice", park.reason)
                return None
            await self._clear_persisted_park(key, now)
            resource = self.settings.resources[resource_name]
            self._ran_shops.add(shop_name)
            try:
                result = await self.engine.sync_stream(shop, resource)
            except ShopsyncError as exc:  # the engine returns its errors; be safe anyway
                result = _failure(shop_name, resource_name, exc)
            except Exception as exc:
                # A bug below must cost one run of one stream, never the daemon.
                log.exception("unexpected error; the stream is retried on its next run")
                result = _failure(shop_name, resource_name, exc)
                await self._save_error(key, result.error or "")
            await self._after_run(shop, result)
            return result

    async def _after_run(self, shop: Any, result: StreamResult) -> None:
        key = (result.shop, result.resource)
        now = self.clock()
        if _find_shop(self.settings, shop.name) is None:
            pass  # removed by a reload while this run was in flight: nothing to park or retry
        elif result.ok:
            self.parking.succeeded(key)
            self.successes[key] = self.successes.get(key, 0) + 1
        else:
            parked = self.parking.failed(key, result.exception, now)
            if parked is not None:
                await self._announce_park(shop, key, parked, now)
        # A shop parked by a sibling's failure: record it for this stream too, now that it is idle.
        park = self.parking.active(key, now)
        if park is not None:
            await self._persist_park(key, park, now)
        await self._refresh_stream(key)
        self.last_results[key] = result
        self.runs_completed += 1
        await self._notify_changed()

    async def _announce_park(self, shop: Any, key: StreamKey, parked: Parked, now: float) -> None:
        """Log a new parking, record it in the state rows and move the parked runs to its end."""
        park = parked.park
        if not parked.whole_shop:
            log.error("resource parked until %s: %s", _ts(park.until or now), park.reason)
            await self._persist_park(key, park, now)
            self._retry_at([key], park)
            return
        log.error("shop parked until %s: %s", _ts(park.until or now), park.reason)
        keys = [(shop.name, r) for r in shop.resources]
        for k in keys:
            # Running siblings record it when they finish (they might still write their state).
            if k not in self._tasks or self._tasks[k] is asyncio.current_task():
                await self._persist_park(k, park, now)
        self._retry_at(keys, park)

    def _retry_at(self, keys: Iterable[StreamKey], park: Park) -> None:
        """Run the parked streams again right when the parking ends (then on their schedule)."""
        if self.scheduler is None or not self._scheduled or park.until is None:
            return
        when = datetime.fromtimestamp(park.until, UTC)
        for shop, resource in keys:
            self.scheduler.run_at(f"{shop}/{resource}", when)

    def _parked_first_runs(self) -> dict[str, datetime]:
        keys = [(name, r) for name, resources in self._shops() for r in resources]
        return self.parking.first_runs(keys, self.clock())

    async def _persist_park(self, key: StreamKey, park: Park, now: float) -> None:
        assert self.storage is not None
        saved = await persist_park(self.storage.state, key, park, now)
        if saved is not None:
            self.view.put(saved)

    async def _clear_persisted_park(self, key: StreamKey, now: float) -> None:
        # The view holds every row read or written since the last refresh: skip the read if clear.
        cached = self.view.state(key)
        if cached is None or cached.parked_reason is None:
            return
        assert self.storage is not None
        saved = await clear_persisted_park(self.storage.state, key, now)
        if saved is not None:
            self.view.put(saved)

    async def _save_error(self, key: StreamKey, message: str) -> None:
        assert self.storage is not None
        try:
            state = await self.storage.state.get_stream(*key) or StreamState(shop=key[0], resource=key[1])
            await self.storage.state.save_stream(state.failed(message, self.clock()))
        except ShopsyncError as exc:
            log.error("could not record the error in the state database: %s", exc)

    # ------------------------------------------------------------------------------------------
    # the in-memory view: refreshed from storage, updated by engine events

    async def _refresh(self) -> None:
        """Re-read every stream state and unfinished bulk operation (a scheduler job)."""
        if self.storage is None:
            return
        try:
            await self.view.refresh(self.storage.state)
        except asyncio.CancelledError:
            if self.state is RunState.STOPPING:
                return  # the scheduler's shutdown cancels its jobs: nothing to report
            raise

    async def _refresh_stream(self, key: StreamKey) -> None:
        assert self.storage is not None
        await self.view.refresh_stream(self.storage.state, key)

    def _shops(self) -> list[tuple[str, tuple[str, ...]]]:
        """The configured shops as (name, resources), in order."""
        return [(s.name, s.resources) for s in self.settings.shops]

    # ------------------------------------------------------------------------------------------
    # health, readiness, status

    async def _beat(self) -> None:
        """The scheduler's heartbeat job; also notices when it ran far later than due."""
        self._heartbeat()

    def _heartbeat(self) -> None:
        stall = self._heartbeats.beat(self.monotonic())
        if stall is not None:
            log.warning("the daemon's event loop or scheduler stalled for %.1fs (limit %.1fs)", stall, self.stall_after)
        if self.watchdog is not None:
            self.watchdog.heartbeat()

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy while running, heartbeats are fresh and no stall was seen within the last
        ``stall_after`` (:meth:`shopsync.daemon.health.Heartbeats.check`), and the watchdog agrees."""
        fresh, detail = self._heartbeats.check(self.monotonic())
        watchdog_ok = self.watchdog.healthy() if self.watchdog is not None else True
        ok = self.state is RunState.RUNNING and fresh and watchdog_ok
        return ok, {
            "state": self.state.value,
            **detail,
            "loop_lag_seconds": round(self.watchdog.loop_lag, 3) if self.watchdog is not None else None,
        }

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready once the state store is open and the schedules are armed; not while stopping."""
        store_open = self.storage is not None and self.state is RunState.RUNNING
        armed = self.scheduler is not None and self.scheduler.running
        ok = self.state is RunState.RUNNING and store_open and armed
        return ok, {"state": self.state.value, "state_store": store_open, "schedules": armed}

    def snapshot(self) -> StateSnapshot:
        """Scrape-time view for the metrics (in memory: no I/O)."""
        now = self.clock()
        return self.view.snapshot(
            self._shops(),
            syncing=self._tasks,
            parked_shops=self.parking.shop_parks(now),
            parked_streams=self.parking.stream_parks(now),
        )

    def status_line(self) -> str:
        """The ``STATUS=`` line: ``"12 shops, 3 syncing, max lag 42s"``."""
        return format_status(self.snapshot(), self.clock())

    def status(self) -> dict[str, Any]:
        """The ``/status`` document (see :func:`shopsync.daemon.status.build_status`)."""
        now = self.clock()
        budgets = {}
        if self.engine is not None:
            for shop in self.settings.shops:
                runtime = self.engine.existing_runtime(shop.name) if shop.name in self._ran_shops else None
                if runtime is not None:
                    budgets[shop.name] = BudgetView.of(runtime.budget)
        live = LiveView(
            syncing=self.syncing,
            next_runs=self.scheduler.next_runs() if self.scheduler is not None else {},
            budgets=budgets,
            parked_shops=self.parking.shop_parks(now),
            parked_streams=self.parking.stream_parks(now),
            bulk_progress=dict(self.view.bulk_progress),
            daemon={
                "version": __version__,
                "pid": os.getpid(),
                "state": self.state.value,
                "started_at": _ts(self.started_at) if self.started_at else None,
                "config": str(self.config_path),
            },
        )
        return self.view.status(shops=self._shops(), live=live, now=now)

    @property
    def syncing(self) -> frozenset[StreamKey]:
        """The streams with a run in flight."""
        return frozenset(self._tasks)

    @property
    def http_url(self) -> str | None:
        return self.http.url if self.http is not None else None

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds, checked now and after every finished run and reload
        (tests wrap it in ``asyncio.timeout``)."""
        async with self.changed:
            await self.changed.wait_for(predicate)

    async def _notify_changed(self) -> None:
        async with self.changed:
            self.changed.notify_all()


def _find_shop(settings: Settings, name: str) -> Any:
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


async def _cancel_and_wait(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
