"""Scale-out benchmark: 1, 2 and 3 ``shopsync run`` daemons sharing many simulated shops through
one PostgreSQL state database (README "Scaling out").

One ``shopsync simulate --shops N`` process serves the shops (each with a live mutator). The state
and sink are one fresh schema of the PostgreSQL server ``--pg``. First the shops are backfilled
(three daemons); then, for each fleet size k in 1, 2, 3:

1. k daemons are started (the default lease: 30 s, renewed every 10 s); after ``--settle``
   seconds they are measured for ``--duration`` seconds: the sync lag of every (shop, resource)
   (``now − checkpoint``, scraped from the first daemon's ``/metrics``: every daemon reports every
   stream from the shared state) as p50/p99, the CPU of each daemon (% of one core) and the shops
   each holds;
2. for k ≥ 2 one daemon is killed (SIGKILL) and the time is taken until every stream of its shops
   has completed a sync again under another daemon (``last_success_at`` after the kill);
3. the daemons are stopped (SIGTERM).

``python -m bench scaleout [--quick] [--shops 300] [--orders 200] [--duration 60] [--json FILE]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson

from bench.daemon import cpu_seconds, drain, percentile, read_until, scrape_lags

TOKEN = "shpat_bench_scaleout_token"
RESOURCES = ("orders", "products", "customers")


def write_config(path: Path, sim_url: str, database: str, daemon_id: str, args: argparse.Namespace) -> None:
    lines = [
        f'database = "{database}&application_name={daemon_id}"',
        f'work_dir = "{path.parent / "work"}"',
        "[sync]",
        f'safety_margin = "{args.safety_margin}"',
        f'overlap = "{args.overlap}"',
        "[daemon]",
        f'id = "{daemon_id}"',
        'listen = "127.0.0.1:0"',
        f'every = "{args.every}"',
        f'jitter = "{args.jitter}"',
        'log_format = "json"',
        'log_level = "warning"',
    ]
    for i in range(args.shops):
        name = "sim" if i == 0 else f"sim{i + 1}"
        lines += [
            "[[shop]]",
            f'name = "{name}"',
            f'domain = "{name}.myshopify.com"',
            f'api_url = "{sim_url}/shops/{name}/admin/api/2026-10/graphql.json"',
            'access_token = { env = "BENCH_TOKEN" }',
            f"resources = {orjson.dumps(list(RESOURCES)).decode()}",
        ]
    path.write_text("\n".join(lines) + "\n")


class Fleet:
    """The daemons of one phase, each with its endpoint and log drain."""

    def __init__(self) -> None:
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.urls: dict[str, str] = {}
        self.logs: dict[str, list[str]] = {}
        self._drains: list[asyncio.Task[None]] = []

    async def start(self, daemon_id: str, config: Path, env: dict[str, str]) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "shopsync", "run", "--config", str(config), "--log-level", "info",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        assert proc.stderr is not None
        m = await read_until(proc.stderr, re.compile(r"endpoints on (http://[\d.:]+)"), 180)
        self.procs[daemon_id], self.urls[daemon_id] = proc, m.group(1)
        self.logs[daemon_id] = []
        self._drains.append(asyncio.create_task(drain(proc.stderr, self.logs[daemon_id])))

    async def stop(self) -> None:
        for proc in self.procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()
        for task in self._drains:
            task.cancel()


async def _leases(conn: asyncpg.Connection, schema: str) -> dict[str, str | None]:
    rows = await conn.fetch(f'SELECT shop, owner FROM "{schema}".leases WHERE expires_at > clock_timestamp()')
    return {r["shop"]: r["owner"] for r in rows}


async def _synced_since(conn: asyncpg.Connection, schema: str, shops: set[str], since: str) -> bool:
    rows = await conn.fetch(
        f'SELECT shop, resource, last_success_at FROM "{schema}".stream_state WHERE shop = ANY($1::text[])', list(shops)
    )
    done = {(r["shop"], r["resource"]) for r in rows if r["last_success_at"] and r["last_success_at"] > since}
    return all((s, res) in done for s in shops for res in RESOURCES)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="shopsync-bench-scaleout-"))
    schema = f"bench_scaleout_{uuid.uuid4().hex[:8]}"
    database = f"{args.pg}?schema={schema}"
    env = {**os.environ, "BENCH_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
    sim = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shopsync", "simulate", "--port", "0", "--shops", str(args.shops),
        "--orders", str(args.orders), "--time-scale", "1", "--mutate-orders-per-day", str(args.orders_per_day),
        "--token", TOKEN, "--plan", args.plan,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
    )  # fmt: skip
    conn = await asyncpg.connect(args.pg)
    phases: list[dict[str, Any]] = []
    try:
        assert sim.stdout is not None
        sim_url = (await read_until(sim.stdout, re.compile(r"listening on (http://\S+)"), 180)).group(1)
        sim_drain = asyncio.create_task(drain(sim.stdout, []))
        configs = {}
        for i in range(3):
            daemon_id = f"d{i + 1}"
            (work / daemon_id).mkdir()
            configs[daemon_id] = work / daemon_id / "shopsync.toml"
            write_config(configs[daemon_id], sim_url, database, daemon_id, args)
        streams = args.shops * len(RESOURCES)
        print(f"{args.shops} shops ({streams} streams: {', '.join(RESOURCES)}), {args.orders:,} orders each, mutators at "
              f"{args.orders_per_day:,.0f} orders/day per shop; every {args.every}; PostgreSQL schema {schema}", flush=True)

        async with aiohttp.ClientSession() as session:
            # Backfill with three daemons until every stream has a checkpoint.
            started = time.monotonic()
            fleet = Fleet()
            for daemon_id in configs:
                await fleet.start(daemon_id, configs[daemon_id], env)
            while True:
                if len(await scrape_lags(session, fleet.urls["d1"])) >= streams:
                    break
                await asyncio.sleep(2)  # polling the daemon's metrics
            await fleet.stop()
            print(f"backfill (3 daemons): {time.monotonic() - started:.0f} s", flush=True)

            for k in (1, 2, 3):
                fleet = Fleet()
                for daemon_id in list(configs)[:k]:
                    await fleet.start(daemon_id, configs[daemon_id], env)
                await asyncio.sleep(args.settle)
                pids = {d: p.pid for d, p in fleet.procs.items()}
                cpu0 = {d: cpu_seconds(pid) for d, pid in pids.items()}
                t0 = time.monotonic()
                samples: list[float] = []
                while time.monotonic() - t0 < args.duration:
                    samples.extend((await scrape_lags(session, fleet.urls["d1"])).values())
                    await asyncio.sleep(args.sample_every)
                elapsed = time.monotonic() - t0
                cpu = {d: round(100 * (cpu_seconds(pid) - cpu0[d]) / elapsed, 1) for d, pid in pids.items()}
                owners = await _leases(conn, schema)
                held = {d: sum(1 for o in owners.values() if o == d) for d in pids}
                phase: dict[str, Any] = {
                    "daemons": k, "measured_s": round(elapsed, 1), "lag_samples": len(samples),
                    "lag_p50_s": round(percentile(samples, 0.50), 1), "lag_p99_s": round(percentile(samples, 0.99), 1),
                    "cpu_percent_of_one_core": cpu, "shops_held": held,
                }  # fmt: skip
                if k >= 2:
                    victim = list(pids)[-1]
                    theirs = {s for s, o in owners.items() if o == victim}
                    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                    killed = time.monotonic()
                    fleet.procs[victim].kill()
                    await fleet.procs[victim].wait()
                    while not await _synced_since(conn, schema, theirs, since):
                        if time.monotonic() - killed > 600:
                            raise RuntimeError("the killed daemon's shops were not synced again within 10 minutes")
                        await asyncio.sleep(0.5)
                    phase["killed"] = victim
                    phase["killed_shops"] = len(theirs)
                    phase["resynced_after_kill_s"] = round(time.monotonic() - killed, 1)
                await fleet.stop()
                phases.append(phase)
                print(orjson.dumps(phase).decode(), flush=True)
        sim_drain.cancel()
        return {"shops": args.shops, "streams": streams, "orders": args.orders, "orders_per_day": args.orders_per_day,
                "every": args.every, "lease_s": 30, "lease_renew_s": 10, "phases": phases}  # fmt: skip
    finally:
        if sim.returncode is None:
            sim.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(sim.wait(), 30)
            except TimeoutError:
                sim.kill()
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench scaleout", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="30 shops, short phases")
    parser.add_argument("--pg", default=os.environ.get("SHOPSYNC_TEST_PG", "postgresql://127.0.0.1:5432/test"))
    parser.add_argument("--shops", type=int, default=None, help="simulated shops (default 300; quick 30)")
    parser.add_argument("--orders", type=int, default=200, help="orders per shop")
    parser.add_argument("--orders-per-day", type=float, default=20_000.0, help="live orders per shop and day")
    parser.add_argument("--plan", default="plus")
    parser.add_argument("--every", default="30s")
    parser.add_argument("--overlap", default="1m")
    parser.add_argument("--jitter", default="10s")
    parser.add_argument("--safety-margin", default="15s")
    parser.add_argument("--duration", type=float, default=None, help="measured seconds per phase (default 60; quick 20)")
    parser.add_argument("--settle", type=float, default=None, help="seconds before measuring (default 40; quick 15)")
    parser.add_argument("--sample-every", type=float, default=5.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    args.shops = args.shops or (30 if args.quick else 300)
    args.duration = args.duration or (20.0 if args.quick else 60.0)
    args.settle = args.settle if args.settle is not None else (15.0 if args.quick else 40.0)
    results = asyncio.run(bench(args))
    print("| daemons | lag p50 | lag p99 | CPU per daemon (% of one core) | shops held | killed daemon's shops synced again |")
    print("|---|---|---|---|---|---|")
    for p in results["phases"]:
        resync = f"{p['resynced_after_kill_s']:.0f} s ({p['killed_shops']} shops)" if "resynced_after_kill_s" in p else "—"
        cpu = " / ".join(f"{v:.0f}" for v in p["cpu_percent_of_one_core"].values())
        held = " / ".join(str(v) for v in p["shops_held"].values())
        print(f"| {p['daemons']} | {p['lag_p50_s']:.0f} s | {p['lag_p99_s']:.0f} s | {cpu} | {held} | {resync} |")
    if args.json:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
