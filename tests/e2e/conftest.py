"""Fixtures for end-to-end tests: the real engine against the real simulated shop over HTTP."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from shopsync.config import load_settings
from shopsync.engine.engine import SyncEngine, SyncReport
from shopsync.simulator.config import DataConfig, SimConfig
from shopsync.simulator.server import SimulatedShop, run_simulator
from shopsync.storage import open_storage
from tests.support import ALL_RESOURCES, assert_matches_truth, diff_records, sink_rows  # noqa: F401 (re-exported)

TOKEN_ENV = "E2E_SHOP_TOKEN"


def sim_config(name: str = "sim", **overrides: Any) -> SimConfig:
    """A small realistic shop: ties, a 400-line-item order, unicode, fast clock.

    The base data ends five minutes ago: a sync's window stops ``safety_margin`` before now, and
    records stamped in the last seconds (the simulator's default anchor is the current minute)
    would legitimately wait for the next run, which would make single-run comparisons flaky.
    """
    data = DataConfig(
        anchor=float(int(time.time()) - 300),
        seed=11, orders=2_000, products=60, customers=300, locations=3, collections=8,
        big_orders=1, big_order_line_items=400, tie_groups=1, tie_group_size=300,
    )
    if isinstance(overrides.get("data"), dict):
        overrides["data"] = replace(data, **overrides["data"])
    overrides.setdefault("data", data)
    overrides.setdefault("time_scale", 50.0)
    overrides.setdefault("index_lag", 1.0)
    return SimConfig(shop_name=name, **overrides)


def write_config(
    path: Path,
    shops: list[SimulatedShop],
    *,
    sink: str | None = None,
    sync: dict[str, Any] | None = None,
    extra_shop_keys: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """A shopsync.toml for ``shops`` (each reached through its simulator URL)."""
    sync = {"safety_margin": "2s", "overlap": "30s", "bulk_poll_min": "0.05s", "bulk_poll_max": "0.5s",
            "backoff_base": "0.05s", "backoff_cap": "0.5s", **(sync or {})}
    lines = [f'database = "sqlite:///{path.parent / "state.db"}"']
    if sink:
        lines += ["[sink]", f'url = "{sink}"']
    lines.append("[sync]")
    for key, value in sync.items():
        lines.append(f"{key} = {orjson.dumps(value).decode()}")
    for shop in shops:
        lines += [
            "[[shop]]",
            f'name = "{shop.name}"',
            f'domain = "{shop.name}.myshopify.com"',
            f'access_token = {{ env = "{TOKEN_ENV}" }}',
            f'api_url = "{shop.graphql_url}"',
        ]
        for key, value in (extra_shop_keys or {}).get(shop.name, {}).items():
            lines.append(f"{key} = {orjson.dumps(value).decode()}")
    path.write_text("\n".join(lines) + "\n")
    return path


def token_env(shop: SimulatedShop) -> dict[str, str]:
    return {TOKEN_ENV: shop.token}


class OffsetClock:
    """Wall-clock time plus an offset the test can push forward, shared by simulator and engine.

    Lets a test make "the safety margin has passed" true at once instead of sleeping through it.
    """

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


async def sync_once(config: Path, env: dict[str, str], *, clock=time.time) -> SyncReport:
    """Run the engine in this process, as ``shopsync sync`` would."""
    settings = load_settings(config, env={**os.environ, **env})
    storage = await open_storage(settings)
    try:
        async with SyncEngine(settings, storage.state, work_dir=settings.work_dir, clock=clock) as engine:
            return await engine.run_once()
    finally:
        await storage.close()


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


async def sync_subprocess(config: Path, env: dict[str, str], *, extra_env: dict[str, str] | None = None,
                          deadline: float = 300) -> CliResult:
    """Run ``python -m shopsync sync`` in a child process (the simulator keeps serving meanwhile)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shopsync", "sync", "--config", str(config), "--log-format", "json",
        env={**os.environ, **env, **(extra_env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), deadline)
    return CliResult(proc.returncode, out.decode(), err.decode())


@pytest.fixture
async def shop() -> AsyncIterator[SimulatedShop]:
    async with run_simulator(sim_config()) as server:
        yield server.shop()
