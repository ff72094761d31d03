"""Bulk operations end to end over HTTP: user errors, lifecycle, JSONL shape, failures, downloads."""

from __future__ import annotations

import asyncio
import math

import aiohttp
import orjson
import pytest

from shopsync.shopify.schema import load_schema
from shopsync.simulator.bulk import check_bulk_query
from shopsync.simulator.server import run_simulator

RUN = """mutation($q: String!) { bulkOperationRunQuery(query: $q) {
  bulkOperation { id status } userErrors { field message code } } }"""
RUN_GROUPED = """mutation($q: String!) { bulkOperationRunQuery(query: $q, groupObjects: true) {
  bulkOperation { id status } userErrors { field message code } } }"""
POLL = """query($id: ID!) { bulkOperation(id: $id) {
  id status errorCode objectCount rootObjectCount fileSize url partialDataUrl createdAt completedAt query type } }"""
CANCEL = """mutation($id: ID!) { bulkOperationCancel(id: $id) { bulkOperation { id status } userErrors { field message } } }"""
ORDERS = "{ orders { edges { node { id name lineItems { edges { node { id quantity } } } } } } }"


async def start(gql, shop, query: str = ORDERS, *, grouped: bool = False) -> dict:
    ans = await gql(shop, RUN_GROUPED if grouped else RUN, {"q": query})
    assert ans.status == 200, ans.body
    return ans.body["data"]["bulkOperationRunQuery"]


async def poll(gql, shop, gid: str) -> dict:
    ans = await gql(shop, POLL, {"id": gid})
    return ans.body["data"]["bulkOperation"]


async def finish(gql, shop, gid: str) -> dict:
    """Wait for the operation's run task to end (an event, not a sleep), then read it over HTTP."""
    await asyncio.wait_for(shop.bulk.by_gid(gid).finished.wait(), timeout=20)
    return await poll(gql, shop, gid)


async def download(http: aiohttp.ClientSession, url: str, **kw) -> tuple[int, bytes, dict]:
    async with http.get(url, **kw) as r:
        return r.status, await r.read(), dict(r.headers)


def lines(raw: bytes) -> list[dict]:
    return [orjson.loads(line) for line in raw.splitlines() if line]


# -- the JSONL shape ---------------------------------------------------------------------------
async def test_ungrouped_jsonl_end_to_end(server, gql, http) -> None:
    shop = server.shop()
    started = await start(gql, shop)
    assert started["userErrors"] == []
    assert started["bulkOperation"]["status"] == "CREATED"
    op = await finish(gql, shop, started["bulkOperation"]["id"])
    assert op["status"] == "COMPLETED" and op["errorCode"] is None and op["completedAt"]
    assert op["type"] == "QUERY" and op["query"] == ORDERS
    status, raw, headers = await download(http, op["url"])
    assert status == 200 and headers["Content-Type"].startswith("application/jsonl")
    assert int(op["fileSize"]) == len(raw)
    rows = lines(raw)
    assert int(op["objectCount"]) == len(rows)
    roots = [r for r in rows if "__parentId" not in r]
    assert int(op["rootObjectCount"]) == len(roots)
    assert {r["id"] for r in roots} == set(shop.truth("orders"))
    assert all(set(r) == {"id", "name"} for r in roots)  # nested connections are not inline

    seen: set[str] = set()
    not_adjacent = 0
    previous: dict | None = None
    children = 0
    for row in rows:
        parent = row.get("__parentId")
        if parent is not None:
            children += 1
            assert parent in seen, "a child came before its parent"
            assert row["id"].startswith("gid://shopify/LineItem/")
            if previous is None or (previous["id"] != parent and previous.get("__parentId") != parent):
                not_adjacent += 1
        seen.add(row["id"])
        previous = row
    assert children > 0
    assert not_adjacent > 0, "with groupObjects false children should not all sit under their parent"


async def test_grouped_jsonl_keeps_children_under_their_parent(server, gql, http) -> None:
    shop = server.shop()
    started = await start(gql, shop, grouped=True)
    op = await finish(gql, shop, started["bulkOperation"]["id"])
    rows = lines((await download(http, op["url"]))[1])
    current = None
    for row in rows:
        if "__parentId" not in row:
            current = row["id"]
        else:
            assert row["__parentId"] == current


async def test_object_count_grows_while_running(make_config, gql) -> None:
    async with run_simulator(make_config(bulk_objects_per_second=200.0, time_scale=1.0)) as srv:
        shop = srv.shop()
        gid = (await start(gql, shop))["bulkOperation"]["id"]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        seen_partial = None
        while loop.time() < deadline:  # polling the server like a client would
            op = await poll(gql, shop, gid)
            if op["status"] == "RUNNING" and int(op["objectCount"]) > 0:
                seen_partial = op
                break
            await asyncio.sleep(0.02)
        assert seen_partial is not None
        assert seen_partial["url"] is None and seen_partial["fileSize"] is None
        done = await finish(gql, shop, gid)
        assert int(done["objectCount"]) > int(seen_partial["objectCount"])


async def test_nothing_matched_completes_with_null_url(server, gql) -> None:
    shop = server.shop()
    q = """{ orders(query: "created_at:<'1990-01-01T00:00:00Z'") { edges { node { id } } } }"""
    op = await finish(gql, shop, (await start(gql, shop, q))["bulkOperation"]["id"])
    assert op["status"] == "COMPLETED"
    assert op["objectCount"] == "0" and op["url"] is None


# -- user errors ---------------------------------------------------------------------------------
INVALID_QUERIES = {
    "no connection": ('{ shop { id name } }', "at least one connection"),
    "six connections": (
        "{ orders { edges { node { id lineItems { edges { node { id } } } } } }"
        " products { edges { node { id variants { edges { node { id } } } } } }"
        " customers { edges { node { id } } } locations { edges { node { id } } } }",
        "more than 5 connections",
    ),
    "three levels": (
        "{ customers { edges { node { id orders { edges { node { id lineItems { edges { node { id } } } } } } } } } }",
        "nesting depth",
    ),
    "not a Node connection": ("{ articleAuthors { edges { node { name } } } }", "Node"),
    "top-level node": ('{ node(id: "gid://shopify/Order/1") { id ... on Order { lineItems { edges { node { id } } } } } }', "node"),
    "parent without id": ("{ orders { edges { node { name lineItems { edges { node { id } } } } } } }", "'id'"),
    "misspelled field": ("{ orders { edges { node { id nmae } } } }", "nmae"),
    "syntax": ("{ orders { edges { node { id } } }", "Invalid bulk query"),
}


@pytest.mark.parametrize("case", sorted(INVALID_QUERIES))
async def test_invalid_bulk_queries_answer_user_errors(server, gql, case: str) -> None:
    query, needle = INVALID_QUERIES[case]
    shop = server.shop()
    payload = await start(gql, shop, query)
    assert payload["bulkOperation"] is None
    assert payload["userErrors"], case
    err = payload["userErrors"][0]
    assert err["code"] == "INVALID" and err["field"] == ["query"]
    assert needle in " ".join(e["message"] for e in payload["userErrors"])
    assert not shop.bulk.operations


def test_first_and_page_info_are_ignored_in_bulk_queries() -> None:
    doc, problems = check_bulk_query(
        load_schema(), "{ orders(first: 10) { pageInfo { hasNextPage } edges { cursor node { id } } } }"
    )
    assert doc is not None and problems == []


async def test_limit_reached_at_the_sixth_and_cancel(make_config, gql, http) -> None:
    cfg = make_config(bulk_objects_per_second=1.0, time_scale=1.0, bulk_cancel_delay=0.05)
    async with run_simulator(cfg) as srv:
        shop = srv.shop()
        gids = []
        for _ in range(5):
            p = await start(gql, shop)
            assert p["userErrors"] == []
            gids.append(p["bulkOperation"]["id"])
        sixth = await start(gql, shop)
        assert sixth["bulkOperation"] is None
        assert [e["code"] for e in sixth["userErrors"]] == ["LIMIT_REACHED"]

        listed = await gql(shop, '{ bulkOperations(first: 10, query: "status:RUNNING type:QUERY") { nodes { id status } } }')
        ids = [n["id"] for n in listed.body["data"]["bulkOperations"]["nodes"]]
        assert ids == list(reversed(gids))  # newest first
        current = await gql(shop, "{ currentBulkOperation(type: QUERY) { id } }")
        assert current.body["data"]["currentBulkOperation"]["id"] == gids[-1]
        via_node = await gql(shop, "query($id: ID!) { node(id: $id) { id ... on BulkOperation { status } } }", {"id": gids[0]})
        assert via_node.body["data"]["node"] == {"id": gids[0], "status": "RUNNING"}

        cancel = await gql(shop, CANCEL, {"id": gids[0]})
        assert cancel.body["data"]["bulkOperationCancel"] == {"bulkOperation": {"id": gids[0], "status": "CANCELING"}, "userErrors": []}
        done = await finish(gql, shop, gids[0])
        assert done["status"] == "CANCELED" and done["url"] is None
        again = await gql(shop, CANCEL, {"id": gids[0]})
        assert again.body["data"]["bulkOperationCancel"]["userErrors"][0]["message"].endswith("canceled")
        # One slot is free again.
        assert (await start(gql, shop))["userErrors"] == []
        assert shop.counters.bulk["CANCELED"] == 1


async def test_operation_in_progress_when_only_one_may_run(make_config, gql) -> None:
    async with run_simulator(make_config(bulk_objects_per_second=1.0, time_scale=1.0, max_concurrent_bulk=1)) as srv:
        shop = srv.shop()
        first = await start(gql, shop)
        second = await start(gql, shop)
        assert second["userErrors"][0]["code"] == "OPERATION_IN_PROGRESS"
        assert first["bulkOperation"]["id"] in second["userErrors"][0]["message"]


# -- failures ------------------------------------------------------------------------------------
async def test_internal_error_with_partial_data_then_retry_succeeds(make_config, gql, http) -> None:
    cfg = make_config(faults={"bulk_fail": "INTERNAL_SERVER_ERROR", "bulk_fail_after": 0.5, "bulk_fail_count": 1})
    async with run_simulator(cfg) as srv:
        shop = srv.shop()
        failed = await finish(gql, shop, (await start(gql, shop))["bulkOperation"]["id"])
        assert failed["status"] == "FAILED" and failed["errorCode"] == "INTERNAL_SERVER_ERROR"
        assert failed["url"] is None and failed["partialDataUrl"]
        partial_status, partial, _ = await download(http, failed["partialDataUrl"])
        assert partial_status == 200

        ok = await finish(gql, shop, (await start(gql, shop))["bulkOperation"]["id"])
        assert ok["status"] == "COMPLETED"
        full = (await download(http, ok["url"]))[1]
        total = len(lines(full))
        assert len(lines(partial)) == math.floor(total * 0.5) == int(failed["objectCount"])
        # What the failed run wrote is real export data (row order varies between runs).
        assert set(partial.splitlines()) <= set(full.splitlines())
        assert shop.counters.faults["bulk_fail"] == 1
        assert shop.counters.bulk["FAILED"] == 1 and shop.counters.bulk["COMPLETED"] == 1


async def test_timeout_failure(make_config, gql) -> None:
    async with run_simulator(make_config(faults={"bulk_fail": "TIMEOUT", "bulk_fail_after": 0.0})) as srv:
        shop = srv.shop()
        op = await finish(gql, shop, (await start(gql, shop))["bulkOperation"]["id"])
        assert op["status"] == "FAILED" and op["errorCode"] == "TIMEOUT"
        assert op["partialDataUrl"] is None  # failed before writing anything


async def test_missing_scope_fails_the_operation_with_access_denied(server, gql) -> None:
    shop = server.shop()
    shop.set_scopes(s for s in shop.config.scopes if s != "read_orders")
    op = await finish(gql, shop, (await start(gql, shop))["bulkOperation"]["id"])
    assert op["status"] == "FAILED" and op["errorCode"] == "ACCESS_DENIED"
    assert op["partialDataUrl"] is None and op["objectCount"] == "0"


# -- downloads -----------------------------------------------------------------------------------
async def test_cut_download_resumes_with_range(server, gql, http) -> None:
    shop = server.shop()
    op = await finish(gql, shop, (await start(gql, shop))["bulkOperation"]["id"])
    size = int(op["fileSize"])
    shop.faults.set(download_cut=1.0, download_cut_count=1, download_cut_at=0.4)
    got = bytearray()
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.get(op["url"]) as r:
            assert r.status == 200 and int(r.headers["Content-Length"]) == size
            async for chunk in r.content.iter_any():
                got += chunk
    assert 0 < len(got) < size
    status, rest, headers = await download(http, op["url"], headers={"Range": f"bytes={len(got)}-"})
    assert status == 206
    assert headers["Content-Range"] == f"bytes {len(got)}-{size - 1}/{size}"
    whole = (await download(http, op["url"]))[1]
    assert bytes(got) + rest == whole and len(whole) == size
    assert shop.counters.bulk["downloads_cut"] == 1 and shop.counters.downloads == 3
    beyond = await download(http, op["url"], headers={"Range": f"bytes={size}-"})
    assert beyond[0] == 416


async def test_signed_url_expires_and_cannot_be_forged(server, gql, http, clock) -> None:
    shop = server.shop()
    op = await finish(gql, shop, (await start(gql, shop))["bulkOperation"]["id"])
    url = op["url"]
    assert "Expires=" in url and "Signature=" in url
    forged = url[:-4] + ("0000" if not url.endswith("0000") else "1111")
    assert (await download(http, forged))[0] == 403
    clock.advance(shop.config.bulk_url_ttl)
    status, body, _ = await download(http, url)
    assert status == 403 and b"Request has expired" in body
    assert (await poll(gql, shop, op["id"]))["status"] == "EXPIRED"
    missing = url.replace("/bulk-", "/nothing-")
    assert (await download(http, missing))[0] == 404


# -- root order and concurrency (issue 9) ---------------------------------------------------------
SORTED_ORDERS = "{ orders(sortKey: UPDATED_AT) { edges { node { id updatedAt lineItems { edges { node { id } } } } } } }"


async def _export_roots(gql, http, shop) -> tuple[list[dict], list[dict]]:
    op = await finish(gql, shop, (await start(gql, shop, SORTED_ORDERS))["bulkOperation"]["id"])
    rows = lines((await download(http, op["url"]))[1])
    return [r for r in rows if "__parentId" not in r], rows


@pytest.mark.parametrize("order", ["sorted", "shuffled_blocks", "by_id"])
async def test_bulk_order_lists_the_same_rows_in_another_root_order(make_config, gql, http, order) -> None:
    from shopsync.simulator.bulk_rows import ROOT_BLOCK

    async with run_simulator(make_config(data={"orders": 300})) as srv:
        shop = srv.shop()
        expected_roots, expected_rows = await _export_roots(gql, http, shop)
        shop.faults.set(bulk_order=order)
        roots, rows = await _export_roots(gql, http, shop)
    key = [(r["updatedAt"], int(r["id"].rsplit("/", 1)[-1])) for r in expected_roots]
    assert key == sorted(key) and len(key) == 300  # the default follows the sort key
    assert sorted(orjson.dumps(r) for r in rows) == sorted(orjson.dumps(r) for r in expected_rows)
    # Every child still comes after its parent.
    seen: set[str] = set()
    for r in rows:
        if "__parentId" in r:
            assert r["__parentId"] in seen
        else:
            seen.add(r["id"])
    got = [(r["updatedAt"], int(r["id"].rsplit("/", 1)[-1])) for r in roots]
    if order == "sorted":
        assert roots == expected_roots
    elif order == "shuffled_blocks":
        assert got != sorted(got)
        blocks = [got[i : i + ROOT_BLOCK] for i in range(0, len(got), ROOT_BLOCK)]
        # Blocks of consecutive roots (in the sort key's order), the blocks in another order.
        assert sorted(b for b in blocks) == [key[i : i + ROOT_BLOCK] for i in range(0, len(key), ROOT_BLOCK)]
    else:
        ids = [n for _, n in got]
        assert ids == sorted(ids) and got != sorted(got)


async def test_counters_report_the_most_bulk_operations_running_at_once(make_config, gql) -> None:
    # Slow exports, so that all three are still running when the third starts.
    async with run_simulator(make_config(data={"orders": 300}, bulk_objects_per_second=1.0)) as srv:
        shop = srv.shop()
        assert shop.counters.as_dict()["bulk_max_concurrent"] == 0
        first = await start(gql, shop)
        assert (await poll(gql, shop, first["bulkOperation"]["id"]))["status"] == "RUNNING"
        assert shop.counters.as_dict()["bulk_max_concurrent"] == 1
        gids = [first["bulkOperation"]["id"]] + [(await start(gql, shop))["bulkOperation"]["id"] for _ in range(2)]
        assert [(await poll(gql, shop, g))["status"] for g in gids] == ["RUNNING"] * 3
        assert shop.counters.as_dict()["bulk_max_concurrent"] == 3
        for g in gids:
            await gql(shop, CANCEL, {"id": g})
        await asyncio.wait_for(asyncio.gather(*(shop.bulk.by_gid(g).finished.wait() for g in gids)), timeout=20)
        # Finished operations do not lower the maximum; a new one alone does not raise it.
        again = await start(gql, shop)
        assert (await poll(gql, shop, again["bulkOperation"]["id"]))["status"] == "RUNNING"
        assert shop.counters.as_dict()["bulk_max_concurrent"] == 3
