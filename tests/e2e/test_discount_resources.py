"""Discounts (issue 14): the discount nodes, code and automatic, with every redeem code, synced
end to end against the simulator with ``[sync] path`` bulk and paginated (read whole and
``bulk: no``, both page them: byte-identical, equal to the shop's truth), their views, a
reconciliation, and a missing read_discounts scope parking only them."""

from __future__ import annotations

import sqlite3

from shopsync.daemon.parking import Parking
from shopsync.errors import ShopUnavailableError
from shopsync.simulator.discount_records import DISCOUNT_MEMBERS
from shopsync.simulator.server import run_simulator
from shopsync.state.views import snake

from .conftest import (
    diff_records,
    sim_config,
    sink_rows,
    sync_by_each_path,
    sync_once,
    token_env,
    write_config,
)

#: The response key prefix of each union member's aliased fields (discount_nodes.graphql).
PREFIX = {
    "DiscountCodeBasic": "codeBasic", "DiscountCodeBxgy": "codeBxgy", "DiscountCodeFreeShipping": "codeFreeShipping",
    "DiscountCodeApp": "codeApp", "DiscountAutomaticBasic": "automaticBasic", "DiscountAutomaticBxgy": "automaticBxgy",
    "DiscountAutomaticFreeShipping": "automaticFreeShipping", "DiscountAutomaticApp": "automaticApp",
}  # fmt: skip


async def test_discount_nodes_of_every_kind_equal_the_shop_by_both_paths(tmp_path):
    # More than one page of nodes (the planner's first is 66): the cursor walk is exercised.
    async with run_simulator(sim_config(data={"discount_nodes": 260})) as server:
        shop = server.shop()
        runs = await sync_by_each_path(tmp_path, shop, ("discount_nodes",))
        # Read whole and page by page only (bulk: no): paged on either setting.
        assert all({s.path for s in run.report.streams} == {"paginated"} for run in runs.values())
        results = {path: run.rows["discount_nodes"] for path, run in runs.items()}
        assert not diff_records(results["bulk"], results["paginated"])
        got = results["paginated"]
        assert len(got) == 260
        base = {gid: shop.store.get(gid) for gid in got}
        for gid, record in got.items():
            stored = base[gid]["discount"]
            kind = record["discount"]["__typename"]
            assert kind == stored["__typename"]
            prefix = PREFIX[kind]
            # The member's own fields, under their names (its codes under the member's alias), and only those.
            expected = {prefix + "Codes" if k == "codes" else k for k in stored if k not in ("__typename", "id")}
            assert {k for k in record["discount"] if k != "__typename"} == expected
            assert record["discount"]["title"] == stored["title"]
            assert record["discount"]["updatedAt"] == stored["updatedAt"]
            if kind.startswith("DiscountCode"):
                # Every redeem code, in order, however many pages it took: as many as codesCount says.
                codes = record["discount"][prefix + "Codes"]
                assert [c["id"] for c in codes] == [c["id"] for c in stored["codes"]]
                assert len(codes) == record["discount"]["codesCount"]["count"] == stored["codesCount"]["count"]
        assert {r["discount"]["__typename"] for r in got.values()} == set(DISCOUNT_MEMBERS)
        big = got[shop.store.gid_of("DiscountNode", 0)]["discount"]["codeBasicCodes"]
        # A page carries 10 codes (the fragment's first): the other 110 came by draining (90, then 20).
        assert len(big) == 120 and len({c["id"] for c in big}) == 120

        # The views: one row per node, one child row per redeem code of each kind, under its node.
        con = sqlite3.connect(f"file:{tmp_path / 'paginated' / 'state.db'}?mode=ro", uri=True)
        try:
            assert con.execute("SELECT count(*) FROM discount_nodes_v").fetchone()[0] == 260
            for kind, prefix in PREFIX.items():
                if kind.startswith("DiscountCode"):
                    view = f"discount_nodes__discount__{snake(prefix)}_codes"
                    listed = sum(len(r["discount"].get(prefix + "Codes", ())) for r in got.values())
                    assert con.execute(f'SELECT count(*) FROM "{view}"').fetchone()[0] == listed > 0, view
            node0 = shop.store.gid_of("DiscountNode", 0)
            rows = con.execute(
                "SELECT position, code FROM discount_nodes__discount__code_basic_codes WHERE discount_node_id = ? ORDER BY position",
                (node0,),
            ).fetchall()
            assert rows == [(i + 1, c["code"]) for i, c in enumerate(big)]
            # One column per shared field, whichever member: every node's title, kind and code count.
            rows = con.execute("SELECT id, discount__typename, discount__title, discount__codes_count__count FROM discount_nodes_v").fetchall()
            assert {r[0]: (r[1], r[2], r[3]) for r in rows} == {
                gid: (r["discount"]["__typename"], r["discount"]["title"], (r["discount"].get("codesCount") or {}).get("count"))
                for gid, r in got.items()
            }
            columns = [c[1] for c in con.execute("PRAGMA table_info(discount_nodes_v)")]
            assert len([c for c in columns if c.endswith("title")]) == 1, columns
        finally:
            con.close()


async def test_a_missing_read_discounts_scope_parks_only_the_discounts(tmp_path):
    resources = ["discount_nodes", "gift_cards", "markets"]
    async with run_simulator(sim_config()) as server:
        shop = server.shop()
        shop.set_scopes(s for s in shop.config.scopes if s != "read_discounts")
        config = write_config(tmp_path / "shopsync.toml", [shop], extra_shop_keys={shop.name: {"resources": resources}})
        report = await sync_once(config, token_env(shop))
        failed = {s.resource: s for s in report.failures()}
        assert set(failed) == {"discount_nodes"}
        result = failed["discount_nodes"]
        assert "read_discounts" in (result.error or "")
        assert isinstance(result.exception, ShopUnavailableError) and result.exception.resource_only
        parked = Parking(base=300, maximum=3600).failed((shop.name, "discount_nodes"), result.exception, now=1000.0)
        assert parked is not None and not parked.whole_shop and "read_discounts" in parked.park.reason
        assert sink_rows(tmp_path / "state.db", "gift_cards", shop.name) and sink_rows(tmp_path / "state.db", "markets", shop.name)
        assert not sink_rows(tmp_path / "state.db", "discount_nodes", shop.name)


async def test_reconciling_the_discount_nodes_after_a_clean_sync_finds_nothing(tmp_path):
    """Their ids-only listing selects the id alone (a node has no updatedAt of its own); a
    reconciliation right after a sync lists every node and finds nothing to re-read or delete."""
    from tests.e2e.test_reconcile import reconcile_once

    async with run_simulator(sim_config()) as server:
        shop = server.shop()
        config = write_config(tmp_path / "shopsync.toml", [shop], extra_shop_keys={shop.name: {"resources": ["discount_nodes"]}})
        assert (await sync_once(config, token_env(shop))).ok
        results = await reconcile_once(config, token_env(shop))
        got = results["discount_nodes"]
        assert (got.ok, got.error, got.skipped, got.listed, got.reread, got.deleted) == (True, None, None, 10, 0, 0)
