"""The sink equals the shop, record for record, whichever path brought the records."""

from __future__ import annotations

from shopsync.simulator.server import run_simulator
from tests.support.sinks import (
    ISSUE14_RESOURCES,
    METAFIELD_RESOURCES,
    ORDER_DETAIL_RESOURCES,
    ORDER_LINES_RESOURCES,
    ORDER_MONEY_RESOURCES,
)

from .conftest import (
    ALL_RESOURCES,
    assert_matches_truth,
    diff_records,
    sim_config,
    sink_rows,
    sync_once,
    token_env,
    write_config,
)


async def test_exact_copy_of_a_20k_order_shop(tmp_path):
    """Backfill by bulk, then an incremental run: ties, a 400-line-item order and unicode survive."""
    cfg = sim_config(data={"orders": 20_000, "customers": 2_000, "tie_groups": 2, "tie_group_size": 600, "big_orders": 3})
    async with run_simulator(cfg) as server:
        shop = server.shop()
        config = write_config(tmp_path / "shopsync.toml", [shop])
        report = await sync_once(config, token_env(shop))
        assert report.ok, report.failures()
        assert_matches_truth(shop, tmp_path / "state.db")
        orders = sink_rows(tmp_path / "state.db", "orders", shop.name)
        assert len(orders) == 20_000
        assert max(len(o["lineItems"]) for o in orders.values()) == 400
        texts = "".join(o.get("note") or "" for o in orders.values()) + "".join(
            (o.get("shippingAddress") or {}).get("name") or "" for o in orders.values()
        )
        assert any(ord(ch) > 0xFFFF for ch in texts), "expected emoji in the synced data"
        assert any("\u0590" <= ch <= "\u06ff" for ch in texts), "expected right-to-left text in the synced data"


async def test_bulk_and_paginated_paths_give_identical_records(tmp_path):
    # Metafields (paged per product) and the order-keyed resources (every order once more) have
    # their both-paths runs on a smaller shop (test_finance_resources.py, test_commerce_resources.py),
    # keeping this one near its old time.
    heavy = (*METAFIELD_RESOURCES, *ORDER_DETAIL_RESOURCES, *ORDER_MONEY_RESOURCES, *ORDER_LINES_RESOURCES)
    every = ALL_RESOURCES + tuple(r for r in ISSUE14_RESOURCES if r not in heavy)
    async with run_simulator(sim_config()) as server:
        shop = server.shop()
        results = {}
        for path in ("bulk", "paginated"):
            d = tmp_path / path
            d.mkdir()
            config = write_config(d / "shopsync.toml", [shop], sync={"path": path}, extra_shop_keys={shop.name: {"resources": list(every)}})
            report = await sync_once(config, token_env(shop))
            assert report.ok, report.failures()
            assert {s.path for s in report.streams if s.resource == "orders"} == {path}
            results[path] = {r: sink_rows(d / "state.db", r, shop.name) for r in every}
        for resource in every:
            assert results["bulk"][resource], resource
            assert not diff_records(results["bulk"][resource], results["paginated"][resource]), resource
        assert_matches_truth(shop, tmp_path / "bulk" / "state.db", every)


async def test_a_backfill_read_by_spill_workers_is_an_exact_copy(tmp_path, monkeypatch):
    """Every file past the budget (here: every file) read in parts by spill workers, as
    ``[sync] ingest_workers`` does for large files, never more workers at once than the setting:
    the copy is still exact."""
    from shopsync.engine import bulk_files, spill_worker

    monkeypatch.setattr(spill_worker, "MIN_PART_BYTES", 1)  # a part of any size is worth a worker
    calls = []

    def counted(reassembler, path, parts, **kw):
        calls.append((reassembler.shape.name, parts, spill_worker.SLOTS.in_use))
        return spill_worker.spill_in_parts(reassembler, path, parts, **kw)

    monkeypatch.setattr(bulk_files, "spill_in_parts", counted)
    cfg = sim_config(data={"orders": 600, "customers": 150, "big_orders": 2})
    async with run_simulator(cfg) as server:
        shop = server.shop()
        config = write_config(tmp_path / "shopsync.toml", [shop], sync={"path": "bulk", "ingest_memory": 0, "ingest_workers": 3})
        report = await sync_once(config, token_env(shop))
        assert report.ok, report.failures()
        assert_matches_truth(shop, tmp_path / "state.db")
    # Files reassembled at once share the three slots; one that finds fewer than two free is
    # read in the sync process.
    assert calls and all(2 <= parts <= in_use <= 3 for _name, parts, in_use in calls), calls
    assert spill_worker.SLOTS.in_use == 0
