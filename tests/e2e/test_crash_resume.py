"""kill -9 of ``shopsync sync`` at named points and at random instants, then a rerun.

After the rerun nothing is lost, no row is duplicated, and a bulk operation that was running (or
whose file was being read) is re-attached to rather than started again.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import sys
import time

import orjson
import pytest

from shopsync.engine.bulk_files import INGEST_BATCH
from shopsync.queries import builder
from shopsync.settings import load_settings
from shopsync.simulator.server import run_simulator
from shopsync.state.jsonl import read_latest
from shopsync.state.models import StreamState
from shopsync.state.open import open_storage
from shopsync.timeutil import format_ts, from_epoch, parse_ts

from .conftest import (
    TOKEN_ENV,
    assert_matches_truth,
    diff_records,
    sim_config,
    sync_subprocess,
    token_env,
    write_config,
)

ORDERS_ONLY = {"resources": ["orders"]}
SAFETY_MARGIN = 2  # seconds: tests/e2e/conftest.py's write_config default


def _bulk_created(shop) -> int:
    return shop.counters.as_dict()["bulk_operations"].get("CREATED", 0)


def _watermark(db, resource):
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT watermark FROM stream_state WHERE resource = ?", (resource,)).fetchone()[0]
    finally:
        con.close()


def _recorded_bulk_ops(db):
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT window_start, window_end, id FROM bulk_operations ORDER BY created_at").fetchall()
    finally:
        con.close()


def _row_count(db, resource):
    con = sqlite3.connect(db)
    try:
        return con.execute(f'SELECT count(*) FROM "{resource}"').fetchone()[0]
    finally:
        con.close()


# (crash point and hit number, path, sink)
NAMED = [
    ("mid_page:3", "paginated", "sqlite"),
    ("after_commit:3", "paginated", "sqlite"),
    ("after_sink_write:3", "paginated", "jsonl"),
    ("polling:1", "bulk", "sqlite"),
    ("mid_download:1", "bulk", "sqlite"),
    ("mid_bulk_write:2", "bulk", "sqlite"),
    ("mid_bulk_write:2", "bulk", "jsonl"),
]


@pytest.mark.parametrize(("point", "path", "sink"), NAMED, ids=[f"{p}-{s}" for p, _, s in NAMED])
async def test_kill_at_named_point_then_rerun(tmp_path, point, path, sink):
    # A kill in the middle of a bulk file's records needs a file of more than one commit
    # (INGEST_BATCH records each).
    orders = INGEST_BATCH + 1_000 if point.startswith("mid_bulk_write") else 1_500
    cfg = sim_config(time_scale=100.0, data={"orders": orders})
    async with run_simulator(cfg) as server:
        shop = server.shop()
        sink_url = f"jsonl://{tmp_path / 'out'}" if sink == "jsonl" else None
        config = write_config(tmp_path / "shopsync.toml", [shop], sink=sink_url, sync={"path": path},
                              extra_shop_keys={"sim": ORDERS_ONLY})
        # The killed run leaves a window ending a minute ago; the rerun (margin 2 s) must not stop there.
        write_config(config, [shop], sink=sink_url, sync={"path": path, "safety_margin": "60s"},
                     extra_shop_keys={"sim": ORDERS_ONLY})
        crashed = await sync_subprocess(config, token_env(shop), extra_env={"SHOPSYNC_CRASHPOINT": point})
        assert crashed.returncode == -signal.SIGKILL, (crashed.returncode, crashed.stderr[-2000:])
        write_config(config, [shop], sink=sink_url, sync={"path": path}, extra_shop_keys={"sim": ORDERS_ONLY})
        rerun_started = time.time()
        rerun = await sync_subprocess(config, token_env(shop))
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        # The rerun finished the interrupted window and then read on up to its own "now".
        watermark = _watermark(tmp_path / "state.db", "orders")
        assert parse_ts(watermark).timestamp() >= int(rerun_started) - SAFETY_MARGIN, watermark

        truth = shop.truth("orders")
        if sink == "jsonl":
            latest = read_latest(tmp_path / "out", shop.name, "orders")
            got = {i: orjson.loads(row.data) for i, row in latest.items() if row.deleted_at is None}
            assert not diff_records(truth, got)
        else:
            assert_matches_truth(shop, tmp_path / "state.db", resources=["orders"])
            assert _row_count(tmp_path / "state.db", "orders") == len(truth), "a duplicate or stray row"
        if path == "bulk":
            # The operation started before the kill was re-attached to, never started again: one
            # operation per window, and none running at the shop that the state does not know.
            ops = _recorded_bulk_ops(tmp_path / "state.db")
            windows = [(start, end) for start, end, _ in ops]
            assert len(windows) == len(set(windows)), ops
            assert _bulk_created(shop) == len(ops), (shop.counters.as_dict()["bulk_operations"], ops)
            assert "resuming the bulk window" in rerun.stderr


async def test_kill_at_random_instants_then_rerun(tmp_path):
    """Three runs killed at seeded random moments, then one run to completion: an exact copy."""
    rng = random.Random(20261125)
    cfg = sim_config(data={"orders": 3_000, "customers": 400})
    async with run_simulator(cfg) as server:
        shop = server.shop()
        config = write_config(tmp_path / "shopsync.toml", [shop], sync={"bulk_threshold": 500})
        env = {**os.environ, TOKEN_ENV: shop.token}
        killed = 0
        for _ in range(3):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "shopsync", "sync", "--config", str(config), "--log-format", "json",
                env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                await asyncio.wait_for(proc.wait(), timeout=rng.uniform(0.8, 3.0))
            except TimeoutError:
                proc.kill()
                await proc.wait()
                killed += 1
        assert killed, "no run was interrupted; the random instants are too late for this shop's size"
        final = await sync_subprocess(config, token_env(shop))
        assert final.returncode == 0, final.stderr[-3000:]
        assert_matches_truth(shop, tmp_path / "state.db")


@pytest.mark.parametrize("earlier", ["none", "failed"])
async def test_operations_started_before_their_record_are_adopted_and_accounted_for(tmp_path, earlier):
    """A run killed after saving a bulk window but before recording its operation leaves a
    running operation that no state names; a lost answer, resent after that operation had
    failed, leaves two. The next run adopts the newest — whatever its status: a ``TIMEOUT``
    splits the window as usual — records the older one as finished, and starts nothing that is
    not needed: every operation the shop ran ends up in the state database."""
    async with run_simulator(sim_config()) as server:
        shop = server.shop()
        config = write_config(tmp_path / "shopsync.toml", [shop], sync={"path": "bulk"}, extra_shop_keys={shop.name: ORDERS_ONLY})
        settings = load_settings(config, env={**os.environ, **token_env(shop)})
        resource = settings.resources["orders"]
        end = parse_ts(format_ts(from_epoch(time.time() - 60)))
        inner = builder.bulk_query(resource, builder.window_search(None, end))
        # What the killed run left: the window saved, its operation(s) started but not recorded.
        storage = await open_storage(settings)
        await storage.state.save_stream(StreamState(shop=shop.name, resource="orders", window_end=format_ts(end), path="bulk"))
        await storage.close()
        ops = []
        for _ in range(2 if earlier == "failed" else 1):  # each fails with TIMEOUT
            shop.faults.set(bulk_fail="TIMEOUT", bulk_fail_after=0.3, bulk_fail_count=1)
            payload = shop.bulk.resolve_run_query({"query": inner, "groupObjects": False})
            op = shop.bulk.by_gid(payload["bulkOperation"]["id"])
            await op.task
            ops.append(op)
        shop.faults.reset()
        assert [op.status for op in ops] == ["FAILED"] * len(ops)

        done = await sync_subprocess(config, token_env(shop))
        assert done.returncode == 0, done.stderr[-3000:]
        recorded = {op_id: (status, code) for _, _, op_id, status, code in _recorded_bulk_ops_status(tmp_path / "state.db")}
        at_shop = {op.gid for op in shop.bulk.operations.values()}
        assert set(recorded) == at_shop, (recorded, at_shop)
        # New operations: the two halves of the adopted timed-out one, then the window on to now.
        assert len(at_shop) == len(ops) + 3 and recorded[ops[-1].gid] == ("FAILED", "TIMEOUT")
        assert_matches_truth(shop, tmp_path / "state.db", resources=["orders"])


def _recorded_bulk_ops_status(db):
    con = sqlite3.connect(db)
    try:
        return con.execute(
            "SELECT window_start, window_end, id, status, error_code FROM bulk_operations ORDER BY created_at"
        ).fetchall()
    finally:
        con.close()


async def test_kill_between_a_failed_export_and_its_re_read_then_rerun(tmp_path):
    """Killed after a failed export (shuffled roots, partial data) was recorded and before its
    window was exported again: the rerun plans the re-export from the bulk_operations ledger —
    the failed window's first half, not the whole window again as if nothing had failed — and
    the copy is exact."""
    async with run_simulator(sim_config()) as server:
        shop = server.shop()
        shop.faults.set(bulk_order="shuffled_blocks", bulk_fail="INTERNAL_SERVER_ERROR", bulk_fail_after=0.5, bulk_fail_count=1)
        config = write_config(tmp_path / "shopsync.toml", [shop], sync={"path": "bulk"}, extra_shop_keys={shop.name: ORDERS_ONLY})
        crashed = await sync_subprocess(config, token_env(shop), extra_env={"SHOPSYNC_CRASHPOINT": "after_failed_export"})
        assert crashed.returncode == -signal.SIGKILL, (crashed.returncode, crashed.stderr[-2000:])
        (failed,) = _recorded_bulk_ops_status(tmp_path / "state.db")
        assert failed[3:] == ("FAILED", "INTERNAL_SERVER_ERROR"), failed
        rerun = await sync_subprocess(config, token_env(shop))
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert "after failed export" in rerun.stderr
        ops = _recorded_bulk_ops_status(tmp_path / "state.db")
        # The first operation of the rerun starts where the failed one did, on half its window.
        assert ops[1][0] == failed[0] and ops[1][1] < failed[1], ops
        assert all(op[3] == "COMPLETED" for op in ops[1:]), ops
        assert _bulk_created(shop) == len(ops), ops
        assert_matches_truth(shop, tmp_path / "state.db", resources=["orders"])
        assert _row_count(tmp_path / "state.db", "orders") == len(shop.truth("orders"))
