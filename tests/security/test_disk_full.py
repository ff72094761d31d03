"""Disk full and I/O errors from the Nth write, in the state store and in each sink.

A sync against the simulated shop runs with the fault armed: the streams fail with an error naming
the file and "disk full" (or "I/O error"), no checkpoint claims a record the sink does not hold,
what was written before stays intact, and the next run — space freed — resumes and ends with an
exact copy.

How the faults are injected:

* SQLite: from the Nth transaction on the chosen file, ``PRAGMA max_page_count`` is pinned at the
  file's current size and the transaction needs one new page (a commit on a full disk fails even
  when the file keeps its size: its frames are appended to the -wal). SQLite answers SQLITE_FULL,
  the code (and the rollback) it uses when the OS says ENOSPC. A fresh connection — the next run —
  has no limit: space freed. (An EIO inside SQLite cannot be injected from Python; its
  wording is checked on an error object.)
* JSONL: the module's ``write_all`` / ``fsync`` (from :mod:`shopsync.fsutil`) fail from the Nth
  call: ENOSPC after writing half the chunk (a torn line, as a real full disk leaves), or EIO from
  ``fsync`` after the data reached the page cache.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from shopsync.engine.engine import SyncReport
from shopsync.simulator.server import SimulatedShop, run_simulator
from shopsync.state import jsonl as jsonl_module
from shopsync.state.jsonl import iter_lines, list_files, read_latest
from shopsync.state.sqlite import SqliteDatabase, describe_sqlite_error
from tests.e2e.conftest import sync_once, token_env, write_config
from tests.support import ALL_RESOURCES, diff_records, sim_config, sink_rows, stream_states

# Small enough for a few seconds per run, with several pages per resource (page commits to fail).
DATA = {"orders": 400, "customers": 80, "products": 20, "collections": 4, "big_order_line_items": 60, "tie_group_size": 60}


@pytest.fixture
async def shop() -> Iterator[SimulatedShop]:
    async with run_simulator(sim_config("acme", data=DATA)) as server:
        yield server.shop()


# -- faults ----------------------------------------------------------------------------------------


@dataclass
class Fault:
    """Armed from the ``after``-th write (1-based) until ``freed``; counts what it refused."""

    after: int
    calls: int = 0
    refused: int = 0
    freed: bool = False

    def hit(self) -> bool:
        if self.freed:
            return False
        self.calls += 1
        if self.calls >= self.after:
            self.refused += 1
            return True
        return False


def sqlite_full(monkeypatch: pytest.MonkeyPatch, file_name: str, after: int) -> Fault:
    """SQLITE_FULL for growth of ``file_name`` from its ``after``-th transaction on."""
    fault = Fault(after)
    original = SqliteDatabase._call_in_transaction

    def call_in_transaction(self: SqliteDatabase, fn, what):  # type: ignore[no-untyped-def]
        if self.path.name != file_name or self._conn is None or not fault.hit():
            return original(self, fn, what)
        pages = self._conn.execute("PRAGMA page_count").fetchone()[0]
        self._conn.execute(f"PRAGMA max_page_count = {pages}")

        def and_needs_space(conn: sqlite3.Connection):  # type: ignore[no-untyped-def]
            result = fn(conn)
            # A commit appends frames to the -wal even when the file keeps its size; on a full disk
            # that append fails. Needing new pages makes this transaction fail the same way.
            # Free pages (a migration that rebuilt a table leaves some) would take it: ask for more.
            free = conn.execute("PRAGMA freelist_count").fetchone()[0]
            size = conn.execute("PRAGMA page_size").fetchone()[0]
            conn.execute("CREATE TABLE IF NOT EXISTS _needs_a_page (x)")
            conn.execute("INSERT INTO _needs_a_page VALUES (zeroblob(?))", ((free + 2) * size,))
            return result

        return original(self, and_needs_space, what)

    monkeypatch.setattr(SqliteDatabase, "_call_in_transaction", call_in_transaction)
    return fault


def jsonl_enospc(monkeypatch: pytest.MonkeyPatch, after: int) -> Fault:
    """ENOSPC from the ``after``-th JSONL write on, after half the chunk reached the file."""
    fault = Fault(after)
    real_write_all = jsonl_module.write_all

    def write_all(fd: int, data: bytes) -> None:
        if fault.hit():
            os.write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write_all(fd, data)

    monkeypatch.setattr(jsonl_module, "write_all", write_all)
    return fault


def jsonl_eio_on_fsync(monkeypatch: pytest.MonkeyPatch, after: int) -> Fault:
    """EIO from the ``after``-th fsync of a JSONL file on (the data is in the page cache only)."""
    fault = Fault(after)
    real_fsync = jsonl_module.fsync

    def fsync(fd: int) -> None:
        if fault.hit():
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(fd)

    monkeypatch.setattr(jsonl_module, "fsync", fsync)
    return fault


# -- what the sink holds ---------------------------------------------------------------------------


def jsonl_rows(root: Path, resource: str, shop: str) -> dict[str, dict | None]:
    return {
        rid: (orjson.loads(row.data) if row.data is not None else None)
        for rid, row in read_latest(root, shop, resource).items()
        if row.deleted_at is None
    }


def held(sink: tuple[str, Path], resource: str, shop: str) -> dict[str, dict | None]:
    kind, where = sink
    return sink_rows(where, resource, shop) if kind == "sqlite" else jsonl_rows(where, resource, shop)


def assert_nothing_damaged(shop: SimulatedShop, sink: tuple[str, Path]) -> int:
    """Every record the sink holds is the shop's record, byte for byte; the files are sound.
    Returns how many records the sink holds."""
    kind, where = sink
    if kind == "sqlite":
        with sqlite3.connect(f"file:{where}?mode=ro", uri=True) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    else:
        for stream_dir in (where / shop.name).iterdir():
            for _, path in list_files(stream_dir):
                for line in iter_lines(path):  # complete lines only; a torn tail is allowed
                    orjson.loads(line)
    total = 0
    for resource in ALL_RESOURCES:
        truth = shop.truth(resource)
        rows = held(sink, resource, shop.name)
        wrong = {i: r for i, r in rows.items() if truth.get(i) != r}
        assert not wrong, f"{resource}: {len(wrong)} records damaged or unknown, e.g. {next(iter(wrong))}"
        total += len(rows)
    return total


def assert_checkpoints_within_sink(shop: SimulatedShop, state_db: Path, sink: tuple[str, Path]) -> int:
    """A watermark W promises every record updated at or before W is in the sink. Returns how many
    streams have one (so a test can tell that some progress was checkpointed)."""
    states = stream_states(state_db)
    with_watermark = 0
    for resource in ALL_RESOURCES:
        state = states.get((shop.name, resource))
        if state is None or state["watermark"] is None:
            continue
        with_watermark += 1
        promised = {
            i: r for i, r in shop.truth(resource).items() if r.get("updatedAt") and r["updatedAt"] <= state["watermark"]
        }
        problem = diff_records(promised, held(sink, resource, shop.name))
        assert "missing" not in problem, f"{resource}: watermark {state['watermark']} but {problem}"
    return with_watermark


def assert_exact(shop: SimulatedShop, sink: tuple[str, Path]) -> None:
    problems = [
        f"{r}: {d}" for r in ALL_RESOURCES if (d := diff_records(shop.truth(r), held(sink, r, shop.name)))
    ]
    assert not problems, "\n".join(problems)


def assert_failed_on(report: SyncReport, path: Path, words: str) -> None:
    failures = report.failures()
    assert failures, "the sync should have failed"
    for f in failures:
        assert f.error is not None and f.error.startswith("StorageError: "), f.error
        assert words in f.error, f.error
    assert any(str(path) in (f.error or "") for f in failures), [f.error for f in failures]


# -- the runs --------------------------------------------------------------------------------------

SYNC = {"path": "paginated"}


async def full_then_freed(
    tmp_path: Path, shop: SimulatedShop, fault: Fault, *, sink_url: str | None, sink: tuple[str, Path],
    failing_file: Path, words: str, sync: dict[str, str] | None = None,
) -> None:
    config = write_config(tmp_path / "shopsync.toml", [shop], sink=sink_url, sync=sync or SYNC)
    report = await sync_once(config, token_env(shop))
    assert fault.refused, "the fault never fired: raise the data size or lower `after`"
    assert_failed_on(report, failing_file, words)
    held_before = assert_nothing_damaged(shop, sink)
    assert_checkpoints_within_sink(shop, tmp_path / "state.db", sink)

    fault.freed = True
    report = await sync_once(config, token_env(shop))
    assert report.ok, [f.error for f in report.failures()]
    assert_nothing_damaged(shop, sink)
    assert_exact(shop, sink)
    assert held_before < sum(len(shop.truth(r)) for r in ALL_RESOURCES), "the first run should have stopped short"


async def test_state_database_full_with_rows_in_it(tmp_path: Path, shop: SimulatedShop, monkeypatch) -> None:
    """Rows and checkpoint share one transaction: a full disk rolls back both."""
    fault = sqlite_full(monkeypatch, "state.db", after=6)
    db = tmp_path / "state.db"
    await full_then_freed(tmp_path, shop, fault, sink_url=None, sink=("sqlite", db), failing_file=db, words="disk full")


async def test_separate_sqlite_sink_full(tmp_path: Path, shop: SimulatedShop, monkeypatch) -> None:
    """The sink's file fills up: its page is not written, so the checkpoint is not saved."""
    fault = sqlite_full(monkeypatch, "sink.db", after=4)
    db = tmp_path / "sink.db"
    await full_then_freed(
        tmp_path, shop, fault, sink_url="sqlite:sink.db", sink=("sqlite", db), failing_file=db, words="disk full"
    )


async def test_state_database_full_after_the_jsonl_sink_wrote(tmp_path: Path, shop: SimulatedShop, monkeypatch) -> None:
    """The lines are fsynced, then the checkpoint cannot be saved: the next run appends the page
    again (at-least-once) and the log still resolves to the exact shop. (The first writes are the
    streams' windows and path decisions, before any record: the fault comes after those.)"""
    fault = sqlite_full(monkeypatch, "state.db", after=6 + len(ALL_RESOURCES))
    await full_then_freed(
        tmp_path, shop, fault, sink_url="jsonl:out", sink=("jsonl", tmp_path / "out"),
        failing_file=tmp_path / "state.db", words="disk full",
    )


async def test_jsonl_sink_full_leaves_a_torn_line_and_resumes_in_a_new_file(
    tmp_path: Path, shop: SimulatedShop, monkeypatch
) -> None:
    fault = jsonl_enospc(monkeypatch, after=5)
    out = tmp_path / "out"
    await full_then_freed(
        tmp_path, shop, fault, sink_url="jsonl:out", sink=("jsonl", out), failing_file=out / shop.name, words="disk full"
    )
    # the file that was being appended when the disk filled is never appended to again
    torn = [p for d in (out / shop.name).iterdir() for _, p in list_files(d) if not p.read_bytes().endswith(b"\n")]
    assert torn, "ENOSPC after half a chunk should have left a torn last line"
    for path in torn:
        later = [n for n, _ in list_files(path.parent) if n > int(path.stem)]
        assert later, f"{path} was torn but no later file was started"


async def test_jsonl_fsync_io_error(tmp_path: Path, shop: SimulatedShop, monkeypatch) -> None:
    fault = jsonl_eio_on_fsync(monkeypatch, after=5)
    out = tmp_path / "out"
    await full_then_freed(
        tmp_path, shop, fault, sink_url="jsonl:out", sink=("jsonl", out), failing_file=out / shop.name, words="I/O error"
    )


async def test_bulk_path_into_a_full_sqlite_sink(tmp_path: Path, shop: SimulatedShop, monkeypatch) -> None:
    """A bulk result is ingested in batches; a full disk mid-file stops it, the next run finishes."""
    fault = sqlite_full(monkeypatch, "sink.db", after=4)
    db = tmp_path / "sink.db"
    await full_then_freed(
        tmp_path, shop, fault, sink_url="sqlite:sink.db", sink=("sqlite", db), failing_file=db,
        words="disk full", sync={"path": "bulk"},
    )


def test_sqlite_errors_are_worded_for_people(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("PRAGMA max_page_count = 2")
    with pytest.raises(sqlite3.Error) as info:
        conn.executemany("INSERT INTO t VALUES (?)", [("x" * 1000,)] * 50)
    conn.close()
    assert describe_sqlite_error(info.value) == "disk full (SQLITE_FULL: database or disk is full)"
    io = sqlite3.OperationalError("disk I/O error")
    io.sqlite_errorname = "SQLITE_IOERR_WRITE"  # type: ignore[attr-defined]
    assert describe_sqlite_error(io) == "I/O error (SQLITE_IOERR_WRITE: disk I/O error)"
    assert describe_sqlite_error(sqlite3.OperationalError("no such table: x")) == "no such table: x"
