"""PostgreSQL specifics: layout and types, one-transaction atomicity, schema versions, errors."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import asyncpg
import pytest

from shopsync.errors import ConfigError, StorageError
from shopsync.state import Record, StreamState
from shopsync.state.open import open_storage
from shopsync.state.postgres import PostgresDatabase, PostgresStateStore, split_schema


def rec(i: int, ts: str = "2026-01-01T00:00:00Z") -> Record:
    return Record(shop="acme", resource="orders", id=f"gid://shopify/Order/{i}", updated_at=ts, data={"i": i})


async def fetch(url: str, sql: str) -> list[asyncpg.Record]:
    dsn, _ = split_schema(url)
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def test_layout_types_and_jsonb(pg_url: str) -> None:
    schema = split_schema(pg_url)[1]
    storage = await open_storage(pg_url, clock=lambda: 1767225600.0)
    assert storage.shared_transaction
    await storage.commit(StreamState(shop="acme", resource="orders"), [rec(1)])
    await storage.close()
    cols = await fetch(
        pg_url,
        "SELECT column_name, data_type FROM information_schema.columns"
        f" WHERE table_schema = '{schema}' AND table_name = 'orders' ORDER BY ordinal_position",
    )
    assert [(c["column_name"], c["data_type"]) for c in cols] == [
        ("shop", "text"),
        ("id", "text"),
        ("updated_at", "timestamp with time zone"),
        ("data", "jsonb"),
        ("synced_at", "timestamp with time zone"),
        ("deleted_at", "timestamp with time zone"),
    ]
    row = (await fetch(pg_url, f"SELECT data->>'i' AS i, updated_at, synced_at FROM \"{schema}\".orders"))[0]
    assert row["i"] == "1"
    assert row["updated_at"] == datetime(2026, 1, 1, tzinfo=UTC) == row["synced_at"]


async def test_synced_at_moves_only_when_the_row_changes(pg_url: str) -> None:
    schema = split_schema(pg_url)[1]
    now = [1767225600.0]
    storage = await open_storage(pg_url, clock=lambda: now[0])
    state = StreamState(shop="acme", resource="orders")
    stamps = []
    for data in ({"i": 1}, {"i": 1}, {"i": 2}):  # written, replayed identically, changed
        version = Record(shop="acme", resource="orders", id="gid://shopify/Order/1", updated_at="2026-01-01T00:00:00Z", data=data)
        await storage.commit(state, [version])
        stamps.append((await fetch(pg_url, f'SELECT synced_at FROM "{schema}".orders'))[0]["synced_at"])
        now[0] += 60
    await storage.close()
    assert stamps == [datetime(2026, 1, 1, tzinfo=UTC)] * 2 + [datetime(2026, 1, 1, 0, 2, tzinfo=UTC)]


async def test_injected_failure_inside_the_transaction_leaves_neither_rows_nor_cursor(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = await open_storage(pg_url)
    first = StreamState(shop="acme", resource="orders", cursor="p1", records_in_window=1)
    await storage.commit(first, [rec(1)])

    async def crash_after_rows(
        self: PostgresStateStore, conn: asyncpg.Connection, state: StreamState, bulk: object
    ) -> None:
        assert await conn.fetchval(f"SELECT count(*) FROM {self.database.table('orders')}") == 3
        raise asyncpg.exceptions.DiskFullError("injected: no space left")

    monkeypatch.setattr(PostgresStateStore, "_save_state_in", crash_after_rows)
    with pytest.raises(StorageError, match="injected"):
        await storage.commit(first.with_page("p2", 2), [rec(2), rec(3), rec(1, "2026-02-01T00:00:00Z")])
    monkeypatch.undo()
    assert await storage.state.get_stream("acme", "orders") == first
    rows = await storage.sink.read_latest("acme", "orders")
    assert (
        list(rows) == ["gid://shopify/Order/1"]
        and rows["gid://shopify/Order/1"].updated_at == "2026-01-01T00:00:00Z"
    )
    await storage.close()


async def test_newer_schema_version_is_refused(pg_url: str) -> None:
    storage = await open_storage(pg_url)
    await storage.close()
    schema = split_schema(pg_url)[1]
    await fetch(pg_url, f"UPDATE \"{schema}\".meta SET value = '99' WHERE key = 'state_schema_version'")
    with pytest.raises(StorageError, match="state_schema_version 99, newer than this shopsync"):
        await open_storage(pg_url)


async def test_unreachable_server_is_a_storage_error_without_password() -> None:
    with pytest.raises(
        StorageError, match=r"PostgreSQL database postgresql://app:\*\*\*@127\.0\.0\.1:1/test"
    ) as info:
        await open_storage("postgresql://app:hunter2@127.0.0.1:1/test")
    assert "hunter2" not in str(info.value)


def test_schema_parameter() -> None:
    assert split_schema("postgresql://h:5432/db?schema=shop_data") == ("postgresql://h:5432/db", "shop_data")
    assert split_schema("postgresql://h/db")[1] == "public"
    dsn, schema = split_schema("postgresql://h/db?sslmode=disable&schema=x")
    assert (dsn, schema) == ("postgresql://h/db?sslmode=disable", "x")
    with pytest.raises(ConfigError, match="schema"):
        split_schema("postgresql://h/db?schema=Bad-Name")


async def test_a_process_frozen_under_the_schema_lock_is_ended_by_the_server(pg_url: str) -> None:
    """A transaction holding the schema's advisory lock (table creation, migrations) that goes idle
    (its process frozen) is ended by the server after ``lock_idle_timeout``: another process's
    table creation goes on instead of waiting as long as the frozen one is stopped."""
    frozen, other = PostgresDatabase(pg_url), PostgresDatabase(pg_url)
    frozen.lock_idle_timeout = 0.3
    await frozen.open()
    await other.open()
    try:
        with pytest.raises(StorageError, match="frozen under the lock"):
            async with frozen.transaction("frozen under the lock") as conn:
                await frozen.lock_schema(conn)
                # Nothing more is sent on `conn`: to the server its client is frozen.
                async with other.transaction("another creator") as theirs:
                    await asyncio.wait_for(other.lock_schema(theirs), 5)
                await conn.fetchval("SELECT 1")  # its session was ended
    finally:
        await frozen.close()
        await other.close()


async def test_the_control_pool_is_not_the_runs_pool(pg_url: str) -> None:
    """With every run connection taken (runs all waiting on a lock, say), a control connection
    (the leases') is still handed out at once; both pools close with the database."""
    db = PostgresDatabase(pg_url)
    await db.open()
    try:
        async with contextlib.AsyncExitStack() as runs:
            for i in range(db.max_size):
                await runs.enter_async_context(db.connection(f"run {i}"))
            async with db.connection("the lease cycle", control=True) as conn:
                assert await asyncio.wait_for(conn.fetchval("SELECT 1"), 5) == 1
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2), db.connection("one run too many"):
                    pass
    finally:
        await db.close()
    with pytest.raises(StorageError, match="is not open"):
        async with db.connection("after close", control=True):
            pass
