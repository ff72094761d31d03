"""SQLite specifics: pragmas, schema versions, table layout, one-transaction atomicity, errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from shopsync.errors import StorageError
from shopsync.state import Record, StreamState
from shopsync.state.open import open_storage
from shopsync.state.sqlite import (
    PAGE_SIZE,
    STATE_SCHEMA_VERSION,
    SqliteDatabase,
    SqliteStateStore,
    describe_sqlite_error,
)
from shopsync.state.sqlite_sink import SqliteSink, quote_ident


def rec(i: int, ts: str = "2026-01-01T00:00:00Z", resource: str = "orders") -> Record:
    return Record(shop="acme", resource=resource, id=f"gid://shopify/Order/{i}", updated_at=ts, data={"i": i})


def rows(path: Path, table: str = "orders") -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            f'SELECT shop, id, updated_at, data, deleted_at FROM "{table}" ORDER BY id'
        ).fetchall()


async def test_pragmas_wal_full_sync(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "s.db")
    await db.open()
    try:
        got = await db.run(
            lambda c: (
                c.execute("PRAGMA journal_mode").fetchone()[0],
                c.execute("PRAGMA synchronous").fetchone()[0],
                c.execute("PRAGMA foreign_keys").fetchone()[0],
                c.execute("PRAGMA busy_timeout").fetchone()[0],
            ),
            what="reading pragmas",
        )
    finally:
        await db.close()
    assert got == ("wal", 2, 0, 10_000)  # synchronous 2 = FULL


async def test_a_new_file_gets_large_pages_and_an_existing_one_keeps_its_own(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:  # a file made before PAGE_SIZE, with SQLite's default
        conn.execute("PRAGMA page_size = 4096")
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
    conn.close()
    sizes = {}
    for name in ("new.db", "old.db"):
        storage = await open_storage(f"sqlite:{name}", base_dir=tmp_path, clock=lambda: 1767225600.0)
        await storage.commit(StreamState(shop="acme", resource="orders"), [rec(1)])
        await storage.close()
        with sqlite3.connect(tmp_path / name) as conn:
            sizes[name] = conn.execute("PRAGMA page_size").fetchone()[0]
            assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 1
        conn.close()
    assert sizes == {"new.db": PAGE_SIZE, "old.db": 4096}
    assert PAGE_SIZE != 4096


async def test_table_layout_and_index(tmp_path: Path) -> None:
    storage = await open_storage("sqlite:s.db", base_dir=tmp_path, clock=lambda: 1767225600.0)
    await storage.commit(StreamState(shop="acme", resource="orders"), [rec(1)])
    await storage.close()
    with sqlite3.connect(tmp_path / "s.db") as conn:
        cols = [(r[1], r[2], r[5]) for r in conn.execute('PRAGMA table_info("orders")')]
        index_cols = [r[2] for r in conn.execute('PRAGMA index_info("orders_shop_updated_at")')]
        row = conn.execute("SELECT shop, id, updated_at, data, synced_at, deleted_at FROM orders").fetchone()
        versions = dict(conn.execute("SELECT key, value FROM meta"))
    assert cols == [
        ("shop", "TEXT", 1),
        ("id", "TEXT", 2),
        ("updated_at", "TEXT", 0),
        ("data", "TEXT", 0),
        ("synced_at", "TEXT", 0),
        ("deleted_at", "TEXT", 0),
    ]
    assert index_cols == ["shop", "updated_at"]
    assert row == (
        "acme",
        "gid://shopify/Order/1",
        "2026-01-01T00:00:00Z",
        '{"i":1}',
        "2026-01-01T00:00:00Z",
        None,
    )
    assert versions == {"state_schema_version": str(STATE_SCHEMA_VERSION), "sink_schema_version": "1"}


async def test_synced_at_moves_only_when_the_row_changes(tmp_path: Path) -> None:
    now = [1767225600.0]
    storage = await open_storage("sqlite:s.db", base_dir=tmp_path, clock=lambda: now[0])
    state = StreamState(shop="acme", resource="orders")
    stamps = []
    for data in ({"i": 1}, {"i": 1}, {"i": 2}):  # written, replayed identically, changed
        version = Record(shop="acme", resource="orders", id="gid://shopify/Order/1", updated_at="2026-01-01T00:00:00Z", data=data)
        await storage.commit(state, [version])
        with sqlite3.connect(tmp_path / "s.db") as conn:
            stamps.append(conn.execute("SELECT synced_at FROM orders").fetchone()[0])
        now[0] += 60
    await storage.close()
    assert stamps == ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "2026-01-01T00:02:00Z"]


async def test_injected_failure_inside_the_transaction_leaves_neither_rows_nor_cursor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = await open_storage("sqlite:s.db", base_dir=tmp_path)
    assert storage.shared_transaction
    first = StreamState(shop="acme", resource="orders", cursor="p1", records_in_window=1)
    await storage.commit(first, [rec(1)])

    real_save = SqliteStateStore._save_state_in
    calls: list[str] = []

    def crash_after_rows(
        self: SqliteStateStore, conn: sqlite3.Connection, state: StreamState, bulk: object
    ) -> None:
        # The sink rows of this commit were already executed on this connection, in this transaction.
        calls.append("rows-written")
        assert conn.in_transaction
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 3
        raise sqlite3.OperationalError("injected: disk I/O error")

    monkeypatch.setattr(SqliteStateStore, "_save_state_in", crash_after_rows)
    with pytest.raises(StorageError, match=r"s\.db.*injected"):
        await storage.commit(first.with_page("p2", 2), [rec(2), rec(3), rec(1, "2026-02-01T00:00:00Z")])
    assert calls == ["rows-written"]

    assert await storage.state.get_stream("acme", "orders") == first
    assert [r[1] for r in rows(tmp_path / "s.db")] == ["gid://shopify/Order/1"]
    assert rows(tmp_path / "s.db")[0][2] == "2026-01-01T00:00:00Z"  # the newer version rolled back too

    # A new table created for the failed commit's resource survives (it is created in its own
    # transaction first), and the store keeps working.
    monkeypatch.setattr(SqliteStateStore, "_save_state_in", real_save)
    await storage.commit(first.with_page("p2", 2), [rec(2), rec(3)])
    assert len(rows(tmp_path / "s.db")) == 3
    await storage.close()


async def test_injected_failure_with_a_new_table_keeps_table_cache_right(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = await open_storage("sqlite:s.db", base_dir=tmp_path)

    def fail(self: SqliteStateStore, conn: sqlite3.Connection, state: StreamState, bulk: object) -> None:
        raise sqlite3.OperationalError("injected")

    monkeypatch.setattr(SqliteStateStore, "_save_state_in", fail)
    with pytest.raises(StorageError):
        await storage.commit(StreamState(shop="acme", resource="products"), [rec(1, resource="products")])
    monkeypatch.undo()
    await storage.commit(StreamState(shop="acme", resource="products"), [rec(1, resource="products")])
    assert len(rows(tmp_path / "s.db", "products")) == 1
    await storage.close()


async def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    storage = await open_storage("sqlite:s.db", base_dir=tmp_path)
    await storage.state.save_stream(StreamState(shop="acme", resource="orders"))
    await storage.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'state_schema_version'")
    with pytest.raises(StorageError, match=r"state_schema_version 99, newer than this shopsync"):
        await open_storage("sqlite:s.db", base_dir=tmp_path)
    with sqlite3.connect(path) as conn:  # the refusal changed nothing
        assert conn.execute("SELECT count(*) FROM stream_state").fetchone()[0] == 1


async def test_unwritable_database_path_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(StorageError, match=r"file\.txt/sub\.db"):
        await open_storage("sqlite:file.txt/sub.db", base_dir=tmp_path)


async def test_not_a_database_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "junk.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match=r"junk\.db"):
        await open_storage("sqlite:junk.db", base_dir=tmp_path)


async def test_write_error_leaves_state_alone(tmp_path: Path) -> None:
    storage = await open_storage("sqlite:s.db", base_dir=tmp_path)
    state = StreamState(shop="acme", resource="orders", cursor="keep")
    await storage.state.save_stream(state)

    # Another connection holds the write lock longer than busy_timeout: the commit fails cleanly.
    storage.state.database.busy_timeout_ms = 50  # type: ignore[attr-defined]
    await storage.state.database.run(lambda c: c.execute("PRAGMA busy_timeout = 50"), what="t")  # type: ignore[attr-defined]
    blocker = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        # "database is locked"; rarely SQLite loses the message and only the name says SQLITE_BUSY.
        with pytest.raises(StorageError, match=r"s\.db.*(locked|SQLITE_BUSY)"):
            await storage.commit(state.with_page("moved", 1), [rec(1)])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert (await storage.state.get_stream("acme", "orders")) == state
    await storage.close()


def test_an_error_without_message_is_described_by_its_name() -> None:
    def error(message: str, name: str) -> sqlite3.Error:
        exc = sqlite3.OperationalError(message)
        exc.sqlite_errorname = name  # type: ignore[attr-defined]
        return exc

    assert describe_sqlite_error(error("not an error", "SQLITE_BUSY")) == "SQLITE_BUSY (SQLite gave no message)"
    assert describe_sqlite_error(error("database is locked", "SQLITE_BUSY")) == "database is locked"
    assert describe_sqlite_error(error("database or disk is full", "SQLITE_FULL")).startswith("disk full (")


def test_quote_ident_validates() -> None:
    assert quote_ident("inventory_levels") == '"inventory_levels"'
    for bad in ('a"b', "a b", "A", "sqlite_master", "bulk_operations", "x" * 64):
        with pytest.raises(ValueError):
            quote_ident(bad)


async def test_shared_database_is_closed_once_by_last_user(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "s.db")
    state, sink = SqliteStateStore(db, None), SqliteSink(db)
    await state.open()
    await sink.open()
    await state.close()
    assert db.is_open  # the sink still uses it
    await sink.write([rec(1)])
    await sink.close()
    assert not db.is_open


@pytest.mark.parametrize("role", ["state", "sink"])
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
async def test_corrupted_file_is_reported_and_never_overwritten(tmp_path: Path, role: str, damage: str) -> None:
    storage = await open_storage("sqlite:state.db", "sqlite:sink.db", base_dir=tmp_path)
    await storage.commit(StreamState(shop="acme", resource="orders").with_page("c", 50), [rec(i) for i in range(50)])
    await storage.close()
    path = tmp_path / f"{role}.db"
    data = path.read_bytes()
    assert len(data) > 4096, "needs several pages to truncate"
    damaged = b"not a database at all " * 300 if damage == "garbage" else data[: len(data) // 2]
    path.write_bytes(damaged)
    expected = "does not start with the SQLite header" if damage == "garbage" else "truncated"
    with pytest.raises(StorageError, match=rf"{path}.*{expected}.*leaves the file as it is"):
        await open_storage("sqlite:state.db", "sqlite:sink.db", base_dir=tmp_path)
    assert path.read_bytes() == damaged  # reported, not recreated or "repaired"


async def test_sink_from_a_newer_shopsync_is_refused(tmp_path: Path) -> None:
    storage = await open_storage("sqlite:state.db", "sqlite:sink.db", base_dir=tmp_path)
    await storage.close()
    with sqlite3.connect(tmp_path / "sink.db") as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'sink_schema_version'")
    before = (tmp_path / "sink.db").read_bytes()
    with pytest.raises(StorageError, match=r"sink\.db has sink_schema_version 99, newer than this shopsync"):
        await open_storage("sqlite:state.db", "sqlite:sink.db", base_dir=tmp_path)
    assert (tmp_path / "sink.db").read_bytes() == before
