"""The last reconciliation in the status document and the table (pure)."""

from __future__ import annotations

from shopsync.commands.status import format_table
from shopsync.daemon.status import build_status
from shopsync.state.models import StreamState
from shopsync.timeutil import parse_ts

NOW = parse_ts("2026-11-25T12:00:00Z").timestamp()


def test_a_reconciliation_with_findings_shows_in_status_and_the_table():
    states = [
        StreamState(shop="acme", resource="orders", watermark="2026-11-25T11:59:00Z", last_success_at="2026-11-25T11:59:30Z"),
        StreamState(
            shop="acme", resource="orders@reconcile", watermark="2026-11-25T11:00:00Z",
            last_success_at="2026-11-25T11:05:00Z", cursor='{"missing": 0, "drift": 3, "deleted": 2, "listed": 10}',
        ),
        StreamState(shop="acme", resource="products", watermark="2026-11-25T11:59:00Z", last_success_at="2026-11-25T11:59:30Z"),
        StreamState(shop="acme", resource="products@reconcile", watermark="2026-11-25T11:00:00Z"),  # clock started only
    ]  # fmt: skip
    doc = build_status(states=states, now=NOW, shops=[("acme", ["orders", "products"])])
    orders, products = doc["shops"][0]["resources"]
    assert orders["reconcile"] == {
        "last_at": "2026-11-25T11:05:00Z", "missing": 0, "drift": 3, "deleted": 2, "last_error": None, "last_error_at": None,
    }  # fmt: skip
    assert products["reconcile"] is None
    table = format_table(doc)
    assert "reconciled 2026-11-25T11:05:00Z: 0 missing, 3 drifted, 2 deleted" in table


def test_a_failed_reconciliation_shows_its_error():
    states = [
        StreamState(shop="acme", resource="orders", watermark="2026-11-25T11:59:00Z"),
        StreamState(shop="acme", resource="orders@reconcile", last_error="QueryError: nope", last_error_at="2026-11-25T11:00:00Z"),
    ]
    doc = build_status(states=states, now=NOW, shops=[("acme", ["orders"])])
    assert doc["shops"][0]["resources"][0]["reconcile"]["last_error"] == "QueryError: nope"
    assert "reconcile failed 2026-11-25T11:00:00Z: QueryError: nope" in format_table(doc)


def test_the_last_path_decision_shows_with_its_estimates():
    decision = '{"path":"bulk","reason":"estimate","records":694,"paginated_seconds":135.7,"bulk_seconds":0.7}'
    states = [
        StreamState(shop="acme", resource="orders", watermark="2026-11-25T11:59:00Z", last_success_at="2026-11-25T11:59:30Z"),
        StreamState(shop="acme", resource="orders@path", watermark="2026-11-25T11:58:00Z", cursor=decision),
        StreamState(shop="acme", resource="products", watermark="2026-11-25T11:59:00Z"),
        StreamState(shop="acme", resource="products@path", watermark="2026-11-25T11:58:00Z",
                    cursor='{"path":"bulk","reason":"backfill","records":null,"paginated_seconds":null,"bulk_seconds":null}'),
    ]  # fmt: skip
    doc = build_status(states=states, now=NOW, shops=[("acme", ["orders", "products"])])
    orders, products = doc["shops"][0]["resources"]
    assert orders["path_decision"] == {
        "path": "bulk", "reason": "estimate", "records": 694, "paginated_seconds": 135.7, "bulk_seconds": 0.7,
        "at": "2026-11-25T11:58:00Z",
    }  # fmt: skip
    assert products["path_decision"]["reason"] == "backfill"
    table = format_table(doc)
    assert "last path bulk (estimate: 694 records, paginated ~135.7s vs bulk ~0.7s)" in table
    assert table.count("last path") == 1  # a decision without estimates says nothing in the table
