"""Bulk ingest benchmark: a bulk result file into the sink, against parsing the same file.

A result file of N orders with their line items (``groupObjects: false``, the simulator's rows and
order, written as the simulator writes them) is made once per size. Then, each in a child process
of its own (so its peak RSS is its alone, from ``os.wait4``), on the same file in the same run:

* **floor**: ``orjson.loads`` over every line, nothing else (three runs, before, between and
  after the others; their median is the floor);
* **sqlite**: shopsync's ingest of the file (``engine.bulk_files.write_file``: reassembly, records,
  commits of records and checkpoint in one transaction) into a SQLite database that is state and
  sink at once, the default layout, with the default settings: past ``ingest_memory`` the file is
  read by ``ingest_workers`` spill worker processes (the largest of their own peak RSS, as the
  ingest logs it, is reported beside the sync process's);
* **sqlite alone**: what SQLite itself takes for the same rows: the records are reassembled as the
  ingest does (not timed), then written by plain ``sqlite3`` calls into the same table layout
  (the sink's own statements, page size and pragmas) in the same batches, and only the time inside
  those calls (``BEGIN``, ``executemany``, ``COMMIT``) is counted: the part of the ingest no code
  of shopsync's can make faster;
* **postgresql**: the same into PostgreSQL (``--postgres URL``, a fresh schema; skipped when the
  server cannot be reached).

Printed per size: lines/s, records/s, peak RSS (the process's own; with spill workers also their
largest own peak and the peak of all the processes' RSS together, sampled every 20 ms), and the
time as a multiple of the floor. The
download is not part of it (a local file; the engine benchmark shows it is not a factor).

``python -m bench ingest [--quick] [--orders N …] [--postgres URL] [--json FILE] [--files DIR]``;
default sizes 100,000 and 1,000,000 orders, ``--quick`` 3,000; ``--files`` keeps the result files
(the same seed gives the same file) for the next run instead of making them again.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

DEFAULT_SIZES = (100_000, 1_000_000)
QUICK_SIZES = (3_000,)
DEFAULT_PG = "postgresql://127.0.0.1:5432/test"
PG_SCHEMA = "bench_ingest"
OP_ID = "gid://shopify/BulkOperation/1"


# ---------------------------------------------------------------------------------------------
# The result file
# ---------------------------------------------------------------------------------------------
def write_result_file(path: Path, orders: int, *, seed: int = 3) -> int:
    """Write the bulk result of ``orders`` orders with line items to ``path``; returns its lines."""
    from shopsync.queries import builder, load_resources
    from shopsync.shopify.schema import parse_and_validate
    from shopsync.simulator.config import DataConfig
    from shopsync.simulator.executor import Executor
    from shopsync.simulator.store import ShopStore

    now = float(int(time.time()))
    store = ShopStore(DataConfig(seed=seed, orders=orders, anchor=now - 3600), clock=lambda: now, index_lag=0.0)
    document = parse_and_validate(builder.bulk_query(load_resources()["orders"], None), origin="bench ingest")
    lines = 0
    with path.open("wb") as fh:
        block: list[bytes] = []
        for row in Executor(store).bulk_rows(document, group_objects=False):
            block.append(orjson.dumps(row))  # as the simulator's bulk operation writes its file
            if len(block) >= 5000:
                fh.write(b"\n".join(block) + b"\n")
                lines += len(block)
                block = []
        if block:
            fh.write(b"\n".join(block) + b"\n")
            lines += len(block)
    return lines


# ---------------------------------------------------------------------------------------------
# The children (python -m bench.ingest --child KIND FILE [TARGET])
# ---------------------------------------------------------------------------------------------
def _child_floor(path: Path) -> dict[str, Any]:
    loads = orjson.loads
    t0 = time.perf_counter()
    lines = 0
    with path.open("rb") as fh:
        for line in fh:
            loads(line)
            lines += 1
    return {"seconds": time.perf_counter() - t0, "lines": lines}


class _WorkerPeaks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.peaks: list[float | None] = []

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "peak_rss_mb"):
            self.peaks.append(record.peak_rss_mb)


async def _child_ingest(path: Path, url: str) -> dict[str, Any]:
    from shopsync.engine import bulk_files
    from shopsync.observability.events import NullObserver
    from shopsync.queries import load_resources
    from shopsync.settings import SyncConfig
    from shopsync.state.models import BulkOperationRecord, StreamState
    from shopsync.state.open import open_storage

    orders = load_resources()["orders"]
    # The spill workers' own peak RSS, from what the ingest logs of each (its DEBUG lines).
    worker_peaks = _WorkerPeaks()
    logging.getLogger("shopsync.engine.spill_worker").addHandler(worker_peaks)
    logging.getLogger("shopsync.engine.spill_worker").setLevel(logging.DEBUG)
    storage = await open_storage(url)
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        # What _write_file reads of a stream's context (engine/context.py), nothing more.
        ctx = types.SimpleNamespace(
            shop=types.SimpleNamespace(name="bench"), resource=orders, state_store=storage.state,
            settings=SyncConfig(), work_dir=work, observer=NullObserver(), label="bench/orders", clock=time.time,
        )  # fmt: skip
        end = "2030-01-01T00:00:00Z"
        state = StreamState(shop="bench", resource="orders").with_window(None, end, "bulk", bulk_operation_id=OP_ID)
        op = BulkOperationRecord(
            id=OP_ID, shop="bench", resource="orders", window_start=None, window_end=end, status="COMPLETED",
            created_at="2026-01-01T00:00:00Z", updated_at="2026-01-01T00:00:00Z",
        )  # fmt: skip
        await storage.state.commit(state, bulk=op)
        t0 = time.perf_counter()
        roots, state = await bulk_files.write_file(ctx, state, op, path, keep=None)  # type: ignore[arg-type]
        seconds = time.perf_counter() - t0
        written = state.records_in_window
    finally:
        await storage.close()
        shutil.rmtree(work, ignore_errors=True)
    # Each worker that ran (the parts' and the reader) logged its peak.
    peaks = [p for p in worker_peaks.peaks if p is not None]
    return {"seconds": seconds, "roots": roots, "records": written, "workers": len(worker_peaks.peaks),
            "worker_peak_rss_mb": max(peaks, default=0.0)}  # fmt: skip


def _child_sqlite_alone(path: Path, db: Path) -> dict[str, Any]:
    import sqlite3

    from shopsync.engine.bulk_files import record_batches, text_columns
    from shopsync.engine.reassembly import BulkReassembler
    from shopsync.queries import load_resources
    from shopsync.settings import SyncConfig
    from shopsync.state.sqlite import PAGE_SIZE
    from shopsync.state.sqlite_sink import _table_sql, upsert_rows

    resource = load_resources()["orders"]
    sql = _table_sql(resource.name)
    conn = sqlite3.connect(db, isolation_level=None)
    for pragma in (f"page_size = {PAGE_SIZE}", "journal_mode = WAL", "synchronous = FULL"):
        conn.execute(f"PRAGMA {pragma}")
    for statement in sql.create:
        conn.execute(statement)
    seconds = 0.0
    records = 0

    def write(rows: Iterable[tuple[str, str, str | None, bytes, str]]) -> float:
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql.upsert, rows)
        conn.execute("COMMIT")
        return time.perf_counter() - t0

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        with BulkReassembler(resource, work / "spill.db", memory_budget=SyncConfig().ingest_memory) as reassembler:
            with path.open("rb") as fh:
                reassembler.feed_lines(fh)
            # The ingest's own batches, as the sink binds them (SqliteSink.write_in).
            for batch in record_batches(text_columns(reassembler.texts()), "bench", resource.name):
                seconds += write(upsert_rows(batch, "2026-01-01T00:00:00Z"))
                records += len(batch)
    finally:
        conn.close()
        shutil.rmtree(work, ignore_errors=True)
    return {"seconds": seconds, "records": records}


def _child(argv: list[str]) -> int:
    kind, path = argv[0], Path(argv[1])
    if kind == "make":
        out: dict[str, Any] = {"lines": write_result_file(path, int(argv[2]))}
    elif kind == "floor":
        out = _child_floor(path)
    elif kind == "sqlite-alone":
        out = _child_sqlite_alone(path, Path(argv[2]))
    else:
        out = asyncio.run(_child_ingest(path, argv[2]))
    from shopsync.procstat import peak_rss_mb  # imports nothing: the floor's figure stays its own

    out["own_peak_rss_mb"] = peak_rss_mb()
    sys.stdout.write(orjson.dumps(out).decode() + "\n")
    return 0


def tree_rss_mb(pid: int) -> float:
    """The RSS of ``pid`` and every process below it, now (MiB; Linux ``/proc``).

    A child still running its parent's command line has not started its own program yet (it is
    between fork and exec): its pages are its parent's, counted with the parent, not again.
    """
    from shopsync.procstat import memory_mb

    total = 0.0
    stack: list[tuple[int, bytes | None]] = [(pid, None)]
    seen = set()
    while stack:
        p, parent_cmdline = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            cmdline = Path(f"/proc/{p}/cmdline").read_bytes()
        except OSError:
            continue
        if cmdline != parent_cmdline:
            total += memory_mb("VmRSS", p) or 0.0
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                children = Path(f"/proc/{p}/task/{task}/children").read_text().split()
                stack.extend((int(c), cmdline) for c in children)
        except (OSError, ValueError):
            continue
    return total


def run_child(*args: str) -> dict[str, Any]:
    """One child run: what it printed, plus its own peak RSS (MB), the peak of the RSS of it and
    its own children together (sampled every 20 ms: the spill workers) and its CPU seconds."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "bench.ingest", "--child", *args], stdout=out, stderr=err)
        peak = [0.0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.02):
                peak[0] = max(peak[0], tree_rss_mb(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        sampler.join()
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if code != 0:
            raise RuntimeError(f"bench child {args[0]} exited {code}: {err.read().decode(errors='replace')[-3000:]}")
        result = orjson.loads(out.read().splitlines()[-1])
    result["peak_rss_mb"] = result.pop("own_peak_rss_mb") or usage.ru_maxrss / 1024
    result["tree_peak_rss_mb"] = peak[0]
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    return result


# ---------------------------------------------------------------------------------------------
# PostgreSQL: a fresh schema per run, or None when there is no server
# ---------------------------------------------------------------------------------------------
def _pg_url(base: str) -> str | None:
    import asyncpg

    async def reset() -> None:
        conn = await asyncpg.connect(base, timeout=5)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")
        finally:
            await conn.close()

    try:
        asyncio.run(reset())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        print(f"postgresql at {base}: not reachable ({type(exc).__name__}); skipped", flush=True)
        return None
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}schema={PG_SCHEMA}"


# ---------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------
def _remove_database(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def measure(orders: int, work: Path, pg_base: str | None, *, files: Path | None = None) -> dict[str, Any]:
    path = (files or work) / f"orders-{orders}.jsonl"
    count = path.with_suffix(".lines")
    t0 = time.perf_counter()
    if files is not None and path.exists() and count.exists():
        lines, how = int(count.read_text()), "made by an earlier run"
    else:
        lines = run_child("make", str(path), str(orders))["lines"]  # keeps this process small
        how = f"made in {time.perf_counter() - t0:.0f} s"
        if files is not None:
            count.write_text(str(lines))
    size = path.stat().st_size
    print(f"{orders:,} orders: {lines:,} lines, {size / 1e6:,.0f} MB ({how})", flush=True)
    out: dict[str, Any] = {"orders": orders, "lines": lines, "bytes": size}
    # The floor before, between and after the ingests: on a shared host one run of it can be
    # slow (the file read from disk, a neighbour's burst); the median of the three is the floor.
    floors = [run_child("floor", str(path))]
    db = work / "ingest.db"
    out["sqlite"] = run_child("sqlite", str(path), f"sqlite:///{db}")
    _remove_database(db)
    floors.append(run_child("floor", str(path)))
    out["sqlite_alone"] = run_child("sqlite-alone", str(path), str(db))
    _remove_database(db)
    if pg_base is not None:
        url = _pg_url(pg_base)
        if url is not None:
            out["postgresql"] = run_child("postgresql", str(path), url)
    floors.append(run_child("floor", str(path)))
    if files is None:
        path.unlink()
    floors.sort(key=lambda f: f["seconds"])
    out["floor"] = {**floors[1], "runs_s": [f["seconds"] for f in floors]}
    floor = out["floor"]["seconds"]
    for sink in ("sqlite", "sqlite_alone", "postgresql"):
        if sink in out:
            fig = out[sink]
            assert fig["records"] == orders, (sink, fig)
            fig["lines_per_s"] = lines / fig["seconds"]
            fig["records_per_s"] = fig["records"] / fig["seconds"]
            fig["x_floor"] = fig["seconds"] / floor
    out["floor"]["lines_per_s"] = lines / floor
    return out


#: The rows of the table after the floor: (key in the results, what the row says).
SINK_ROWS = (
    ("sqlite", "ingest into SQLite"),
    ("sqlite_alone", "SQLite alone: its calls for the same rows (part of the row above)"),
    ("postgresql", "ingest into PostgreSQL"),
)


def report(results: list[dict[str, Any]]) -> str:
    rows = [
        "| orders | lines | what | time | lines/s | records/s | × floor | peak RSS |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        f = r["floor"]
        rows.append(
            f"| {r['orders']:,} | {r['lines']:,} | orjson.loads of every line (floor: median of 3 runs,"
            f" {min(f['runs_s']):.2f}–{max(f['runs_s']):.2f} s) | {f['seconds']:.2f} s"
            f" | {f['lines_per_s']:,.0f} | | 1.0 | {f['peak_rss_mb']:.0f} MB |"
        )
        for sink, what in SINK_ROWS:
            if sink in r:
                s = r[sink]
                # SQLite alone's process also reassembles (untimed): its RSS is not the sink's.
                rss = "" if sink == "sqlite_alone" else f"{s['peak_rss_mb']:.0f} MB"
                if s.get("workers"):
                    rss += f"; workers ≤ {s['worker_peak_rss_mb']:.0f} MB; all {s['tree_peak_rss_mb']:.0f} MB"
                rows.append(
                    f"| {r['orders']:,} | {r['lines']:,} | {what}"
                    f" | {s['seconds']:.2f} s | {s['lines_per_s']:,.0f} | {s['records_per_s']:,.0f}"
                    f" | {s['x_floor']:.1f} | {rss} |"
                )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        return _child(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SIZES[0]:,} orders only")
    parser.add_argument("--orders", type=int, action="append", help="a size to run (repeatable)")
    parser.add_argument("--postgres", default=DEFAULT_PG, help="PostgreSQL server for the second sink ('' to skip)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--files", type=Path, help="keep the result files in this directory and reuse them in later runs")
    args = parser.parse_args(argv)
    sizes = tuple(args.orders) if args.orders else QUICK_SIZES if args.quick else DEFAULT_SIZES
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        for orders in sizes:
            results.append(measure(orders, Path(tmp), args.postgres or None, files=args.files))
    print(report(results), flush=True)
    if args.json:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
