"""``shopsync demo`` (what ``make demo`` runs): a simulated shop and the daemon syncing from it.

One process runs both: the simulated shop (100,000 orders by default, a live mutator creating
50,000 orders a simulated day, on a time scale of 10 so the changes are visible) and ``shopsync
run`` against it, until Ctrl-C. Everything lives in ``./demo-state/``:

* ``demo.json`` — the simulated store's seed and anchor (its "now" at first run), so a second run
  regenerates the same base store;
* ``shopsync.toml`` — the daemon's configuration (rewritten each run: the simulator's port changes);
* ``token`` — the simulated shop's access token (a file secret, so ``shopsync status`` needs no
  environment); ``shopsync.db`` — the state and the synced records.

A second run resumes from ``shopsync.db``: the backfill is not repeated, only what changed since.
(The simulator keeps its live changes in memory, so those of an earlier run are not replayed; the
sink keeps them.)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

log = logging.getLogger("shopsync.commands.demo")

SHOP = "demo"


@dataclass(frozen=True, kw_only=True)
class DemoState:
    """What must stay the same between runs for the simulated store to be the same store."""

    seed: int
    anchor: float
    orders: int

    @classmethod
    def load_or_create(cls, directory: Path, *, orders: int) -> tuple[DemoState, bool]:
        path = directory / "demo.json"
        if path.exists():
            data = orjson.loads(path.read_bytes())
            return cls(seed=int(data["seed"]), anchor=float(data["anchor"]), orders=int(data["orders"])), False
        state = cls(seed=1, anchor=float(int(time.time()) // 60 * 60), orders=orders)
        path.write_bytes(orjson.dumps({"seed": state.seed, "anchor": state.anchor, "orders": state.orders}))
        return state, True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default="demo-state", help="where the demo keeps its state (default ./demo-state)")
    parser.add_argument("--orders", type=int, default=100_000, help="orders in the simulated store (first run only)")
    parser.add_argument("--orders-per-day", type=float, default=50_000.0, help="live order creations per simulated day")
    parser.add_argument("--time-scale", type=float, default=10.0, help="simulated seconds per real second")
    parser.add_argument("--listen", default="127.0.0.1:9464", help="the daemon's HTTP endpoints (host:port)")
    parser.add_argument("--every", default="15s", help="how often each resource is synced")


def _token(directory: Path) -> str:
    path = directory / "token"
    if path.exists():
        return path.read_text().strip()
    token = f"shpat_demo_{secrets.token_hex(16)}"
    path.touch(mode=0o600)
    path.write_text(token + "\n")
    return token


def write_config(directory: Path, *, api_url: str, listen: str, every: str) -> Path:
    """The demo's shopsync.toml (see the README's "Configuration" for every key)."""
    path = directory / "shopsync.toml"
    path.write_text(
        "# Written by `shopsync demo` on each run (the simulated shop's port changes).\n"
        f'database = "sqlite:///{directory / "shopsync.db"}"\n\n'
        "[sync]\n"
        'safety_margin = "10s"   # the simulated search index lags far less than Shopify\'s\n'
        'overlap = "10s"   # 100 simulated seconds at time scale 10\n\n'
        "[daemon]\n"
        f'listen = "{listen}"\n'
        f'every = "{every}"\n'
        'jitter = "2s"\n\n'
        "[[shop]]\n"
        f'name = "{SHOP}"\n'
        f'domain = "{SHOP}.myshopify.com"\n'
        f'api_url = "{api_url}"\n'
        'access_token = { file = "token" }\n'
    )
    return path


def _banner(directory: Path, config: Path, url: str, state: DemoState, first: bool, sim_url: str) -> str:
    here = Path.cwd()
    shown = config.relative_to(here) if config.is_relative_to(here) else config
    cli = ".venv/bin/shopsync" if (here / ".venv/bin/shopsync").exists() else "shopsync"
    what = (
        f"first run: backfilling {state.orders:,} orders and the rest of the store"
        if first
        else "resuming from the saved state (no backfill)"
    )
    return "\n".join(
        [
            "",
            f"shopsync demo — {what}",
            f"  simulated shop  {sim_url}/shops/{SHOP}/  (live changes: new orders, updates, deletions)",
            f"  metrics         {url}/metrics",
            f"  status (JSON)   {url}/status",
            f"  health          {url}/healthz   {url}/readyz",
            f"  status table    {cli} status --config {shown}",
            f"  records         sqlite3 {directory / 'shopsync.db'} \"SELECT count(*) FROM orders\"",  # noqa: S608 -- a hint printed for the user, never run
            "Ctrl-C stops (checkpoints are kept; run it again to resume).",
            "",
        ]
    )


async def _demo(args: argparse.Namespace, directory: Path, state: DemoState, first: bool, token: str) -> int:
    from shopsync.daemon.app import Daemon
    from shopsync.settings import load_settings
    from shopsync.simulator.config import DataConfig, MutatorConfig, SimConfig
    from shopsync.simulator.server import run_simulator

    sim = SimConfig(
        shop_name=SHOP,
        access_tokens=(token,),
        time_scale=args.time_scale,
        data=DataConfig(seed=state.seed, orders=state.orders, anchor=state.anchor),
        mutator=MutatorConfig(orders_per_day=args.orders_per_day, burst_every=3600.0, burst_size=200),
    )
    async with run_simulator(sim) as server:
        shop = server.shop()
        config = write_config(directory, api_url=shop.graphql_url, listen=args.listen, every=args.every)
        settings = load_settings(config)
        daemon = Daemon(settings, manage_logging=True)
        task = asyncio.create_task(daemon.run_forever(handle_signals=True))
        ready = asyncio.create_task(daemon.running.wait())
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            print(_banner(directory, config, daemon.http_url or "", state, first, server.url), file=sys.stderr, flush=True)
        else:
            ready.cancel()
        return await task


def run(args: argparse.Namespace) -> int:
    from shopsync.commands.error_line import print_error
    from shopsync.daemon.scheduler import quiet_apscheduler
    from shopsync.errors import StartupError
    from shopsync.observability.logs import setup_logging

    setup_logging(format="auto", level="info", stream=sys.stderr)
    quiet_apscheduler(logging.INFO)
    directory = Path(args.dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    state, first = DemoState.load_or_create(directory, orders=args.orders)
    token = _token(directory)
    try:
        return asyncio.run(_demo(args, directory, state, first, token))
    except StartupError as exc:
        print_error("demo", f"{exc} (another demo running? try --listen 127.0.0.1:9465)")
        return 1
