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
only that resource, and ``TRANSIENT_RUNS_TO_PARK`` runs in a row failing on 5xx/timeouts park
the shop too: for ``park_backoff``, doubling on each further failure up to ``park_backoff_max``,
with the reason persisted in the stream state (``shopsync status``, ``/status``, metrics). A
parked stream's job returns at once, so parked work never holds anything up.

Signals only set flags (``loop.add_signal_handler``): SIGHUP → :meth:`reload` (re-read the
configuration, reschedule added/removed/changed shops, in-flight runs continue; a bad file is
rejected with its message and the running configuration stays), SIGTERM/SIGINT → :meth:`stop`
(stop scheduling, cancel in-flight runs — a page write that started finishes first, since storage
commits are shielded — close storage, ``STOPPING=1``, all within ``stop_timeout``; exit 0).
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
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry

from shopsync import __version__
from shopsync.config import Settings, load_settings
from shopsync.daemon.http import HttpServer
from shopsync.daemon.logs import log_context, register_secret, setup_logging
from shopsync.daemon.metrics import Metrics, StateSnapshot, format_status
from shopsync.daemon.scheduler import StreamScheduler, quiet_apscheduler, schedule_specs
from shopsync.daemon.sdnotify import DEFAULT_STALL_AFTER, Notifier, Watchdog, watchdog_interval
from shopsync.daemon.status import BudgetView, LiveView, Park, build_status, epoch_of, persisted_park
from shopsync.engine.engine import StreamResult, SyncEngine
from shopsync.errors import ConfigError, ShopsyncError, ShopUnavailableError, StorageError, TransientError
from shopsync.state.models import BulkOperationRecord, StreamState
from shopsync.storage import Storage, open_storage
from shopsync.timeutil import format_ts, from_epoch

log = logging.getLogger(__name__)

StreamKey = tuple[str, str]

#: Consecutive runs of one stream failing on transient errors (each after the client's own
#: retries) before the whole shop is parked. Once parked, one more such failure re-parks it.
TRANSIENT_RUNS_TO_PARK = 3
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


def register_secrets(settings: Settings) -> int:
    """Redact every secret the configuration loaded from all log lines; returns how many.

    Covers the shops' access tokens, client ids and client secrets (:class:`shopsync.config.Secret`)
    and passwords in the database and sink URLs. Call at start and after each reload.
    """
    count = 0
    for shop in settings.shops:
        for secret in (shop.access_token, shop.client_id, shop.client_secret):
            if secret is not None:
                register_secret(secret)
                count += 1
    for url in {settings.database, settings.sink_url}:
        password = urlsplit(url).password
        if password:
            register_secret(password)
            count += 1
    return count


# --------------------------------------------------------------------------------------------
# parking (pure bookkeeping; "now" is passed in)


class Parking:
    """Which shops and streams are parked until when, and how long the next parking lasts.

    The first parking of a shop (or stream) lasts ``base`` seconds; each failure after a retry
    doubles it, up to ``maximum``. Streams of one shop that fail together in one round share one
    parking (the first sets it, the others adopt it), so a round doubles the back-off once. Any
    success clears the stream's parking and history, and its shop's.
    """

    def __init__(self, base: float, maximum: float) -> None:
        self.base = base
        self.maximum = maximum
        self.shops: dict[str, Park] = {}
        self.streams: dict[StreamKey, Park] = {}
        self._last: dict[str | StreamKey, float] = {}

    def configure(self, base: float, maximum: float) -> None:
        self.base, self.maximum = base, maximum

    def active(self, key: StreamKey, now: float) -> Park | None:
        """The parking holding ``key`` back at ``now`` (its shop's first), if any."""
        for park in (self.shops.get(key[0]), self.streams.get(key)):
            if park is not None and (park.until is None or park.until > now):
                return park
        return None

    def park_shop(self, shop: str, reason: str, now: float) -> tuple[Park, bool]:
        """Park ``shop``; returns the parking and whether it is new (False: a sibling already did)."""
        return self._park(self.shops, shop, reason, now)

    def park_stream(self, key: StreamKey, reason: str, now: float) -> tuple[Park, bool]:
        return self._park(self.streams, key, reason, now)

    def _park(self, table: dict, k: Any, reason: str, now: float) -> tuple[Park, bool]:
        current = table.get(k)
        if current is not None and (current.until is None or current.until > now):
            return current, False
        previous = self._last.get(k)
        duration = self.base if previous is None else min(self.maximum, max(self.base, previous * 2))
        self._last[k] = duration
        park = Park(reason=reason, until=now + duration)
        table[k] = park
        return park, True

    def restore(self, key: StreamKey, park: Park, parked_at: float | None) -> None:
        """Re-establish a parking read from the state database after a restart."""
        self.streams[key] = park
        if park.until is not None and parked_at is not None and park.until > parked_at:
            self._last[key] = min(self.maximum, park.until - parked_at)

    def last_duration(self, k: str | StreamKey) -> float | None:
        """How long the latest parking of a shop (name) or stream (key) lasts; None if none since success."""
        return self._last.get(k)

    def was_parked(self, shop: str) -> bool:
        """True when ``shop`` was parked and has not succeeded since (a retry failing re-parks)."""
        return shop in self._last

    def succeeded(self, key: StreamKey) -> None:
        for table, k in ((self.streams, key), (self.shops, key[0])):
            table.pop(k, None)
            self._last.pop(k, None)

    def forget_shop(self, shop: str) -> None:
        self.shops.pop(shop, None)
        self._last.pop(shop, None)
        for k in [k for k in self.streams if k[0] == shop]:
            del self.streams[k]
            self._last.pop(k, None)

    def stream_parks(self, now: float) -> dict[StreamKey, Park]:
        return {k: p for k, p in self.streams.items() if p.until is None or p.until > now}

    def shop_parks(self, now: float) -> dict[str, Park]:
        return {k: p for k, p in self.shops.items() if p.until is None or p.until > now}


# --------------------------------------------------------------------------------------------
# the engine's observer: metrics, plus the daemon's in-memory view


class _Observer:
    """Forwards engine events to the metrics and keeps the daemon's live view current."""

    def __init__(self, metrics_observer: Any, daemon: Daemon) -> None:
        self._m = metrics_observer
        self._d = daemon

    def on_records(self, shop: str, resource: str, path: str, count: int) -> None:
        self._m.on_records(shop, resource, path, count)

    def on_bulk_status(self, shop: str, resource: str, status: str, object_count: int) -> None:
        self._m.on_bulk_status(shop, resource, status, object_count)
        self._d._bulk_progress[(shop, resource)] = (status, object_count)

    def on_bulk_finished(self, shop: str, resource: str, status: str, duration: float, objects: int) -> None:
        self._m.on_bulk_finished(shop, resource, status, duration, objects)
        self._d._bulk_progress.pop((shop, resource), None)

    def on_guard_mismatch(self, shop: str, resource: str, kind: str) -> None:
        self._m.on_guard_mismatch(shop, resource, kind)

    def on_checkpoint(self, shop: str, resource: str, watermark: str | None) -> None:
        self._m.on_checkpoint(shop, resource, watermark)
        self._d._note_checkpoint((shop, resource), watermark)

    def __getattr__(self, name: str) -> Callable[..., None]:
        # Hooks the engine may add later: the metrics adapter's if it has one, else a no-op.
        return getattr(self._m, name, lambda *args, **kwargs: None)


@dataclass(frozen=True, kw_only=True, slots=True)
class _Cached:
    """A stream state with its timestamps as epoch seconds (computed once, read at every scrape)."""

    state: StreamState
    watermark: float | None
    last_success: float | None

    @classmethod
    def of(cls, state: StreamState) -> _Cached:
        return cls(state=state, watermark=epoch_of(state.watermark), last_success=epoch_of(state.last_success_at))


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
        self._states: dict[StreamKey, _Cached] = {}
        self._bulk_ops: dict[StreamKey, list[BulkOperationRecord]] = {}
        self._bulk_progress: dict[StreamKey, tuple[str, int]] = {}
        self._transient: dict[StreamKey, int] = {}
        self._ran_shops: set[str] = set()
        self._removed_shops: set[str] = set()
        self._wake = asyncio.Event()
        self._stop_requested = False
        self._reload_requested = False
        self._stopped = asyncio.Event()
        self._scheduled = False
        self._last_beat = monotonic()
        self._stall_seen: float | None = None
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
                observer=_Observer(observer, self),
                request_observer=observer,
                session=self._session,
                clock=self.clock,
            )
            await self._stack.enter_async_context(self.engine)
            await self._refresh()
            self._restore_parking()
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
            self._last_beat = self.monotonic()
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
            _check_reloadable(self.settings, new)
        except Exception as exc:  # ConfigError, or anything unexpected: never take the daemon down
            if not isinstance(exc, ConfigError):
                log.exception("unexpected error while reloading the configuration")
            log.error("configuration reload rejected, the running configuration stays: %s", exc)
            self.notifier.ready(status=self.status_line())
            self.reloads.append(False)
            await self._notify_changed()
            return False
        register_secrets(new)
        old = self.settings
        self.settings = new
        if self.engine is not None:
            # New runs read sync settings and resources from here; runs in flight keep theirs.
            self.engine.settings = new
        d = new.daemon
        self.parking.configure(d.park_backoff.total_seconds(), d.park_backoff_max.total_seconds())
        if self.manage_logging and (d.log_format, d.log_level) != (old.daemon.log_format, old.daemon.log_level):
            setup_logging(format=d.log_format, level=d.log_level)
            quiet_apscheduler(logging.getLogger().level)
        old_shops = {s.name: s for s in old.shops}
        new_shops = {s.name: s for s in new.shops}
        removed = sorted(set(old_shops) - set(new_shops))
        added = sorted(set(new_shops) - set(old_shops))
        changed = sorted(n for n in set(old_shops) & set(new_shops) if old_shops[n] != new_shops[n])
        if self.scheduler is not None and self._scheduled:
            self.scheduler.apply(schedule_specs(new), first_runs=self._parked_first_runs())
        for name in removed:
            self._removed_shops.add(name)
            self._forget_if_idle(name)
        for name in added:
            self._removed_shops.discard(name)
        log.info(
            "configuration reloaded: %d shops (added: %s; removed: %s; changed: %s)",
            len(new.shops), ", ".join(added) or "none", ", ".join(removed) or "none", ", ".join(changed) or "none",
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
        self._ran_shops.discard(shop)
        for table in (
            self._states, self._bulk_ops, self._bulk_progress, self._transient, self.last_results, self.successes
        ):
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
        exc = result.exception
        if _find_shop(self.settings, shop.name) is None:
            pass  # removed by a reload while this run was in flight: nothing to park or retry
        elif result.ok:
            self.parking.succeeded(key)
            self._transient.pop(key, None)
            self.successes[key] = self.successes.get(key, 0) + 1
        elif isinstance(exc, ShopUnavailableError):
            reason = exc.reason if exc.reason else str(exc)
            if exc.resource_only:
                park, new = self.parking.park_stream(key, reason, now)
                if new:
                    log.error("resource parked until %s: %s", _ts(park.until or now), reason)
                    await self._persist_park(key, park, now)
                    self._retry_at([key], park)
            else:
                await self._park_shop(shop, f"HTTP {exc.status}: {reason}", now)
        elif isinstance(exc, TransientError):
            failures = self._transient.get(key, 0) + 1
            self._transient[key] = failures
            if failures >= TRANSIENT_RUNS_TO_PARK or self.parking.was_parked(shop.name):
                self._transient.pop(key, None)
                await self._park_shop(shop, f"repeated transient errors ({exc.reason})", now)
        # A shop parked by a sibling's failure: record it for this stream too, now that it is idle.
        park = self.parking.active(key, now)
        if park is not None:
            await self._persist_park(key, park, now)
        await self._refresh_stream(key)
        self.last_results[key] = result
        self.runs_completed += 1
        await self._notify_changed()

    async def _park_shop(self, shop: Any, reason: str, now: float) -> None:
        park, new = self.parking.park_shop(shop.name, reason, now)
        if not new:
            return
        log.error("shop parked until %s: %s", _ts(park.until or now), reason)
        keys = [(shop.name, r) for r in shop.resources]
        for key in keys:
            # Running siblings record it when they finish (they might still write their state).
            if key not in self._tasks or self._tasks[key] is asyncio.current_task():
                await self._persist_park(key, park, now)
        self._retry_at(keys, park)

    def _retry_at(self, keys: Iterable[StreamKey], park: Park) -> None:
        """Run the parked streams again right when the parking ends (then on their schedule)."""
        if self.scheduler is None or not self._scheduled or park.until is None:
            return
        when = datetime.fromtimestamp(park.until, UTC)
        for shop, resource in keys:
            self.scheduler.run_at(f"{shop}/{resource}", when)

    async def _persist_park(self, key: StreamKey, park: Park, now: float) -> None:
        assert self.storage is not None
        store = self.storage.state
        until = _ts(park.until) if park.until is not None else None
        try:
            state = await store.get_stream(*key) or StreamState(shop=key[0], resource=key[1])
            if state.parked_until == until and state.parked_reason == park.reason:
                return
            parked = state.parked(until, park.reason, now)
            await store.save_stream(parked)
            self._states[key] = _Cached.of(parked)
        except ShopsyncError as exc:
            log.error("could not record the parking in the state database: %s", exc)

    async def _clear_persisted_park(self, key: StreamKey, now: float) -> None:
        cached = self._states.get(key)
        if cached is None or cached.state.parked_reason is None:
            return
        assert self.storage is not None
        try:
            state = await self.storage.state.get_stream(*key)
            if state is not None and state.parked_reason is not None:
                await self.storage.state.save_stream(state.unparked(now))
                self._states[key] = _Cached.of(state.unparked(now))
        except ShopsyncError as exc:
            log.error("could not clear the parking in the state database: %s", exc)

    async def _save_error(self, key: StreamKey, message: str) -> None:
        assert self.storage is not None
        try:
            state = await self.storage.state.get_stream(*key) or StreamState(shop=key[0], resource=key[1])
            await self.storage.state.save_stream(state.failed(message, self.clock()))
        except ShopsyncError as exc:
            log.error("could not record the error in the state database: %s", exc)

    def _restore_parking(self) -> None:
        """Parkings recorded by an earlier process stay in force after a restart."""
        now = self.clock()
        for key, cached in self._states.items():
            park = persisted_park(cached.state, now)
            if park is not None:
                self.parking.restore(key, park, epoch_of(cached.state.updated_at))
        # A shop whose every stream is parked for one reason was parked as a whole.
        for shop in self.settings.shops:
            parks = [self.parking.streams.get((shop.name, r)) for r in shop.resources]
            present = [p for p in parks if p is not None]
            if present and len(present) == len(parks) and len({p.reason for p in present}) == 1:
                self.parking.shops[shop.name] = max(present, key=lambda p: p.until or 0.0)

    def _parked_first_runs(self) -> dict[str, datetime]:
        now = self.clock()
        out = {}
        for shop in self.settings.shops:
            for resource in shop.resources:
                park = self.parking.active((shop.name, resource), now)
                if park is not None and park.until is not None:
                    out[f"{shop.name}/{resource}"] = datetime.fromtimestamp(park.until, UTC)
        return out

    # ------------------------------------------------------------------------------------------
    # the in-memory view: refreshed from storage, updated by engine events

    async def _refresh(self) -> None:
        """Re-read every stream state and unfinished bulk operation (a scheduler job)."""
        if self.storage is None:
            return
        try:
            states = await self.storage.state.list_streams()
            ops = await self.storage.state.list_bulk_operations(unfinished_only=True)
        except ShopsyncError as exc:
            log.warning("could not refresh the status from the state database: %s", exc)
            return
        except asyncio.CancelledError:
            if self.state is RunState.STOPPING:
                return  # the scheduler's shutdown cancels its jobs: nothing to report
            raise
        self._states = {s.key: _Cached.of(s) for s in states}
        by_key: dict[StreamKey, list[BulkOperationRecord]] = {}
        for op in ops:
            by_key.setdefault((op.shop, op.resource), []).append(op)
        self._bulk_ops = by_key

    async def _refresh_stream(self, key: StreamKey) -> None:
        assert self.storage is not None
        try:
            state = await self.storage.state.get_stream(*key)
            ops = await self.storage.state.list_bulk_operations(shop=key[0], resource=key[1], unfinished_only=True)
        except ShopsyncError as exc:
            log.warning("could not refresh the stream's status: %s", exc)
            return
        if state is not None:
            self._states[key] = _Cached.of(state)
        if ops:
            self._bulk_ops[key] = ops
        else:
            self._bulk_ops.pop(key, None)

    def _note_checkpoint(self, key: StreamKey, watermark: str | None) -> None:
        cached = self._states.get(key)
        state = cached.state if cached is not None else StreamState(shop=key[0], resource=key[1])
        now_ts = _ts(self.clock())
        self._states[key] = _Cached.of(
            replace(state, watermark=watermark or state.watermark, last_success_at=now_ts, last_error=None)
        )

    # ------------------------------------------------------------------------------------------
    # health, readiness, status

    async def _beat(self) -> None:
        """The scheduler's heartbeat job; also notices when it ran far later than due."""
        self._heartbeat()

    def _heartbeat(self) -> None:
        now = self.monotonic()
        gap = now - self._last_beat
        self._last_beat = now
        if gap > self.stall_after:
            self._stall_seen = now
            log.warning("the daemon's event loop or scheduler stalled for %.1fs (limit %.1fs)", gap, self.stall_after)
        if self.watchdog is not None:
            self.watchdog.heartbeat()

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy while heartbeats are fresh and no stall was seen within the last ``stall_after``.

        Either check alone has a blind spot after a long block of the loop: whichever of the
        heartbeat job and this request runs first once the loop resumes decides. Together they
        report the stall whichever runs first.
        """
        now = self.monotonic()
        since = now - self._last_beat
        recent_stall = self._stall_seen is not None and now - self._stall_seen <= self.stall_after
        watchdog_ok = self.watchdog.healthy() if self.watchdog is not None else True
        ok = self.state is RunState.RUNNING and since <= self.stall_after and not recent_stall and watchdog_ok
        return ok, {
            "state": self.state.value,
            "since_heartbeat_seconds": round(since, 3),
            "stall_after_seconds": self.stall_after,
            "stalled_recently": recent_stall,
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
        from shopsync.daemon.metrics import StreamSnapshot

        now = self.clock()
        streams = []
        parked_shops = {s: p.reason for s, p in self.parking.shop_parks(now).items()}
        stream_parks = self.parking.stream_parks(now)
        for shop in self.settings.shops:
            for resource in shop.resources:
                key = (shop.name, resource)
                cached = self._states.get(key)
                park = stream_parks.get(key)
                streams.append(
                    StreamSnapshot(
                        shop=shop.name,
                        resource=resource,
                        watermark=cached.watermark if cached else None,
                        last_success=cached.last_success if cached else None,
                        syncing=key in self._tasks,
                        parked_reason=park.reason if park is not None else None,
                    )
                )
        return StateSnapshot(streams=streams, parked_shops=parked_shops)

    def status_line(self) -> str:
        """The ``STATUS=`` line: ``"12 shops, 3 syncing, max lag 42s"``."""
        return format_status(self.snapshot(), self.clock())

    def status(self) -> dict[str, Any]:
        """The ``/status`` document (see :func:`shopsync.daemon.status.build_status`)."""
        now = self.clock()
        next_runs: dict[StreamKey, float] = {}
        if self.scheduler is not None:
            for job_id, spec in self.scheduler.specs.items():
                when = self.scheduler.next_run(job_id)
                if when is not None:
                    next_runs[(spec.shop, spec.resource)] = when.timestamp()
        budgets = {}
        if self.engine is not None:
            for shop in self.settings.shops:
                if shop.name in self._ran_shops:
                    budget = self.engine.runtime(shop).budget
                    snap = budget.snapshot()
                    budgets[shop.name] = BudgetView(
                        capacity=snap.capacity,
                        restore_rate=snap.restore_rate,
                        available=round(snap.available, 1),
                        utilisation=round(budget.utilisation(), 4),
                        requests=snap.requests,
                        throttled=snap.throttled,
                        points_spent=snap.points_spent,
                    )
        live = LiveView(
            syncing=self.syncing,
            next_runs=next_runs,
            budgets=budgets,
            parked_shops=self.parking.shop_parks(now),
            parked_streams=self.parking.stream_parks(now),
            bulk_progress=dict(self._bulk_progress),
            daemon={
                "version": __version__,
                "pid": os.getpid(),
                "state": self.state.value,
                "started_at": _ts(self.started_at) if self.started_at else None,
                "config": str(self.config_path),
            },
        )
        return build_status(
            states=[c.state for c in self._states.values()],
            bulk_operations=[op for ops in self._bulk_ops.values() for op in ops],
            now=now,
            shops=[(s.name, list(s.resources)) for s in self.settings.shops],
            live=live,
        )

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


def _check_reloadable(old: Settings, new: Settings) -> None:
    """Refuse a reload that changes what only a restart can change."""
    checks = (
        ("database", old.database, new.database),
        ("sink.url", old.sink_url, new.sink_url),
        ("work_dir", old.work_dir, new.work_dir),
        ("daemon.listen", old.daemon.listen, new.daemon.listen),
    )
    for key, before, after in checks:
        if before != after:
            raise ConfigError(f"{new.path}: {key}: changed; restart shopsync to apply this change")
    if old.sync.max_connections != new.sync.max_connections:
        log.warning("sync.max_connections changed: the connection pool keeps %d until a restart", old.sync.max_connections)


async def _cancel_and_wait(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
