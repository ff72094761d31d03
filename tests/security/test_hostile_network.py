"""End to end (issue 10, "only Shopify gets the token"): a real sync against the simulated shop
with one hostile HTTP switch on at a time.

Each test shows what reached the redirect trap (a second server on 127.0.0.2 that records which
credentials arrived), what the failure says when the shop cannot be synced, and — where the shop
itself was sound (a day of Retry-After, nonsense throttleStatus, one huge answer, a file
redirect) — that the sync completes and the sink equals the shop record for record.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import pytest

from shopsync.errors import ShopUnavailableError, TransientError
from shopsync.simulator.server import SimulatedShop, run_simulator
from tests.e2e.conftest import sync_once, token_env, write_config
from tests.support import assert_matches_truth, sim_config, sink_rows

#: Small enough to sync in about a second, with nested line items and a tie group all the same.
DATA = {"orders": 300, "customers": 60, "products": 20, "locations": 2, "collections": 3,
        "big_orders": 1, "big_order_line_items": 120, "tie_groups": 1, "tie_group_size": 80}
RESOURCES = ["orders", "locations"]
#: A hostile answer must fail or be survived; it must never make a test hang (a day of
#: Retry-After honoured as asked would). This bound only turns a hang into a failure.
DEADLINE = 60.0
#: A small [sync] max_response_bytes for the huge-body tests (the default is 50 MiB; a small cap
#: keeps the tests light and shows the setting reaches the client).
CAP = 256 * 1024


async def run(tmp_path: Path, shop: SimulatedShop, *, sync: dict | None = None, resources=RESOURCES, config: Path | None = None):
    config = config or write_config(
        tmp_path / "shopsync.toml", [shop], sync={"max_attempts": 4, **(sync or {})},
        extra_shop_keys={shop.name: {"resources": resources}},
    )
    async with asyncio.timeout(DEADLINE):
        return await sync_once(config, token_env(shop))


def host_of(url: str) -> str:
    return url.split("/")[2]


# -- redirects -------------------------------------------------------------------------------
async def test_graphql_redirect_to_another_host_stops_the_shop_and_the_trap_gets_nothing(tmp_path):
    async with run_simulator(sim_config(data=DATA), trap=True) as server:
        shop = server.shop()
        assert server.trap is not None
        shop.faults.set(redirect="other_host", redirect_on=("graphql",))
        report = await run(tmp_path, shop)
        assert not report.ok and {f.resource for f in report.failures()} == set(RESOURCES)
        assert server.trap.requests == []  # not the token, not the query: nothing at all
        trap_host, shop_host = host_of(server.trap.url), host_of(shop.graphql_url)
        for failure in report.failures():
            assert isinstance(failure.exception, ShopUnavailableError) and failure.exception.status == 307
            assert f"answered 307 redirect to {trap_host} (another host): not followed, the access token is only sent to {shop_host}" in (failure.error or "")
            assert shop.token not in (failure.error or "")
        # Not retried (someone must look at the endpoint): one redirect per stream.
        assert shop.counters.faults["redirect"] == len(RESOURCES)
        assert sink_rows(tmp_path / "state.db", "orders", shop.name) == {}


async def test_token_endpoint_redirect_to_another_host_never_hands_over_the_client_secret(tmp_path):
    async with run_simulator(sim_config(data=DATA), trap=True) as server:
        shop = server.shop()
        assert server.trap is not None
        shop.faults.set(redirect="other_host", redirect_on=("token",))
        config = tmp_path / "shopsync.toml"
        config.write_text(
            f'database = "sqlite:///{tmp_path / "state.db"}"\n'
            '[sync]\nmax_attempts = 4\nbackoff_base = "0.05s"\nbackoff_cap = "0.5s"\n'
            f'[[shop]]\nname = "{shop.name}"\ndomain = "{shop.name}.myshopify.com"\n'
            f'api_url = "{shop.graphql_url}"\nresources = ["locations"]\n'
            'client_id = { env = "HN_CLIENT_ID" }\nclient_secret = { env = "HN_CLIENT_SECRET" }\n'
        )
        env = {"HN_CLIENT_ID": shop.config.client_id or "", "HN_CLIENT_SECRET": shop.config.client_secret or ""}
        async with asyncio.timeout(DEADLINE):
            report = await sync_once(config, env)
        [failure] = report.failures()
        assert server.trap.requests == []
        assert isinstance(failure.exception, ShopUnavailableError) and failure.exception.status == 302
        trap_host, shop_host = host_of(server.trap.url), host_of(shop.token_url)
        assert f"answered 302 redirect to {trap_host} (another host): not followed, the client secret is only sent to {shop_host}" in (failure.error or "")
        assert "sim-client-secret" not in (failure.error or "")


async def test_redirects_back_to_the_shop_are_retried_there_and_the_copy_is_exact(tmp_path):
    async with run_simulator(sim_config(data=DATA)) as server:
        shop = server.shop()
        shop.faults.set(redirect="same_host", redirect_on=("graphql",), redirect_count=3)
        report = await run(tmp_path, shop)
        assert report.ok, report.failures()
        assert shop.counters.faults["redirect"] == 3
        assert shop.counters.redirects_followed == 0  # resent to api_url, never to Location
        assert server.trap is None
        assert_matches_truth(shop, tmp_path / "state.db", resources=RESOURCES)


async def test_result_file_redirect_to_another_host_is_followed_without_credentials(tmp_path):
    async with run_simulator(sim_config(data=DATA), trap=True) as server:
        shop = server.shop()
        assert server.trap is not None
        shop.faults.set(redirect="other_host", redirect_on=("download",))
        report = await run(tmp_path, shop, sync={"path": "bulk"})
        assert report.ok, report.failures()
        assert {s.path for s in report.streams if s.resource == "orders"} == {"bulk"}
        files = [r for r in server.trap.requests if r.path.startswith("/_sim/files/")]
        assert files and len(files) == len(server.trap.requests)  # only the files went there
        assert server.trap.leaks() == [] and all(r.credentials == () for r in files)
        assert_matches_truth(shop, tmp_path / "state.db", resources=RESOURCES)


# -- Retry-After -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "switches",
    [
        {"retry_status": 429, "retry_after": 86_400},
        {"retry_status": 503, "retry_after": 86_400},
        {"retry_status": 429, "retry_after_text": "soon"},
        {"retry_status": 503, "retry_after_text": "-5"},
        {"retry_status": 429, "retry_after_text": "past"},
    ],
    ids=["429-a-day", "503-a-day", "text", "negative", "date-in-the-past"],
)
async def test_retry_after_that_is_huge_or_nonsense_still_ends_in_an_exact_copy(tmp_path, switches):
    async with run_simulator(sim_config(data=DATA)) as server:
        shop = server.shop()
        shop.faults.set(retry_status_count=3, **switches)
        report = await run(tmp_path, shop)  # backoff_cap is 0.5 s here: a day is capped to it
        assert report.ok, report.failures()
        assert shop.counters.faults["retry_status"] == 3
        assert_matches_truth(shop, tmp_path / "state.db", resources=RESOURCES)


# -- throttleStatus --------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["zero", "negative", "missing", "null"])
async def test_nonsense_throttle_status_on_every_answer_is_ignored_with_one_warning(tmp_path, caplog, mode):
    async with run_simulator(sim_config(data=DATA)) as server:
        shop = server.shop()
        shop.faults.set(throttle_status=mode)
        with caplog.at_level(logging.WARNING, logger="shopsync.client.graphql"):
            report = await run(tmp_path, shop)
        assert report.ok, report.failures()
        assert shop.counters.faults["throttle_status"] > 1
        warnings = [r.getMessage() for r in caplog.records if "unusable throttleStatus" in r.getMessage()]
        assert len(warnings) == 1 and warnings[0].startswith(f"shop {shop.name}: ")
        assert_matches_truth(shop, tmp_path / "state.db", resources=RESOURCES)


# -- huge bodies ------------------------------------------------------------------------------------
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_one_huge_answer_is_refused_and_the_resent_request_completes_the_copy(tmp_path, chunked):
    async with run_simulator(sim_config(data=DATA)) as server:
        shop = server.shop()
        # A cheap page: the refused answer's points stay taken ("abandon": it ran), and the budget's
        # conservative first model would make the resend of a big page wait for them to refill.
        shop.faults.set(huge_body=CAP + 1, huge_body_chunked=chunked, huge_body_count=1, huge_body_match="locations")
        report = await run(tmp_path, shop, sync={"max_response_bytes": CAP})
        assert report.ok, report.failures()
        assert shop.counters.faults["huge_body"] == 1
        assert_matches_truth(shop, tmp_path / "state.db", resources=RESOURCES)


async def test_huge_answers_every_time_fail_the_resource_naming_shop_size_and_cap(tmp_path):
    async with run_simulator(sim_config(data=DATA)) as server:
        shop = server.shop()
        shop.faults.set(huge_body=2 * CAP, huge_body_match="locations")
        report = await run(tmp_path, shop, sync={"max_attempts": 2, "max_response_bytes": CAP})
        [failure] = report.failures()
        assert failure.resource == "locations" and isinstance(failure.exception, TransientError)
        assert failure.exception.reason == "too_large"
        found = re.search(r"shop sim: .*answer of (\d+) bytes \(Content-Length\) is over max_response_bytes \((\d+)\)", failure.error or "")
        assert found, failure.error
        assert int(found.group(1)) > 2 * CAP and int(found.group(2)) == CAP
        # The other resource is untouched by it.
        assert_matches_truth(shop, tmp_path / "state.db", resources=["orders"])
