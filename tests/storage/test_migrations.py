"""State schema migrations, both SQL backends: an empty database, a database at the previous
version (made with that version's DDL, with rows in it), concurrent opens, a failing step."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from shopsync.errors import StorageError
from shopsync.state import BulkOperationRecord, StreamState
from shopsync.state import postgres as pg_state
from shopsync.state import sqlite as sqlite_state
from shopsync.state.database import Migration, check_migrations, pending_migrations
from shopsync.state.open import Storage, open_storage
from shopsync.state.postgres import split_schema

# -- what shopsync wrote before the ledger was keyed by shop (state schema version 1) ---------------
# Copied here on purpose: the test must not build the old database with the code under test.

SQLITE_V1 = """
CREATE TABLE meta (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE stream_state (
    shop TEXT NOT NULL, resource TEXT NOT NULL, watermark TEXT, window_start TEXT, window_end TEXT,
    path TEXT, cursor TEXT, bulk_operation_id TEXT, records_in_window INTEGER NOT NULL DEFAULT 0,
    last_success_at TEXT, last_error TEXT, last_error_at TEXT, parked_until TEXT, parked_reason TEXT,
    updated_at TEXT, PRIMARY KEY (shop, resource)
);
CREATE TABLE bulk_operations (
    id TEXT NOT NULL PRIMARY KEY, shop TEXT NOT NULL, resource TEXT NOT NULL, window_start TEXT,
    window_end TEXT, status TEXT NOT NULL, error_code TEXT, created_at TEXT, completed_at TEXT,
    object_count INTEGER NOT NULL DEFAULT 0, root_object_count INTEGER NOT NULL DEFAULT 0,
    file_size INTEGER, url TEXT, partial_data_url TEXT, bytes_downloaded INTEGER NOT NULL DEFAULT 0,
    lines_processed INTEGER NOT NULL DEFAULT 0, records_written INTEGER NOT NULL DEFAULT 0,
    finished INTEGER NOT NULL DEFAULT 0, updated_at TEXT
);
CREATE INDEX bulk_operations_unfinished ON bulk_operations (finished, shop, resource);
INSERT INTO meta VALUES ('state_schema_version', '1'), ('sink_schema_version', '1');
"""

PG_V1 = """
CREATE SCHEMA "{s}";
CREATE TABLE "{s}".meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE "{s}".stream_state (
    shop TEXT, resource TEXT, watermark TEXT, window_start TEXT, window_end TEXT, path TEXT,
    cursor TEXT, bulk_operation_id TEXT, records_in_window BIGINT, last_success_at TEXT,
    last_error TEXT, last_error_at TEXT, parked_until TEXT, parked_reason TEXT, updated_at TEXT,
    PRIMARY KEY (shop, resource)
);
CREATE TABLE "{s}".bulk_operations (
    id TEXT, shop TEXT, resource TEXT, window_start TEXT, window_end TEXT, status TEXT,
    error_code TEXT, created_at TEXT, completed_at TEXT, object_count BIGINT,
    root_object_count BIGINT, file_size BIGINT, url TEXT, partial_data_url TEXT,
    bytes_downloaded BIGINT, lines_processed BIGINT, records_written BIGINT,
    finished BOOLEAN NOT NULL DEFAULT FALSE, updated_at TEXT, PRIMARY KEY (id)
);
CREATE INDEX "bulk_operations_unfinished" ON "{s}".bulk_operations (finished, shop, resource);
INSERT INTO "{s}".meta VALUES ('state_schema_version', '1'), ('sink_schema_version', '1');
"""

# Rows as version 1 held them: each ledger row names its shop, but the key is the id alone.
OLD_OPS = [
    BulkOperationRecord(
        id="gid://shopify/BulkOperation/1", shop="acme", resource="orders", window_end="2026-01-02T00:00:00Z",
        status="RUNNING", created_at="2026-01-01T00:00:00Z", object_count=12, url="https://x.example/a?sig=1",
        bytes_downloaded=5, updated_at="2026-01-01T00:01:00Z",
    ),
    BulkOperationRecord(
        id="gid://shopify/BulkOperation/2", shop="zeta", resource="products", window_start="2026-01-01T00:00:00Z",
        window_end="2026-01-03T00:00:00Z", status="COMPLETED", created_at="2026-01-01T00:00:05Z",
        completed_at="2026-01-01T00:09:00Z", root_object_count=3, file_size=900, records_written=3,
        finished=True, updated_at="2026-01-01T00:10:00Z",
    ),
]  # fmt: skip
OLD_STREAM = StreamState(
    shop="acme", resource="orders", window_end="2026-01-02T00:00:00Z", path="bulk",
    bulk_operation_id="gid://shopify/BulkOperation/1", records_in_window=4, updated_at="2026-01-01T00:01:00Z",
)  # fmt: skip

_OP_COLUMNS = (
    "id", "shop", "resource", "window_start", "window_end", "status", "error_code", "created_at",
    "completed_at", "object_count", "root_object_count", "file_size", "url", "partial_data_url",
    "bytes_downloaded", "lines_processed", "records_written", "finished", "updated_at",
)  # fmt: skip
_STREAM_COLUMNS = (
    "shop", "resource", "watermark", "window_start", "window_end", "path", "cursor", "bulk_operation_id",
    "records_in_window", "last_success_at", "last_error", "last_error_at", "parked_until", "parked_reason",
    "updated_at",
)  # fmt: skip


def _op_values(op: BulkOperationRecord) -> tuple[object, ...]:
    return tuple(getattr(op, c) for c in _OP_COLUMNS)


def _stream_values(state: StreamState) -> tuple[object, ...]:
    return tuple(getattr(state, c) for c in _STREAM_COLUMNS)


def make_sqlite_v1(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.executescript(SQLITE_V1)
        marks = ", ".join("?" * len(_OP_COLUMNS))
        conn.executemany(
            f"INSERT INTO bulk_operations ({', '.join(_OP_COLUMNS)}) VALUES ({marks})",
            [tuple(int(v) if isinstance(v, bool) else v for v in _op_values(op)) for op in OLD_OPS],
        )
        marks = ", ".join("?" * len(_STREAM_COLUMNS))
        conn.execute(
            f"INSERT INTO stream_state ({', '.join(_STREAM_COLUMNS)}) VALUES ({marks})", _stream_values(OLD_STREAM)
        )
        conn.commit()
    finally:
        conn.close()


async def _pg(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(split_schema(url)[0])


async def make_pg_v1(url: str) -> None:
    schema = split_schema(url)[1]
    conn = await _pg(url)
    try:
        await conn.execute(PG_V1.format(s=schema))
        marks = ", ".join(f"${i}" for i in range(1, len(_OP_COLUMNS) + 1))
        for op in OLD_OPS:
            await conn.execute(
                f'INSERT INTO "{schema}".bulk_operations ({", ".join(_OP_COLUMNS)}) VALUES ({marks})', *_op_values(op)
            )
        marks = ", ".join(f"${i}" for i in range(1, len(_STREAM_COLUMNS) + 1))
        await conn.execute(
            f'INSERT INTO "{schema}".stream_state ({", ".join(_STREAM_COLUMNS)}) VALUES ({marks})',
            *_stream_values(OLD_STREAM),
        )
    finally:
        await conn.close()


async def sqlite_layout(path: Path) -> tuple[dict[str, str], list[str]]:
    """(meta, the ledger's primary-key columns in key order)."""
    conn = sqlite3.connect(path)
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        pk = sorted((r[5], r[1]) for r in conn.execute("PRAGMA table_info(bulk_operations)") if r[5])
    finally:
        conn.close()
    return meta, [name for _, name in pk]


async def pg_layout(url: str) -> tuple[dict[str, str], list[str]]:
    schema = split_schema(url)[1]
    conn = await _pg(url)
    try:
        meta = {r["key"]: r["value"] for r in await conn.fetch(f'SELECT key, value FROM "{schema}".meta')}
        pk = await conn.fetch(
            "SELECT a.attname FROM pg_index i"
            " JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON true"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
            " WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY k.n",
            f'"{schema}".bulk_operations',
        )
    finally:
        await conn.close()
    return meta, [r["attname"] for r in pk]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(backend name, state database URL): a SQLite file in tmp_path or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return "sqlite", f"sqlite://{tmp_path / 'state.db'}"
    return "postgresql", request.getfixturevalue("pg_url")


async def layout(backend: tuple[str, str], tmp_path: Path) -> tuple[dict[str, str], list[str]]:
    name, url = backend
    return await (sqlite_layout(tmp_path / "state.db") if name == "sqlite" else pg_layout(url))


async def make_v1(backend: tuple[str, str], tmp_path: Path) -> None:
    name, url = backend
    if name == "sqlite":
        make_sqlite_v1(tmp_path / "state.db")
    else:
        await make_pg_v1(url)


# -- pure ---------------------------------------------------------------------------------------


def test_pending_migrations_and_their_numbering() -> None:
    steps: list[Migration[object]] = [
        Migration(version=1, description="one", apply="SELECT 1"),
        Migration(version=2, description="two", apply="SELECT 2"),
    ]
    assert check_migrations(steps) == 2
    assert pending_migrations(steps, None, key="k", where="db") == steps
    assert pending_migrations(steps, 1, key="k", where="db") == steps[1:]
    assert pending_migrations(steps, 2, key="k", where="db") == []
    with pytest.raises(StorageError, match="db has k 3, newer than this shopsync understands \\(2\\)"):
        pending_migrations(steps, 3, key="k", where="db")
    with pytest.raises(ValueError, match="numbered"):
        check_migrations([steps[1], steps[0]])
    assert sqlite_state.STATE_SCHEMA_VERSION == pg_state.STATE_SCHEMA_VERSION == 3


# -- both backends --------------------------------------------------------------------------------


async def test_an_empty_database_is_created_at_the_current_version(backend: tuple[str, str], tmp_path: Path) -> None:
    storage = await open_storage(backend[1], base_dir=tmp_path)
    try:
        # Two shops' operations with one id, both kept: the new key at work.
        for shop in ("acme", "zeta"):
            await storage.state.save_bulk_operation(OLD_OPS[0].replace(shop=shop))
        assert {op.shop for op in await storage.state.list_bulk_operations()} == {"acme", "zeta"}
    finally:
        await storage.close()
    meta, pk = await layout(backend, tmp_path)
    assert meta["state_schema_version"] == "3"
    assert pk == ["shop", "id"]


async def test_a_database_at_the_previous_version_is_migrated_keeping_its_rows(
    backend: tuple[str, str], tmp_path: Path
) -> None:
    await make_v1(backend, tmp_path)
    meta, pk = await layout(backend, tmp_path)
    assert (meta["state_schema_version"], pk) == ("1", ["id"])  # the premise: the old key

    storage = await open_storage(backend[1], base_dir=tmp_path)
    try:
        # Every old row is there, every field intact, found under its own shop only.
        assert await storage.state.get_bulk_operation("acme", OLD_OPS[0].id) == OLD_OPS[0]
        assert await storage.state.get_bulk_operation("zeta", OLD_OPS[1].id) == OLD_OPS[1]
        assert await storage.state.get_bulk_operation("zeta", OLD_OPS[0].id) is None
        assert await storage.state.get_stream("acme", "orders") == OLD_STREAM
        every = await storage.state.list_bulk_operations(unfinished_only=False)
        assert [(op.shop, op.id) for op in every] == [(op.shop, op.id) for op in OLD_OPS]
        # The migrated ledger takes another shop's operation with an id already there.
        theirs = OLD_OPS[0].replace(shop="zeta", resource="customers", status="CREATED", url=None)
        await storage.state.save_bulk_operation(theirs)
        assert await storage.state.get_bulk_operation("acme", OLD_OPS[0].id) == OLD_OPS[0]
        assert await storage.state.get_bulk_operation("zeta", OLD_OPS[0].id) == theirs
    finally:
        await storage.close()
    meta, pk = await layout(backend, tmp_path)
    assert (meta["state_schema_version"], meta["sink_schema_version"], pk) == ("3", "1", ["shop", "id"])

    # Opening again migrates nothing more and keeps the rows.
    again = await open_storage(backend[1], base_dir=tmp_path)
    try:
        assert len(await again.state.list_bulk_operations(unfinished_only=False)) == 3
    finally:
        await again.close()


async def test_a_failing_step_leaves_the_database_at_its_old_version(
    backend: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All steps run in one transaction: a step failing after the re-keying undoes the re-keying too."""
    await make_v1(backend, tmp_path)
    module = sqlite_state if backend[0] == "sqlite" else pg_state

    def explode(conn: object) -> None:
        raise StorageError("injected: step 4 failed")

    broken = (*module.MIGRATIONS, Migration(version=4, description="broken", apply=explode))
    monkeypatch.setattr(module, "MIGRATIONS", broken)
    with pytest.raises(StorageError, match="injected: step 4 failed"):
        await open_storage(backend[1], base_dir=tmp_path)
    meta, pk = await layout(backend, tmp_path)
    assert (meta["state_schema_version"], pk) == ("1", ["id"])
    monkeypatch.undo()

    storage = await open_storage(backend[1], base_dir=tmp_path)
    try:
        assert await storage.state.get_bulk_operation("acme", OLD_OPS[0].id) == OLD_OPS[0]
    finally:
        await storage.close()


async def test_a_newer_state_schema_is_refused_and_left_alone(backend: tuple[str, str], tmp_path: Path) -> None:
    storage = await open_storage(backend[1], base_dir=tmp_path)
    await storage.close()
    name, url = backend
    if name == "sqlite":
        with sqlite3.connect(tmp_path / "state.db") as conn:
            conn.execute("UPDATE meta SET value = '4' WHERE key = 'state_schema_version'")
    else:
        conn = await _pg(url)
        try:
            await conn.execute(f"UPDATE \"{split_schema(url)[1]}\".meta SET value = '4' WHERE key = 'state_schema_version'")
        finally:
            await conn.close()
    with pytest.raises(StorageError, match="state_schema_version 4, newer than this shopsync understands \\(3\\)"):
        await open_storage(url, base_dir=tmp_path)
    meta, _ = await layout(backend, tmp_path)
    assert meta["state_schema_version"] == "4"


# -- PostgreSQL: several daemons starting together ---------------------------------------------


@pytest.mark.parametrize("start", ["empty", "previous version"])
async def test_postgresql_daemons_opening_together_migrate_once(pg_url: str, start: str) -> None:
    """Four processes' worth of pools open one schema at once: each succeeds, the schema is
    created (or migrated) once, and the old rows survive."""
    if start == "previous version":
        await make_pg_v1(pg_url)
    opened: list[Storage] = []
    try:
        results = await asyncio.gather(*(open_storage(pg_url) for _ in range(4)), return_exceptions=True)
        opened = [r for r in results if isinstance(r, Storage)]
        assert len(opened) == 4, [r for r in results if not isinstance(r, Storage)]
        for storage in opened:
            got = await storage.state.list_bulk_operations(unfinished_only=False)
            assert [(op.shop, op.id) for op in got] == ([(op.shop, op.id) for op in OLD_OPS] if start != "empty" else [])
    finally:
        for storage in opened:
            await storage.close()
    meta, pk = await pg_layout(pg_url)
    assert (meta["state_schema_version"], pk) == ("3", ["shop", "id"])


async def test_a_database_at_version_2_gains_the_lease_tables_keeping_its_rows(
    backend: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Version 2 (the ledger keyed by shop, before leases) → 3: the lease and heartbeat tables."""
    module = sqlite_state if backend[0] == "sqlite" else pg_state
    monkeypatch.setattr(module, "MIGRATIONS", module.MIGRATIONS[:2])
    storage = await open_storage(backend[1], base_dir=tmp_path)
    try:
        await storage.state.save_bulk_operation(OLD_OPS[0])
    finally:
        await storage.close()
    meta, _ = await layout(backend, tmp_path)
    assert meta["state_schema_version"] == "2"  # the premise
    monkeypatch.undo()
    storage = await open_storage(backend[1], base_dir=tmp_path)
    try:
        assert await storage.state.get_bulk_operation("acme", OLD_OPS[0].id) == OLD_OPS[0]
        if backend[0] == "postgresql":
            from shopsync.state.open import lease_store

            leases = lease_store(storage, "d1")
            assert leases is not None
            got = await leases.claim("acme", 30.0)
            assert got is not None and got.epoch == 1
    finally:
        await storage.close()
    meta, _ = await layout(backend, tmp_path)
    assert meta["state_schema_version"] == "3"
