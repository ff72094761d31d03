"""Fixtures for end-to-end tests: the real engine against the real simulated shop over HTTP."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shopsync.engine.engine import SyncEngine, SyncReport
from shopsync.settings import load_settings
from shopsync.simulator.server import SimulatedShop, run_simulator
from shopsync.state.open import open_storage
from tests.support import (  # noqa: F401 (re-exported)
    ALL_RESOURCES,
    OffsetClock,
    assert_matches_truth,
    diff_records,
    sim_config,
    sink_rows,
    write_shopsync_toml,
)

TOKEN_ENV = "E2E_SHOP_TOKEN"


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
    return write_shopsync_toml(path, shops, token_env=TOKEN_ENV, sync=sync, sink=sink, shop_keys=extra_shop_keys)


def token_env(shop: SimulatedShop) -> dict[str, str]:
    return {TOKEN_ENV: shop.token}


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
class PathRun:
    """One sync of some resources by one path, into a state database of its own."""

    report: SyncReport
    rows: dict[str, dict[str, Any]]  # resource → the sink's rows by id

    @property
    def paths(self) -> dict[str, str]:
        return {s.resource: s.path for s in self.report.streams}


async def sync_by_each_path(tmp_path: Path, shop: SimulatedShop, resources: tuple[str, ...]) -> dict[str, PathRun]:
    """Sync ``resources`` of ``shop`` once by the bulk path and once by the paginated one, each run
    into its own folder under ``tmp_path``; each run must succeed and leave a sink equal to the
    shop's truth."""
    runs = {}
    for path in ("bulk", "paginated"):
        d = tmp_path / path
        d.mkdir()
        config = write_config(d / "shopsync.toml", [shop], sync={"path": path},
                              extra_shop_keys={shop.name: {"resources": list(resources)}})  # fmt: skip
        report = await sync_once(config, token_env(shop))
        assert report.ok, report.failures()
        assert_matches_truth(shop, d / "state.db", resources)
        runs[path] = PathRun(report, {r: sink_rows(d / "state.db", r, shop.name) for r in resources})
    return runs


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
