"""Busy-shop benchmark (issue 9): the sync lag of a shop under a burst of order changes, with each
window's path chosen from the measured costs (``auto``) beside today's fixed ``bulk_threshold``
(``fixed``), at the Standard, Advanced and Plus restore rates, in one run.

Per plan, one simulator serves two identical shops (same seed, same data, same mutator) and two
``shopsync run`` daemons run side by side, one per shop, differing only in ``bulk_threshold``.
After the backfill and a quiet run, both mutators change ~30 orders a simulated second (one
created for two updated) for a simulated minute, then stop; every export waits 20 simulated
seconds in CREATED before it runs, as Shopify queues them. The orders stream's lag
(``now − watermark``) is sampled every quarter second during the burst and for
``--after`` simulated seconds after it; at the end each sink is compared with its shop (records
stale or missing).

Time is scaled (``--time-scale``, default 10): the shops' restore rates, mutators and exports run
that many times faster than the wall, and the daemons' ``every`` (15 s) and ``safety_margin``
(10 s) are divided by it, so the figures are reported in simulated seconds. What is not scaled
(HTTP round trips, CPU) weighs that many times more than on Shopify: the figures are pessimistic.

``python -m bench busy [--quick] [--plans standard,advanced,plus] [--json FILE]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.config import write_shop_config
from bench.daemon import percentile
from shopsync.simulator.config import DataConfig, MutatorConfig, SimConfig
from shopsync.simulator.server import SimulatedShop, run_simulator
from shopsync.timeutil import parse_ts

TOKEN_ENV = "BENCH_BUSY_TOKEN"
EVERY_S = 15.0  # simulated
SAFETY_MARGIN_S = 10.0  # simulated
BURST_S = 60.0  # simulated
#: One created order a simulated second per 1/3 of the changes: ~30 changes a second with update_ratio 2.
BURST_ORDERS_PER_DAY = 10 * 86_400
FIXED_THRESHOLD = 5000  # the fixed rule's default before issue 9
#: Simulated seconds each export waits in CREATED, however small, as Shopify's do.
BULK_START_DELAY_S = 20.0


@dataclass
class Side:
    name: str  # "auto" or "fixed"
    shop: SimulatedShop
    db: Path
    proc: asyncio.subprocess.Process | None = None


def _watermark(db: Path) -> str | None:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    except sqlite3.OperationalError:
        return None
    try:
        row = con.execute("SELECT watermark FROM stream_state WHERE resource = 'orders'").fetchone()
        return row[0] if row else None
    except sqlite3.OperationalError:
        return None
    finally:
        con.close()


def _stale(side: Side) -> int:
    """Records of the shop's truth missing from the sink or older there."""
    truth = side.shop.truth("orders")
    con = sqlite3.connect(f"file:{side.db}?mode=ro", uri=True, timeout=5)
    try:
        rows = dict(con.execute("SELECT id, data FROM orders WHERE shop = ? AND deleted_at IS NULL", (side.shop.name,)))
    finally:
        con.close()
    stale = 0
    for gid, record in truth.items():
        data = rows.get(gid)
        if data is None or orjson.loads(data).get("updatedAt") != record.get("updatedAt"):
            stale += 1
    return stale


async def _start(config: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shopsync", "run", "--config", str(config), "--log-format", "json",
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def one_plan(plan: str, args: argparse.Namespace) -> dict[str, Any]:
    scale = args.time_scale
    data = DataConfig(seed=5, orders=args.orders, products=20, customers=100, locations=2, collections=3,
                      big_orders=0, tie_groups=0, anchor=float(int(time.time()) - 600))  # fmt: skip
    mutator = MutatorConfig(orders_per_day=BURST_ORDERS_PER_DAY, update_ratio=2.0, delete_ratio=0.0)
    configs = [
        SimConfig(shop_name=n, data=data, plan=plan, time_scale=scale, index_lag=1.0, mutator=mutator,
                  bulk_start_delay=BULK_START_DELAY_S)
        for n in ("auto", "fixed")
    ]  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix=f"shopsync-bench-busy-{plan}-"))
    async with run_simulator(*configs) as server:
        sides = [Side(n, server.shops[n], work / n / "state.db") for n in ("auto", "fixed")]
        for side in sides:
            assert side.shop.mutator is not None
            side.shop.mutator.pause()
        try:
            for side in sides:
                (work / side.name).mkdir()
                sync: dict[str, Any] = {
                    "safety_margin": f"{SAFETY_MARGIN_S / scale:g}s", "overlap": f"{30 / scale:g}s",
                    "bulk_poll_min": "0.05s", "bulk_poll_max": "0.5s",
                }  # fmt: skip
                if side.name == "fixed":
                    sync["bulk_threshold"] = FIXED_THRESHOLD
                config = write_shop_config(
                    work / side.name / "shopsync.toml", side.shop, database=side.db, token_env=TOKEN_ENV, sync=sync,
                    daemon={"every": f"{EVERY_S / scale:g}s", "jitter": 0, "listen": "127.0.0.1:0"},
                    resources=["orders"],
                )  # fmt: skip
                side.proc = await _start(config, {**os.environ, TOKEN_ENV: side.shop.token})
            # The backfill and one quiet incremental run on both sides.
            deadline = time.monotonic() + 180
            first = {s.name: None for s in sides}
            while time.monotonic() < deadline:
                marks = {s.name: _watermark(s.db) for s in sides}
                for name, mark in marks.items():
                    if mark is not None and first[name] is None:
                        first[name] = mark
                if all(marks[n] is not None and marks[n] != first[n] for n in marks):
                    break
                await asyncio.sleep(0.2)
            else:
                raise RuntimeError(f"{plan}: the daemons did not finish their backfills within 180 s")

            lags: dict[str, dict[str, list[float]]] = {s.name: {"during": [], "after": []} for s in sides}

            async def sample(phase: str, seconds: float) -> None:
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    now = time.time()
                    for s in sides:
                        mark = _watermark(s.db)
                        if mark is not None:
                            lags[s.name][phase].append((now - parse_ts(mark).timestamp()) * scale)
                    await asyncio.sleep(0.25)

            for s in sides:
                s.shop.mutator.resume()  # type: ignore[union-attr]
            await sample("during", BURST_S / scale)
            for s in sides:
                s.shop.mutator.pause()  # type: ignore[union-attr]
            changes = {s.name: s.shop.mutator.counters.created + s.shop.mutator.counters.updated for s in sides}  # type: ignore[union-attr]
            await sample("after", args.after / scale)
        finally:
            for s in sides:
                if s.proc is not None and s.proc.returncode is None:
                    s.proc.send_signal(signal.SIGTERM)
                    try:
                        await asyncio.wait_for(s.proc.wait(), 60)
                    except TimeoutError:
                        s.proc.kill()
        stale = {s.name: _stale(s) for s in sides}
        truth = len(sides[0].shop.truth("orders"))
    shutil.rmtree(work, ignore_errors=True)
    out: dict[str, Any] = {"plan": plan, "orders_at_end": truth, "changes_in_burst": changes}
    for name in ("auto", "fixed"):
        for phase in ("during", "after"):
            values = lags[name][phase]
            out[f"{name}_{phase}_p50_s"] = round(percentile(values, 0.5), 1)
            out[f"{name}_{phase}_p99_s"] = round(percentile(values, 0.99), 1)
        out[f"{name}_stale_at_end"] = stale[name]
    return out


def print_row(r: dict[str, Any]) -> None:
    print(
        f"{r['plan']:<9} auto: during p50 {r['auto_during_p50_s']:>6.1f} s p99 {r['auto_during_p99_s']:>6.1f} s, "
        f"after p50 {r['auto_after_p50_s']:>6.1f} s p99 {r['auto_after_p99_s']:>6.1f} s, stale at end {r['auto_stale_at_end']}"
        f" | fixed {FIXED_THRESHOLD}: during p50 {r['fixed_during_p50_s']:>6.1f} s p99 {r['fixed_during_p99_s']:>6.1f} s, "
        f"after p50 {r['fixed_after_p50_s']:>6.1f} s p99 {r['fixed_after_p99_s']:>6.1f} s, stale at end {r['fixed_stale_at_end']}",
        flush=True,
    )


async def bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    target = SAFETY_MARGIN_S + EVERY_S + 60
    print(f"a burst of ~30 order changes a second for {BURST_S:.0f} s on a {args.orders:,}-order shop; every "
          f"{EVERY_S:.0f} s, safety margin {SAFETY_MARGIN_S:.0f} s (target p99 < {target:.0f} s); time scale "
          f"{args.time_scale:g}; lags in simulated seconds", flush=True)  # fmt: skip
    rows = []
    for plan in args.plans:
        row = await one_plan(plan, args)
        print_row(row)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench busy", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the Standard plan only, a shorter tail")
    parser.add_argument("--plans", default=None, help="comma-separated plans (default standard,advanced,plus)")
    parser.add_argument("--orders", type=int, default=2_000, help="orders in each shop before the burst")
    parser.add_argument("--after", type=float, default=None, help="simulated seconds sampled after the burst (default 90; quick 45)")
    parser.add_argument("--time-scale", type=float, default=10.0)
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    args = parser.parse_args(argv)
    args.plans = (args.plans or ("standard" if args.quick else "standard,advanced,plus")).split(",")
    if args.after is None:
        args.after = 45.0 if args.quick else 90.0
    rows = asyncio.run(bench(args))
    if args.json:
        args.json.write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
