"""Every file and directory shopsync creates is private (0600 / 0700), whatever the umask.

State database, a separate SQLite sink, SQLite's -wal and -shm files beside each, JSONL
directories, log files (also after rotation) and the lock file. Directories that already exist
keep their mode: an administrator's choice is not overridden.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from shopsync.state import Record, StreamState
from shopsync.state.jsonl import JsonlSink
from shopsync.state.open import open_storage
from tests.support.http import serve

# 0o022: the usual; 0o000: nothing masked, the file's own mode is all there is; 0o277: the umask
# even removes the owner's write bit, so the mode must be set again after creation.
UMASKS = [0o022, 0o000, 0o277]


@pytest.fixture(params=UMASKS, ids=lambda m: f"umask{m:03o}")
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def rec(i: int, resource: str = "orders", pad: int = 0) -> Record:
    gid = f"gid://shopify/Order/{i}"
    return Record(shop="acme", resource=resource, id=gid, updated_at="2026-01-01T00:00:00Z", data={"p": "x" * pad})


async def test_state_database_and_its_wal_and_shm_are_private(tmp_path: Path, umask: int) -> None:
    base = tmp_path / "base"
    base.mkdir(mode=0o755)
    base.chmod(0o755)
    storage = await open_storage("sqlite:var/lib/shopsync/state.db", base_dir=base)
    try:
        await storage.commit(StreamState(shop="acme", resource="orders").with_page("c1", 1), [rec(1)])
        db = base / "var" / "lib" / "shopsync" / "state.db"
        # while open, SQLite's WAL and shared-memory index exist beside the database
        files = {p: mode(p) for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm"))}
        assert files == dict.fromkeys(files, 0o600)
        dirs = {p: mode(p) for p in (base / "var", base / "var" / "lib", db.parent)}
        assert dirs == dict.fromkeys(dirs, 0o700)
    finally:
        await storage.close()
    assert mode(base) == 0o755  # existing directory untouched
    assert mode(db) == 0o600


async def test_separate_sqlite_sink_and_its_wal_and_shm_are_private(tmp_path: Path, umask: int) -> None:
    storage = await open_storage("sqlite:state.db", "sqlite:records/sink.db", base_dir=tmp_path)
    try:
        await storage.commit(StreamState(shop="acme", resource="orders").with_page("c1", 1), [rec(1)])
        sink = tmp_path / "records" / "sink.db"
        files = [sink, Path(f"{sink}-wal"), Path(f"{sink}-shm")]
        files += [tmp_path / "state.db", tmp_path / "state.db-wal", tmp_path / "state.db-shm"]
        assert {p: mode(p) for p in files} == dict.fromkeys(files, 0o600)
        assert mode(sink.parent) == 0o700
    finally:
        await storage.close()


async def test_jsonl_directories_files_rotation_and_lock_are_private(tmp_path: Path, umask: int) -> None:
    root = tmp_path / "out" / "log"
    sink = JsonlSink(root, rotate_bytes=300)
    await sink.open()
    try:
        await sink.write([rec(i, pad=100) for i in range(5)])  # > 300 bytes: several files
        await sink.write([rec(9, resource="products")])
    finally:
        await sink.close()
    logs = sorted((root / "acme" / "orders").glob("*.jsonl"))
    assert len(logs) >= 2, "expected a rotation"
    files = [*logs, *(root / "acme" / "products").glob("*.jsonl"), root / ".shopsync.lock"]
    assert {p: mode(p) for p in files} == dict.fromkeys(files, 0o600)
    dirs = [tmp_path / "out", root, root / "acme", root / "acme" / "orders", root / "acme" / "products"]
    assert {p: mode(p) for p in dirs} == dict.fromkeys(dirs, 0o700)


async def test_existing_files_and_directories_keep_their_mode(tmp_path: Path) -> None:
    """A database an administrator made group-readable on purpose stays so (nothing is re-moded)."""
    storage = await open_storage("sqlite:shared/state.db", base_dir=tmp_path)
    await storage.close()
    (tmp_path / "shared").chmod(0o750)
    (tmp_path / "shared" / "state.db").chmod(0o640)
    storage = await open_storage("sqlite:shared/state.db", base_dir=tmp_path)
    try:
        await storage.commit(StreamState(shop="acme", resource="orders").with_page("c1", 1), [rec(1)])
        assert mode(tmp_path / "shared") == 0o750
        assert mode(tmp_path / "shared" / "state.db") == 0o640
        # SQLite gives -wal/-shm the database file's mode
        assert mode(tmp_path / "shared" / "state.db-wal") == 0o640
    finally:
        await storage.close()


async def test_bulk_result_files_and_their_directories_are_private(tmp_path: Path, umask: int) -> None:
    """A downloaded bulk result file holds customers' data: 0600 in 0700 directories."""
    from aiohttp import web

    from shopsync.engine.download import download_to_file

    body = b'{"id":"gid://shopify/Order/1"}\n' * 100

    async def answer(_: web.Request) -> web.Response:
        return web.Response(body=body)

    app = web.Application()
    app.router.add_get("/file.jsonl", answer)
    work = tmp_path / "work"
    dest = work / "bulk" / "acme" / "orders" / "op-1.jsonl"
    async with serve(app) as url, aiohttp.ClientSession() as session:
        size = await download_to_file(session, f"{url}/file.jsonl", dest)
    assert size == len(body) and dest.read_bytes() == body
    assert mode(dest) == 0o600
    dirs = {p: mode(p) for p in (work, work / "bulk", work / "bulk" / "acme", dest.parent)}
    assert dirs == dict.fromkeys(dirs, 0o700)


def test_bulk_spill_databases_are_private(tmp_path: Path, umask: int) -> None:
    """The spill database a bulk file is reassembled in holds customers' data too."""
    from shopsync.engine.reassembly import BulkReassembler
    from shopsync.queries import load_resources

    resource = load_resources()["orders"]
    spill = tmp_path / "work" / "bulk" / "acme" / "orders" / "op-1.spill.db"
    with BulkReassembler(resource, spill):
        assert mode(spill) == 0o600
        assert mode(spill.parent) == 0o700 and mode(tmp_path / "work") == 0o700
    assert not spill.exists()  # scratch: removed on close
