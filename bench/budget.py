"""Budget-use benchmark (issue 11, item 1): how much of a shop's restore rate three clients turn
into records, on the same shop, the same window of orders, in the same run.

Per plan (Standard, Advanced, Plus), one simulated shop (in this process, time-scaled: its restore
rate is the plan's × ``--time-scale``) holds exactly the orders of one window (all updated within
the last hour before the data's anchor; ~1–5 line items each, two with 60). Three clients read
every order of that window with its line items, one after the other, each starting on a full
bucket and each in its own process:

(a) **shopsync**: ``shopsync sync`` with ``[sync] path = "paginated"``, a fresh database each time
    (a first sync: every order up to now, which is the window).
(b) **sequential**: the common approach. One query at a time, a fixed page size, a fixed
    one-second sleep (simulated) on a THROTTLED answer, nothing else.
(c) **semaphore**: the approach tutorials teach. The window split into 8 time slices paged
    concurrently under an ``asyncio.Semaphore(8)``, the same fixed page size, exponential backoff
    on THROTTLED (1 s simulated, doubling, capped at 32 s; the count resets after an answer).

(b) and (c) use aiohttp and orjson and send shopsync's own documents (the ``OrderRecord``
fragment, ``sortKey: UPDATED_AT``, an ``updated_at`` search string; the schema-validated texts of
``shopsync.queries.builder``), at a fixed ``orders(first: 7)`` with ``lineItems(first: 8)``:
968 points requested, near Shopify's 1,000-point cap since line items carry their tax lines and
discount allocations (8 and 8 ask 1,106; 50 and 50 would be refused as ``MAX_COST_EXCEEDED``). An
order with more line items has the rest read with ``node(id:)`` pages of shopsync's own drain
size (``builder.drain_first``: 71). They read ``extensions.cost`` only for their own figures.

What is measured, the same way for all three, by the simulator (every GraphQL answer is noted
with its instant, requested and actual cost):

* **span**: first request received → last answer sent (simulated seconds: wall × time scale). The
  process start of each client lies before it; shopsync's whole process time is shown beside.
* **records/s**: the window's orders ÷ span.
* **points spent**: Σ ``actualQueryCost`` of the answers that ran; **utilisation**: points spent ÷
  (the bucket's level at the first request + restore rate × span), i.e. of everything the shop
  made available during the span. 100 % means no point was left unspent. The unspent rest is
  **left at the end** (the bucket's level after the last answer) or **overflowed** (restore that
  found the bucket full).
* **THROTTLED**: answers refused for lack of points.

The simulator answers in milliseconds, which at time scale 10 is a tenth of a simulated second
or so; a plan written ``plus:0.3`` holds every answer 0.3 simulated seconds more (the simulator's
``slow`` fault on every request), about Shopify's round trip for such a page. The default run is
:data:`DEFAULT_PLANS`: every plan with that round trip (Shopify always has one), Standard and Plus
also without it.

``python -m bench budget [--quick] [--plans standard:0.3,advanced:0.3,…] [--time-scale 10]
[--seconds 200] [--orders N] [--json FILE]``; ``--quick`` runs Standard and Plus (with the round
trip) on small windows at time scale 20 in well under a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.config import write_shop_config
from bench.engine import ChildRun, run_sync, shop_figure, stream_figures
from shopsync.simulator.config import PLANS, DataConfig, FaultConfig, SimConfig
from shopsync.simulator.server import SimulatedShop, run_simulator

TOKEN_ENV = "BENCH_BUDGET_TOKEN"
#: The fixed page of (b) and (c): 7 orders × 8 line items = 968 points requested, near the cap.
FIXED_FIRST = 7
FIXED_LINE_ITEMS = 8
SLICES = 8  # (c): time slices and semaphore permits
BACKOFF_BASE_S = 1.0  # simulated
BACKOFF_CAP_S = 32.0  # simulated
SEQUENTIAL_SLEEP_S = 1.0  # simulated
#: Actual points of one order with its line items (README, engine benchmark): sizes the window.
POINTS_PER_ORDER = 46
WINDOW_S = 3600  # the orders' updatedAt lie in the hour before the anchor
CLIENTS = ("shopsync", "sequential", "semaphore")
#: Shopify always answers after a round trip, so every plan is run with one (0.3 s, about
#: Shopify's for such a page); Standard and Plus also without, where every client is bound by the
#: restore rate alone.
DEFAULT_PLANS = "standard:0.3,advanced:0.3,plus:0.3,standard,plus"
#: Quick: a restore-bound plan and a latency-bound one, each with the round trip.
QUICK_PLANS = "standard:0.3,plus:0.3"
#: Targets of issue 11.
TARGET_UTILISATION = 97.0
TARGET_OVER_SEQUENTIAL = 5.0
TARGET_OVER_SEMAPHORE = 2.0


# ---------------------------------------------------------------------------------------------
# The clients (b) and (c): run as ``python -m bench.budget --client NAME …`` children
# ---------------------------------------------------------------------------------------------
def _documents() -> tuple[str, tuple[str, int]]:
    """shopsync's page and line-item drain documents for orders (builder output, schema-valid)."""
    from shopsync.queries.builder import drain_first, drain_query, page_query, requested_cost_of
    from shopsync.queries.loader import load_resources

    orders = load_resources()["orders"]
    nested = orders.nested_at(("lineItems",))
    page = page_query(orders, FIXED_FIRST, {("lineItems",): FIXED_LINE_ITEMS})
    assert requested_cost_of(page, {"first": FIXED_FIRST}) <= 1000, "the fixed page must fit Shopify's cap"
    # shopsync's own drain page, which fits the cap.
    first = drain_first(orders, nested)
    return page, (drain_query(orders, nested, first), first)


def _ts(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def window_search(start: float, end: float) -> str:
    """Both bounds inclusive, whole seconds (``updatedAt`` has second resolution)."""
    return f"updated_at:>='{_ts(start)}' AND updated_at:<='{_ts(end)}'"


@dataclass
class ClientFigures:
    """What a client child saw itself (the simulator's view is the one reported)."""

    orders: dict[str, int] = field(default_factory=dict)  # id → line items read
    requests: int = 0
    throttled: int = 0
    points: float = 0.0  # Σ extensions.cost.actualQueryCost
    wall_s: float = 0.0


class Throttled(Exception):
    """A THROTTLED answer (HTTP 200, ``errors[].extensions.code``)."""


class Client:
    """One aiohttp session posting GraphQL documents; counts what it is told."""

    def __init__(self, session: Any, url: str, token: str, figures: ClientFigures) -> None:
        self.session, self.url, self.figures = session, url, figures
        self.headers = {"X-Shopify-Access-Token": token, "Content-Type": "application/json"}

    async def post(self, query: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        body = orjson.dumps({"query": query, "variables": variables})
        async with self.session.post(self.url, data=body, headers=self.headers) as resp:
            resp.raise_for_status()
            answer: dict[str, Any] = orjson.loads(await resp.read())
        self.figures.requests += 1
        errors = answer.get("errors") or []
        if any((e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors):
            self.figures.throttled += 1
            raise Throttled
        if errors or answer.get("data") is None:
            raise RuntimeError(f"GraphQL errors: {errors!r}")
        cost = (answer.get("extensions") or {}).get("cost") or {}
        self.figures.points += float(cost.get("actualQueryCost") or 0)
        data: dict[str, Any] = answer["data"]
        return data


#: Posts one document, retrying THROTTLED answers its own way.
Retry = Callable[[str, Mapping[str, Any]], Awaitable[dict[str, Any]]]


async def read_window(client: Client, search: str, page: str, drain: tuple[str, int], retry: Retry) -> None:
    """Page one search through ``retry``; drain the line items of orders that have more
    (``drain``: the document and its page size)."""
    drain_doc, drain_size = drain
    after: str | None = None
    while True:
        data = await retry(page, {"first": FIXED_FIRST, "after": after, "query": search})
        conn = data["orders"]
        for edge in conn["edges"]:
            order = edge["node"]
            items = order["lineItems"]
            count = len(items["edges"])
            li_after = items["pageInfo"]["endCursor"]
            more = items["pageInfo"]["hasNextPage"]
            while more:
                got = await retry(drain_doc, {"id": order["id"], "first": drain_size, "after": li_after})
                rest = got["node"]["lineItems"]
                count += len(rest["edges"])
                li_after, more = rest["pageInfo"]["endCursor"], rest["pageInfo"]["hasNextPage"]
            client.figures.orders[order["id"]] = count
        if not conn["pageInfo"]["hasNextPage"]:
            return
        after = conn["pageInfo"]["endCursor"]


async def sequential_client(client: Client, start: float, end: float, scale: float) -> None:
    """(b) One query at a time; a fixed one-second sleep on THROTTLED."""
    page, drain = _documents()

    async def retry(query: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        while True:
            try:
                return await client.post(query, variables)
            except Throttled:
                await asyncio.sleep(SEQUENTIAL_SLEEP_S / scale)

    await read_window(client, window_search(start, end), page, drain, retry)


async def semaphore_client(client: Client, start: float, end: float, scale: float) -> None:
    """(c) 8 time slices paged at once under a semaphore; exponential backoff on THROTTLED."""
    page, drain = _documents()
    gate = asyncio.Semaphore(SLICES)

    async def retry(query: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        attempt = 0
        while True:
            async with gate:
                try:
                    return await client.post(query, variables)
                except Throttled:
                    delay = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)
                    attempt += 1
            await asyncio.sleep(delay / scale)

    # Disjoint whole-second slices: [a, b−1 s], [b, c−1 s], … (both bounds inclusive).
    first, last = math.floor(start), math.ceil(end)
    edges = [first + round(i * (last - first + 1) / SLICES) for i in range(SLICES + 1)]
    searches = [window_search(edges[i], edges[i + 1] - 1) for i in range(SLICES)]
    await asyncio.gather(*(read_window(client, s, page, drain, retry) for s in searches))


async def run_client(args: argparse.Namespace) -> ClientFigures:
    import aiohttp

    figures = ClientFigures()
    t0 = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=SLICES * 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        client = Client(session, args.url, os.environ[TOKEN_ENV], figures)
        run = sequential_client if args.client == "sequential" else semaphore_client
        await run(client, args.start, args.end, args.time_scale)
    figures.wall_s = time.perf_counter() - t0
    return figures


def client_main(args: argparse.Namespace) -> int:
    figures = asyncio.run(run_client(args))
    Path(args.out).write_bytes(orjson.dumps(asdict(figures)))
    return 0


# ---------------------------------------------------------------------------------------------
# The simulator's view: every GraphQL answer, by phase
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Answer:
    at: float  # wall epoch seconds
    operation: str | None
    requested: float
    actual: float  # 0 when throttled or refused
    throttled: bool
    level_after: float  # the app's bucket level once answered


_OPERATION = re.compile(r"^\s*(?:query|mutation)\s+(\w+)[^{]*\{\s*(\w+)")


_LINE_ITEMS = re.compile(r"lineItems\(first: (\d+)")


def _operation(query: str) -> str:
    """``Page/orders lineItems(10)``: a document's operation name, first root field, and for a
    page its nested page size."""
    m = _OPERATION.search(query)
    nested = _LINE_ITEMS.search(query)
    name = f"{m[1]}/{m[2]}" if m else "-"
    return f"{name} lineItems({nested[1]})" if nested and name.startswith("Page/") else name


@dataclass
class Recorder:
    """Wraps the shop's ``run_graphql`` (looked up on the instance at every request)."""

    shop: SimulatedShop
    phase: str = ""
    answers: dict[str, list[Answer]] = field(default_factory=dict)
    first_level: dict[str, float] = field(default_factory=dict)  # bucket level at the first request
    app: str | None = None

    def install(self) -> None:
        serve = self.shop.run_graphql

        def recorded(app: str, query: str, variables: Mapping[str, Any], operation_name: str | None) -> tuple[int, dict]:
            self.app = app
            if self.phase not in self.first_level:
                self.first_level[self.phase] = self.shop.bucket(app).level(time.time())
            status, body = serve(app, query, variables, operation_name)
            cost = (body.get("extensions") or {}).get("cost") or {}
            throttled = any(
                isinstance(e, dict) and (e.get("extensions") or {}).get("code") == "THROTTLED"
                for e in body.get("errors") or []
            )
            self.answers.setdefault(self.phase, []).append(Answer(
                at=time.time(), operation=operation_name or _operation(query), requested=float(cost.get("requestedQueryCost") or 0),
                actual=0.0 if throttled else float(cost.get("actualQueryCost") or 0), throttled=throttled,
                level_after=self.shop.bucket(app).level(time.time()),
            ))  # fmt: skip
            return status, body

        self.shop.run_graphql = recorded  # type: ignore[method-assign]

    async def refill(self) -> None:
        """Wait until the app's bucket is full again (each client starts as the first did)."""
        if self.app is None:
            return
        bucket = self.shop.bucket(self.app)  # idle meanwhile: one sleep fills it
        await asyncio.sleep(max(0.0, bucket.capacity - bucket.level(time.time())) / bucket.rate + 0.01)


@dataclass(frozen=True, kw_only=True)
class Figures:
    client: str
    orders: int
    line_items: int | None
    span_s: float  # simulated
    process_s: float  # simulated: spawn → exit
    cpu_s: float  # the client process's own CPU seconds (wall, not scaled)
    records_per_s: float
    requests: int
    throttled: int
    points_spent: float
    allowed: float
    utilisation_pct: float
    left_at_end: float  # the bucket's level after the last answer: allowed, not (yet) spent
    overflowed: float  # allowed − spent − left at the end: restore lost to a full bucket
    points_per_order: float
    by_operation: dict[str, dict[str, float]]  # operation name → requests, THROTTLED, points requested, spent
    own_view: dict[str, Any]  # what the client reported itself


def figures_of(
    client: str, answers: Sequence[Answer], first_level: float, rate: float, scale: float,
    orders: int, line_items: int | None, process_wall_s: float, cpu_s: float, own: dict[str, Any], held_s: float = 0.0,
) -> Figures:  # fmt: skip
    """Pure: the figures of one client from the simulator's answers (``rate`` per wall second;
    ``held_s`` the wall seconds each answer is held after it was charged)."""
    if not answers:
        raise RuntimeError(f"{client}: no request reached the simulator")
    span_wall = answers[-1].at + held_s - answers[0].at
    spent = sum(a.actual for a in answers)
    allowed = first_level + rate * span_wall
    span = span_wall * scale
    by_operation: dict[str, dict[str, float]] = {}
    for a in answers:
        op = by_operation.setdefault(a.operation or "-", {"requests": 0, "throttled": 0, "requested": 0.0, "spent": 0.0})
        op["requests"] += 1
        op["throttled"] += a.throttled
        op["requested"] += 0 if a.throttled else a.requested
        op["spent"] += a.actual
    return Figures(
        client=client, orders=orders, line_items=line_items, span_s=round(span, 2),
        process_s=round(process_wall_s * scale, 2), cpu_s=round(cpu_s, 2), records_per_s=round(orders / span, 3) if span > 0 else math.inf,
        requests=len(answers), throttled=sum(a.throttled for a in answers), points_spent=spent,
        allowed=round(allowed, 1), utilisation_pct=round(100 * spent / allowed, 2),
        left_at_end=round(answers[-1].level_after, 1), overflowed=round(max(0.0, allowed - spent - answers[-1].level_after), 1),
        points_per_order=round(spent / orders, 1) if orders else 0.0, by_operation=by_operation, own_view=own,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# One plan
# ---------------------------------------------------------------------------------------------
async def _spawn_client(name: str, url: str, token: str, start: float, end: float, scale: float, out: Path) -> ChildRun:
    from bench.engine import _spawn_and_reap

    cmd = [sys.executable, "-m", "bench.budget", "--client", name, "--url", url, "--start", repr(start),
           "--end", repr(end), "--time-scale", repr(scale), "--out", str(out)]  # fmt: skip
    return await asyncio.to_thread(_spawn_and_reap, cmd, {**os.environ, TOKEN_ENV: token})


def _sink_figures(db: Path, shop: str) -> tuple[int, int]:
    """shopsync's sink after a run: the distinct orders in it, and the cursor chains the window was
    paged with (its slices' state rows; 1 when it was never cut)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        (orders,) = con.execute("SELECT COUNT(*) FROM orders WHERE shop = ?", (shop,)).fetchone()
        (slices,) = con.execute(
            "SELECT COUNT(*) FROM stream_state WHERE shop = ? AND resource LIKE 'orders@slice%'", (shop,)
        ).fetchone()
    finally:
        con.close()
    return int(orders), int(slices) or 1


def window_orders(plan: str, seconds: float) -> int:
    """Orders that take shopsync about ``seconds`` (simulated) at the plan's restore rate."""
    capacity, rate = PLANS[plan]
    return max(50, round((capacity + rate * seconds) / POINTS_PER_ORDER))


async def one_plan(plan: str, latency: float, args: argparse.Namespace) -> dict[str, Any]:
    """One shop of ``plan`` whose every answer is held ``latency`` simulated seconds more."""
    scale = args.time_scale
    orders = args.orders or window_orders(plan, args.seconds)
    anchor = float(int(time.time()) - 30)
    data = DataConfig(
        seed=11, orders=orders, history_days=WINDOW_S / 86_400, anchor=anchor, customers=max(10, orders // 4),
        products=50, locations=2, collections=3, big_orders=2, big_order_line_items=60, tie_groups=0,
    )  # fmt: skip
    faults = FaultConfig(slow=1.0, slow_seconds=latency) if latency > 0 else FaultConfig()
    cfg = SimConfig(plan=plan, data=data, time_scale=scale, index_lag=0.0, faults=faults)
    start, end = anchor - WINDOW_S - 1, anchor + 1
    work = Path(tempfile.mkdtemp(prefix=f"shopsync-bench-budget-{plan}-"))
    results: dict[str, Figures] = {}
    try:
        async with run_simulator(cfg) as server:
            shop = server.shop()
            truth = shop.truth("orders")
            expected_items = {gid: len(rec.get("lineItems") or []) for gid, rec in truth.items()}
            recorder = Recorder(shop)
            recorder.install()
            _, rate = cfg.bucket_limits()
            for client in CLIENTS:
                await recorder.refill()
                recorder.phase = client
                (work / client).mkdir()
                if client == "shopsync":
                    config = write_shop_config(
                        work / client / "shopsync.toml", shop, database=work / client / "state.db",
                        token_env=TOKEN_ENV, sync={"path": "paginated", "safety_margin": "2s"}, resources=["orders"],
                    )  # fmt: skip
                    run = await run_sync(config, {TOKEN_ENV: shop.token})
                    if run.returncode != 0:
                        raise RuntimeError(f"{plan}: shopsync sync exited {run.returncode}\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}")
                    stream = stream_figures(run).get("orders")
                    if stream is None or stream.path != "paginated":
                        raise RuntimeError(f"{plan}: shopsync did not page the orders: {run.stdout[-2000:]}")
                    own = asdict(shop_figure(run))
                    # Records written can exceed the window's orders: slices paged at once both read
                    # their shared boundary second. What counts is the distinct orders in the sink.
                    got, chains = _sink_figures(work / client / "state.db", shop.name)
                    own.update(records_written=stream.records, chains=chains)
                    items = None
                else:
                    out = work / client / "figures.json"
                    run = await _spawn_client(client, shop.graphql_url, shop.token, start, end, scale, out)
                    if run.returncode != 0:
                        raise RuntimeError(f"{plan}: the {client} client exited {run.returncode}\n{run.stderr[-3000:]}")
                    seen = orjson.loads(out.read_bytes())
                    if seen["orders"] != expected_items:
                        raise RuntimeError(f"{plan}: the {client} client read {len(seen['orders'])} orders, not the window's {len(truth)}")
                    own = {k: seen[k] for k in ("requests", "throttled", "points", "wall_s")}
                    got, items = len(seen["orders"]), sum(seen["orders"].values())
                if got != len(truth):
                    raise RuntimeError(f"{plan}: {client} read {got} orders, the window holds {len(truth)}\n{run.stderr[-6000:]}")
                results[client] = figures_of(
                    client, recorder.answers.get(client, []), recorder.first_level[client], rate, scale,
                    got, items, run.wall_s, run.cpu_s, own, latency / scale,
                )  # fmt: skip
                print_figures(f"{plan}{f'+{latency:g}s' if latency else ''}", results[client], scale, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ours = results["shopsync"].records_per_s
    capacity, plan_rate = PLANS[plan]
    return {
        "plan": plan, "latency_s": latency, "restore_rate": plan_rate, "bucket": capacity, "time_scale": scale, "orders": orders,
        "clients": {name: asdict(f) for name, f in results.items()},
        "speedup_over_sequential": round(ours / results["sequential"].records_per_s, 2),
        "speedup_over_semaphore": round(ours / results["semaphore"].records_per_s, 2),
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
def print_figures(plan: str, f: Figures, scale: float, *, flush: bool = False) -> None:
    print(
        f"{plan:<9} {f.client:<10} {f.orders:,} orders in {f.span_s:.1f} s = {f.records_per_s:.2f} records/s, "
        f"{f.requests} requests, THROTTLED {f.throttled}, points spent {f.points_spent:,.0f} of {f.allowed:,.0f} "
        f"allowed = {f.utilisation_pct:.1f}% (left in the bucket at the end {f.left_at_end:,.0f}, overflowed "
        f"{f.overflowed:,.0f}), {f.points_per_order:.1f} points/order (process {f.process_s:.1f} s, {f.cpu_s:.1f} CPU s "
        f"in {f.process_s / scale:.1f} s wall)"
        + (f", {f.own_view['records_written']:,} records written by {f.own_view['chains']} cursor chain(s)" if "chains" in f.own_view else ""),
        flush=flush,
    )


def print_table(rows: Sequence[dict[str, Any]]) -> None:
    print("| plan (points/s, bucket) | client | records/s | points spent ÷ allowed | left at end | THROTTLED "
          "| requests | points/order | cursor chains | shopsync's speed-up |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        for name in CLIENTS:
            c = r["clients"][name]
            speed = {"shopsync": "", "sequential": f"{r['speedup_over_sequential']:.2f}×",
                     "semaphore": f"{r['speedup_over_semaphore']:.2f}×"}[name]  # fmt: skip
            label = f"{r['plan'].capitalize()} ({r['restore_rate']:,.0f}, {r['bucket']:,.0f})"
            if r["latency_s"]:
                label += f", +{r['latency_s']:g} s an answer"
            chains = {"shopsync": c["own_view"].get("chains", 1), "sequential": 1, "semaphore": SLICES}[name]
            print(f"| {label} | {name} | {c['records_per_s']:.2f} | {c['utilisation_pct']:.1f} % | {c['left_at_end']:,.0f} | {c['throttled']} "
                  f"| {c['requests']} | {c['points_per_order']:.1f} | {chains} | {speed} |")  # fmt: skip
    for r in rows:
        s = r["clients"]["shopsync"]
        verdict = [
            f"utilisation {s['utilisation_pct']:.1f}% ({'met' if s['utilisation_pct'] >= TARGET_UTILISATION else 'MISSED'} ≥ {TARGET_UTILISATION:g}%)",
            f"THROTTLED {s['throttled']} ({'met' if s['throttled'] == 0 else 'MISSED'} = 0)",
            f"{r['speedup_over_sequential']:.2f}× sequential ({'met' if r['speedup_over_sequential'] >= TARGET_OVER_SEQUENTIAL else 'MISSED'} ≥ {TARGET_OVER_SEQUENTIAL:g}×)",
            f"{r['speedup_over_semaphore']:.2f}× semaphore ({'met' if r['speedup_over_semaphore'] >= TARGET_OVER_SEMAPHORE else 'MISSED'} ≥ {TARGET_OVER_SEMAPHORE:g}×)",
        ]  # fmt: skip
        extra = f" +{r['latency_s']:g} s" if r["latency_s"] else ""
        print(f"targets {r['plan']}{extra}: " + ", ".join(verdict))


async def bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    print(f"orders with line items of one window, read by shopsync, a sequential client and a semaphore client; "
          f"time scale {args.time_scale:g}, figures in simulated seconds", flush=True)  # fmt: skip
    rows = []
    for spec in args.plans:
        plan, _, latency = spec.partition(":")
        rows.append(await one_plan(plan, float(latency or 0), args))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench budget", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="Standard and Plus with the round trip, small windows, time scale 20")
    parser.add_argument("--plans", default=None,
                        help="comma-separated plans, each optionally PLAN:SECONDS, simulated seconds added to every "
                             "answer (default " + DEFAULT_PLANS + ")")
    parser.add_argument("--time-scale", type=float, default=None, help="restore rates × this (default 10; quick 20)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="size the window to take shopsync about this many simulated seconds (default 200; quick 60)")
    parser.add_argument("--orders", type=int, default=None, help="orders in the window (overrides --seconds)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    # A client child (b) or (c): ``python -m bench.budget --client sequential|semaphore …``.
    parser.add_argument("--client", choices=("sequential", "semaphore"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--end", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.time_scale is None:
        args.time_scale = 20.0 if args.quick else 10.0
    if args.client:
        return client_main(args)
    args.plans = (args.plans or (QUICK_PLANS if args.quick else DEFAULT_PLANS)).split(",")
    if args.seconds is None:
        args.seconds = 60.0 if args.quick else 200.0
    started = time.perf_counter()
    rows = asyncio.run(bench(args))
    print_table(rows)
    print(f"budget benchmark done in {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_bytes(orjson.dumps({"rows": rows, "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}},
                                           option=orjson.OPT_INDENT_2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
