"""Sliced backfill benchmark (issue 9): a large store's orders backfilled by one bulk operation and
by five concurrent time slices, in one run, with the export paced as on Shopify.

One simulated shop (``--orders``, default 200,000) whose exports progress at ``--export-rate``
objects per second each (the simulator paces every operation on its own, as Shopify's run side by
side), so that the export is the long wait, as it is on Shopify; the download, reassembly and
writing that follow are shopsync's own. ``shopsync sync`` backfills the orders twice into fresh
databases: with ``max_concurrent_bulk = 1`` (one operation over the whole store) and with 5
(balanced slices exported at once); each run's wall time, CPU and peak RSS are its child process's
own, and the speed-up is their ratio.

``python -m bench slices [--quick] [--orders 200000] [--export-rate 2000] [--json FILE]``
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.config import write_shop_config
from bench.engine import run_sync
from shopsync.simulator.config import DataConfig, SimConfig
from shopsync.simulator.server import run_simulator

TOKEN_ENV = "BENCH_SLICES_TOKEN"


def _ops(db: Path) -> list[tuple[int, int]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("SELECT object_count, root_object_count FROM bulk_operations WHERE resource = 'orders'").fetchall()
    finally:
        con.close()


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    data = DataConfig(seed=9, orders=args.orders, products=50, customers=2_000, locations=2, collections=3,
                      big_orders=0, tie_groups=2, tie_group_size=300, anchor=float(int(time.time()) - 600))  # fmt: skip
    config = SimConfig(shop_name="big", data=data, time_scale=1.0, bulk_objects_per_second=args.export_rate, plan="plus")
    work = Path(tempfile.mkdtemp(prefix="shopsync-bench-slices-"))
    out: dict[str, Any] = {"orders": args.orders, "export_objects_per_second": args.export_rate}
    try:
        built = time.perf_counter()
        async with run_simulator(config) as server:
            shop = server.shop()
            print(f"a {args.orders:,}-order store (built in {time.perf_counter() - built:.0f} s); each export paced at "
                  f"{args.export_rate:,.0f} objects/s", flush=True)  # fmt: skip
            for slots in (1, 5):
                d = work / f"slots{slots}"
                d.mkdir()
                cfg = write_shop_config(
                    d / "shopsync.toml", shop, database=d / "state.db", token_env=TOKEN_ENV,
                    sync={"max_concurrent_bulk": slots, "safety_margin": "2s", "bulk_poll_min": "0.2s", "bulk_poll_max": "2s"},
                    resources=["orders"],
                )  # fmt: skip
                run = await run_sync(cfg, {TOKEN_ENV: shop.token})
                if run.returncode != 0:
                    raise RuntimeError(f"slots {slots}: shopsync sync exited {run.returncode}\n{run.stderr[-3000:]}")
                ops = _ops(d / "state.db")
                out[f"slots{slots}"] = {
                    "wall_s": round(run.wall_s, 1), "cpu_s": round(run.cpu_s, 1), "peak_rss_mb": round(run.peak_rss_mb),
                    "operations": len(ops), "objects": sum(o for o, _ in ops), "roots": sum(r for _, r in ops),
                }  # fmt: skip
                r = out[f"slots{slots}"]
                print(f"max_concurrent_bulk {slots}: {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU, peak RSS "
                      f"{r['peak_rss_mb']} MB, {r['operations']} operation(s), {r['objects']:,} objects", flush=True)  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out["speedup"] = round(out["slots1"]["wall_s"] / out["slots5"]["wall_s"], 2)
    print(f"speed-up with 5 slices: {out['speedup']:.2f}x", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench slices", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a 20,000-order store")
    parser.add_argument("--orders", type=int, default=None, help="orders in the store (default 200,000; quick 20,000)")
    parser.add_argument("--export-rate", type=float, default=None, help="objects per second of one export (default 2,000; quick 5,000)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.orders is None:
        args.orders = 20_000 if args.quick else 200_000
    if args.export_rate is None:
        args.export_rate = 5_000.0 if args.quick else 2_000.0
    result = asyncio.run(bench(args))
    if args.json:
        args.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
