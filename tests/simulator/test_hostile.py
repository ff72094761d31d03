"""The hostile answers of issue 10, each shown as what the client receives from the simulator."""

from __future__ import annotations

import argparse
import asyncio
from email.utils import parsedate_to_datetime

import aiohttp
import orjson
import pytest

from shopsync.commands.simulate import add_arguments, configs_from_args
from shopsync.errors import ConfigError
from shopsync.simulator.config import FaultConfig
from shopsync.simulator.faults import Faults
from shopsync.simulator.hostile import NOT_JSON_LINE, ORPHAN_ID
from shopsync.simulator.trap import TRAP_HOST, TRAP_TOKEN, run_trap

PAGE = "query Page($after: String) { orders(first: 5, after: $after) { nodes { id } pageInfo { hasNextPage endCursor } } }"
EDGES = "{ orders(first: 5) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }"
COUNT = "query Counting { ordersCount { count precision } }"
PROBE = "{ shop { name } }"
RUN = """mutation($q: String!) { bulkOperationRunQuery(query: $q) { bulkOperation { id } userErrors { message } } }"""
POLL = "query($id: ID!) { bulkOperation(id: $id) { status url objectCount } }"
BULK_ORDERS = "{ orders { edges { node { id name lineItems { edges { node { id } } } } } } }"


def token_headers(shop) -> dict[str, str]:
    return {"X-Shopify-Access-Token": shop.token}


async def post(http, url: str, body: dict, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict]:
    async with http.post(url, json=body, headers=headers or {}, allow_redirects=False) as r:
        return r.status, await r.read(), dict(r.headers)


# -- redirects ---------------------------------------------------------------------------------
async def test_graphql_redirect_to_other_host_lands_on_the_trap_which_records_the_token(server, gql, http) -> None:
    shop = server.shop()
    shop.faults.set(redirect="other_host", redirect_count=1)
    status, raw, headers = await post(http, shop.graphql_url, {"query": PAGE}, token_headers(shop))
    assert status == 307
    assert server.trap is not None and server.trap.host == TRAP_HOST  # 127.0.0.2 binds here
    location = headers["Location"]
    assert location == f"{server.trap.url}{shop.graphql_url.removeprefix(server.url)}"
    assert b"redirected" in raw
    # A client that follows it with its token: the trap gets the token and answers like a shop.
    status, raw, _ = await post(http, location, {"query": PAGE}, token_headers(shop))
    body = orjson.loads(raw)
    assert status == 200
    assert body["data"]["orders"]["nodes"] == [] and body["data"]["orders"]["pageInfo"]["hasNextPage"] is False
    assert body["extensions"]["cost"]["throttleStatus"]["maximumAvailable"] > 0
    [hit] = server.trap.requests
    assert (hit.method, hit.host, hit.path) == ("POST", location.split("/")[2], shop.graphql_url.removeprefix(server.url))
    assert hit.access_token and not hit.authorization and server.trap.leaks() == [hit]
    # The budget of one is spent: the next request is answered normally.
    assert (await gql(shop, PAGE)).body["data"]["orders"]["nodes"]
    assert shop.counters.faults["redirect"] == 1 and shop.counters.http_status[307] == 1
    async with http.get(f"{server.url}/_sim/trap") as r:
        listed = await r.json()
    assert listed["url"] == server.trap.url
    assert listed["requests"] == [{"method": "POST", "host": hit.host, "path": hit.path, "query": "", "credentials": ["X-Shopify-Access-Token"]}]


async def test_aiohttp_following_the_redirect_sends_the_token_to_the_trap(server, http) -> None:
    """The bug of issue 10 reproduced: a default client carries the token to the other host."""
    shop = server.shop()
    with shop.faults.override(redirect="other_host", redirect_on=("graphql",)):
        async with http.post(shop.graphql_url, json={"query": PAGE}, headers=token_headers(shop)) as r:
            body = await r.json()
    assert body["data"]["orders"]["nodes"] == []  # accepted as the shop's answer
    assert server.trap is not None and [r.access_token for r in server.trap.requests] == [True]


async def test_token_endpoint_redirect_is_302_and_the_trap_sees_the_client_secret(server, http) -> None:
    shop = server.shop()
    shop.faults.set(redirect="other_host")
    form = {"client_id": shop.config.client_id, "client_secret": shop.config.client_secret, "grant_type": "client_credentials"}
    async with http.post(shop.token_url, data=form, allow_redirects=False) as r:
        assert r.status == 302
        location = r.headers["Location"]
    assert server.trap is not None and location.startswith(server.trap.url)
    async with http.post(location, data=form, allow_redirects=False) as r:
        assert (await r.json())["access_token"] == TRAP_TOKEN
    [hit] = server.trap.requests
    assert hit.client_secret and not hit.access_token and hit.path.endswith("/admin/oauth/access_token")


async def test_download_redirect_to_other_host_passes_the_real_file_on(server, gql, http) -> None:
    shop = server.shop()
    url = await finished_bulk_url(gql, shop)
    async with http.get(url) as r:
        direct = await r.read()
    shop.faults.set(redirect="other_host", redirect_on=("download",))
    async with http.get(url, allow_redirects=False) as r:
        assert r.status == 302
        location = r.headers["Location"]
    assert server.trap is not None and location.startswith(server.trap.url) and "Signature=" in location
    async with http.get(location, headers={"Range": "bytes=10-"}) as r:  # followed without credentials
        assert r.status == 206
        assert await r.read() == direct[10:]
    [hit] = server.trap.requests
    assert hit.method == "GET" and hit.credentials == ()
    assert (await gql(shop, PAGE)).status == 200  # only downloads are redirected
    assert shop.counters.faults["redirect"] == 1


async def test_same_host_redirect_points_at_another_path_here(server, gql, http) -> None:
    shop = server.shop()
    shop.faults.set(redirect="same_host", redirect_count=1)
    status, _, headers = await post(http, shop.graphql_url, {"query": PAGE}, token_headers(shop))
    assert status == 307
    location = headers["Location"]
    assert location == f"{server.url}/_sim/moved{shop.graphql_url.removeprefix(server.url)}"
    status, raw, _ = await post(http, location, {"query": PAGE}, token_headers(shop))
    assert status == 200 and orjson.loads(raw)["data"]["orders"]["nodes"]
    assert shop.counters.redirects_followed == 1
    assert server.trap is None  # never needed


async def test_redirect_match_and_status_and_every_request(server, gql, http) -> None:
    shop = server.shop()
    shop.faults.set(redirect="same_host", redirect_match="Counting", redirect_status=308)
    for _ in range(3):
        assert (await post(http, shop.graphql_url, {"query": COUNT}, token_headers(shop)))[0] == 308
        assert (await gql(shop, PAGE)).status == 200
    assert shop.counters.faults["redirect"] == 3


async def test_trap_falls_back_to_127_0_0_1_where_its_address_cannot_bind() -> None:
    async with run_trap(host="192.0.2.1") as trap:  # TEST-NET-1: not an address of this machine
        assert trap.host == "127.0.0.1" and trap.url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as http, http.get(f"{trap.url}/x?client_secret=s", headers={"Authorization": "Bearer t"}) as r:
            assert r.status == 200
        [hit] = trap.requests
        assert hit.authorization and hit.client_secret and hit.query == "client_secret=s"
        trap.clear()
        assert trap.requests == []


# -- cursors -----------------------------------------------------------------------------------
async def test_repeating_cursor_fires_only_where_there_is_a_cursor_to_repeat(server, gql) -> None:
    shop = server.shop()
    shop.faults.set(cursor="repeat")
    first = (await gql(shop, PAGE)).body["data"]["orders"]
    assert shop.counters.faults["cursor"] == 0  # the first page sent no cursor
    cursor = first["pageInfo"]["endCursor"]
    second = (await gql(shop, PAGE, {"after": cursor})).body["data"]["orders"]
    assert second["pageInfo"] == {"hasNextPage": True, "endCursor": cursor}
    again = (await gql(shop, PAGE, {"after": cursor})).body["data"]["orders"]
    assert again["pageInfo"]["endCursor"] == cursor  # forever, until switched off
    assert shop.counters.faults["cursor"] == 2


async def test_null_cursor_with_next_page_also_on_edges(server, gql) -> None:
    shop = server.shop()
    shop.faults.set(cursor="null", cursor_count=1)
    page = (await gql(shop, EDGES)).body["data"]["orders"]
    assert page["pageInfo"] == {"hasNextPage": True, "endCursor": None}
    assert page["edges"][-1]["cursor"] is None
    assert (await gql(shop, EDGES)).body["data"]["orders"]["pageInfo"]["endCursor"] is not None


async def test_empty_page_with_next_page(server, gql) -> None:
    shop = server.shop()
    with shop.faults.override(cursor="empty_page"):
        page = (await gql(shop, PAGE)).body["data"]["orders"]
        assert (await gql(shop, COUNT)).body["data"]["ordersCount"]["count"] > 0  # no connection: untouched
    assert page["nodes"] == [] and page["pageInfo"]["hasNextPage"] is True and page["pageInfo"]["endCursor"]
    assert shop.counters.faults["cursor"] == 1


# -- data of the wrong shape -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "query", "check"),
    [
        ("empty", PAGE, lambda b: b["data"] == {}),
        ("null", PAGE, lambda b: b["data"] is None),
        ("nodes_string", PAGE, lambda b: isinstance(b["data"]["orders"]["nodes"], str)),
        ("nodes_string", EDGES, lambda b: isinstance(b["data"]["orders"]["edges"], str)),
        ("no_page_info", PAGE, lambda b: "pageInfo" not in b["data"]["orders"] and b["data"]["orders"]["nodes"]),
        ("count_string", COUNT, lambda b: b["data"]["ordersCount"]["count"] == "many"),
    ],
)
async def test_bad_data(server, gql, mode: str, query: str, check) -> None:
    shop = server.shop()
    shop.faults.set(bad_data=mode, bad_data_count=1)
    ans = await gql(shop, query)
    assert ans.status == 200 and "errors" not in ans.body and check(ans.body)
    assert ans.body["extensions"]["cost"]["actualQueryCost"] is not None  # it ran and was charged
    normal = await gql(shop, query)
    assert isinstance(normal.body["data"], dict) and normal.body["data"]
    assert shop.counters.faults["bad_data"] == 1


# -- Retry-After -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "changes", "expected"),
    [
        (429, {"retry_after": 86_400}, "86400"),
        (503, {"retry_after": 86_400}, "86400"),
        (429, {"retry_after_text": "soon"}, "soon"),
        (503, {"retry_after_text": "-5"}, "-5"),
    ],
)
async def test_retry_status_with_huge_or_nonsense_retry_after(server, gql, status: int, changes: dict, expected: str) -> None:
    shop = server.shop()
    size, _ = shop.config.bucket_limits()
    shop.faults.set(retry_status=status, retry_status_count=2, **changes)
    for _ in range(2):
        ans = await gql(shop, PAGE)
        assert ans.status == status and ans.headers["Retry-After"] == expected
    ok = await gql(shop, "{ orders(first: 1) { nodes { id } } }")
    assert ok.status == 200
    assert ok.body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == int(size - 3)  # never ran
    assert shop.counters.faults["retry_status"] == 2 and shop.counters.http_status[status] == 2


async def test_retry_after_in_the_past_is_an_http_date(server, gql, clock) -> None:
    shop = server.shop()
    shop.faults.set(http_503=1.0, retry_after_text="past")  # also for the random 429/503 faults
    ans = await gql(shop, PAGE)
    assert ans.status == 503
    assert parsedate_to_datetime(ans.headers["Retry-After"]).timestamp() == pytest.approx(clock.now - 86_400, abs=1)


# -- throttleStatus ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("zero", {"maximumAvailable": 0.0, "currentlyAvailable": 0, "restoreRate": 0.0}),
        ("null", {"maximumAvailable": None, "currentlyAvailable": None, "restoreRate": None}),
        ("missing", {}),
    ],
)
async def test_nonsense_throttle_status(server, gql, mode: str, expected: dict) -> None:
    shop = server.shop()
    shop.faults.set(throttle_status=mode, throttle_status_count=1)
    ans = await gql(shop, PAGE)
    assert ans.body["extensions"]["cost"]["throttleStatus"] == expected
    assert ans.body["data"]["orders"]["nodes"]
    assert (await gql(shop, PAGE)).body["extensions"]["cost"]["throttleStatus"]["maximumAvailable"] > 0


async def test_negative_throttle_status_only_named_fields_and_absent(server, gql) -> None:
    shop = server.shop()
    shop.faults.set(throttle_status="negative", throttle_status_fields=["restoreRate"])  # a list, as from JSON
    status = (await gql(shop, PAGE)).body["extensions"]["cost"]["throttleStatus"]
    assert status["restoreRate"] < 0 and status["maximumAvailable"] > 0
    shop.faults.set(throttle_status="absent")
    cost = (await gql(shop, PAGE)).body["extensions"]["cost"]
    assert "throttleStatus" not in cost and cost["requestedQueryCost"] > 0


async def test_throttle_status_spoilt_on_a_throttled_answer_too(make_config, gql) -> None:
    from shopsync.simulator.server import run_simulator

    async with run_simulator(make_config(maximum_available=2.0)) as srv:
        shop = srv.shop()
        shop.faults.set(throttle_status="zero")
        ans = await gql(shop, PAGE)
    assert ans.body["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert ans.body["extensions"]["cost"]["throttleStatus"]["restoreRate"] == 0.0


# -- bulk files --------------------------------------------------------------------------------
async def finished_bulk_url(gql, shop) -> str:
    started = (await gql(shop, RUN, {"q": BULK_ORDERS})).body["data"]["bulkOperationRunQuery"]
    gid = started["bulkOperation"]["id"]
    await asyncio.wait_for(shop.bulk.by_gid(gid).finished.wait(), timeout=20)
    op = (await gql(shop, POLL, {"id": gid})).body["data"]["bulkOperation"]
    assert op["status"] == "COMPLETED", op
    return op["url"]


async def test_bulk_file_with_a_line_that_is_not_json(server, gql, http) -> None:
    shop = server.shop()
    shop.faults.set(bulk_bad_line="not_json", bulk_bad_line_count=1)
    async with http.get(await finished_bulk_url(gql, shop)) as r:
        raw_lines = (await r.read()).splitlines()
    assert raw_lines[1] == NOT_JSON_LINE
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(raw_lines[1])
    assert all(orjson.loads(line) for i, line in enumerate(raw_lines) if i != 1)
    async with http.get(await finished_bulk_url(gql, shop)) as r:  # the budget is spent: clean again
        assert all(orjson.loads(line) for line in (await r.read()).splitlines())
    assert shop.counters.faults["bulk_bad_line"] == 1 and shop.counters.as_dict()["bulk_bad_lines"] == 1


async def test_bulk_file_with_an_orphan_child(server, gql, http) -> None:
    shop = server.shop()
    shop.faults.set(bulk_bad_line="orphan")
    async with http.get(await finished_bulk_url(gql, shop)) as r:
        rows = [orjson.loads(line) for line in (await r.read()).splitlines()]
    ids = {row["id"] for row in rows}
    orphans = [row for row in rows if "__parentId" in row and row["__parentId"] not in ids]
    assert len(orphans) == 1 and orphans[0]["__parentId"] == f"gid://shopify/Order/{ORPHAN_ID}"


# -- huge bodies -------------------------------------------------------------------------------
async def test_huge_body_is_larger_than_the_cap_and_still_json(server, gql, http) -> None:
    shop = server.shop()
    shop.faults.set(huge_body=100_000, huge_body_count=1)
    status, raw, headers = await post(http, shop.graphql_url, {"query": PAGE}, token_headers(shop))
    assert status == 200 and int(headers["Content-Length"]) == len(raw) > 100_000
    body = orjson.loads(raw)
    assert body["data"]["orders"]["nodes"] and len(body["padding"]) > 99_000
    assert len((await post(http, shop.graphql_url, {"query": PAGE}, token_headers(shop)))[1]) < 10_000
    assert shop.counters.faults["huge_body"] == 1


async def test_huge_body_chunked_has_no_length(server, http) -> None:
    shop = server.shop()
    shop.faults.set(huge_body=3_000_000, huge_body_chunked=True, huge_body_match="Page")
    status, raw, headers = await post(http, shop.graphql_url, {"query": PAGE}, token_headers(shop))
    assert status == 200 and "Content-Length" not in headers and len(raw) > 3_000_000
    assert orjson.loads(raw)["data"]["orders"]["nodes"]


async def test_sixty_megabytes_announced_and_the_client_may_stop_reading(server, gql, http) -> None:
    shop = server.shop()
    shop.faults.set(huge_body=60_000_000, huge_body_count=1)
    async with http.post(shop.graphql_url, json={"query": PAGE}, headers=token_headers(shop)) as r:
        assert int(r.headers["Content-Length"]) > 60_000_000
        assert (await r.content.read(1024)).startswith(b'{"padding":"xxx')
        r.close()  # refuse the rest without reading it
    assert (await gql(shop, PAGE)).status == 200  # the simulator is fine


# -- switches ----------------------------------------------------------------------------------
def test_hostile_switches_validate_and_budgets_restore() -> None:
    f = Faults(FaultConfig(), seed=1)
    for bad in ({"redirect": "elsewhere"}, {"cursor": "loop"}, {"retry_status": 500}, {"redirect_on": ("graphql", "x")},
                {"redirect_status": 200}, {"throttle_status_fields": ("bucket",)}, {"huge_body": -1}):
        with pytest.raises(ConfigError):
            f.set(**bad)
    f.set(bad_data="empty", bad_data_count=2)
    with f.override(bad_data_count=5):
        assert [f.take("bad_data") for _ in range(6)] == ["empty"] * 5 + [None]
    assert [f.take("bad_data") for _ in range(3)] == ["empty", "empty", None]  # the budget of 2 is back
    f.set(bad_data_match="orders")
    f.set(bad_data_count=None)
    assert f.take("bad_data") is None and f.take("bad_data", lambda: frozenset({"orders"})) == "empty"
    assert f.take("bad_data", lambda: frozenset({"orders"}), applies=lambda _: False) is None
    assert f.injected["bad_data"] == 8
    assert "bad_data" in repr(f) and "redirect_on" not in repr(f)
    f.reset()
    assert f.take("bad_data", lambda: frozenset({"orders"})) is None


async def test_hostile_switches_over_the_control_endpoint(server, http) -> None:
    body = {"redirect": "same_host", "redirect_on": ["token"], "cursor": "null", "cursor_count": 1}
    async with http.post(f"{server.url}/_sim/faults", json=body) as r:
        assert r.status == 200
    assert server.shop().faults.settings.redirect_on == ("token",)
    async with http.post(f"{server.url}/_sim/faults", json={"bad_data": "nope"}) as r:
        assert r.status == 400 and "bad_data" in (await r.json())["error"]


def test_cli_flags_reach_the_fault_config() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--fault-redirect", "other_host", "--fault-redirect-on", "graphql,download", "--fault-redirect-count", "2",
            "--fault-cursor", "repeat", "--fault-cursor-match", "orders",
            "--fault-bad-data", "null", "--fault-retry-status", "503", "--retry-after", "86400", "--retry-after-text", "soon",
            "--fault-throttle-status", "zero", "--fault-throttle-status-fields", "restoreRate",
            "--fault-huge-body", "60000000", "--fault-huge-body-chunked", "--fault-bulk-bad-line", "orphan",
            "--fault-bulk-bad-line-count", "1",
        ]
    )  # fmt: skip
    faults = configs_from_args(args)[0].faults
    assert (faults.redirect, faults.redirect_on, faults.redirect_count) == ("other_host", ("graphql", "download"), 2)
    assert (faults.cursor, faults.cursor_match, faults.bad_data, faults.retry_status) == ("repeat", "orders", "null", 503)
    assert (faults.retry_after, faults.retry_after_text) == (86400, "soon")
    assert (faults.throttle_status, faults.throttle_status_fields) == ("zero", ("restoreRate",))
    assert (faults.huge_body, faults.huge_body_chunked, faults.bulk_bad_line, faults.bulk_bad_line_count) == (60_000_000, True, "orphan", 1)
    defaults = configs_from_args(parser.parse_args([]))[0].faults
    assert defaults == FaultConfig()
