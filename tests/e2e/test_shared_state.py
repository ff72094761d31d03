"""Several shops in one state database: what one shop owns never meets another's.

The simulated shops number their bulk operations alike (``gid://shopify/BulkOperation/1`` is the
first export of every shop), as nothing in Shopify's API promises ids unique across shops, so the
bulk-operation ledger must be keyed by shop as well as by id.
"""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from shopsync.simulator.server import SimulatedShop, run_simulator
from shopsync.state.open import open_sink, open_storage
from tests.storage.conftest import pg_url  # noqa: F401 - the fresh-schema fixture

from .conftest import (
    ALL_RESOURCES,
    assert_matches_truth,
    diff_records,
    sim_config,
    sync_once,
    sync_subprocess,
    token_env,
    write_config,
)

SHOPS = ("north", "south", "east", "west")
#: Small shops (the same generator as every end-to-end run, fewer records): four of them run at once.
_DATA = {"orders": 300, "products": 20, "customers": 60, "tie_group_size": 60, "big_order_line_items": 120}


def _with_database(config: Path, database: str) -> Path:
    """The configuration with its ``database`` line replaced (the writer puts SQLite there)."""
    text = re.sub(r'(?m)^database = ".*"$', f"database = {orjson.dumps(database).decode()}", config.read_text())
    config.write_text(text)
    return config


async def _pg_differences(url: str, shops: list[SimulatedShop]) -> list[str]:
    sink = await open_sink(url)
    try:
        problems = []
        for shop in shops:
            for resource in ALL_RESOURCES:
                live = {
                    i: orjson.loads(row.data)
                    for i, row in (await sink.read_latest(shop.name, resource)).items()
                    if row.deleted_at is None and row.data is not None
                }
                d = diff_records(shop.truth(resource), live)
                if d:
                    problems.append(f"{shop.name}/{resource}: {d}")
        return problems
    finally:
        await sink.close()


async def _ledger(url: str, base_dir: Path) -> list[tuple[str, str, str]]:
    storage = await open_storage(url, base_dir=base_dir)
    try:
        ops = await storage.state.list_bulk_operations(unfinished_only=False)
        return sorted((op.shop, op.resource, op.id) for op in ops)
    finally:
        await storage.close()


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_four_shops_with_the_same_bulk_operation_ids_in_one_state_database(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    configs = [sim_config(name, data=_DATA) for name in SHOPS]
    async with run_simulator(*configs) as server:
        shops = [server.shops[name] for name in SHOPS]
        config = write_config(tmp_path / "shopsync.toml", shops, sync={"path": "bulk"})
        if backend == "postgresql":
            url = request.getfixturevalue("pg_url")
            _with_database(config, url)
        else:
            url = f"sqlite://{tmp_path / 'state.db'}"
        env = token_env(shops[0])  # every simulated shop accepts the same static token
        assert all(shop.token == shops[0].token for shop in shops)
        report = await sync_once(config, env)
        assert report.ok, report

        # The premise: every shop exported through operations numbered alike.
        ids = {shop.name: {op.gid for op in shop.bulk.operations.values()} for shop in shops}
        assert "gid://shopify/BulkOperation/1" in set.intersection(*ids.values()), ids

        # Every shop's operations are in the ledger under its own name, none overwritten by another's.
        ledger = await _ledger(url, tmp_path)
        problems = []
        for shop in shops:
            mine = {op_id for owner, _resource, op_id in ledger if owner == shop.name}
            if mine != ids[shop.name]:
                problems.append(f"ledger of {shop.name}: {sorted(mine)} instead of {sorted(ids[shop.name])}")
        # And every shop's sink equals its truth.
        if backend == "postgresql":
            problems += await _pg_differences(url, shops)
        else:
            for shop in shops:
                try:
                    assert_matches_truth(shop, tmp_path / "state.db")
                except AssertionError as exc:
                    problems.append(str(exc))
        assert not problems, "\n".join(problems)


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_killed_mid_export_then_rerun_resumes_each_shop_with_its_own_operation(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """kill -9 while the shops' bulk operations are being polled, then a rerun: each stream
    re-attaches to *its shop's* operation (the same id is another shop's too) and every sink
    ends equal to its truth."""
    configs = [sim_config(name, data=_DATA) for name in SHOPS]
    async with run_simulator(*configs) as server:
        shops = [server.shops[name] for name in SHOPS]
        config = write_config(tmp_path / "shopsync.toml", shops, sync={"path": "bulk"})
        if backend == "postgresql":
            url = request.getfixturevalue("pg_url")
            _with_database(config, url)
        else:
            url = f"sqlite://{tmp_path / 'state.db'}"
        env = token_env(shops[0])
        killed = await sync_subprocess(config, env, extra_env={"SHOPSYNC_CRASHPOINT": "polling:12"})
        assert killed.returncode == -9, killed.stderr[-2000:]
        unfinished = await _unfinished(url, tmp_path)
        assert unfinished, "the kill left no bulk operation to re-attach"
        again = await sync_subprocess(config, env)
        assert again.returncode == 0, again.stderr[-3000:]
        problems = []
        # Every operation either run started is in the ledger under its shop, and finished.
        ledger = await _ledger(url, tmp_path)
        for shop in shops:
            mine = {op_id for owner, _resource, op_id in ledger if owner == shop.name}
            theirs = {op.gid for op in shop.bulk.operations.values()}
            if mine != theirs:
                problems.append(f"ledger of {shop.name}: {sorted(mine)} instead of {sorted(theirs)}")
        if await _unfinished(url, tmp_path):
            problems.append(f"unfinished after the rerun: {await _unfinished(url, tmp_path)}")
        if backend == "postgresql":
            problems += await _pg_differences(url, shops)
        else:
            for shop in shops:
                try:
                    assert_matches_truth(shop, tmp_path / "state.db")
                except AssertionError as exc:
                    problems.append(str(exc))
        assert not problems, "\n".join(problems)


async def _unfinished(url: str, base_dir: Path) -> list[tuple[str, str]]:
    storage = await open_storage(url, base_dir=base_dir)
    try:
        return [(op.shop, op.id) for op in await storage.state.list_bulk_operations()]
    finally:
        await storage.close()
