"""Shared helpers of the ops tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from shopsync.observability.metrics import Metrics, StateSnapshot, StreamSnapshot


def populated(clock: Callable[[], float] | None = None) -> Metrics:
    """A Metrics on a fresh registry with every event metric and state gauge holding a sample."""
    m = Metrics(CollectorRegistry(), clock=clock or (lambda: 10_000.0))
    o = m.observer()
    o.on_request("acme", "ok", 0.3, requested=752, actual=140)
    o.on_request("acme", "throttled", 0.1, requested=752, actual=None)
    o.on_retry("acme", "http_503")
    o.on_throttled("acme")
    o.on_version_mismatch("acme", "2026-07")
    o.on_throttle_status("acme", available=1860.0, maximum=2000.0, restore_rate=100.0)
    o.on_records("acme", "orders", "bulk", 1000)
    o.on_records("acme", "orders", "paginated", 50)
    o.on_bulk_status("acme", "orders", "RUNNING", 400)
    o.on_bulk_finished("acme", "products", "completed", 95.0, 1200)
    o.on_bulk_status("acme", "customers", "RUNNING", 10)
    o.on_guard_mismatch("acme", "orders", "count")
    o.on_path_decision("acme", "orders", "bulk", "estimate")
    o.on_checkpoint("acme", "orders", "2026-11-25T23:00:00Z")
    m.set_ready(True)
    m.leases_held.set(1)
    m.leases_acquired.inc()
    m.leases_lost.labels(reason="renewal").inc()
    m.writes_refused.labels(reason="epoch").inc()
    m.shop_unowned.labels(shop="globex").set(12.0)
    m.set_state_provider(
        lambda: StateSnapshot(
            streams=[
                StreamSnapshot(
                    shop="acme", resource="orders", watermark=9_900.0, last_success=9_950.0, syncing=True
                ),
                StreamSnapshot(
                    shop="acme",
                    resource="customers",
                    watermark=9_000.0,
                    parked_reason="403 missing read_customers",
                ),
                StreamSnapshot(shop="globex", resource="orders", watermark=5_000.0, last_success=5_000.0),
            ],
            parked_shops={"globex": "402 payment required"},
        )
    )
    return m


@pytest.fixture
def make_metrics():
    """``populated``: build a Metrics with a sample in every metric (optionally on a given clock)."""
    return populated
