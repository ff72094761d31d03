"""A latency-bound paged window read as several cursor chains at once (issue 11, budget use).

With Shopify-like round trips one cursor chain cannot spend the restore rate, so the rest of the
window is cut into time slices, each its own chain, paged at once under the shop's one budget.
The records are the same bytes as one chain's; the stream's watermark only moves over the finished
prefix of slices, so a failure in a middle slice leaves it before that slice and a rerun reads
only what had not finished.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from shopsync.engine import paginated
from shopsync.engine.engine import SyncEngine, SyncReport
from shopsync.errors import StorageError
from shopsync.settings import load_settings
from shopsync.simulator.server import SimulatedShop, run_simulator
from shopsync.state.models import Record, StreamState
from shopsync.state.open import open_storage
from shopsync.timeutil import parse_ts
from tests.support.sinks import read_only, stream_states

from .conftest import assert_matches_truth, sim_config, token_env, write_config

ORDERS = {"sim": {"resources": ["orders"]}}
#: Every answer held 1 simulated second more (20 ms of wall time at the preset's time scale 50):
#: on Plus (50,000 points a wall second here) a page's round trip then allows more points than a
#: page can cost (at most 1,000), so one chain is latency-bound whatever the machine's speed.
LATENCY = {"slow": 1.0, "slow_seconds": 1.0}


def _config() -> Any:
    return sim_config(plan="plus", faults=LATENCY, data={"orders": 1_500})


def _raw_rows(db: Path, shop: str) -> dict[str, bytes]:
    """The sink's orders as stored: id → the record's JSON bytes."""
    return {r["id"]: r["data"].encode() if isinstance(r["data"], str) else bytes(r["data"]) for r in read_only(db, "SELECT id, data FROM orders WHERE shop = ?", (shop,)) or []}


def _slices(db: Path) -> dict[str, dict[str, Any]]:
    return {res: row for (_, res), row in stream_states(db).items() if res.startswith("orders@slice")}


class FailingCommits:
    """The engine's state store, except that the ``nth`` page commit of ``resource`` fails (as a
    full disk would): nothing of that page is written and its checkpoint stays where it was."""

    def __init__(self, inner: Any, resource: str, nth: int) -> None:
        self.inner, self.resource, self.nth, self.seen = inner, resource, nth, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def commit(self, state: StreamState, records: Sequence[Record] = (), *args: Any, **kwargs: Any) -> Any:
        if state.resource == self.resource:
            self.seen += 1
            if self.seen == self.nth:
                raise StorageError(f"injected: commit {self.nth} of {self.resource} fails")
        return await self.inner.commit(state, records, *args, **kwargs)


async def _sync(folder: Path, shop: SimulatedShop, *, fail: tuple[str, int] | None = None) -> SyncReport:
    config = write_config(folder / "shopsync.toml", [shop], sync={"path": "paginated"}, extra_shop_keys=ORDERS)
    settings = load_settings(config, env={**os.environ, **token_env(shop)})
    storage = await open_storage(settings)
    state = FailingCommits(storage.state, *fail) if fail else storage.state
    try:
        async with SyncEngine(settings, state, work_dir=settings.work_dir) as engine:  # type: ignore[arg-type]
            return await engine.run_once()
    finally:
        await storage.close()


@pytest.fixture
async def shop():
    async with run_simulator(_config()) as server:
        yield server.shop()


async def test_several_chains_write_the_same_bytes_as_one(tmp_path, shop, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="shopsync.engine")
    for name in ("one", "several"):
        (tmp_path / name).mkdir()
    with monkeypatch.context() as m:
        m.setattr(paginated, "MAX_CHAINS", 1)
        one = await _sync(tmp_path / "one", shop)
    assert one.ok, one.failures()
    assert not _slices(tmp_path / "one" / "state.db")  # one chain: never cut

    several = await _sync(tmp_path / "several", shop)
    assert several.ok, several.failures()
    slices = _slices(tmp_path / "several" / "state.db")
    assert len(slices) >= 2, caplog.text[-3000:]
    assert "cursor chains at once" in caplog.text
    # Every slice finished, and so did the window.
    assert all(row["window_end"] is None for row in slices.values()), slices
    assert stream_states(tmp_path / "several" / "state.db")[("sim", "orders")]["window_end"] is None

    assert_matches_truth(shop, tmp_path / "several" / "state.db", ("orders",))
    single, sliced = _raw_rows(tmp_path / "one" / "state.db", "sim"), _raw_rows(tmp_path / "several" / "state.db", "sim")
    assert len(single) == 1_500
    assert sliced == single  # byte for byte


async def test_a_failed_middle_slice_holds_the_watermark_before_it_and_a_rerun_completes(tmp_path, shop):
    (tmp_path / "run").mkdir()
    db = tmp_path / "run" / "state.db"
    # The second page of slice 1 cannot be written: its first page is in, the rest is not.
    failed = await _sync(tmp_path / "run", shop, fail=("orders@slice1", 2))
    assert not failed.ok
    assert "injected" in (failed.streams[0].error or "")
    states = stream_states(db)
    main = states[("sim", "orders")]
    slices = _slices(db)
    assert len(slices) >= 3, slices
    first, middle = slices["orders@slice0"], slices["orders@slice1"]
    # Slice 0 done; slice 1 still in flight at its first page's cursor; the watermark is slice 0's end.
    assert first["window_end"] is None and first["watermark"] is not None
    assert middle["window_end"] is not None and middle["cursor"] is not None
    assert main["watermark"] == first["watermark"]
    assert parse_ts(main["watermark"]) < parse_ts(middle["window_end"])
    assert main["window_end"] is not None  # the window is still in flight
    # The slices after the failed one were read to their end all the same.
    later = [row for res, row in slices.items() if res not in ("orders@slice0", "orders@slice1")]
    assert later and all(row["window_end"] is None for row in later), later
    in_middle_before = middle["records_in_window"]
    middle_bounds = (middle["window_start"], middle["window_end"])

    rerun = await _sync(tmp_path / "run", shop)
    assert rerun.ok, rerun.failures()
    assert_matches_truth(shop, db, ("orders",))
    assert states[("sim", "orders")]["window_end"] is not None
    assert stream_states(db)[("sim", "orders")]["window_end"] is None  # the window completed
    # Only the failed slice was read again, from its cursor on: the rest of its records, no more.
    start, end = (parse_ts(t) for t in middle_bounds)
    in_middle = sum(1 for rec in shop.truth("orders").values() if start <= parse_ts(rec["updatedAt"]) <= end)
    assert in_middle_before > 0
    assert rerun.streams[0].records == in_middle - in_middle_before
