"""Prometheus metrics of the daemon, on an injected registry.

Two kinds:

* Event metrics (counters, histograms, budget gauges) that the client and the engine update as
  things happen, through :class:`MetricsObserver` — it implements the client's ``RequestObserver``
  and the engine's ``EngineObserver`` hooks.
* State metrics (checkpoint watermark, sync lag, last success, parked shops and streams, syncing)
  computed at scrape time by :class:`StateCollector` from a provider callable, so the lag is
  ``now - watermark`` at the moment Prometheus asks, not at the last checkpoint.

Labels are ``shop`` (the configured shop name) and ``resource``; never a token, domain or URL.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

from shopsync import API_VERSION, __version__

log = logging.getLogger(__name__)

REQUEST_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BULK_BUCKETS = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0)


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamSnapshot:
    """What the scheduler knows about one (shop, resource) stream at scrape time.

    Timestamps are epoch seconds. ``watermark`` is the checkpoint: everything updated before it is
    in the sink. ``parked_reason`` is set when this resource alone is parked (e.g. a missing scope).
    """

    shop: str
    resource: str
    watermark: float | None = None
    last_success: float | None = None
    syncing: bool = False
    parked_reason: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class StateSnapshot:
    """All streams, plus whole shops parked (shop name → reason, e.g. ``"402 payment required"``)."""

    streams: Sequence[StreamSnapshot] = ()
    parked_shops: Mapping[str, str] = field(default_factory=dict)

    def shops(self) -> set[str]:
        return {s.shop for s in self.streams} | set(self.parked_shops)


StateProvider = Callable[[], StateSnapshot]


def max_lag(snapshot: StateSnapshot, now: float) -> float | None:
    """The largest ``now - watermark`` over streams that have a watermark and are not parked."""
    lags = [
        now - s.watermark
        for s in snapshot.streams
        if s.watermark is not None and s.parked_reason is None and s.shop not in snapshot.parked_shops
    ]
    return max(lags) if lags else None


def format_status(snapshot: StateSnapshot, now: float) -> str:
    """The one-line ``STATUS=`` for systemd: ``"12 shops, 3 syncing, max lag 42s"`` (+ parked)."""
    shops = snapshot.shops()
    syncing = len({s.shop for s in snapshot.streams if s.syncing})
    parts = [f"{len(shops)} shop{'s' if len(shops) != 1 else ''}", f"{syncing} syncing"]
    lag = max_lag(snapshot, now)
    parts.append(f"max lag {max(0, round(lag))}s" if lag is not None else "max lag n/a")
    if snapshot.parked_shops:
        parts.append(f"{len(snapshot.parked_shops)} parked")
    return ", ".join(parts)


class StateCollector:
    """Scrape-time gauges derived from the provider's snapshot and the clock."""

    def __init__(self, clock: Callable[[], float], errors: Counter) -> None:
        self._clock = clock
        self._errors = errors
        self._provider: StateProvider | None = None

    def set_provider(self, provider: StateProvider | None) -> None:
        self._provider = provider

    def describe(self) -> Iterable[Metric]:
        # Lets the registry detect name clashes at register time without calling the provider.
        return self._families()

    def collect(self) -> Iterable[Metric]:
        if self._provider is None:
            return []
        try:
            snapshot = self._provider()
        except Exception:
            # A broken provider must not fail the whole scrape: the event metrics still matter.
            log.exception("metrics state provider failed; state gauges omitted from this scrape")
            self._errors.inc()
            return []
        return self._families(snapshot, self._clock())

    @staticmethod
    def _families(snapshot: StateSnapshot | None = None, now: float = 0.0) -> list[Metric]:
        sr = ["shop", "resource"]
        watermark = GaugeMetricFamily(
            "shopsync_checkpoint_watermark_timestamp_seconds",
            "Checkpoint of the stream: every record updated before it is in the sink (unix time).",
            labels=sr,
        )
        lag = GaugeMetricFamily(
            "shopsync_sync_lag_seconds",
            "Seconds between now (at scrape) and the stream's checkpoint.",
            labels=sr,
        )
        success = GaugeMetricFamily(
            "shopsync_last_success_timestamp_seconds",
            "When the stream last completed a sync (unix time).",
            labels=sr,
        )
        syncing = GaugeMetricFamily(
            "shopsync_stream_syncing", "1 while the stream is being synced.", labels=sr
        )
        stream_parked = GaugeMetricFamily(
            "shopsync_stream_parked",
            "1 for a resource parked on its own, with the reason.",
            labels=[*sr, "reason"],
        )
        shop_parked = GaugeMetricFamily(
            "shopsync_shop_parked",
            "1 for a shop parked until someone acts, with the reason.",
            labels=["shop", "reason"],
        )
        families: list[Metric] = [watermark, lag, success, syncing, stream_parked, shop_parked]
        if snapshot is None:
            return families
        for s in snapshot.streams:
            key = [s.shop, s.resource]
            if s.watermark is not None:
                watermark.add_metric(key, s.watermark)
                lag.add_metric(key, max(0.0, now - s.watermark))
            if s.last_success is not None:
                success.add_metric(key, s.last_success)
            syncing.add_metric(key, 1.0 if s.syncing else 0.0)
            if s.parked_reason is not None:
                stream_parked.add_metric([*key, s.parked_reason], 1.0)
        for shop, reason in sorted(snapshot.parked_shops.items()):
            shop_parked.add_metric([shop, reason], 1.0)
        return families


class Metrics:
    """Every shopsync metric, registered on ``registry`` (a fresh one when None).

    ``clock`` (epoch seconds) is what the scrape-time lag is computed against. ``process_metrics``
    adds prometheus_client's ``process_*`` collector (it reads ``/proc/stat``, which
    ``ProcSubset=pid`` hides under systemd; then it exports nothing and systemd's own accounting
    covers memory and CPU).
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        clock: Callable[[], float] = time.time,
        process_metrics: bool = True,
    ) -> None:
        # Long by design: one declaration per metric family, in groups, read top to bottom like
        # the list of metrics it is; split into helpers, the attributes would hide from __init__.
        self.registry = registry if registry is not None else CollectorRegistry()
        self.clock = clock
        r = self.registry
        shop, sr = ["shop"], ["shop", "resource"]

        # --- sync progress
        self.records_written = Counter(
            "shopsync_records_written", "Records upserted into the sink.", [*sr, "path"], registry=r
        )
        self.checkpoints = Counter("shopsync_checkpoints", "Checkpoints committed.", sr, registry=r)
        self.guard_mismatches = Counter(
            "shopsync_guard_mismatches",
            "Integrity guards that found a mismatch (window re-read).",
            [*sr, "kind"],
            registry=r,
        )
        self.path_decisions = Counter(
            "shopsync_path_decisions",
            "Windows by the path chosen to read them and why (estimate, hysteresis, small_saving, hand_over, backfill, "
            "threshold, forced, full_refresh, no_count, not_exportable).",
            [*sr, "path", "reason"],
            registry=r,
        )

        # --- reconciliation (engine.reconcile): findings of the periodic comparison with the shop
        self.reconcile_missing = Counter(
            "shopsync_reconcile_missing", "Records in the shop but not in the sink, found and re-read.", sr, registry=r
        )
        self.reconcile_drift = Counter(
            "shopsync_reconcile_drift", "Records newer in the shop than in the sink, found and re-read.", sr, registry=r
        )
        self.reconcile_deleted = Counter(
            "shopsync_reconcile_deleted", "Records gone from the shop, marked deleted (or removed).", sr, registry=r
        )
        self.reconcile_runs = Counter(
            "shopsync_reconcile_runs", "Reconciliations run, by outcome (ok, failed).", [*sr, "outcome"], registry=r
        )

        # --- GraphQL requests and cost
        self.requests = Counter(
            "shopsync_graphql_requests", "GraphQL requests sent, by outcome.", [*shop, "outcome"], registry=r
        )
        self.request_duration = Histogram(
            "shopsync_graphql_request_duration_seconds",
            "Wall time of one GraphQL request, including reading the body.",
            shop,
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.cost_requested = Counter(
            "shopsync_query_cost_requested_points",
            "Query cost points requested (reserved before sending).",
            shop,
            registry=r,
        )
        self.cost_spent = Counter(
            "shopsync_query_cost_spent_points",
            "Query cost points actually charged by Shopify.",
            shop,
            registry=r,
        )
        self.budget_available = Gauge(
            "shopsync_budget_available_points",
            "Points left in the shop's bucket at the last response.",
            shop,
            registry=r,
        )
        self.budget_capacity = Gauge(
            "shopsync_budget_capacity_points",
            "Size of the shop's cost bucket (maximumAvailable).",
            shop,
            registry=r,
        )
        self.budget_restore_rate = Gauge(
            "shopsync_budget_restore_rate_points_per_second",
            "Points the shop's bucket refills per second.",
            shop,
            registry=r,
        )
        self.throttled = Counter("shopsync_throttled", "THROTTLED answers from Shopify.", shop, registry=r)
        self.retries = Counter(
            "shopsync_retries", "Requests retried, by reason.", [*shop, "reason"], registry=r
        )
        self.version_mismatches = Counter(
            "shopsync_api_version_mismatches",
            f"Responses served with another API version than {API_VERSION}.",
            [*shop, "served"],
            registry=r,
        )
        self.deprecated_calls = Counter(
            "shopsync_api_deprecated_calls",
            "Responses carrying X-Shopify-API-Deprecated-Reason, by query (operation).",
            [*shop, "operation"],
            registry=r,
        )
        self.api_version_support_ends = Gauge(
            "shopsync_api_version_support_end_timestamp_seconds",
            "When Shopify's support of the configured API version ends (12 months after its release).",
            ["api_version"],
            registry=r,
        )
        self.api_version_expiring = Gauge(
            "shopsync_api_version_expiring",
            "1 when the configured API version's support ends within 90 days (or has ended).",
            ["api_version"],
            registry=r,
        )

        # --- webhooks
        self.webhooks_received = Counter(
            "shopsync_webhooks_received",
            "Webhook deliveries at /webhooks/shopify, by outcome (accepted, duplicate, rejected_*).",
            ["outcome"],
            registry=r,
        )
        self.webhook_actions = Counter(
            "shopsync_webhook_actions",
            "What accepted webhooks did: sync (a run triggered), coalesced (one was running or due), bulk_wake.",
            [*sr, "action"],
            registry=r,
        )

        # --- bulk operations
        self.bulk_operations = Counter(
            "shopsync_bulk_operations",
            "Bulk operations finished, by final status.",
            [*sr, "status"],
            registry=r,
        )
        self.bulk_duration = Histogram(
            "shopsync_bulk_operation_duration_seconds",
            "Time from starting a bulk operation to its final status.",
            sr,
            buckets=BULK_BUCKETS,
            registry=r,
        )
        self.bulk_objects = Counter(
            "shopsync_bulk_objects", "Objects exported by finished bulk operations.", sr, registry=r
        )
        self.bulk_running_objects = Gauge(
            "shopsync_bulk_operation_running_objects",
            "objectCount of the bulk operation in progress.",
            sr,
            registry=r,
        )

        # --- the daemon itself
        self.build_info = Info(
            "shopsync_build", "Version of shopsync and of the Shopify API it speaks.", registry=r
        )
        self.build_info.info(
            {"version": __version__, "api_version": API_VERSION, "python": platform.python_version()}
        )
        self.start_time = Gauge(
            "shopsync_start_time_seconds", "When the daemon started (unix time).", registry=r
        )
        self.start_time.set(clock())
        self.ready = Gauge(
            "shopsync_ready",
            "1 once the state store is open and the schedules are armed; 0 while stopping.",
            registry=r,
        )
        self.state_provider_errors = Counter(
            "shopsync_state_provider_errors",
            "Scrapes where the state gauges could not be computed.",
            registry=r,
        )
        # Several daemons on one PostgreSQL state database (daemon/ownership.py).
        self.leases_held = Gauge(
            "shopsync_leases_held", "Shop leases this daemon holds.", registry=r
        )
        self.leases_acquired = Counter(
            "shopsync_leases_acquired", "Shop leases this daemon took.", registry=r
        )
        self.leases_lost = Counter(
            "shopsync_leases_lost",
            "Shop leases this daemon lost without giving them up (renewal refused, a write refused).",
            ["reason"], registry=r,
        )  # fmt: skip
        self.writes_refused = Counter(
            "shopsync_writes_refused",
            "Writes refused because this daemon no longer held the shop's lease, by reason.",
            ["reason"], registry=r,
        )  # fmt: skip
        self.shop_unowned = Gauge(
            "shopsync_shop_unowned_seconds",
            "Seconds since the shop's lease expired or was released with nobody holding it (0 while held).",
            ["shop"], registry=r,
        )  # fmt: skip
        self.state = StateCollector(clock, self.state_provider_errors)
        r.register(self.state)
        if process_metrics:
            ProcessCollector(registry=r)

    def set_state_provider(self, provider: StateProvider | None) -> None:
        """Compute watermark, lag, last success, syncing and parked gauges from ``provider()`` at
        each scrape. It runs on the event loop during the scrape: keep it an in-memory read."""
        self.state.set_provider(provider)

    def set_ready(self, ready: bool) -> None:
        self.ready.set(1 if ready else 0)

    def forget_shop(self, shop: str) -> None:
        """Drop the event-metric series of a shop removed from the configuration (on reload)."""
        for metric in (
            self.records_written, self.checkpoints, self.guard_mismatches, self.path_decisions, self.requests,
            self.request_duration,
            self.cost_requested, self.cost_spent, self.budget_available, self.budget_capacity,
            self.budget_restore_rate, self.throttled, self.retries, self.version_mismatches,
            self.bulk_operations, self.bulk_duration, self.bulk_objects, self.bulk_running_objects,
            self.deprecated_calls, self.webhook_actions,
        ):  # fmt: skip
            metric.remove_by_labels({"shop": shop})

    def observer(self) -> MetricsObserver:
        """The adapter to hand to the client (``RequestObserver``) and the engine (``EngineObserver``)."""
        return MetricsObserver(self)


class MetricsObserver:
    """Turns client and engine events into metric updates. Every method is cheap and never raises."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    # ---- client: RequestObserver
    def on_request(
        self, shop: str, outcome: str, duration: float, requested: float | None, actual: float | None
    ) -> None:
        """One GraphQL request finished: ``outcome`` is a short label (``ok``, ``throttled``,
        ``transient``, ``error`` …); ``requested``/``actual`` are query cost points (None if unknown)."""
        self.m.requests.labels(shop, outcome).inc()
        self.m.request_duration.labels(shop).observe(max(0.0, duration))
        # Counters refuse negative increments; a bogus figure must not raise into the client.
        if requested is not None and requested > 0:
            self.m.cost_requested.labels(shop).inc(requested)
        if actual is not None and actual > 0:
            self.m.cost_spent.labels(shop).inc(actual)

    def on_retry(self, shop: str, reason: str) -> None:
        self.m.retries.labels(shop, reason).inc()

    def on_throttled(self, shop: str) -> None:
        self.m.throttled.labels(shop).inc()

    def on_version_mismatch(self, shop: str, served: str) -> None:
        self.m.version_mismatches.labels(shop, served).inc()

    def on_deprecated(self, shop: str, operation: str) -> None:
        self.m.deprecated_calls.labels(shop, operation).inc()

    def on_throttle_status(self, shop: str, available: float, maximum: float, restore_rate: float) -> None:
        """The ``throttleStatus`` of a response: the shop's bucket as Shopify last reported it."""
        self.m.budget_available.labels(shop).set(available)
        self.m.budget_capacity.labels(shop).set(maximum)
        self.m.budget_restore_rate.labels(shop).set(restore_rate)

    # ---- engine: EngineObserver
    def on_records(self, shop: str, resource: str, path: str, count: int) -> None:
        """``count`` records were written through ``path`` (``bulk`` or ``paginated``)."""
        if count > 0:
            self.m.records_written.labels(shop, resource, path).inc(count)

    def on_bulk_status(self, shop: str, resource: str, status: str, object_count: int) -> None:
        self.m.bulk_running_objects.labels(shop, resource).set(object_count)

    def on_bulk_finished(self, shop: str, resource: str, status: str, duration: float, objects: int) -> None:
        self.m.bulk_operations.labels(shop, resource, status.upper()).inc()
        self.m.bulk_duration.labels(shop, resource).observe(max(0.0, duration))
        if objects > 0:
            self.m.bulk_objects.labels(shop, resource).inc(objects)
        self.m.bulk_running_objects.remove(shop, resource)

    def on_guard_mismatch(self, shop: str, resource: str, kind: str) -> None:
        self.m.guard_mismatches.labels(shop, resource, kind).inc()

    def on_path_decision(self, shop: str, resource: str, path: str, reason: str) -> None:
        self.m.path_decisions.labels(shop, resource, path, reason).inc()

    def on_checkpoint(self, shop: str, resource: str, watermark: str | None) -> None:
        # The watermark itself is exported at scrape time from the state provider; this counts commits.
        self.m.checkpoints.labels(shop, resource).inc()


def metrics_handler(metrics: Metrics) -> Handler:
    """An aiohttp handler serving ``/metrics`` from ``metrics.registry`` (text or OpenMetrics by
    ``Accept``, gzip by ``Accept-Encoding``) — prometheus_client's own exposition."""
    return make_aiohttp_handler(metrics.registry)


def add_metrics_route(app: web.Application, metrics: Metrics, path: str = "/metrics") -> None:
    """Mount :func:`metrics_handler` on ``app`` at ``path``."""
    app.router.add_get(path, metrics_handler(metrics))
