"""Product variants, variant metafields, customers' addresses, discounts and the shop (issue 14)
synced end to end against the simulator by both paths: byte-identical records equal to the
shop's truth (``sync_by_each_path`` checks each run against the truth)."""

from __future__ import annotations

from shopsync.simulator.server import run_simulator

from .conftest import diff_records, sim_config, sync_by_each_path


async def test_product_variants_and_their_metafields_by_both_paths(tmp_path):
    cfg = sim_config(data={"products": 30, "variant_metafields": 3})
    async with run_simulator(cfg) as server:
        shop = server.shop()
        resources = ("products", "product_variants", "variant_metafields")
        runs = await sync_by_each_path(tmp_path, shop, resources)
        for path, run in runs.items():
            assert {s.path for s in run.report.streams} == {path}, run.paths
        results = {path: run.rows for path, run in runs.items()}
        for resource in resources:
            assert not diff_records(results["bulk"][resource], results["paginated"][resource]), resource
        got = results["paginated"]
        # The variants as records are exactly the products' nested variants, each naming its product.
        nested = {v["id"]: (p["id"], v) for p in got["products"].values() for v in p["variants"]}
        assert set(got["product_variants"]) == set(nested) and len(nested) > 30
        for vid, record in got["product_variants"].items():
            product_id, inside = nested[vid]
            assert record["product"]["id"] == product_id
            assert {k: record[k] for k in inside} == inside
        metafields = got["variant_metafields"]
        assert set(metafields) == set(nested)
        assert all(len(v["metafields"]) == 3 for v in metafields.values())
        ids = [m["id"] for v in metafields.values() for m in v["metafields"]]
        assert len(ids) == len(set(ids)) == 3 * len(nested)


async def test_customers_carry_every_address_by_both_paths(tmp_path):
    async with run_simulator(sim_config(data={"customers": 120})) as server:
        shop = server.shop()
        runs = await sync_by_each_path(tmp_path, shop, ("customers",))
        results = {path: run.rows["customers"] for path, run in runs.items()}
        assert not diff_records(results["bulk"], results["paginated"])
        customers = list(results["paginated"].values())
        assert len(customers) == 120
        # The default address (when there is one) comes first; some customers keep several.
        for c in customers:
            ids = [a["id"] for a in c["addressesV2"]]
            assert len(ids) == len(set(ids))
            if c["defaultAddress"] is not None:
                assert c["addressesV2"][0] == c["defaultAddress"]
        assert max(len(c["addressesV2"]) for c in customers) >= 3
        assert any(not c["addressesV2"] for c in customers)


async def test_the_shop_is_one_record_read_by_one_query_on_either_path(tmp_path):
    async with run_simulator(sim_config()) as server:
        shop = server.shop()
        requests = shop.counters.requests
        runs = await sync_by_each_path(tmp_path, shop, ("shop",))
        # A single object has no bulk form: the bulk-configured run reads it with the same query.
        assert {path: run.paths["shop"] for path, run in runs.items()} == {"bulk": "paginated", "paginated": "paginated"}
        assert shop.counters.requests - requests == 2  # one query per run, no bulk operation
        results = {path: run.rows["shop"] for path, run in runs.items()}
        assert results["bulk"] == results["paginated"] == shop.truth("shop")
        (record,) = results["paginated"].values()
        assert record["myshopifyDomain"] == f"{shop.name}.myshopify.com" and record["primaryDomain"]["sslEnabled"]
