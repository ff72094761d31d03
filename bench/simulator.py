"""Simulator benchmark: start-up time and peak memory with a large store, page latency over HTTP
(``orders`` pages with line items, updated_at windows, node drains) and the bulk export rate.

The simulator runs in its own process (``shopsync simulate``), so the figures are the server's
alone: start-up is measured from process spawn to the "listening" line, memory is the child's
peak RSS (``VmHWM``). ``python -m bench simulator [--quick] [--orders N] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from graphql import parse

from shopsync.shopify.cost import MAX_QUERY_COST, requested_cost
from shopsync.shopify.schema import load_schema
from shopsync.timeutil import format_ts, from_epoch

TOKEN = "shpat_bench_token"
RESOURCES = Path(__file__).resolve().parent.parent / "shopsync" / "queries" / "resources"


def _fragment(resource: str) -> str:
    text = (RESOURCES / f"{resource}.graphql").read_text()
    return "\n".join(line for line in text.splitlines() if not line.startswith("#"))


def orders_page_query(first: int) -> str:
    return (
        f"query($after: String) {{ orders(first: {first}, after: $after, sortKey: UPDATED_AT) "
        "{ edges { cursor node { ...OrderRecord } } pageInfo { hasNextPage endCursor } } }\n"
    ) + _fragment("orders")


def largest_first(build: Callable[[int], str]) -> int:
    """The largest page size whose requested cost stays within Shopify's single-query cap."""
    schema = load_schema()
    best = 1
    for n in range(1, 251):
        if requested_cost(schema, parse(build(n)), {"after": None}) <= MAX_QUERY_COST:
            best = n
    return best


WINDOW = (
    "query($q: String!) { orders(first: 100, query: $q, sortKey: UPDATED_AT) "
    "{ nodes { id name updatedAt totalPriceSet { shopMoney { amount } } } pageInfo { hasNextPage endCursor } } }"
)
NODE_DRAIN = (
    "query($id: ID!, $after: String) { node(id: $id) { ... on Order { lineItems(first: 250, after: $after) "
    "{ nodes { id quantity sku } pageInfo { hasNextPage endCursor } } } } }"
)
BULK = (
    "mutation($q: String!) { bulkOperationRunQuery(query: $q) { bulkOperation { id status } userErrors { message code } } }"
)
POLL = "query($id: ID!) { bulkOperation(id: $id) { status objectCount fileSize url errorCode } }"


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    m = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(m.group(1)) / 1024 if m else float("nan")


class Client:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url

    async def gql(self, query: str, variables: dict | None = None) -> tuple[float, dict]:
        started = time.perf_counter()
        async with self.session.post(
            self.url, json={"query": query, "variables": variables or {}}, headers={"X-Shopify-Access-Token": TOKEN}
        ) as r:
            body = orjson.loads(await r.read())
        took = time.perf_counter() - started
        if "errors" in body:
            raise RuntimeError(f"simulator answered errors: {body['errors']}")
        return took, body["data"]


async def measure(url: str, *, pages: int, windows: int, drains: int, bulk_days: float, history_days: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        c = Client(session, url)
        # Warm-up (first-request imports and caches are start-up, not latency).
        await c.gql("{ shop { id } }")

        first = largest_first(orders_page_query)
        q = orders_page_query(first)
        lat: list[float] = []
        after = None
        ids: list[str] = []
        for _ in range(pages):
            took, data = await c.gql(q, {"after": after})
            lat.append(took)
            conn = data["orders"]
            ids.extend(e["node"]["id"] for e in conn["edges"])
            after = conn["pageInfo"]["endCursor"]
            if not conn["pageInfo"]["hasNextPage"]:
                after = None
        out["page"] = {"first": first, "n": len(lat), "p50_ms": pct(lat, 0.5) * 1e3, "p95_ms": pct(lat, 0.95) * 1e3}

        now = time.time()
        lat = []
        rows = 0
        for i in range(windows):
            end = now - (i + 1) * (history_days * 86400 / (windows + 1))
            q_text = f"updated_at:>='{format_ts(from_epoch(end - 3600))}' AND updated_at:<='{format_ts(from_epoch(end))}'"
            took, data = await c.gql(WINDOW, {"q": q_text})
            lat.append(took)
            rows += len(data["orders"]["nodes"])
        out["window"] = {"n": len(lat), "p50_ms": pct(lat, 0.5) * 1e3, "p95_ms": pct(lat, 0.95) * 1e3, "rows_per_query": rows / max(1, windows)}

        lat = []
        for gid in ids[:drains]:
            after = None
            while True:
                took, data = await c.gql(NODE_DRAIN, {"id": gid, "after": after})
                lat.append(took)
                info = data["node"]["lineItems"]["pageInfo"]
                if not info["hasNextPage"]:
                    break
                after = info["endCursor"]
        out["node_drain"] = {"n": len(lat), "p50_ms": pct(lat, 0.5) * 1e3, "p95_ms": pct(lat, 0.95) * 1e3}

        since = format_ts(from_epoch(now - bulk_days * 86400))
        inner = (
            f'{{ orders(query: "updated_at:>=\'{since}\'", sortKey: UPDATED_AT) {{ edges {{ node {{ id name updatedAt '
            "totalPriceSet { shopMoney { amount currencyCode } } lineItems { edges { node { id sku quantity } } } } } } }"
        )
        started = time.perf_counter()
        _, data = await c.gql(BULK, {"q": inner})
        payload = data["bulkOperationRunQuery"]
        if payload["userErrors"]:
            raise RuntimeError(f"bulk query refused: {payload['userErrors']}")
        gid = payload["bulkOperation"]["id"]
        while True:
            await asyncio.sleep(0.1)  # polling the simulator like a client does
            _, data = await c.gql(POLL, {"id": gid})
            op = data["bulkOperation"]
            if op["status"] not in ("CREATED", "RUNNING"):
                break
        export_s = time.perf_counter() - started
        if op["status"] != "COMPLETED":
            raise RuntimeError(f"bulk operation ended {op['status']} {op['errorCode']}")
        objects = int(op["objectCount"])
        size = int(op["fileSize"] or 0)
        started = time.perf_counter()
        got = 0
        if op["url"]:
            async with session.get(op["url"]) as r:
                async for chunk in r.content.iter_chunked(1 << 20):
                    got += len(chunk)
        dl_s = time.perf_counter() - started
        out["bulk"] = {
            "objects": objects,
            "seconds": export_s,
            "objects_per_s": objects / export_s,
            "file_mb": size / 1e6,
            "download_mb_per_s": got / 1e6 / dl_s if dl_s > 0 else float("nan"),
        }
    return out


def spawn(orders: int, shops: int = 1) -> tuple[subprocess.Popen[str], str, float, float]:
    """Start ``shopsync simulate`` and wait for it to listen → (process, first URL, spawn-to-listening
    seconds, the server's own start-up seconds)."""
    cmd = [
        sys.executable, "-m", "shopsync", "simulate", "--port", "0", "--seed", "1", "--orders", str(orders),
        "--products", "2000", "--plan", "enterprise", "--time-scale", "1000", "--token", TOKEN,
        "--bulk-objects-per-second", "1e9", "--shops", str(shops),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    spawned = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    url = None
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.match(r"\s+sim: (\S+)", line)
        if m:
            url = m.group(1)
        m = re.search(r"started in ([\d.]+)s", line)
        if m and url is not None:
            return proc, url, time.perf_counter() - spawned, float(m.group(1))
    err = proc.stderr.read() if proc.stderr else ""
    stop(proc)
    raise RuntimeError(f"simulator did not start: {err[-2000:]}")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench simulator", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20,000 orders and a few samples (seconds)")
    parser.add_argument("--orders", type=int, default=None, help="orders in the store (default 1,000,000; quick 20,000)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    orders = args.orders or (20_000 if args.quick else 1_000_000)
    pages, windows, drains, bulk_days = (20, 20, 10, 365.0) if args.quick else (200, 200, 100, 36.5)
    many_shops, many_orders = (20, 1_000) if args.quick else (200, 10_000)

    proc, url, startup, server_startup = spawn(orders)
    try:
        rss_start = peak_rss_mb(proc.pid)
        results = asyncio.run(
            measure(url, pages=pages, windows=windows, drains=drains, bulk_days=bulk_days, history_days=365.0)
        )
        rss_end = peak_rss_mb(proc.pid)
    finally:
        stop(proc)
    proc, _, multi_startup, multi_server = spawn(many_orders, many_shops)
    try:
        multi_rss = peak_rss_mb(proc.pid)
    finally:
        stop(proc)

    results["startup"] = {
        "orders": orders, "process_s": startup, "server_s": server_startup,
        "peak_rss_mb_after_start": rss_start, "peak_rss_mb_end": rss_end,
    }  # fmt: skip
    results["many_shops"] = {
        "shops": many_shops, "orders_each": many_orders, "process_s": multi_startup, "server_s": multi_server,
        "peak_rss_mb": multi_rss,
    }  # fmt: skip
    s, p, w, d, b, m = (results[k] for k in ("startup", "page", "window", "node_drain", "bulk", "many_shops"))
    print(f"start-up with {orders:,} orders: {s['process_s']:.2f} s from spawn to listening (shops built in {s['server_s']:.2f} s)")
    print(f"peak RSS: {s['peak_rss_mb_after_start']:.0f} MB after start-up, {s['peak_rss_mb_end']:.0f} MB after the run")
    print(f"orders page (first: {p['first']}, full OrderRecord with line items): p50 {p['p50_ms']:.1f} ms, p95 {p['p95_ms']:.1f} ms ({p['n']} pages)")
    print(f"updated_at window (1 h, first: 100, {w['rows_per_query']:.0f} rows avg): p50 {w['p50_ms']:.1f} ms, p95 {w['p95_ms']:.1f} ms ({w['n']} queries)")
    print(f"node(id:) lineItems page (first: 250): p50 {d['p50_ms']:.1f} ms, p95 {d['p95_ms']:.1f} ms ({d['n']} queries)")
    print(
        f"bulk export: {b['objects']:,} objects in {b['seconds']:.1f} s = {b['objects_per_s']:,.0f} objects/s, "
        f"{b['file_mb']:.1f} MB file, download {b['download_mb_per_s']:.0f} MB/s"
    )
    print(
        f"{m['shops']} shops x {m['orders_each']:,} orders in one process: {m['process_s']:.2f} s to listening, "
        f"peak RSS {m['peak_rss_mb']:.0f} MB"
    )
    if args.json:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
