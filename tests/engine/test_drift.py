"""Reconciliation's comparison rule (engine.drift) and its documents (queries.builder.reconcile)."""

from __future__ import annotations

from shopsync.engine.drift import compare
from shopsync.engine.reconcile import ReconcileResult, reconcile_summary
from shopsync.queries import load_resources
from shopsync.queries.builder import page_query
from shopsync.queries.builder.reconcile import ids_resource, nodes_query
from shopsync.shopify.schema import load_schema, parse_and_validate
from shopsync.state.models import SinkRow, StreamState

W = "2026-11-25T12:00:00Z"


def row(updated_at: str | None, deleted_at: str | None = None, id: str = "x") -> SinkRow:
    return SinkRow(id=id, updated_at=updated_at, data=None, deleted_at=deleted_at)


def test_findings_judge_only_what_the_watermark_promises():
    shop = {
        "same": "2026-11-25T10:00:00Z",
        "newer": "2026-11-25T11:00:00Z",  # drift: updated before W, sink has an older version
        "absent": "2026-11-25T09:00:00Z",  # missing
        "fresh": "2026-11-25T12:00:01Z",  # created after W: the next window's business
        "moved": "2026-11-25T12:30:00Z",  # updated after W: not judged
        "revived": "2026-11-25T11:30:00Z",  # newer than its deletion mark: missing again
        "still-deleted": "2026-11-25T08:00:00Z",  # older than its mark: re-reading cannot clear it
    }
    sink = {
        "same": row("2026-11-25T10:00:00Z"),
        "newer": row("2026-11-25T10:00:00Z"),
        "moved": row("2026-11-25T10:00:00Z"),
        "revived": row("2026-11-25T08:00:00Z", "2026-11-25T09:00:00Z"),
        "still-deleted": row("2026-11-25T08:00:00Z", "2026-11-25T09:00:00Z"),
        "gone": row("2026-11-25T07:00:00Z"),  # deleted in the shop
        "gone-marked": row("2026-11-25T07:00:00Z", "2026-11-25T07:30:00Z"),  # already marked
        "written-after-W": row("2026-11-25T12:00:05Z"),  # a replay or a concurrent sync: not judged
    }
    f = compare(shop, sink, bound=W)
    assert f.missing == ["absent", "revived"]
    assert f.drift == ["newer"]
    assert f.deleted == ["gone"]
    assert f.reread == ["absent", "newer", "revived"]
    assert f.counts() == {"missing": 2, "drift": 1, "deleted": 1}


def test_nothing_is_judged_before_a_first_sync_and_an_equal_copy_has_no_findings():
    shop = {"a": "2026-11-25T10:00:00Z"}
    assert compare(shop, {}, bound=None).empty
    assert compare(shop, {"a": row("2026-11-25T10:00:00Z")}, bound=W).empty
    # Other timestamp spellings are compared as instants.
    assert compare({"a": "2026-11-25T10:00:00.000Z"}, {"a": row("2026-11-25T10:00:00Z")}, bound=W).empty


def test_reconcile_documents_validate_against_the_pinned_schema():
    for resource in load_resources(None).values():
        if resource.singular:  # one object (the shop): reconciliation has nothing to list
            continue
        ids = ids_resource(resource)
        assert ids.nested == () and ids.name == resource.name
        page = page_query(ids, 250)
        parse_and_validate(page, origin="test")
        # id and updatedAt, or the id alone for records without one (balance transactions, payouts)
        stamped = "updatedAt" in load_schema().get_type(resource.node_type).fields  # type: ignore[union-attr]
        assert ("updatedAt" in page) == stamped and "sortKey" not in page
        parse_and_validate(nodes_query(resource), origin="test")
        parse_and_validate(nodes_query(ids), origin="test")
        # The ids-only resource must not share the full resource's cached documents.
        assert page != page_query(resource, 5)


def test_the_stored_summary_and_the_printed_line():
    state = StreamState(shop="s", resource="orders@reconcile", watermark=W, last_success_at=W, cursor='{"missing": 1, "drift": 2, "deleted": 0}')
    assert reconcile_summary(state) == {"last_at": W, "missing": 1, "drift": 2, "deleted": 0, "last_error": None, "last_error_at": None}
    assert reconcile_summary(StreamState(shop="s", resource="orders@reconcile", watermark=W)) is None
    from shopsync.engine.drift import Findings

    line = ReconcileResult(shop="s", resource="orders", ok=True, listed=9, findings=Findings(drift=["gid://shopify/Order/1"])).summary()
    assert line == "s/orders: 9 records in the shop; 1 drifted (re-read; e.g. gid://shopify/Order/1)"
    assert "nothing missing" in ReconcileResult(shop="s", resource="orders", ok=True, listed=9).summary()
