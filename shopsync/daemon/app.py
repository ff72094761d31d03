"""The daemon: one owner for everything ``shopsync run`` starts, with an explicit lifecycle.

    daemon = Daemon(settings)
    exit_code = await daemon.run_forever(handle_signals=True)     # shopsync run
    exit_code = await daemon.run_forever(shutdown=event.wait())    # tests: an injected trigger

Lifecycle (:class:`RunState`): NEW → STARTING → RUNNING → STOPPING → STOPPED.

``start()`` opens, in order, each registered on one ``AsyncExitStack`` so that ``stop()`` (or a
failed start) closes exactly what was opened, in reverse: the state store and sink, the engine and
its HTTP session (one connection pool, ``[sync] max_connections``), the HTTP endpoints, the
scheduler with one job per (shop, resource), the watchdog task. Then it tells systemd ``READY=1``.

Each stream run is a task of its own (:mod:`~shopsync.daemon.runs`); streams of one shop share
that shop's one cost budget, shops are independent. A failing run may park its shop or its stream
(:mod:`~shopsync.daemon.parking`, persisted in the stream state for ``shopsync status``,
``/status`` and the metrics); a parked stream's job returns at once, so parked work never holds
anything up.

Signals only set flags (:mod:`~shopsync.daemon.signals`): SIGHUP → :meth:`Daemon.reload` (re-read
the configuration, reschedule added/removed/changed shops, in-flight runs continue; a bad file is
rejected with its message and the running configuration stays), SIGTERM/SIGINT → :meth:`Daemon.stop`
(stop scheduling, cancel in-flight runs — a page write that started finishes first, since storage
commits are shielded — close storage, ``STOPPING=1``, all within ``stop_timeout``; exit 0).

The concepts the daemon composes live in their own modules: ``runs`` (stream runs and the parking
they start), ``parking``, ``reload`` (what a new configuration changes, what needs a restart),
``view`` (what the metrics, ``STATUS=`` and ``/status`` read), ``health`` (the heartbeat and stall
detection for ``/healthz``), ``hooks`` (what embedding callers are told), ``signals``,
``scheduler``, ``http``, ``sdnotify`` (all in :mod:`shopsync.daemon`) and :mod:`shopsync.observability.metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry

from shopsync import __version__
from shopsync.daemon.health import Liveness
from shopsync.daemon.hooks import DaemonHooks, NullHooks
from shopsync.daemon.http import HttpServer
from shopsync.daemon.ownership import Ownership, default_daemon_id
from shopsync.daemon.parking import Parking
from shopsync.daemon.reload import ReloadPlan, read_reload
from shopsync.daemon.runs import StreamRuns, StreamTask
from shopsync.daemon.scheduler import StreamScheduler, quiet_apscheduler, schedule_specs
from shopsync.daemon.sdnotify import DEFAULT_STALL_AFTER, Notifier, Watchdog, watchdog_interval
from shopsync.daemon.signals import Requests, signal_handlers
from shopsync.daemon.status import LiveView
from shopsync.daemon.view import StreamView, ViewObserver
from shopsync.daemon.webhooks import SyncTriggers, WebhookReceiver
from shopsync.engine.bulk import wake_poll
from shopsync.engine.engine import StreamResult, SyncEngine
from shopsync.engine.reconcile import Reconciler
from shopsync.errors import LeaseLostError, StartupError, StorageError
from shopsync.observability.logs import as_log_format, register_secrets, setup_logging
from shopsync.observability.metrics import Metrics, StateSnapshot, format_status
from shopsync.settings import Settings, StreamKey
from shopsync.shopify.schema.versions import SupportWindow, support_warning
from shopsync.state.leases import LeaseStore, refuse_call
from shopsync.state.open import Storage, lease_store, open_storage
from shopsync.timeutil import epoch_to_ts

log = logging.getLogger(__name__)

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


class Daemon:
    """Keeps every configured shop synced on its schedule; see the module docstring.

    ``env`` is what reloads read the configuration with (None: ``os.environ``) and where systemd's
    ``NOTIFY_SOCKET``/``WATCHDOG_USEC`` are looked up. ``stall_after`` is how long without a
    scheduler heartbeat counts as stalled (default: systemd's watchdog interval, else 60 s);
    ``heartbeat_every`` defaults to a quarter of it (at most 5 s). ``registry``, ``notifier``,
    ``clock`` (epoch seconds), ``monotonic``, ``rng`` and ``session`` are injectable for tests;
    ``hooks`` (:class:`~shopsync.daemon.hooks.DaemonHooks`) are told of every finished run and
    reload. ``manage_logging`` lets a reload apply a changed ``log_format``/``log_level`` (the CLI
    owns logging).
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
        session: aiohttp.ClientSession | None = None,
        hooks: DaemonHooks | None = None,
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
        self.rng = rng or random.Random()  # noqa: S311 -- schedule jitter, not a secret
        self.hooks: DaemonHooks = hooks if hooks is not None else NullHooks()
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
        #: The stream runs, once storage and the engine are open.
        self.runs: StreamRuns | None = None
        self.http: HttpServer | None = None
        self.scheduler: StreamScheduler | None = None
        self.watchdog: Watchdog | None = None
        #: Webhook deliveries (``/webhooks/shopify``) and the small syncs they ask for.
        self.webhooks: WebhookReceiver | None = None
        self.triggers: SyncTriggers | None = None
        #: Shop leases, when several daemons share a PostgreSQL state database (else None).
        self.ownership: Ownership | None = None
        self._session = session
        self._stack = contextlib.AsyncExitStack()
        self._requests = Requests()
        self._stopped = asyncio.Event()
        self._scheduled = False
        self._liveness = Liveness(self.stall_after, monotonic)
        self.started_at: float | None = None
        #: Set once RUNNING (start() finished), for callers that started run_forever() as a task.
        self.running = asyncio.Event()

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
        self._requests.bind(asyncio.get_running_loop())
        self.started_at = self.clock()
        register_secrets(self.settings)
        try:
            await self._open_storage_and_engine()
            await self._start_endpoints()
            self._start_scheduler(schedule)
            self._start_watchdog()
        except BaseException:
            self.state = RunState.STOPPING
            await self._stack.aclose()
            self.state = RunState.STOPPED
            self._stopped.set()
            raise
        self.state = RunState.RUNNING
        self.running.set()
        self.metrics.set_ready(True)
        self._warn_api_version()
        streams = sum(len(s.resources) for s in self.settings.shops)
        log.info(
            "shopsync %s daemon started (pid %d): %d shops, %d streams, endpoints on %s",
            __version__, os.getpid(), len(self.settings.shops), streams, self.http_url,
        )
        # READY first; the watchdog task (STATUS=, WATCHDOG=1) only starts after it.
        self.notifier.ready(status=self.status_line())
        assert self.watchdog is not None
        watchdog_task = asyncio.create_task(self.watchdog.run(), name="watchdog")
        self._stack.push_async_callback(_cancel_and_wait, watchdog_task)

    async def _open_storage_and_engine(self) -> None:
        """The state store and sink, the engine on them, the view read once and parkings restored."""
        settings = self.settings
        try:
            # exclusive: a SQLite state database serves one daemon (or sync) at a time.
            storage = self.storage = await open_storage(settings, exclusive=True)
        except StorageError as exc:
            raise StartupError(f"cannot open the state database: {exc}") from exc
        self._stack.push_async_callback(storage.close)
        observer = self.metrics.observer()
        leases = lease_store(storage, settings.daemon.id or default_daemon_id())
        engine = self.engine = SyncEngine(
            settings,
            storage.state,
            work_dir=_work_dir(settings.work_dir, leases),
            observer=ViewObserver(observer, self.view, self.clock),
            request_observer=observer,
            session=self._session,
            clock=self.clock,
            shopify_guard=self._before_shopify_call if leases is not None else None,
        )
        await self._stack.enter_async_context(engine)
        self.runs = StreamRuns(
            settings,
            engine=engine,
            store=storage.state,
            parking=self.parking,
            view=self.view,
            clock=self.clock,
            hooks=self.hooks,
            accepting=lambda: self.state is RunState.RUNNING,
            run_at=self._run_at,
            forget=self._forget_shop,
            reconciler=Reconciler(engine, storage.sink, metrics=self.metrics),
            owns=self._owns,
            lease_lost=self._lease_lost,
            confirm=self._confirm_run if leases is not None else None,
        )
        if leases is not None:
            await self._start_ownership(leases)
        await self._refresh()
        self.parking.restore_all(self.view.states(), self._shops(), self.clock())
        self.metrics.set_state_provider(self.snapshot)

    async def _start_ownership(self, leases: LeaseStore) -> None:
        """With a state database that keeps leases (PostgreSQL): join the daemons sharing it and
        take this daemon's shops (daemon/ownership.py). The leases are released on stop, after the
        runs were cancelled (the exit stack closes it before storage)."""
        d = self.settings.daemon
        ownership = self.ownership = Ownership(
            leases,
            shops=lambda: [s.name for s in self.settings.shops],
            lease=d.lease.total_seconds(),
            renew=d.lease_renew.total_seconds(),
            on_gained=self._shop_gained,
            on_lost=self._stop_shop,
            metrics=self.metrics,
        )
        self._stack.push_async_callback(ownership.close)
        try:
            await ownership.start()
        except StorageError as exc:
            raise StartupError(f"cannot join the daemons sharing the state database: {exc}") from exc
        log.info("daemon %s shares the state database: holds %d of %d shops (%d daemons alive)",
                 ownership.daemon_id, len(ownership.fence.held()), len(self.settings.shops), len(ownership.members))

    def _owns(self, shop: str) -> bool:
        return self.ownership is None or self.ownership.holds(shop)

    async def _lease_lost(self, error: LeaseLostError) -> None:
        if self.ownership is not None:
            await self.ownership.lost(error)

    async def _before_shopify_call(self, shop: str, mutation: bool) -> None:
        """The engine's Shopify guard: the lease fences Shopify calls too (Ownership.before_call)."""
        if self.ownership is None:
            raise refuse_call("(not started)", shop, "a mutation" if mutation else "a query", "no lease is held yet")
        await self.ownership.before_call(shop, mutation)

    async def _confirm_run(self, shop: str) -> None:
        if self.ownership is None:
            raise refuse_call("(not started)", shop, "a run", "no lease is held yet")
        await self.ownership.confirm_run(shop)

    def _shop_gained(self, shop: str) -> None:
        """A shop whose lease this daemon just took: its streams run now (then on their schedule)."""
        if self.runs is None or self.state is not RunState.RUNNING:
            return  # starting: the scheduler's first runs cover it
        for config in self.settings.shops:
            if config.name == shop:
                for resource in config.resources:
                    self.runs.spawn(shop, resource)

    async def _stop_shop(self, shop: str, spare: asyncio.Task[Any] | None) -> None:
        """Cancel a shop whose lease is gone (but ``spare``, the run that found out) and wait for its runs."""
        if self.runs is not None:
            await self.runs.cancel_shop(shop, within=self.settings.daemon.stop_timeout.total_seconds(), spare=spare)

    async def _start_endpoints(self) -> None:
        d = self.settings.daemon
        self._start_webhooks()
        self.http = HttpServer(self, self.metrics, host=d.listen_host, port=d.listen_port, webhooks=self.webhooks)
        try:
            await self.http.start()
        except OSError as exc:
            raise StartupError(f"[daemon] listen: cannot listen on {d.listen}: {exc.strerror or exc}") from exc
        self._stack.push_async_callback(self.http.close)

    def _start_webhooks(self) -> None:
        """The webhook receiver (it answers 404 while ``[webhooks] enabled`` is false) and triggers."""
        runs = self.runs

        def in_flight(shop: str, resource: str) -> asyncio.Future[Any] | None:
            return runs.tasks.get((shop, resource)) if runs is not None else None

        def next_run(shop: str, resource: str) -> datetime | None:
            return self.scheduler.next_run(f"{shop}/{resource}") if self.scheduler is not None else None

        self.triggers = SyncTriggers(
            spawn=lambda shop, resource: runs.spawn(shop, resource) if runs is not None else None,
            in_flight=in_flight,
            next_run=next_run,
            delay=lambda: self.settings.sync.safety_margin.total_seconds() + 1.0,
            clock=self.clock,
        )
        self._stack.callback(self.triggers.close)
        self.webhooks = WebhookReceiver(
            lambda: self.settings, metrics=self.metrics, triggers=self.triggers, wake_bulk=wake_poll, clock=self.clock
        )

    def api_version_support(self) -> SupportWindow | None:
        """The configured API version's support window today; warned about at start (log, metric)."""
        return support_warning(self.settings.api_version, datetime.fromtimestamp(self.clock(), UTC).date())

    def _warn_api_version(self) -> None:
        window = self.api_version_support()
        self.metrics.api_version_support_ends.clear()
        self.metrics.api_version_expiring.clear()
        if window is None:
            return
        ends = datetime(window.ends.year, window.ends.month, window.ends.day, tzinfo=UTC).timestamp()
        self.metrics.api_version_support_ends.labels(window.version).set(ends)
        self.metrics.api_version_expiring.labels(window.version).set(1 if window.warn else 0)
        if window.warn:
            log.warning("%s", window.message())

    def _start_scheduler(self, schedule: bool) -> None:
        """The scheduler with its heartbeat and refresh jobs; the stream jobs too if ``schedule``."""
        self.scheduler = StreamScheduler(
            self._job,
            heartbeat=self._beat,
            heartbeat_every=self.heartbeat_every,
            refresh=self._refresh,
            refresh_every=self.refresh_every,
            rng=self.rng,
            on_skip=self._run_after,
        )
        self.scheduler.start()
        self._stack.callback(self.scheduler.shutdown)
        self._scheduled = schedule
        if schedule:
            self.scheduler.apply(schedule_specs(self.settings), first_runs=self._parked_first_runs())

    def _start_watchdog(self) -> None:
        self.watchdog = Watchdog(
            self.notifier,
            interval=self._watchdog_interval,
            stall_after=self.stall_after,
            status=self.status_line,
            clock=self.monotonic,
        )
        self._liveness.attach(self.watchdog)

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
        if self.runs is not None:
            await self.runs.cancel_all(within=lambda: max(0.0, deadline - self.monotonic() - budget * CLOSE_RESERVE))
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
        self._requests.bind(loop)
        handlers = (
            signal_handlers(loop, stop=self.request_stop, reload=self.request_reload)
            if handle_signals
            else contextlib.nullcontext()
        )
        with handlers:
            trigger: asyncio.Future[object] | None = None
            try:
                await self.start()
                if shutdown is not None:
                    trigger = asyncio.ensure_future(shutdown)
                    trigger.add_done_callback(lambda _: self.request_stop())
                while await self._requests.next() == "reload":
                    await self.reload()
            finally:
                if trigger is not None and not trigger.done():
                    trigger.cancel()
                await self.stop()
        return 0

    def request_stop(self) -> None:
        """Ask :meth:`run_forever` to stop. Safe from a signal handler or another thread."""
        if self._requests.stop_requested:
            log.info("already stopping")
        self._requests.request_stop()

    def request_reload(self) -> None:
        """Ask :meth:`run_forever` to reload the configuration. Safe from a signal handler or thread."""
        self._requests.request_reload()

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
        planned = await read_reload(self.config_path, self.env, self.settings)
        if planned is not None:
            new, plan = planned
            self._apply(new, plan)
            log.info(
                "configuration reloaded: %d shops (added: %s; removed: %s; changed: %s)",
                len(new.shops),
                ", ".join(plan.added) or "none",
                ", ".join(plan.removed) or "none",
                ", ".join(plan.changed) or "none",
            )
        self.notifier.ready(status=self.status_line())
        await self.hooks.reload_finished(planned is not None)
        return planned is not None

    def _apply(self, new: Settings, plan: ReloadPlan) -> None:
        """Make ``new`` the running configuration (``plan`` says what it changes)."""
        register_secrets(new)
        self.settings = new
        self._warn_api_version()
        # New runs read sync settings and resources from here; runs in flight keep theirs.
        if self.engine is not None:
            self.engine.settings = new
        if self.runs is not None:
            self.runs.settings = new
        d = new.daemon
        self.parking.configure(d.park_backoff.total_seconds(), d.park_backoff_max.total_seconds())
        if self.manage_logging and plan.logging_changed:
            setup_logging(format=as_log_format(d.log_format), level=d.log_level)
            quiet_apscheduler(logging.getLogger().level)
        if self.scheduler is not None and self._scheduled:
            self.scheduler.apply(schedule_specs(new), first_runs=self._parked_first_runs())
        if self.runs is not None:
            self.runs.shops_changed(added=plan.added, removed=plan.removed)

    def _forget_shop(self, shop: str) -> None:
        """Drop a removed shop's runtime, metrics, parking and cached state (once it is idle)."""
        if self.engine is not None:
            self.engine.forget_shop(shop)
        self.metrics.forget_shop(shop)
        self.parking.forget_shop(shop)
        self.view.forget_shop(shop)

    # ------------------------------------------------------------------------------------------
    # running streams (see shopsync.daemon.runs)

    async def _job(self, shop: str, resource: str) -> None:
        """One scheduled run (an APScheduler job); a stream job beats the heartbeat too."""
        self._liveness.beat()
        if self.runs is not None:
            await self.runs.job(shop, resource)

    def _run_after(self, shop: str, resource: str) -> None:
        """A stream's run came due while its previous one was going: run it once more right after."""
        if self.runs is not None:
            self.runs.run_again_after(shop, resource)

    async def run_once(self, shops: Iterable[str] | None = None) -> list[StreamResult]:
        """Run every configured stream (of ``shops``, default all) once, concurrently, and wait.

        The deterministic test mode (with ``start(schedule=False)``): the same per-stream code
        path as scheduled runs, including parking. Parked streams and streams already running
        are skipped (no result).
        """
        if self.state is not RunState.RUNNING or self.runs is None:
            raise RuntimeError("run_once() needs a started daemon")
        return await self.runs.run_all(shops)

    def _run_at(self, job_id: str, when: datetime) -> None:
        """Move a stream job's next run (parked streams run again when their parking ends)."""
        if self.scheduler is not None and self._scheduled:
            self.scheduler.run_at(job_id, when)

    def _parked_first_runs(self) -> dict[str, datetime]:
        return self.runs.parked_first_runs() if self.runs is not None else {}

    def _in_flight(self) -> Mapping[StreamKey, StreamTask]:
        return self.runs.tasks if self.runs is not None else {}

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

    def _shops(self) -> list[tuple[str, tuple[str, ...]]]:
        """The configured shops as (name, resources), in order."""
        return [(s.name, s.resources) for s in self.settings.shops]

    # ------------------------------------------------------------------------------------------
    # health, readiness, status

    async def _beat(self) -> None:
        """The scheduler's heartbeat job; also notices when it ran far later than due."""
        self._liveness.beat()

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy while running and the loop keeps turning (:meth:`~shopsync.daemon.health.Liveness.check`)."""
        return self._liveness.check(running=self.state is RunState.RUNNING, state=self.state.value)

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
            syncing=self._in_flight(),
            parked_shops=self.parking.shop_parks(now),
            parked_streams=self.parking.stream_parks(now),
        )

    def status_line(self) -> str:
        """The ``STATUS=`` line: ``"12 shops, 3 syncing, max lag 42s"``."""
        return format_status(self.snapshot(), self.clock())

    def status(self) -> dict[str, Any]:
        """The ``/status`` document (see :func:`shopsync.daemon.status.build_status`)."""
        now = self.clock()
        live = LiveView(
            syncing=self.syncing,
            next_runs=self.scheduler.next_runs() if self.scheduler is not None else {},
            budgets=self.runs.budgets() if self.runs is not None else {},
            parked_shops=self.parking.shop_parks(now),
            parked_streams=self.parking.stream_parks(now),
            bulk_progress=dict(self.view.bulk_progress),
            leases=self.ownership.status() if self.ownership is not None else {},
            daemon={
                "id": self.ownership.daemon_id if self.ownership is not None else None,
                "version": __version__,
                "pid": os.getpid(),
                "state": self.state.value,
                "started_at": epoch_to_ts(self.started_at) if self.started_at else None,
                "config": str(self.config_path),
                "api_version": _support_status(self.api_version_support(), self.settings.api_version),
            },
        )
        return self.view.status(shops=self._shops(), live=live, now=now)

    @property
    def syncing(self) -> frozenset[StreamKey]:
        """The streams with a run in flight."""
        return frozenset(self._in_flight())

    @property
    def http_url(self) -> str | None:
        return self.http.url if self.http is not None else None


def _support_status(window: SupportWindow | None, version: str) -> dict[str, Any]:
    """``/status``'s ``daemon.api_version``: the version, when its support ends, and the warning."""
    if window is None:
        return {"version": version, "support_ends": None, "days_left": None, "warning": None}
    return {
        "version": version,
        "support_ends": window.ends.isoformat(),
        "days_left": window.days_left,
        "warning": window.message() if window.warn else None,
    }


def _work_dir(configured: Path, leases: LeaseStore | None) -> Path:
    """Where this daemon keeps bulk result files and spill databases: ``work_dir`` itself, or,
    when several daemons share the shops, its own directory in it (``work_dir/daemons/<id>``). Two
    daemons on one host may otherwise write one path at once: a paused old owner and the new one
    downloading the same operation's file into it, the new owner resuming a stranger's partial file."""
    if leases is None:
        return configured
    return configured / "daemons" / _safe_name(leases.fence.owner)


def _safe_name(daemon_id: str) -> str:
    """A daemon id as one path component (ids are the configuration's, or host-pid)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in daemon_id).lstrip(".") or "_"


async def _cancel_and_wait(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
