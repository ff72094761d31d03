"""Calls to Shopify are fenced by the shop's lease, as the state database's writes are.

A daemon (in this process, on the real PostgreSQL) holds its shop's lease; the test then moves the
lease on *in the database* (another owner, a new epoch — what a takeover while the daemon was
paused leaves behind), behind the daemon's back: its in-memory fence still says it holds the shop.
The simulated shop counts the bulk operations started; none may be. With SQLite (one daemon) the
same run starts its export as before: nothing is checked there.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web

from shopsync.daemon.app import Daemon
from shopsync.errors import LeaseLostError
from shopsync.settings import load_settings
from shopsync.simulator.server import SimulatedShop, run_simulator
from shopsync.state.postgres import split_schema
from tests.storage.conftest import pg_url  # noqa: F401 - the fresh-schema fixture
from tests.support.daemon import small_shop, token_env, write_config

pytestmark = pytest.mark.usefixtures("quiet_logs")


def _config(tmp_path: Path, shop: SimulatedShop, database: str | None) -> Path:
    """One shop, its orders by bulk operations; ``database``: PostgreSQL instead of SQLite."""
    config = write_config(
        tmp_path / "shopsync.toml", [shop], sync={"path": "bulk"}, shop_keys={shop.name: {"resources": ["orders"]}}
    )
    if database is not None:
        text = re.sub(r'(?m)^database = ".*"$', f'database = "{database}"', config.read_text())
        config.write_text(text)
    return config


async def _take_over(url: str, shop: str) -> int:
    """Another daemon's lease of ``shop`` at the next epoch, written straight into the database."""
    dsn, schema = split_schema(url)
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        epoch: int = await conn.fetchval(
            f'UPDATE "{schema}".leases SET owner = $2, epoch = epoch + 1,'
            " expires_at = clock_timestamp() + interval '60 seconds', renewed_at = clock_timestamp()"
            " WHERE shop = $1 RETURNING epoch",
            shop,
            "intruder",
        )
    finally:
        await conn.close()
    return epoch


async def _started_daemon(config: Path, shop: SimulatedShop) -> Daemon:
    env = token_env(shop)
    daemon = Daemon(load_settings(config, env=env), env=env)
    await daemon.start(schedule=False)
    return daemon


def _refused(daemon: Daemon) -> float | None:
    return daemon.metrics.registry.get_sample_value("shopsync_writes_refused_total", {"reason": "shopify_call"})


async def test_a_run_of_a_shop_whose_lease_moved_on_sends_nothing_to_shopify(
    tmp_path: Path, pg_url: str, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    async with run_simulator(small_shop("acme")) as server:
        shop = server.shops["acme"]
        daemon = await _started_daemon(_config(tmp_path, shop, pg_url), shop)
        try:
            assert daemon.ownership is not None and daemon.ownership.holds("acme")
            epoch = await _take_over(pg_url, "acme")
            assert daemon.ownership.holds("acme")  # it has not noticed: no cycle ran since
            requests = shop.counters.requests
            with caplog.at_level(logging.WARNING):
                (result,) = await daemon.run_once()
            assert isinstance(result.exception, LeaseLostError) and result.exception.reason == "shopify_call"
            assert f"the lease moved on to intruder at epoch {epoch}" in str(result.exception)
            # The run's lease check, in the database, came before its first request.
            assert shop.counters.requests == requests and shop.bulk.stats["CREATED"] == 0
            assert _refused(daemon) == 1
            assert not daemon.ownership.holds("acme")
            assert any("stopping work on shop acme" in r.getMessage() for r in caplog.records)
        finally:
            await daemon.stop()


async def test_a_run_under_way_when_its_lease_moves_on_starts_no_bulk_operation(
    tmp_path: Path, pg_url: str, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    """The takeover lands while the run is already talking to the shop (its start check passed):
    the shop answers the run's look for an operation of its own (a query), then the run would
    start its export (a mutation) — the mutation's lease check refuses it, nothing is sent."""
    async with run_simulator(small_shop("acme")) as server:
        shop = server.shops["acme"]
        daemon = await _started_daemon(_config(tmp_path, shop, pg_url), shop)
        handle = shop.handle_graphql
        seen: list[str] = []
        taken: list[int] = []

        async def takeover_during_the_listing(request: web.Request) -> web.StreamResponse:
            body = (await request.read()).decode()
            name = re.search(r"\b(query|mutation)\s+(\w+)", body)
            seen.append(name.group(2) if name else body[:40])
            if seen[-1] == "RecentBulk" and not taken:
                taken.append(await _take_over(pg_url, "acme"))
            return await handle(request)

        shop.handle_graphql = takeover_during_the_listing  # type: ignore[method-assign]
        try:
            with caplog.at_level(logging.WARNING):
                (result,) = await daemon.run_once()
            assert taken, f"the run never looked for its operation: {seen}"
            assert isinstance(result.exception, LeaseLostError) and result.exception.reason == "shopify_call"
            assert "a mutation for shop acme" in str(result.exception)
            assert f"the lease moved on to intruder at epoch {taken[0]}" in str(result.exception)
            assert "RunBulk" not in seen and shop.bulk.stats["CREATED"] == 0, seen
            assert _refused(daemon) == 1
            assert daemon.ownership is not None and not daemon.ownership.holds("acme")
            assert any("stopping work on shop acme" in r.getMessage() for r in caplog.records)
            # Nothing more reaches the shop: the next run is refused before any request.
            before = shop.counters.requests
            assert await daemon.run_once() == []  # not run: the shop is no longer this daemon's
            assert shop.counters.requests == before
        finally:
            await daemon.stop()


async def test_with_sqlite_one_daemon_starts_its_exports_unchecked(tmp_path: Path) -> None:
    async with run_simulator(small_shop("acme")) as server:
        shop = server.shops["acme"]
        daemon = await _started_daemon(_config(tmp_path, shop, None), shop)
        try:
            assert daemon.ownership is None
            (result,) = await daemon.run_once()
            assert result.ok, result.error
            assert shop.bulk.stats["CREATED"] >= 1 and result.path == "bulk"
            assert _refused(daemon) is None
        finally:
            await daemon.stop()
