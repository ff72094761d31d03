"""Issue 10, "answers are checked, never trusted": syncs against a simulated shop serving hostile answers.

Each hostile switch of the simulator (``bad_data``, ``cursor``, ``bulk_bad_line``) is shown twice:
fired once (a glitch), the sync completes and the sink equals the shop's truth; fired on every
matching request, the stream fails with a message naming the shop, the resource and the fault —
never a traceback — the checkpoint names no more than what the sink holds, and a run after the
fault is gone ends exact.
"""

from __future__ import annotations

import os
import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from shopsync.engine.engine import SyncEngine, SyncReport
from shopsync.errors import TransientError
from shopsync.observability.events import NullObserver
from shopsync.settings import load_settings
from shopsync.simulator.hostile import ORPHAN_ID
from shopsync.simulator.server import SimulatedShop, run_simulator
from shopsync.state.open import open_storage
from tests.e2e.conftest import sim_config, sync_subprocess, token_env, write_config
from tests.support import assert_matches_truth, sink_rows

SMALL = {
    "orders": 300, "customers": 40, "products": 10, "locations": 2, "collections": 3,
    "big_orders": 1, "big_order_line_items": 60, "tie_groups": 1, "tie_group_size": 40,
}  # fmt: skip
SYNC = {"max_attempts": 3}


class Recorder(NullObserver):
    """Counts guard mismatches by kind; ``after_first_page`` runs once, after the first commit."""

    def __init__(self, after_first_page: Callable[[], None] | None = None) -> None:
        self.mismatches: Counter[str] = Counter()
        self.records = 0
        self._after_first_page = after_first_page

    def on_records(self, shop: str, resource: str, path: str, count: int) -> None:
        self.records += count
        if self._after_first_page is not None:
            hook, self._after_first_page = self._after_first_page, None
            hook()

    def on_guard_mismatch(self, shop: str, resource: str, kind: str) -> None:
        self.mismatches[kind] += 1


async def sync(config: Path, shop: SimulatedShop, observer: Recorder | None = None) -> SyncReport:
    settings = load_settings(config, env={**os.environ, **token_env(shop)})
    storage = await open_storage(settings)
    try:
        async with SyncEngine(settings, storage.state, work_dir=settings.work_dir, observer=observer) as engine:
            return await engine.run_once()
    finally:
        await storage.close()


def stream_row(db: Path, resource: str = "orders") -> dict:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        row = con.execute("SELECT * FROM stream_state WHERE shop = 'sim' AND resource = ?", (resource,)).fetchone()
    finally:
        con.close()
    return dict(row) if row is not None else {}


def bulk_ops(db: Path, resource: str = "orders") -> list[tuple[str, int]]:
    con = sqlite3.connect(db)
    try:
        return con.execute(
            "SELECT status, finished FROM bulk_operations WHERE resource = ? ORDER BY created_at, id", (resource,)
        ).fetchall()
    finally:
        con.close()


def only_failure(report: SyncReport) -> str:
    [failed] = report.failures()
    assert (failed.shop, failed.resource) == ("sim", "orders")
    assert failed.error is not None and failed.exception is not None
    assert failed.error == f"{type(failed.exception).__name__}: {failed.exception}"
    return failed.error


def failure(report: SyncReport) -> BaseException:
    only_failure(report)
    exc = report.failures()[0].exception
    assert exc is not None
    return exc


def assert_sink_holds_only_truth(shop: SimulatedShop, db: Path, expected_rows: int) -> None:
    """What was written before the failure is exact, and it is all the checkpoint counts."""
    rows = sink_rows(db, "orders", "sim")
    truth = shop.truth("orders")
    assert len(rows) == expected_rows
    assert all(rows[i] == truth[i] for i in rows), "a written record differs from the shop's"


async def finish_without_faults(shop: SimulatedShop, config: Path, db: Path) -> None:
    shop.faults.reset()
    report = await sync(config, shop)
    assert report.ok, report.failures()
    assert_matches_truth(shop, db, resources=["orders"])


def orders_config(tmp_path: Path, shop: SimulatedShop, path: str) -> Path:
    return write_config(
        tmp_path / "shopsync.toml", [shop], sync={"path": path, **SYNC}, extra_shop_keys={"sim": {"resources": ["orders"]}}
    )


# -- malformed answers ---------------------------------------------------------------------------
MALFORMED = [
    ("empty", "orders", "data.orders missing"),
    ("null", "orders", "no data and no errors"),
    ("nodes_string", "orders", "data.orders.edges is a string ('[object Object]'), not a list"),
    ("no_page_info", "orders", "data.orders.pageInfo missing"),
    ("count_string", "ordersCount", "data.ordersCount.count is a string ('many'), not a count"),
]


@pytest.mark.parametrize(("mode", "match", "problem"), MALFORMED, ids=[m for m, _, _ in MALFORMED])
async def test_a_malformed_answer_once_is_retried_and_the_copy_is_exact(tmp_path, mode, match, problem):
    async with run_simulator(sim_config(data=SMALL)) as server:
        shop = server.shop()
        shop.faults.set(bad_data=mode, bad_data_count=1, bad_data_match=match)
        config = orders_config(tmp_path, shop, "paginated")
        report = await sync(config, shop)
        assert report.ok, report.failures()
        assert shop.counters.faults["bad_data"] == 1, "the fault never fired"
        assert_matches_truth(shop, tmp_path / "state.db", resources=["orders"])


@pytest.mark.parametrize(("mode", "match", "problem"), MALFORMED, ids=[m for m, _, _ in MALFORMED])
async def test_a_malformed_answer_for_good_fails_the_stream_by_name_and_writes_nothing_of_it(tmp_path, mode, match, problem):
    db = tmp_path / "state.db"
    async with run_simulator(sim_config(data=SMALL)) as server:
        shop = server.shop()
        shop.faults.set(bad_data=mode, bad_data_match=match)
        config = orders_config(tmp_path, shop, "paginated")
        report = await sync(config, shop)
        exc = failure(report)
        assert isinstance(exc, TransientError)  # retried like a 5xx, then given up
        where = "resource orders" + (" (count)" if match == "ordersCount" else "")
        problems = problem if isinstance(problem, tuple) else (problem,)
        assert str(exc) in {f"shop sim: {where}: malformed answer: {p}" for p in problems}
        error = only_failure(report)
        # Retried like a 5xx: every attempt of the request was answered, then the stream gave up.
        assert shop.counters.faults["bad_data"] == SYNC["max_attempts"]
        state = stream_row(db)
        assert state["watermark"] is None and state["last_error"] == error
        # Nothing of a bad answer is written: the sink holds exactly the pages the state counts.
        assert_sink_holds_only_truth(shop, db, state["records_in_window"])
        if match == "orders":
            assert state["records_in_window"] == 0 and state["cursor"] is None
        await finish_without_faults(shop, config, db)


async def test_a_malformed_page_after_committed_ones_leaves_the_cursor_at_the_last_good_page(tmp_path):
    db = tmp_path / "state.db"
    async with run_simulator(sim_config(data=SMALL)) as server:
        shop = server.shop()
        recorder = Recorder(after_first_page=lambda: shop.faults.set(bad_data="no_page_info", bad_data_match="orders"))
        config = orders_config(tmp_path, shop, "paginated")
        report = await sync(config, shop, recorder)
        assert only_failure(report).endswith("malformed answer: data.orders.pageInfo missing")
        state = stream_row(db)
        first_page = recorder.records
        assert 0 < first_page < len(shop.truth("orders"))
        assert state["cursor"] is not None and state["records_in_window"] == first_page
        assert_sink_holds_only_truth(shop, db, first_page)
        await finish_without_faults(shop, config, db)


# -- pagination that does not advance -----------------------------------------------------------
CURSORS = [
    ("repeat", "is the cursor the page was asked with"),
    ("null", "hasNextPage is true but endCursor is null"),
    ("empty_page", "an empty page with hasNextPage true"),
]


@pytest.mark.parametrize(("mode", "problem"), CURSORS, ids=[m for m, _ in CURSORS])
async def test_a_stalled_page_once_is_read_again_and_the_copy_is_exact(tmp_path, mode, problem):
    async with run_simulator(sim_config(data=SMALL)) as server:
        shop = server.shop()
        shop.faults.set(cursor=mode, cursor_count=1, cursor_match="orders")
        recorder = Recorder()
        report = await sync(orders_config(tmp_path, shop, "paginated"), shop, recorder)
        assert report.ok, report.failures()
        assert shop.counters.faults["cursor"] == 1 and recorder.mismatches["pagination"] == 1
        assert_matches_truth(shop, tmp_path / "state.db", resources=["orders"])


@pytest.mark.parametrize(("mode", "problem"), CURSORS, ids=[m for m, _ in CURSORS])
async def test_a_page_that_never_advances_fails_the_stream_after_one_retry(tmp_path, mode, problem):
    db = tmp_path / "state.db"
    async with run_simulator(sim_config(data=SMALL)) as server:
        shop = server.shop()
        shop.faults.set(cursor=mode, cursor_match="orders")
        recorder = Recorder()
        config = orders_config(tmp_path, shop, "paginated")
        report = await sync(config, shop, recorder)
        error = only_failure(report)
        assert error.startswith("PaginationStalledError: shop sim: resource orders: pagination does not advance: page after ")
        assert problem in error and "read 2 times" in error
        # The stalled page was read twice, then the stream stopped: no loop.
        assert recorder.mismatches["pagination"] == 2 and shop.counters.faults["cursor"] == 2
        state = stream_row(db)
        assert state["watermark"] is None
        assert_sink_holds_only_truth(shop, db, state["records_in_window"])
        if mode == "repeat":  # fires from the second page on: the first one is committed
            assert state["records_in_window"] == recorder.records > 0 and state["cursor"] is not None
        else:  # fires on the first page already
            assert state["records_in_window"] == 0 and state["cursor"] is None
        await finish_without_faults(shop, config, db)


# -- bulk files -----------------------------------------------------------------------------------
BAD_LINES = [
    ("not_json", "bulk result line 2 is not JSON"),
    ("orphan", f"is a child of 'gid://shopify/Order/{ORPHAN_ID}', which is not in the file"),
]


@pytest.mark.parametrize(("mode", "problem"), BAD_LINES, ids=[m for m, _ in BAD_LINES])
async def test_a_bad_bulk_file_once_is_exported_again_and_the_copy_is_exact(tmp_path, mode, problem):
    db = tmp_path / "state.db"
    async with run_simulator(sim_config(data=SMALL)) as server:
        shop = server.shop()
        shop.faults.set(bulk_bad_line=mode, bulk_bad_line_count=1)
        recorder = Recorder()
        report = await sync(orders_config(tmp_path, shop, "bulk"), shop, recorder)
        assert report.ok, report.failures()
        assert shop.counters.as_dict()["bulk_bad_lines"] == 1
        assert recorder.mismatches["bulk_file"] == 1
        assert bulk_ops(db) == [("COMPLETED", 1), ("COMPLETED", 1)]  # the window exported twice
        assert_matches_truth(shop, db, resources=["orders"])


@pytest.mark.parametrize(("mode", "problem"), BAD_LINES, ids=[m for m, _ in BAD_LINES])
async def test_a_bad_bulk_file_for_good_fails_naming_the_line_and_writes_nothing(tmp_path, mode, problem):
    db = tmp_path / "state.db"
    async with run_simulator(sim_config(data=SMALL)) as server:
        shop = server.shop()
        shop.faults.set(bulk_bad_line=mode)
        config = orders_config(tmp_path, shop, "bulk")
        report = await sync(config, shop)
        error = only_failure(report)
        assert error.startswith("BulkFileError: shop sim: resource orders: bulk operation gid://shopify/BulkOperation/")
        assert problem in error and "bulk result line " in error and "exported 2 times" in error
        # Read again once (a new operation for the same window), then stopped; both are finished,
        # so the next run does not re-attach to a file known to be bad.
        assert bulk_ops(db) == [("COMPLETED", 1), ("COMPLETED", 1)]
        state = stream_row(db)
        assert state["watermark"] is None and state["bulk_operation_id"] is None
        assert sink_rows(db, "orders", "sim") == {}  # records missing children are never written
        await finish_without_faults(shop, config, db)


# -- the command line --------------------------------------------------------------------------------
async def test_shopsync_sync_prints_the_malformed_answer_without_a_traceback(tmp_path):
    async with run_simulator(sim_config(data=SMALL)) as server:
        shop = server.shop()
        shop.faults.set(bad_data="empty", bad_data_match="orders")  # `{"data": {}}`: once a KeyError traceback
        config = orders_config(tmp_path, shop, "paginated")
        result = await sync_subprocess(config, token_env(shop), deadline=120)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "FAILED sim/orders: MalformedAnswerError: shop sim: resource orders: malformed answer: data.orders missing" in result.stderr
    assert "Traceback" not in result.stderr and "KeyError" not in result.stderr
