"""Daemon benchmark: CPU and memory of one ``shopsync run`` process keeping many simulated shops
synced while they change, and the sync lag it achieves.

Two processes: ``shopsync simulate --shops N`` (the shops, each with a live mutator creating
50,000 orders a day in real time, plus updates and deletions) and ``shopsync run`` against them,
so the daemon's own CPU is measured from ``/proc/<pid>/stat`` without the simulator's.

1. **Backfill**: a first daemon copies every shop from scratch (bulk operations); its time, CPU
   and peak RSS are recorded, then it is stopped with SIGTERM.
2. **Keeping up**: a second daemon resumes from the saved checkpoints — what a restarted or
   long-running daemon does — catches up on the windows the backfill left behind (at least
   ``--settle`` seconds, then until every stream's lag is within the target's bound, at most
   ``--catch-up-limit`` seconds more; the time is reported), and is then measured for ``--duration``
   seconds: CPU (% of one core), RSS, and the sync lag of every (shop, resource) stream
   (``now − checkpoint``, scraped from ``/metrics`` every few seconds) as p50/p99/max.

``python -m bench daemon [--quick] [--shops 200] [--orders 1000] [--duration 300] [--json FILE]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from prometheus_client.parser import text_string_to_metric_families

from bench._svg import Series, line_chart
from bench.config import CORE_RESOURCES
from shopsync.timeutil import parse_duration

TOKEN = "shpat_bench_daemon_token"
#: The engine's line at the end of each stream run: "... N records via PATH in 1.2s" (PATH may
#: name several windows' paths joined by "+").
_RUN_SECONDS = re.compile(r"records via [\w+]+ in ([\d.]+)s")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) in MB."""
    text = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024  # type: ignore[union-attr]
    hwm = int(re.search(r"VmHWM:\s+(\d+)", text).group(1)) / 1024  # type: ignore[union-attr]
    return rss, hwm


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def write_config(path: Path, sim_url: str, shops: int, args: argparse.Namespace) -> None:
    lines = [
        f'database = "sqlite:///{path.parent / "state.db"}"',
        "[sync]",
        f'safety_margin = "{args.safety_margin}"',
        f'overlap = "{args.overlap}"',
        "[daemon]",
        'listen = "127.0.0.1:0"',
        f'every = "{args.every}"',
        f'jitter = "{args.jitter}"',
        'log_format = "json"',
        'log_level = "warning"',
    ]
    for i in range(shops):
        name = "sim" if i == 0 else f"sim{i + 1}"
        lines += [
            "[[shop]]",
            f'name = "{name}"',
            f'domain = "{name}.myshopify.com"',
            f'api_url = "{sim_url}/shops/{name}/admin/api/2026-10/graphql.json"',
            'access_token = { env = "BENCH_TOKEN" }',
            f"resources = {orjson.dumps(CORE_RESOURCES).decode()}",
        ]
    path.write_text("\n".join(lines) + "\n")


async def read_until(stream: asyncio.StreamReader, pattern: re.Pattern[str], limit: float) -> re.Match[str]:
    async with asyncio.timeout(limit):
        while True:
            line = (await stream.readline()).decode(errors="replace")
            if not line:
                raise RuntimeError("process exited before printing what was expected")
            m = pattern.search(line)
            if m:
                return m


async def drain(stream: asyncio.StreamReader, sink: list[str]) -> None:
    while line := await stream.readline():
        sink.append(line.decode(errors="replace"))


async def scrape_lags(session: aiohttp.ClientSession, url: str) -> dict[tuple[str, str], float]:
    async with session.get(url + "/metrics") as r:
        text = await r.text()
    lags = {}
    for family in text_string_to_metric_families(text):
        if family.name == "shopsync_sync_lag_seconds":
            for sample in family.samples:
                lags[(sample.labels["shop"], sample.labels["resource"])] = sample.value
    return lags


async def start_daemon(
    config: Path, env: dict[str, str], logs: list[str]
) -> tuple[asyncio.subprocess.Process, str, asyncio.Task[None]]:
    """``shopsync run`` in its own process; returns it, its endpoint URL and its log drain."""
    daemon = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shopsync", "run", "--config", str(config), "--log-level", "info",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
    )
    assert daemon.stderr is not None
    m = await read_until(daemon.stderr, re.compile(r"endpoints on (http://[\d.:]+)"), 120)
    return daemon, m.group(1), asyncio.create_task(drain(daemon.stderr, logs))


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="shopsync-bench-daemon-"))
    env = {**os.environ, "BENCH_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
    sim = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shopsync", "simulate", "--port", "0", "--shops", str(args.shops),
        "--orders", str(args.orders), "--products", str(args.products), "--time-scale", "1",
        "--mutate-orders-per-day", str(args.orders_per_day), "--token", TOKEN, "--plan", args.plan,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
    )
    daemon = None
    logs: list[str] = []
    try:
        assert sim.stdout is not None
        m = await read_until(sim.stdout, re.compile(r"listening on (http://\S+)"), 120)
        sim_url = m.group(1)
        sim_drain = asyncio.create_task(drain(sim.stdout, []))
        config = work / "shopsync.toml"
        write_config(config, sim_url, args.shops, args)
        streams = args.shops * 7
        print(f"{args.shops} shops ({streams} streams) on the {args.plan} plan, {args.orders:,} orders each, "
              f"mutators at {args.orders_per_day:,.0f} orders/day per shop; every {args.every}, jitter {args.jitter}, "
              f"safety margin {args.safety_margin}, overlap {args.overlap}", flush=True)

        async with aiohttp.ClientSession() as session:
            # 1. Backfill with a first daemon, until every stream has a checkpoint.
            started = time.monotonic()
            daemon, url, daemon_drain = await start_daemon(config, env, logs)
            while True:
                lags = await scrape_lags(session, url)
                if len(lags) >= streams:
                    break
                if daemon.returncode is not None:
                    raise RuntimeError("the daemon exited during the backfill:\n" + "".join(logs[-20:]))
                await asyncio.sleep(2)
            backfill_s = time.monotonic() - started
            backfill_cpu = cpu_seconds(daemon.pid)
            _, backfill_peak = memory_mb(daemon.pid)
            daemon.send_signal(signal.SIGTERM)
            await asyncio.wait_for(daemon.wait(), 60)
            await daemon_drain
            print(f"backfill of every stream: {backfill_s:.0f} s, {backfill_cpu:.0f} CPU s, "
                  f"peak RSS {backfill_peak:.0f} MB", flush=True)

            # 2. Keeping up: a second daemon resumes from the checkpoints. The windows the backfill
            # left behind (minutes of orders on a slow machine) are caught up first: the measurement
            # starts once every stream's lag is within the bound (or the catch-up limit has passed),
            # and the catch-up is its own figure, so it is not mistaken for the steady state.
            restarted = time.monotonic()
            daemon, url, daemon_drain = await start_daemon(config, env, logs)
            await asyncio.sleep(args.settle)
            bound = lag_bound(args.safety_margin, args.every)
            caught_up_s: float | None = None
            while time.monotonic() - restarted < args.settle + args.catch_up_limit:
                lags = await scrape_lags(session, url)
                if len(lags) >= streams and max(lags.values()) <= bound:
                    caught_up_s = time.monotonic() - restarted
                    break
                await asyncio.sleep(2)
            print(
                f"caught up (every stream's lag within {bound:g} s) {caught_up_s:.0f} s after the restart"
                if caught_up_s is not None
                else f"not caught up within {args.settle + args.catch_up_limit:.0f} s of the restart: measuring anyway",
                flush=True,
            )
            cpu0, sim_cpu0, t0 = cpu_seconds(daemon.pid), cpu_seconds(sim.pid), time.monotonic()
            samples: list[float] = []
            by_resource: dict[str, list[float]] = {}
            rss_samples: list[float] = []
            #: (seconds into the measurement, p50, p99, max) of each scrape: the plot's lines.
            over_time: list[tuple[float, float, float, float]] = []
            while time.monotonic() - t0 < args.duration:
                lags = await scrape_lags(session, url)
                samples.extend(lags.values())
                values = list(lags.values())
                if values:
                    over_time.append((time.monotonic() - t0, percentile(values, 0.5), percentile(values, 0.99), max(values)))
                for (_, resource), lag in lags.items():
                    by_resource.setdefault(resource, []).append(lag)
                rss_samples.append(memory_mb(daemon.pid)[0])
                await asyncio.sleep(args.sample_every)
            elapsed = time.monotonic() - t0
            cpu = cpu_seconds(daemon.pid) - cpu0
            sim_cpu = cpu_seconds(sim.pid) - sim_cpu0
            rss, hwm = memory_mb(daemon.pid)
            async with session.get(url + "/status") as r:
                status = orjson.loads(await r.read())
        errors = sum(1 for s in status["shops"] for row in s["resources"] if row["last_error"])
        parked = sum(1 for s in status["shops"] if s["parked"])

        stop_at = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(daemon.wait(), 60)
        stop_s = time.monotonic() - stop_at
        await daemon_drain
        daemon = None
        sim_drain.cancel()
        if args.log_file:
            args.log_file.write_text("".join(logs))
        runs = [float(m.group(1)) for line in logs if (m := _RUN_SECONDS.search(line))]
        return {
            "shops": args.shops,
            "streams": streams,
            "orders_per_shop": args.orders,
            "orders_per_day_per_shop": args.orders_per_day,
            "plan": args.plan,
            "every": args.every,
            "overlap": args.overlap,
            "jitter": args.jitter,
            "safety_margin": args.safety_margin,
            "backfill_s": round(backfill_s, 1),
            "backfill_cpu_s": round(backfill_cpu, 1),
            "backfill_peak_rss_mb": round(backfill_peak, 1),
            "caught_up_s": None if caught_up_s is None else round(caught_up_s, 1),
            "measured_s": round(elapsed, 1),
            "daemon_cpu_percent_of_one_core": round(100 * cpu / elapsed, 1),
            "simulator_cpu_percent_of_one_core": round(100 * sim_cpu / elapsed, 1),
            "daemon_rss_mb": round(rss, 1),
            "daemon_rss_mb_avg": round(sum(rss_samples) / len(rss_samples), 1),
            "daemon_peak_rss_mb": round(hwm, 1),
            "lag_samples": len(samples),
            "lag_p50_s": round(percentile(samples, 0.50), 1),
            "lag_p99_s": round(percentile(samples, 0.99), 1),
            "lag_max_s": round(max(samples), 1),
            "run_seconds_p50": round(percentile(runs, 0.50), 2),
            "run_seconds_p99": round(percentile(runs, 0.99), 2),
            "lag_p99_s_by_resource": {r: round(percentile(v, 0.99), 1) for r, v in sorted(by_resource.items())},
            "lag_over_time": [[round(v, 1) for v in row] for row in over_time],
            "streams_with_errors_at_end": errors,
            "shops_parked_at_end": parked,
            "stop_s": round(stop_s, 2),
            "exit_code": code,
        }
    finally:
        for proc in (daemon, sim):
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGTERM if proc is daemon else signal.SIGINT)
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()
        shutil.rmtree(work, ignore_errors=True)


def lag_bound(safety_margin: str, every: str) -> float:
    """The target's bound on a stream's lag, in seconds: safety margin + every + 10 s."""
    return (parse_duration(safety_margin) + parse_duration(every)).total_seconds() + 10


def lag_plot(results: dict[str, Any]) -> str:
    """The SVG of the sync lag over the measurement: p50, p99 and max over every stream at each
    scrape, against the bound the target allows (safety margin + every + 10 s)."""
    rows = results["lag_over_time"]
    bound = lag_bound(results["safety_margin"], results["every"])
    end = rows[-1][0] if rows else 1.0
    return line_chart(
        f"Sync lag of {results['streams']:,} streams, {results['shops']} shops, one daemon",
        "seconds into the measurement",
        "lag (s)",
        [
            Series("p50", [(t, p50) for t, p50, _, _ in rows]),
            Series("p99", [(t, p99) for t, _, p99, _ in rows]),
            Series("max", [(t, top) for t, _, _, top in rows]),
            Series(f"target p99 ≤ {bound:g} s", [(0.0, bound), (end, bound)], dashed=True),
        ],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench daemon", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20 shops, a short measurement (about a minute)")
    parser.add_argument("--shops", type=int, default=None, help="simulated shops (default 200; quick 20)")
    parser.add_argument("--orders", type=int, default=None, help="orders per shop (default 1,000; quick 300)")
    parser.add_argument("--products", type=int, default=50)
    parser.add_argument("--orders-per-day", type=float, default=50_000.0, help="live orders per shop and day (real time)")
    parser.add_argument(
        "--plan", default="plus", help="the shops' Shopify plan (bucket and restore rate); 50k orders/day is a Plus store"
    )
    parser.add_argument("--every", default="30s")
    parser.add_argument("--overlap", default="1m")
    parser.add_argument("--jitter", default="5s")
    parser.add_argument("--safety-margin", default="15s")
    parser.add_argument("--duration", type=float, default=None, help="measured seconds (default 300; quick 30)")
    parser.add_argument("--settle", type=float, default=None, help="seconds after the backfill before measuring")
    parser.add_argument(
        "--catch-up-limit", type=float, default=None,
        help="after the settle, seconds to wait at most for every stream's lag to be within the bound (default 600; quick 30)",
    )  # fmt: skip
    parser.add_argument(
        "--sample-every", type=float, default=None, help="seconds between /metrics scrapes (Prometheus's usual 15 s; quick 5)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    parser.add_argument("--log-file", type=Path, default=None, help="write the daemons' log lines to this file")
    parser.add_argument("--plot", type=Path, default=None, help="draw the lag over time as an SVG file (docs/daemon-lag.svg)")
    args = parser.parse_args(argv)
    args.shops = args.shops or (20 if args.quick else 200)
    args.orders = args.orders or (300 if args.quick else 1_000)
    args.duration = args.duration or (30.0 if args.quick else 300.0)
    args.settle = args.settle if args.settle is not None else (10.0 if args.quick else 60.0)
    args.catch_up_limit = args.catch_up_limit if args.catch_up_limit is not None else (30.0 if args.quick else 600.0)
    args.sample_every = args.sample_every or (5.0 if args.quick else 15.0)
    results = asyncio.run(bench(args))
    print(
        f"keeping up, over {results['measured_s']:.0f} s: CPU {results['daemon_cpu_percent_of_one_core']:.1f}% of one core "
        f"(simulator {results['simulator_cpu_percent_of_one_core']:.1f}%), RSS {results['daemon_rss_mb']:.0f} MB "
        f"(peak {results['daemon_peak_rss_mb']:.0f} MB)"
    )
    print(
        f"sync lag over {results['lag_samples']:,} samples: p50 {results['lag_p50_s']:.1f} s, "
        f"p99 {results['lag_p99_s']:.1f} s, max {results['lag_max_s']:.1f} s; "
        f"{results['streams_with_errors_at_end']} streams with errors, {results['shops_parked_at_end']} shops parked"
    )
    print(f"one stream run (both daemons): p50 {results['run_seconds_p50']:.2f} s, p99 {results['run_seconds_p99']:.2f} s")
    print("p99 lag by resource: " + ", ".join(f"{r} {v:.0f} s" for r, v in results["lag_p99_s_by_resource"].items()))
    print(f"SIGTERM → exit {results['exit_code']} in {results['stop_s']:.2f} s")
    if args.json:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    if args.plot:
        args.plot.write_text(lag_plot(results))
    return 0 if results["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
