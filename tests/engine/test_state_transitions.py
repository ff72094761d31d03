"""Every change the engine makes to a stream state or bulk operation goes through a named transition."""

from __future__ import annotations

from pathlib import Path

from shopsync.engine.engine import SyncEngine
from shopsync.settings import load_settings
from shopsync.state.models import BulkOperationRecord, StreamState

NOW = 1_780_000_000.0  # 2026-05-28T20:26:40Z
NOW_TS = "2026-05-28T20:26:40Z"

IN_FLIGHT = StreamState(
    shop="acme", resource="orders", watermark="2026-01-01T00:00:00Z", window_start="2026-01-01T00:00:00Z",
    window_end="2026-01-02T00:00:00Z", path="paginated", cursor="c1", records_in_window=10,
    updated_at="2026-01-01T00:00:05Z",
)  # fmt: skip


class _Store:
    def __init__(self, state: StreamState | None) -> None:
        self.state = state
        self.saved: list[StreamState] = []

    async def get_stream(self, shop: str, resource: str) -> StreamState | None:
        return self.state

    async def save_stream(self, state: StreamState) -> None:
        self.saved.append(state)


async def test_a_recorded_error_sets_updated_at_like_failed_and_keeps_the_window(tmp_path: Path) -> None:
    (tmp_path / "shopsync.toml").write_text(
        f'database = "sqlite:///{tmp_path / "state.db"}"\n'
        '[[shop]]\nname = "acme"\ndomain = "acme.myshopify.com"\naccess_token = { env = "TOKEN" }\n'
    )
    settings = load_settings(tmp_path / "shopsync.toml", env={"TOKEN": "shpat_aaaaaaaa"})
    store = _Store(IN_FLIGHT)
    async with SyncEngine(settings, store, work_dir=tmp_path, clock=lambda: NOW) as engine:  # type: ignore[arg-type]
        await engine._record_error("acme", "orders", "QueryError: boom")
    assert store.saved == [IN_FLIGHT.failed("QueryError: boom", NOW)]
    saved = store.saved[0]
    assert (saved.last_error, saved.last_error_at, saved.updated_at) == ("QueryError: boom", NOW_TS, NOW_TS)
    assert (saved.window_end, saved.cursor, saved.records_in_window) == ("2026-01-02T00:00:00Z", "c1", 10)


def test_stream_transitions_change_only_what_they_name() -> None:
    bulk = IN_FLIGHT.replace(path=None).with_bulk_export("gid://shopify/BulkOperation/1")
    assert bulk == IN_FLIGHT.replace(path="bulk", bulk_operation_id="gid://shopify/BulkOperation/1")
    assert bulk.with_records(5) == bulk.replace(records_in_window=15)
    assert bulk.with_bulk_finished("2026-01-01T12:00:00Z") == bulk.replace(
        bulk_operation_id=None, window_start="2026-01-01T12:00:00Z"
    )
    assert IN_FLIGHT.rewound() == IN_FLIGHT.replace(cursor=None, records_in_window=0)
    assert IN_FLIGHT.with_records(1, now=NOW).updated_at == NOW_TS


def test_a_deletion_pass_moves_the_watermark_and_last_success_only() -> None:
    row = StreamState(shop="acme", resource="orders@deletions", watermark="2026-01-01T00:00:00Z", updated_at="x")
    assert row.succeeded("2026-01-02T00:00:00Z", NOW) == row.replace(
        watermark="2026-01-02T00:00:00Z", last_success_at=NOW_TS
    )
    assert row.succeeded(None, NOW).watermark == "2026-01-01T00:00:00Z"


def test_a_poll_replaces_the_operations_remote_fields() -> None:
    op = BulkOperationRecord(id="gid://shopify/BulkOperation/1", shop="acme", resource="orders", url="u", lines_processed=3)
    polled = op.with_status("COMPLETED", object_count=9, root_object_count=4, file_size=100, now=NOW)
    assert polled == op.replace(
        status="COMPLETED", object_count=9, root_object_count=4, file_size=100, url=None, updated_at=NOW_TS
    )
