"""Fixtures for end-to-end tests: the real engine against the real simulated shop over HTTP."""

from __future__ import annotations

import asyncio
import os
import sqlite3
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


def sink_rows(db: Path, resource: str, shop: str, *, include_deleted: bool = False) -> dict[str, dict]:
    """The SQLite sink's rows for one shop and resource, as parsed JSON keyed by id."""
    con = sqlite3.connect(db)
    try:
        query = f'SELECT id, data, deleted_at FROM "{resource}" WHERE shop = ?'
        rows = con.execute(query, (shop,)).fetchall()
    except sqlite3.OperationalError:
        return {}
    finally:
        con.close()
    return {i: (orjson.loads(d) if d is not None else None) for i, d, deleted in rows if include_deleted or deleted is None}


def sink_row_count(db: Path, resource: str) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute(f'SELECT count(*) FROM "{resource}"').fetchone()[0]
    finally:
        con.close()


def diff_records(expected: dict[str, dict], actual: dict[str, dict]) -> str:
    """A short human description of how two id->record maps differ ('' when equal)."""
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = sorted(i for i in set(expected) & set(actual) if expected[i] != actual[i])
    if not (missing or extra or changed):
        return ""
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
    if extra:
        parts.append(f"{len(extra)} unexpected (e.g. {extra[:3]})")
    if changed:
        i = changed[0]
        keys = sorted(k for k in set(expected[i]) | set(actual[i]) if expected[i].get(k) != actual[i].get(k))
        parts.append(f"{len(changed)} differ (e.g. {i} in {keys[:5]})")
    return "; ".join(parts)


ALL_RESOURCES = ("orders", "products", "customers", "inventory_items", "inventory_levels", "locations", "collections")


def assert_matches_truth(shop: SimulatedShop, db: Path, resources=ALL_RESOURCES) -> None:
    problems = []
    for resource in resources:
        d = diff_records(shop.truth(resource), sink_rows(db, resource, shop.name))
        if d:
            problems.append(f"{shop.name}/{resource}: {d}")
    assert not problems, "\n".join(problems)


@pytest.fixture
async def shop() -> AsyncIterator[SimulatedShop]:
    async with run_simulator(sim_config()) as server:
        yield server.shop()
