"""What a daemon's small run writes: its one page and the window's close in one transaction, the
deletion events' row only when it found some or every STORE_EVERY seconds — and nothing lost."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from shopsync.engine import paginated, path_choice
from shopsync.engine.engine import DELETIONS_SUFFIX, SyncEngine
from shopsync.settings import load_settings
from shopsync.simulator.server import run_simulator
from shopsync.state import StateStore
from shopsync.state.open import open_storage
from tests.support import OffsetClock

from .conftest import assert_matches_truth, sim_config, sink_rows, token_env, write_config


class CountingStore:
    """The real state store, noting each transaction a stream's row was written in: the row's
    resource, how many records came with it, and whether it closed a window."""

    def __init__(self, inner: StateStore) -> None:
        self.inner = inner
        self.writes: list[tuple[str, int, bool]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def save_stream(self, state):
        self.writes.append((state.resource, 0, state.window_end is None))
        await self.inner.save_stream(state)

    async def commit(self, state, records=(), deletions=(), bulk=None):
        self.writes.append((state.resource, len(records) + len(deletions), state.window_end is None))
        return await self.inner.commit(state, records, deletions, bulk)


async def test_a_windows_pages_carry_its_opening_and_close_and_no_deletion_is_missed(tmp_path, monkeypatch):
    """After a backfill, each run of a few changed orders writes the orders stream once a page,
    the last page with the window's close (its count taken before the read is met by it). The
    ``@deletions`` row is written on the process's first look, then not for an empty look within
    STORE_EVERY seconds, and at once with a deletion or once it is STORE_EVERY old. A new process
    writes it on its first look, and finds the deletion made in between; the copy stays exact."""
    monkeypatch.setattr(paginated, "MAX_CHAINS", 1)  # one chain however slow this host's round trips
    clock = OffsetClock()
    async with run_simulator(sim_config(data={"orders": 300, "big_orders": 0}), clock=clock) as server:
        shop = server.shop()
        config = write_config(tmp_path / "shopsync.toml", [shop], sync={"bulk_threshold": 1_000},
                              extra_shop_keys={"sim": {"resources": ["orders"]}})  # fmt: skip
        settings = load_settings(config, env={**os.environ, **token_env(shop)})
        storage = await open_storage(settings)
        store = CountingStore(storage.state)
        deletions_key = "orders" + DELETIONS_SUFFIX

        async def run(engine: SyncEngine) -> Counter[str]:
            """Five orders changed, a run: the transactions of the orders stream's own rows (its
            path decision's row is another matter: path_choice.record), each checked."""
            store.writes.clear()
            for i in range(5):
                shop.store.update(shop.store.gid_of("Order", i))
            clock.advance(10)  # past the safety margin and the index lag
            report = await engine.run_once()
            assert report.ok, report.failures()
            assert report.streams[0].path == "paginated", report.streams
            pages = [(n, closes) for resource, n, closes in store.writes if resource == "orders"]
            # Every transaction of the stream carried a page of records, the last closed the
            # window: neither its opening nor its close cost one of its own.
            assert pages and all(n > 0 for n, _ in pages) and pages[-1][1], store.writes
            assert not any(closes for _, closes in pages[:-1]), store.writes
            return Counter(resource for resource, _, _ in store.writes if resource == deletions_key)

        try:
            async with SyncEngine(settings, store, work_dir=settings.work_dir, clock=clock) as engine:  # type: ignore[arg-type]
                assert (await engine.run_once()).ok  # the backfill, by bulk
                first_look = await storage.state.get_stream("sim", deletions_key)
                assert first_look is not None and first_look.watermark is not None
                assert await run(engine) == Counter()
                state = await storage.state.get_stream("sim", "orders")
                assert state is not None and state.window_end is None and state.cursor is None
                assert state.watermark is not None and state.watermark > first_look.watermark
                # An empty look did not rewrite the row: it still says what the first look saw.
                assert await storage.state.get_stream("sim", deletions_key) == first_look
                assert_matches_truth(shop, tmp_path / "state.db", resources=["orders"])

                deleted = shop.store.gid_of("Order", 200)
                shop.store.delete(deleted)
                assert await run(engine) == Counter({deletions_key: 1})
                assert deleted in sink_rows(tmp_path / "state.db", "orders", "sim", deleted=True)
                assert_matches_truth(shop, tmp_path / "state.db", resources=["orders"])

                clock.advance(path_choice.STORE_EVERY)
                writes = await run(engine)  # an empty look, but the row is STORE_EVERY old
                assert writes[deletions_key] == 1, writes
            # A new process: its first look writes the row and marks the deletion made in between.
            second = shop.store.gid_of("Order", 201)
            shop.store.delete(second)
            async with SyncEngine(settings, store, work_dir=settings.work_dir, clock=clock) as engine:  # type: ignore[arg-type]
                assert await run(engine) == Counter({deletions_key: 1})
            gone = sink_rows(tmp_path / "state.db", "orders", "sim", deleted=True)
            assert set(gone) == {deleted, second}, gone
        finally:
            await storage.close()
    assert_matches_truth(shop, tmp_path / "state.db", resources=["orders"])
