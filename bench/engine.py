"""Engine benchmark: what one ``shopsync sync`` process achieves against a simulated shop.

The shop is served by the simulator in this process (``run_simulator``); every sync runs as its
own ``python -m shopsync sync`` child, so its wall time, CPU seconds and peak RSS are its alone
(``os.wait4`` returns the child's own resource usage).

(a) **Bulk backfill** of a large shop (default 200,000 orders with line items and the rest of the
    store: customers, products, inventory, locations, collections) into the SQLite sink, all
    resources at once. Per resource: records and records/s (over the stream's own run time). The
    time of the orders stream is split into *waiting* (operation created → completed, seen by the
    simulator; its export is unpaced, so this is the simulator's own export time, a lower bound on
    Shopify's), *poll lag* (completed → the engine starting the download), *downloading* (first to
    last byte served) and *reassembling + writing* (download end → the stream's "up to" log line).
(b) **Paginated incremental sync** against a Standard-plan bucket (2000 points, 100 points/s ×
    the stated time scale): orders changed after a backfill, read through paginated windows;
    records/s, the THROTTLED share and the points spent as a share of what the restore rate
    allowed (the figures ``shopsync sync`` prints at the end).
(c) The same with several resources changed and synced at once on the one budget.

``python -m bench engine [--quick] [--orders N] [--json FILE]``; ``--quick`` runs a small shop at a
higher time scale in well under a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import calendar
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.config import CORE_RESOURCES, write_shop_config
from shopsync.simulator.config import DataConfig, SimConfig
from shopsync.simulator.server import SimulatedShop, run_simulator

TOKEN_ENV = "BENCH_ENGINE_TOKEN"

#: ``shopsync sync`` stdout: one line per stream that reached now, one per shop (engine/cli.py).
STREAM_LINE = re.compile(r"^(?P<shop>[^/\s]+)/(?P<resource>\S+): ok, (?P<records>\d+) records(?: via (?P<path>[\w+]+))?, up to (?P<wm>\S+)$")
SHOP_LINE = re.compile(
    r"^(?P<shop>\S+): (?P<requests>\d+) requests, (?P<throttled>\d+) THROTTLED \((?P<pct>[\d.]+)%\), "
    r"points spent (?P<points>\d+) = (?P<util>[\d.]+)% of what the restore rate allowed$"
)
#: The engine's log line at the end of a stream run (engine/engine.py); a run that read several
#: windows names their paths joined by "+" ("bulk+paginated").
DONE_MSG = re.compile(r"^(?P<shop>[^/\s]+)/(?P<resource>\S+): up to \S+, (?P<records>\d+) records via (?P<path>[\w+]+) in (?P<s>[\d.]+)s$")


# ---------------------------------------------------------------------------------------------
# One sync child and what it printed (pure parsing apart from the spawn)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ChildRun:
    """A finished ``shopsync sync`` child: exit code, its own resources, what it printed."""

    returncode: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    stdout: str
    stderr: str
    started_at: float  # epoch seconds at spawn


@dataclass(frozen=True, kw_only=True)
class StreamFigure:
    resource: str
    records: int
    path: str | None
    seconds: float | None  # the stream's own run time (its "up to" log line)
    done_at: float | None  # epoch seconds of that log line

    @property
    def records_per_s(self) -> float | None:
        return self.records / self.seconds if self.seconds else None


@dataclass(frozen=True, kw_only=True)
class ShopFigure:
    requests: int
    throttled: int
    throttled_pct: float
    points_spent: int
    utilisation_pct: float


def parse_log(stderr: str) -> list[dict[str, Any]]:
    """The JSON log lines of a child (other lines are skipped)."""
    out = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
    return out


def _epoch(ts: str) -> float:
    # "2026-11-26T01:44:55.220Z" (logs.py): whole seconds through strptime, milliseconds added.
    base, _, frac = ts.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + (float(f"0.{frac}") if frac else 0.0)


def stream_figures(run: ChildRun) -> dict[str, StreamFigure]:
    """Per resource: records and path from stdout, run time and end instant from the log."""
    done: dict[str, tuple[float, float]] = {}
    for entry in parse_log(run.stderr):
        m = DONE_MSG.match(str(entry.get("msg", "")))
        if m:
            done[m["resource"]] = (float(m["s"]), _epoch(entry["ts"]))
    figures = {}
    for line in run.stdout.splitlines():
        m = STREAM_LINE.match(line.strip())
        if m:
            seconds, at = done.get(m["resource"], (None, None))
            figures[m["resource"]] = StreamFigure(
                resource=m["resource"], records=int(m["records"]), path=m["path"], seconds=seconds, done_at=at
            )
    return figures


def shop_figure(run: ChildRun) -> ShopFigure:
    for line in run.stdout.splitlines():
        m = SHOP_LINE.match(line.strip())
        if m:
            return ShopFigure(
                requests=int(m["requests"]), throttled=int(m["throttled"]), throttled_pct=float(m["pct"]),
                points_spent=int(m["points"]), utilisation_pct=float(m["util"]),
            )  # fmt: skip
    raise RuntimeError(f"shopsync sync printed no per-shop summary line:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")


async def run_sync(config: Path, env: dict[str, str], resources: Iterable[str] = ()) -> ChildRun:
    """``python -m shopsync sync`` as a child process; returns its own CPU and peak RSS.

    The child is spawned and reaped with ``os.wait4`` in a thread (so the simulator in this
    process keeps serving); ``wait4`` reports that child's resource usage alone.
    """
    cmd = [sys.executable, "-m", "shopsync", "sync", "--config", str(config), "--log-format", "json", "--progress", "off"]
    for r in resources:
        cmd += ["--resource", r]
    return await asyncio.to_thread(_spawn_and_reap, cmd, {**os.environ, **env})


def _spawn_and_reap(cmd: list[str], env: dict[str, str]) -> ChildRun:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started_at = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return ChildRun(
            returncode=proc.returncode, wall_s=wall, cpu_s=usage.ru_utime + usage.ru_stime,
            peak_rss_mb=usage.ru_maxrss / 1024, stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"), started_at=started_at,
        )  # fmt: skip


def write_config(path: Path, shop: SimulatedShop, sync: dict[str, Any]) -> Path:
    return write_shop_config(
        path, shop, database=path.parent / "state.db", token_env=TOKEN_ENV, sync=sync, resources=CORE_RESOURCES
    )


def last_synced(database: Path, resources: list[str]) -> dict[str, str]:
    """Per resource table, the latest ``synced_at`` of its rows (every write sets it)."""
    with closing(sqlite3.connect(database)) as db:
        return {r: db.execute(f'SELECT coalesce(max(synced_at), "") FROM "{r}"').fetchone()[0] for r in resources}


def rows_synced_after(database: Path, marks: dict[str, str]) -> int:
    """Rows written after ``marks`` (:func:`last_synced`): the distinct records a later run wrote.
    A run may write a record twice (a boundary second read again where a window is cut into
    slices); this counts it once, and counts any record read that had not changed."""
    with closing(sqlite3.connect(database)) as db:
        return sum(
            db.execute(f'SELECT count(*) FROM "{r}" WHERE synced_at > ?', (mark,)).fetchone()[0]
            for r, mark in marks.items()
        )


def _check(run: ChildRun, what: str) -> None:
    if run.returncode != 0:
        raise RuntimeError(f"{what}: shopsync sync exited {run.returncode}\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}")


# ---------------------------------------------------------------------------------------------
# (a) bulk backfill
# ---------------------------------------------------------------------------------------------
@dataclass
class DownloadTimes:
    """Per result file (by name), as served by the simulator: first request start, last request end."""

    first: dict[str, float] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)


def time_downloads(shop: SimulatedShop) -> DownloadTimes:
    """Wrap the shop's result-file handler to note when each file is served (benchmark-only hook:
    the server looks the handler up on the shop's ``bulk`` at every request)."""
    times = DownloadTimes()
    serve = shop.bulk.download

    async def timed(request):  # type: ignore[no-untyped-def]
        name = request.match_info["name"]
        times.first.setdefault(name, time.time())
        try:
            return await serve(request)
        finally:
            times.last[name] = time.time()

    shop.bulk.download = timed  # type: ignore[method-assign]
    return times


def _spill_files(work_dir: Path) -> list[str]:
    return [p.name for p in work_dir.glob("bulk/*/*/*.result.spill.sqlite")]


async def watch_spills(work_dir: Path, seen: dict[str, float], stop: asyncio.Event) -> None:
    """Note when each bulk file's spill database appears in the engine's work directory: the
    engine creates it when reassembly starts, after the download and its fsync."""
    while not stop.is_set():
        now = time.time()
        for name in _spill_files(work_dir):
            seen.setdefault(name.split(".", 1)[0], now)
        try:
            await asyncio.wait_for(stop.wait(), 0.02)
        except TimeoutError:
            pass


async def backfill(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    data = DataConfig(seed=1, orders=args.orders, anchor=float(int(time.time()) - 300))
    cfg = SimConfig(plan="plus", data=data, time_scale=1.0, index_lag=1.0, bulk_objects_per_second=1e12)
    async with run_simulator(cfg) as server:
        shop = server.shop()
        downloads = time_downloads(shop)
        config = write_config(work / "shopsync.toml", shop, {"safety_margin": "2s"})
        spills: dict[str, float] = {}
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch_spills(work / "work", spills, stop))
        try:
            run = await run_sync(config, {TOKEN_ENV: shop.token})
        finally:
            stop.set()
            await watcher
        _check(run, "backfill")
        streams = stream_figures(run)
        ops = []
        for op in sorted(shop.bulk.operations.values(), key=lambda o: o.number):
            resource = _op_resource(op.query)
            ops.append({
                "resource": resource, "status": op.status, "objects": op.object_count,
                "file_mb": round((op.file_size or 0) / 1e6, 1), "created": op.created_at,
                "completed": op.completed_at, "dl_first": downloads.first.get(op.path.name),
                "dl_last": downloads.last.get(op.path.name), "spill": spills.get(str(op.number)),
            })  # fmt: skip
    split = {}
    for op in ops:
        fig = streams.get(op["resource"])
        if op["status"] != "COMPLETED" or fig is None or fig.done_at is None or op["dl_first"] is None:
            continue
        # Without a spill seen (a file reassembled within one watch interval) the fsync is not
        # told apart from the reassembly.
        spill = op["spill"] if op["spill"] is not None else op["dl_last"]
        split[op["resource"]] = {
            "start_s": round(op["created"] - run.started_at, 2),
            "waiting_s": round(op["completed"] - op["created"], 2),
            "poll_lag_s": round(op["dl_first"] - op["completed"], 2),
            "download_s": round(op["dl_last"] - op["dl_first"], 3),
            "fsync_s": round(max(0.0, spill - op["dl_last"]), 2),
            "reassemble_write_s": round(fig.done_at - max(spill, op["dl_last"]), 2),
            "objects": op["objects"],
            "export_objects_per_s": round(op["objects"] / (op["completed"] - op["created"]))
            if op["completed"] > op["created"] else None,
            "file_mb": op["file_mb"],
        }
    return {
        "orders": args.orders,
        "wall_s": round(run.wall_s, 1),
        "cpu_s": round(run.cpu_s, 1),
        "peak_rss_mb": round(run.peak_rss_mb, 1),
        "records": sum(f.records for f in streams.values()),
        "streams": {r: {**asdict(f), "records_per_s": f.records_per_s} for r, f in sorted(streams.items())},
        "split": split,
    }


_ROOTS = {
    "orders": "orders", "customers": "customers", "products": "products", "inventoryItems": "inventory_items",
    "locations": "inventory_levels", "collections": "collections",
}  # fmt: skip


def _op_resource(query: str) -> str:
    """The resource a bulk query exports, from its root connection (``{ orders(`` → orders)."""
    m = re.search(r"\{\s*(\w+)", query)
    return _ROOTS.get(m.group(1), m.group(1)) if m else "?"


# ---------------------------------------------------------------------------------------------
# (b), (c) paginated incremental sync on a Standard-plan budget
# ---------------------------------------------------------------------------------------------
async def incremental(work: Path, args: argparse.Namespace, changes: dict[str, int]) -> dict[str, Any]:
    """Backfill ``changes``' resources, change that many records of each, then time the
    incremental (paginated) sync of exactly those changes."""
    data = DataConfig(
        seed=2, orders=max(changes.get("orders", 0) * 2, 500), customers=max(changes.get("customers", 0) * 2, 200),
        products=max(changes.get("products", 0) * 2, 60), anchor=float(int(time.time()) - 300),
    )  # fmt: skip
    cfg = SimConfig(plan="standard", data=data, time_scale=args.time_scale, index_lag=0.5 * args.time_scale)
    resources = sorted(changes)
    async with run_simulator(cfg) as server:
        shop = server.shop()
        sync = {"safety_margin": "2s", "overlap": "30s", "path": "auto", "bulk_threshold": 5000}
        config = write_config(work / "shopsync.toml", shop, sync)
        first = await run_sync(config, {TOKEN_ENV: shop.token}, resources)
        _check(first, "incremental: backfill")
        marks = last_synced(work / "state.db", resources)
        # Change records now: the next window holds exactly these (and nothing older: the overlap
        # reaches back 30 s, the base data ends 5 minutes before the start).
        now = time.time()
        type_of = {"orders": "Order", "customers": "Customer", "products": "Product"}
        for resource, n in changes.items():
            for i in range(n):
                shop.store.update(shop.store.gid_of(type_of[resource], i), at=now)
        await asyncio.sleep(3.5)  # past the safety margin (2 s) and the index lag (0.5 s)
        run = await run_sync(config, {TOKEN_ENV: shop.token}, resources)
        _check(run, "incremental")
        distinct = rows_synced_after(work / "state.db", marks)
        streams = stream_figures(run)
        budget = shop_figure(run)
        counters = shop.counters.as_dict()
    bad_paths = {r: f.path for r, f in streams.items() if f.path != "paginated"}
    if bad_paths:
        raise RuntimeError(f"incremental windows did not go through the paginated path: {bad_paths}")
    records = sum(f.records for f in streams.values())
    return {
        "time_scale": args.time_scale,
        "restore_rate": 100.0 * args.time_scale,
        "changed": changes,
        "wall_s": round(run.wall_s, 1),
        "records": records,
        "distinct": distinct,
        "records_per_s": round(records / run.wall_s, 1),
        "streams": {r: {**asdict(f), "records_per_s": f.records_per_s} for r, f in sorted(streams.items())},
        "requests": budget.requests,
        "throttled": budget.throttled,
        "throttled_pct": budget.throttled_pct,
        "points_spent": budget.points_spent,
        "utilisation_pct": budget.utilisation_pct,
        "points_per_record": round(budget.points_spent / records, 1) if records else None,
        "simulator_throttled_total": counters["throttled"],
        "cpu_s": round(run.cpu_s, 1),
        "peak_rss_mb": round(run.peak_rss_mb, 1),
    }


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
def print_results(r: dict[str, Any]) -> None:
    a = r["backfill"]
    print(f"(a) backfill of {a['orders']:,} orders and the rest of the store (bulk, SQLite sink): {a['records']:,} records "
          f"in {a['wall_s']:.1f} s wall, {a['cpu_s']:.1f} CPU s, peak RSS {a['peak_rss_mb']:.0f} MB")  # fmt: skip
    for res, s in a["streams"].items():
        rate = f"{s['records_per_s']:,.0f} records/s" if s["records_per_s"] else "-"
        secs = f"{s['seconds']:.1f} s" if s["seconds"] is not None else "-"
        print(f"    {res:<17} {s['records']:>9,} records via {s['path'] or '-':<9} in {secs:>8} = {rate}")
    for res, sp in a["split"].items():
        parts = {"waiting": sp["waiting_s"], "poll lag": sp["poll_lag_s"], "download": sp["download_s"],
                 "fsync": sp["fsync_s"], "reassemble+write": sp["reassemble_write_s"]}  # fmt: skip
        total = sum(parts.values()) or 1.0
        dominant = max(parts, key=lambda k: parts[k])
        print(f"    split {res} ({sp['objects']:,} objects, {sp['file_mb']:.0f} MB): started at +{sp['start_s']:.1f} s; "
              f"waiting {sp['waiting_s']:.1f} s, poll lag {sp['poll_lag_s']:.1f} s, download {sp['download_s']:.2f} s, "
              f"fsync {sp['fsync_s']:.1f} s, reassemble+write {sp['reassemble_write_s']:.1f} s; "
              f"dominant: {dominant} ({100 * parts[dominant] / total:.0f}%)")  # fmt: skip
    for key, label in (("paginated", "(b) paginated incremental"), ("paginated_multi", "(c) paginated, several resources")):
        b = r[key]
        changed = ", ".join(f"{n:,} {res}" for res, n in sorted(b["changed"].items()))
        print(f"{label} (Standard plan, 2000 points, restore {b['restore_rate']:g}/s = 100/s x time scale "
              f"{b['time_scale']:g}; changed {changed}): {b['records']:,} records in {b['wall_s']:.1f} s = "
              f"{b['records_per_s']:.1f} records/s, {b['distinct']:,} distinct")  # fmt: skip
        print(f"    {b['requests']} requests, THROTTLED {b['throttled']} ({b['throttled_pct']:.2f}%), points spent "
              f"{b['points_spent']} = {b['utilisation_pct']:.1f}% of what the restore rate allowed, "
              f"{b['points_per_record']} points/record")  # fmt: skip
        for res, s in b["streams"].items():
            print(f"    {res:<17} {s['records']:>6,} records in {s['seconds'] or 0:.1f} s")


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="shopsync-bench-engine-"))
    try:
        results: dict[str, Any] = {}
        for name in ("a", "b", "c"):
            (root / name).mkdir()
        print(f"(a) backfilling {args.orders:,} orders ...", flush=True)
        results["backfill"] = await backfill(root / "a", args)
        print("(b) paginated incremental, orders ...", flush=True)
        results["paginated"] = await incremental(root / "b", args, {"orders": args.changes})
        print("(c) paginated incremental, several resources ...", flush=True)
        multi = {"orders": args.changes // 2, "customers": args.changes * 2, "products": max(10, args.changes // 10)}
        results["paginated_multi"] = await incremental(root / "c", args, multi)
        return results
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench engine", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small shop at time scale 20 (well under a minute)")
    parser.add_argument("--orders", type=int, default=None, help="orders in the backfilled shop (default 200,000; quick 5,000)")
    parser.add_argument("--changes", type=int, default=None, help="orders changed before the incremental sync (default 300; quick 100)")
    parser.add_argument("--time-scale", type=float, default=None,
                        help="simulator time scale for (b) and (c): restore rate = 100/s x this (default 1; quick 20)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    args.orders = args.orders or (5_000 if args.quick else 200_000)
    args.changes = args.changes or (100 if args.quick else 300)
    args.time_scale = args.time_scale or (20.0 if args.quick else 1.0)
    started = time.perf_counter()
    results = asyncio.run(bench(args))
    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    results["bench_s"] = round(time.perf_counter() - started, 1)
    print_results(results)
    print(f"engine benchmark done in {results['bench_s']:.0f} s")
    if args.json:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
