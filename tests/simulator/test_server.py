"""The GraphQL endpoint (schema validation, request errors), several shops, control endpoints, CLI."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest

from shopsync.commands.main import build_parser
from shopsync.commands.simulate import configs_from_args
from shopsync.simulator.config import MutatorConfig
from shopsync.simulator.server import compile_document, run_simulator

Q = "{ orders(first: 3) { nodes { id name } } }"
BENCH_SIMULATOR = Path(__file__).resolve().parents[2] / "bench" / "simulator.py"


async def test_misspelled_field_is_rejected_naming_it(server, gql) -> None:
    shop = server.shop()
    ans = await gql(shop, "{ orders(first: 3) { nodes { id nmae } } }")
    assert ans.status == 200
    assert "data" not in ans.body
    [err] = ans.body["errors"]
    assert err["message"] == "Field 'nmae' doesn't exist on type 'Order'"
    assert err["locations"] == [{"line": 1, "column": 33}]
    assert err["extensions"] == {"code": "undefinedField", "typeName": "Order", "fieldName": "nmae"}
    assert shop.counters.invalid_documents == 1
    assert shop.counters.points_requested == 0


@pytest.mark.parametrize(
    ("query", "code", "needle"),
    [
        ("{ orders(first: 3, colour: 1) { nodes { id } } }", "argumentNotAccepted", "argument 'colour'"),
        ("{ node { id } }", "missingRequiredArguments", "missing required arguments: id"),
        ("{ orders(first: 3) { nodes { customer } } }", "selectionMismatch", "customer"),
        ("query($x: Int) { shop { id } }", "variableNotUsed", "$x"),
    ],
)
async def test_validation_errors_in_shopify_shape(server, gql, query: str, code: str, needle: str) -> None:
    ans = await gql(server.shop(), query)
    assert ans.status == 200
    assert ans.body["errors"][0]["extensions"]["code"] == code
    assert needle in ans.body["errors"][0]["message"]


async def test_syntax_error_and_bad_bodies(server, gql, http) -> None:
    shop = server.shop()
    ans = await gql(shop, "{ orders(first: 3) { nodes { id }")
    assert ans.status == 200 and ans.body["errors"][0]["message"].startswith("syntax error")
    assert ans.body["errors"][0]["locations"]
    for body in (b"not json", b'{"variables": {}}', b'{"query": 5}'):
        async with http.post(shop.graphql_url, data=body, headers={"X-Shopify-Access-Token": shop.token, "Content-Type": "application/json"}) as r:
            assert r.status == 400
            assert await r.json() == {"errors": {"query": "Required parameter missing or invalid"}}


async def test_connection_without_first_and_bad_variables(server, gql) -> None:
    shop = server.shop()
    no_first = await gql(shop, "{ orders { nodes { id } } }")
    assert no_first.status == 200 and "first or last" in no_first.body["errors"][0]["message"]
    bad_var = await gql(shop, "query($n: Int!) { orders(first: $n) { nodes { id } } }", {"n": "ten"})
    assert bad_var.body["errors"][0]["extensions"]["code"] == "INVALID_VARIABLE"
    default_var = await gql(shop, "query($n: Int = 2) { orders(first: $n) { nodes { id } } }")
    assert len(default_var.body["data"]["orders"]["nodes"]) == 2
    assert default_var.body["extensions"]["cost"]["requestedQueryCost"] == 2 + 2


async def test_operation_name_selects_the_operation(server, http) -> None:
    shop = server.shop()
    doc = "query A { orders(first: 1) { nodes { id } } } query B { shop { id } }"
    headers = {"X-Shopify-Access-Token": shop.token}
    async with http.post(shop.graphql_url, json={"query": doc, "operationName": "A"}, headers=headers) as r:
        body = await r.json()
    assert set(body["data"]) == {"orders"}
    async with http.post(shop.graphql_url, json={"query": doc}, headers=headers) as r:
        assert "errors" in await r.json()


def test_documents_are_cached_by_text() -> None:
    compile_document.cache_clear()
    a = compile_document(Q)
    b = compile_document(Q)
    assert a is b and a.document is not None and a.errors == ()
    assert compile_document.cache_info().hits == 1


async def test_several_shops_per_server(make_config, gql) -> None:
    configs = [make_config(shop_name=f"s{i}", data={"seed": i, "orders": 5 + i}) for i in range(3)]
    async with run_simulator(*configs) as srv:
        assert set(srv.shops) == {"s0", "s1", "s2"}
        for name in ("s0", "s1", "s2"):
            shop = srv.shops[name]
            assert shop.graphql_url == f"{srv.url}/shops/{name}/admin/api/2026-10/graphql.json"
            assert shop.token_url == f"{srv.url}/shops/{name}/admin/oauth/access_token"
            ans = await gql(shop, "{ orders(first: 50) { nodes { id } } }")
            assert len(ans.body["data"]["orders"]["nodes"]) == len(shop.truth("orders"))
        bare = await gql(srv.shop(), "{ orders(first: 50) { nodes { id } } }", url=f"{srv.url}/admin/api/2026-10/graphql.json")
        assert {n["id"] for n in bare.body["data"]["orders"]["nodes"]} == set(srv.shops["s0"].truth("orders"))
        unknown = await gql(srv.shop(), Q, url=f"{srv.url}/shops/nope/admin/api/2026-10/graphql.json")
        assert unknown.status == 404
        assert srv.shops["s1"].counters.requests == 1


async def test_truth_is_in_sink_record_shape(server) -> None:
    shop = server.shop()
    truth = shop.truth("orders")
    assert truth
    gid, record = next(iter(truth.items()))
    assert record["id"] == gid and gid.startswith("gid://shopify/Order/")
    assert isinstance(record["lineItems"], list)  # connections become arrays
    assert "edges" not in record["lineItems"] and "__parentId" not in record


async def test_control_endpoints(server, gql, http) -> None:
    shop = server.shop()
    await gql(shop, Q)
    async with http.get(f"{server.url}/_sim/counters") as r:
        counters = (await r.json())[shop.name]
    assert counters["requests"] == 1 and counters["http_status"] == {"200": 1}
    assert set(counters) >= {
        "requests", "throttled", "max_cost_exceeded", "points_requested", "points_spent", "http_status",
        "faults", "bulk_operations", "downloads",
    }

    async with http.post(f"{server.url}/_sim/faults", json={"http_503": 1.0}) as r:
        assert r.status == 200
    assert (await gql(shop, Q)).status == 503
    async with http.post(f"{server.url}/_sim/faults", json={"reset": True}) as r:
        assert r.status == 200
    assert (await gql(shop, Q)).status == 200
    async with http.post(f"{server.url}/_sim/faults", json={"http_999": 1.0}) as r:
        assert r.status == 400 and "http_999" in (await r.json())["error"]

    async with http.post(f"{server.url}/_sim/status/{shop.name}", json={"status": 402}) as r:
        assert r.status == 200
    assert (await gql(shop, Q)).status == 402
    async with http.post(f"{server.url}/_sim/status/{shop.name}", json={"status": None}) as r:
        assert r.status == 200

    async with http.get(f"{server.url}/_sim/truth/{shop.name}/orders") as r:
        assert set(await r.json()) == set(shop.truth("orders"))
    async with http.get(f"{server.url}/_sim/truth/{shop.name}/nothing") as r:
        assert r.status == 404


async def test_mutator_runs_and_can_be_paused(make_config, http) -> None:
    cfg = make_config(mutator=MutatorConfig(orders_per_day=86_400.0))
    async with run_simulator(cfg) as srv:
        shop = srv.shop()
        assert shop.mutator is not None and shop.mutator.store is shop.store
        assert shop.mutator.time_scale == cfg.time_scale
        async with http.post(f"{srv.url}/_sim/mutator/pause") as r:
            assert (await r.json())["shops"] == [shop.name]
        assert shop.mutator.paused
        async with http.post(f"{srv.url}/_sim/mutator/resume") as r:
            assert r.status == 200
        assert not shop.mutator.paused
        async with http.post(f"{srv.url}/_sim/mutator/explode") as r:
            assert r.status == 404
    async with run_simulator(make_config()) as srv:
        assert srv.shop().mutator is None


def test_cli_flags_build_configs() -> None:
    args = build_parser().parse_args(
        ["simulate", "--port", "0", "--seed", "5", "--orders", "100", "--shops", "3", "--plan", "plus",
         "--time-scale", "10", "--fault-503", "0.1", "--bulk-fail", "TIMEOUT", "--bulk-fail-count", "1",
         "--download-cut", "0.5", "--token", "tok", "--mutate-orders-per-day", "5000", "--bulk-order", "shuffled_blocks"]
    )
    assert isinstance(args, argparse.Namespace)
    configs = configs_from_args(args)
    assert [c.shop_name for c in configs] == ["sim", "sim2", "sim3"]
    assert [c.data.seed for c in configs] == [5, 6, 7]
    c = configs[0]
    assert c.access_tokens == ("tok",) and c.plan == "plus" and c.time_scale == 10
    assert c.faults.http_503 == 0.1 and c.faults.bulk_fail == "TIMEOUT" and c.faults.bulk_fail_count == 1
    assert c.faults.download_cut == 0.5 and c.mutator.orders_per_day == 5000
    assert c.faults.bulk_order == "shuffled_blocks"
    assert c.bucket_limits() == (20000.0, 10000.0)


async def test_benchmark_slice_measures_against_a_live_simulator(make_config) -> None:
    """The benchmark's client side, run in-process on a tiny store (``python -m bench simulator``
    runs the same code against a separate process)."""
    spec = importlib.util.spec_from_file_location("_bench_simulator", BENCH_SIMULATOR)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    TOKEN, measure = bench.TOKEN, bench.measure

    cfg = make_config(access_tokens=(TOKEN,), plan="enterprise", bulk_objects_per_second=1e9)
    async with run_simulator(cfg) as srv:
        shop = srv.shop()
        out = await measure(shop.graphql_url, pages=3, windows=2, drains=2, bulk_days=365.0, history_days=365.0)
    assert out["page"]["n"] == 3 and out["page"]["first"] >= 1
    assert 0 < out["page"]["p50_ms"] <= out["page"]["p95_ms"]
    assert out["node_drain"]["n"] >= 2
    assert out["bulk"]["objects"] > len(shop.truth("orders"))  # orders and their line items
    assert shop.counters.throttled == 0
