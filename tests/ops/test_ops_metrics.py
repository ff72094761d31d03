"""Metrics: names and labels by convention, scrape-time lag, the observer adapter, exposition."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shopsync import API_VERSION, __version__
from shopsync.observability.metrics import (
    Metrics,
    StateSnapshot,
    StreamSnapshot,
    add_metrics_route,
    format_status,
    max_lag,
)
from tests.support import FakeClock

#: Every label any shopsync metric may carry: nothing that could hold a token, a domain or a URL.
ALLOWED_LABELS = {
    "shop",
    "resource",
    "path",
    "outcome",
    "reason",
    "status",
    "kind",
    "served",
    "le",
    "version",
    "api_version",
    "python",
}


def scrape(m: Metrics) -> dict[str, list]:
    """name → samples, parsed back by prometheus_client's own parser."""
    text = generate_latest(m.registry).decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)} | {"__text__": text}  # type: ignore[dict-item]


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_names_units_and_labels_follow_prometheus_conventions(make_metrics):
    m = make_metrics()
    families = list(text_string_to_metric_families(generate_latest(m.registry).decode()))
    ours = [f for f in families if not f.name.startswith("process_")]
    assert len(ours) >= 25
    for f in ours:
        assert f.name.startswith("shopsync_"), f.name
        assert f.documentation, f.name
        if f.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in f.samples), f.name
        for s in f.samples:
            assert set(s.labels) <= ALLOWED_LABELS, (s.name, s.labels)
    names = {s.name for f in families for s in f.samples}
    for expected in (
        "shopsync_records_written_total",
        "shopsync_graphql_requests_total",
        "shopsync_graphql_request_duration_seconds_bucket",
        "shopsync_query_cost_requested_points_total",
        "shopsync_query_cost_spent_points_total",
        "shopsync_budget_available_points",
        "shopsync_budget_capacity_points",
        "shopsync_budget_restore_rate_points_per_second",
        "shopsync_throttled_total",
        "shopsync_retries_total",
        "shopsync_bulk_operations_total",
        "shopsync_bulk_operation_duration_seconds_bucket",
        "shopsync_bulk_objects_total",
        "shopsync_checkpoint_watermark_timestamp_seconds",
        "shopsync_sync_lag_seconds",
        "shopsync_last_success_timestamp_seconds",
        "shopsync_shop_parked",
        "shopsync_stream_parked",
        "shopsync_build_info",
        "shopsync_ready",
        "shopsync_leases_held",
        "shopsync_leases_acquired_total",
        "shopsync_leases_lost_total",
        "shopsync_writes_refused_total",
        "shopsync_shop_unowned_seconds",
    ):
        assert expected in names, expected


def test_observer_updates_the_metrics(make_metrics):
    m = make_metrics()
    assert value(m, "shopsync_graphql_requests_total", shop="acme", outcome="ok") == 1
    assert value(m, "shopsync_graphql_requests_total", shop="acme", outcome="throttled") == 1
    assert value(m, "shopsync_graphql_request_duration_seconds_count", shop="acme") == 2
    assert value(m, "shopsync_graphql_request_duration_seconds_sum", shop="acme") == pytest.approx(0.4)
    assert value(m, "shopsync_query_cost_requested_points_total", shop="acme") == 1504
    assert value(m, "shopsync_query_cost_spent_points_total", shop="acme") == 140
    assert value(m, "shopsync_retries_total", shop="acme", reason="http_503") == 1
    assert value(m, "shopsync_throttled_total", shop="acme") == 1
    assert value(m, "shopsync_api_version_mismatches_total", shop="acme", served="2026-07") == 1
    assert value(m, "shopsync_budget_available_points", shop="acme") == 1860
    assert value(m, "shopsync_budget_capacity_points", shop="acme") == 2000
    assert value(m, "shopsync_budget_restore_rate_points_per_second", shop="acme") == 100
    assert value(m, "shopsync_records_written_total", shop="acme", resource="orders", path="bulk") == 1000
    assert value(m, "shopsync_records_written_total", shop="acme", resource="orders", path="paginated") == 50
    # A finished operation is counted by its (upper-cased) status and drops its progress gauge.
    assert (
        value(m, "shopsync_bulk_operations_total", shop="acme", resource="products", status="COMPLETED") == 1
    )
    assert value(m, "shopsync_bulk_operation_duration_seconds_count", shop="acme", resource="products") == 1
    assert value(m, "shopsync_bulk_objects_total", shop="acme", resource="products") == 1200
    assert value(m, "shopsync_bulk_operation_running_objects", shop="acme", resource="orders") == 400
    assert value(m, "shopsync_bulk_operation_running_objects", shop="acme", resource="products") is None
    assert value(m, "shopsync_guard_mismatches_total", shop="acme", resource="orders", kind="count") == 1
    labels = {"shop": "acme", "resource": "orders", "path": "bulk", "reason": "estimate"}
    assert value(m, "shopsync_path_decisions_total", **labels) == 1
    assert value(m, "shopsync_checkpoints_total", shop="acme", resource="orders") == 1
    assert value(m, "shopsync_ready") == 1
    (info,) = scrape(m)["shopsync_build_info"]
    assert info.value == 1
    assert info.labels["version"] == __version__ and info.labels["api_version"] == API_VERSION


def test_lag_is_computed_at_scrape_time_from_the_clock(make_metrics):
    clock = FakeClock(10_000.0)
    m = make_metrics(clock)
    assert value(m, "shopsync_sync_lag_seconds", shop="acme", resource="orders") == 100
    assert (
        value(m, "shopsync_checkpoint_watermark_timestamp_seconds", shop="acme", resource="orders") == 9_900
    )
    assert value(m, "shopsync_last_success_timestamp_seconds", shop="acme", resource="orders") == 9_950
    clock.now += 60  # nothing else happens: no checkpoint, no observer call
    assert value(m, "shopsync_sync_lag_seconds", shop="acme", resource="orders") == 160
    assert value(m, "shopsync_sync_lag_seconds", shop="globex", resource="orders") == 5_060
    assert value(m, "shopsync_stream_syncing", shop="acme", resource="orders") == 1
    assert value(m, "shopsync_stream_syncing", shop="globex", resource="orders") == 0
    assert value(m, "shopsync_shop_parked", shop="globex", reason="402 payment required") == 1
    assert (
        value(
            m,
            "shopsync_stream_parked",
            shop="acme",
            resource="customers",
            reason="403 missing read_customers",
        )
        == 1
    )
    # A stream without a watermark yet has no lag series rather than a fake one.
    m.set_state_provider(lambda: StateSnapshot(streams=[StreamSnapshot(shop="new", resource="orders")]))
    assert value(m, "shopsync_sync_lag_seconds", shop="new", resource="orders") is None
    assert value(m, "shopsync_stream_syncing", shop="new", resource="orders") == 0


def test_a_failing_provider_does_not_fail_the_scrape(make_metrics, caplog):
    m = make_metrics()

    def broken() -> StateSnapshot:
        raise RuntimeError("state store closed")

    m.set_state_provider(broken)
    samples = scrape(m)
    assert "shopsync_sync_lag_seconds" not in samples
    assert "shopsync_graphql_requests" in samples
    assert value(m, "shopsync_state_provider_errors_total") >= 1
    assert "state provider failed" in caplog.text


def test_status_line_and_max_lag():
    snap = StateSnapshot(
        streams=[
            StreamSnapshot(
                shop=f"s{i}", resource="orders", watermark=1000.0 - (42 if i == 5 else i), syncing=i < 3
            )
            for i in range(12)
        ]
    )
    assert format_status(snap, now=1000.0) == "12 shops, 3 syncing, max lag 42s"
    parked = StateSnapshot(
        streams=[
            StreamSnapshot(shop="a", resource="orders", watermark=990.0),
            StreamSnapshot(shop="b", resource="orders", watermark=10.0),  # parked: excluded from max lag
            StreamSnapshot(shop="a", resource="customers", watermark=0.0, parked_reason="403"),
        ],
        parked_shops={"b": "401 token revoked"},
    )
    assert max_lag(parked, 1000.0) == 10
    assert format_status(parked, now=1000.0) == "2 shops, 0 syncing, max lag 10s, 1 parked"
    assert format_status(StateSnapshot(), now=0.0) == "0 shops, 0 syncing, max lag n/a"


def test_registries_are_independent_and_forget_shop_drops_only_that_shop(make_metrics):
    a, b = make_metrics(), Metrics(CollectorRegistry())
    assert value(b, "shopsync_graphql_requests_total", shop="acme", outcome="ok") is None
    a.observer().on_request("globex", "ok", 0.2, 10, 5)
    a.forget_shop("acme")
    assert value(a, "shopsync_graphql_requests_total", shop="acme", outcome="ok") is None
    assert value(a, "shopsync_records_written_total", shop="acme", resource="orders", path="bulk") is None
    assert value(a, "shopsync_graphql_requests_total", shop="globex", outcome="ok") == 1


async def test_aiohttp_handler_serves_the_exposition(make_metrics):
    m = make_metrics()
    app = web.Application()
    add_metrics_route(app, m)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/metrics")
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        body = await resp.text()
        names = {f.name for f in text_string_to_metric_families(body)}
        assert {"shopsync_sync_lag_seconds", "shopsync_graphql_requests"} <= names
        om = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        assert om.headers["Content-Type"].startswith("application/openmetrics-text")
        assert (await om.text()).rstrip().endswith("# EOF")


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not on PATH (Debian package `prometheus`; .ci/run installs it)"
)
def test_promtool_accepts_the_exposition(make_metrics):
    text = generate_latest(make_metrics().registry)
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.strip() == b"" and result.stderr.strip() == b""


@pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not on PATH (Debian package `prometheus`; .ci/run installs it)"
)
def test_promtool_lint_can_fail():
    # The check above proves something only if promtool rejects a badly named metric.
    bad = b"# HELP requests_count Requests.\n# TYPE requests_count counter\nrequests_count 1\n"
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=bad, capture_output=True, timeout=60)
    assert result.returncode != 0


def test_observer_never_raises_on_odd_figures(make_metrics):
    m = make_metrics()
    o = m.observer()
    o.on_request("acme", "bad_body", -0.5, requested=None, actual=-3.0)
    o.on_records("acme", "orders", "paginated", 0)
    o.on_bulk_finished("acme", "orders", "FAILED", -1.0, 0)
    assert value(m, "shopsync_query_cost_spent_points_total", shop="acme") == 140  # unchanged
    # The negative duration was clamped to 0, so it falls in the smallest bucket.
    assert value(m, "shopsync_graphql_request_duration_seconds_bucket", shop="acme", le="0.05") == 1
    assert value(m, "shopsync_bulk_operations_total", shop="acme", resource="orders", status="FAILED") == 1
