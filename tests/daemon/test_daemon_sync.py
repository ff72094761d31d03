"""The daemon keeps shops exact while they change, and one failing shop never holds up another."""

from __future__ import annotations

import asyncio
import time

import pytest

from shopsync.daemon.parking import persisted_park
from shopsync.simulator.config import MutatorConfig
from shopsync.simulator.server import run_simulator
from shopsync.state.models import StreamState
from shopsync.timeutil import format_ts, from_epoch
from tests.support.daemon import (
    ALL_RESOURCES,
    DaemonRecorder,
    assert_matches_truth,
    get_json,
    get_text,
    sink_rows,
    small_shop,
    stream_states,
    token_env,
    write_config,
)

pytestmark = pytest.mark.usefixtures("quiet_logs")


def all_streams_succeeded(record: DaemonRecorder, shops, times: int) -> bool:
    return all(record.successes.get((s, r), 0) >= times for s in shops for r in ALL_RESOURCES)


async def test_two_shops_with_live_mutations_end_exactly_equal_to_the_shops(tmp_path, start_daemon):
    """Mutators create, update (in same-second bursts) and delete while the daemon syncs on a 1s
    schedule; after the mutators stop and one more scheduled run of every stream, each sink equals
    its shop: live rows record for record, deleted records marked with deleted_at."""
    # Bursts of same-second updates are the hardest case for windows and cursors.
    mutator = MutatorConfig(orders_per_day=6000, update_ratio=2.0, delete_ratio=0.3, burst_every=60.0, burst_size=40)
    configs = [small_shop(name, seed=seed, mutator=mutator) for name, seed in (("alpha", 3), ("beta", 4))]
    async with run_simulator(*configs) as server:
        shops = list(server.shops.values())
        config = write_config(tmp_path / "shopsync.toml", shops)
        record = DaemonRecorder()
        await start_daemon(config, token_env(shops[0]), hooks=record)
        names = [s.name for s in shops]

        # Backfill, then at least two incremental rounds while the shops keep changing.
        async with asyncio.timeout(60):
            await record.wait_until(lambda: all_streams_succeeded(record, names, 3))
        for shop in shops:
            assert shop.mutator is not None and shop.mutator.counters.created > 0
            shop.mutator.pause()
        paused_at = time.time()
        locations_runs = {n: record.successes[(n, "locations")] for n in names}
        # Everything changed before the pause carries an updatedAt <= this second.
        needed = format_ts(from_epoch(paused_at + 1))
        db = tmp_path / "state.db"

        def windows_past_pause() -> bool:
            rows = stream_states(db)
            # Every stream committed a window ending after the pause (the engine's other rows, such
            # as a stream's last path decision or deletion events, keep no window of their own).
            keys = [k for k in rows if k[0] in names and "@" not in k[1]]
            return len(keys) >= len(names) * len(ALL_RESOURCES) and all(
                rows[k]["watermark"] is not None and rows[k]["watermark"] >= needed
                for k in keys
                if k[1] != "locations"  # read whole each run: no watermark to compare
            ) and all(record.successes[(n, "locations")] >= locations_runs[n] + 2 for n in names)

        async with asyncio.timeout(60):
            await record.wait_until(windows_past_pause)
        # A run looks at deletion events after its window, up to a later end, and succeeds after
        # that look; the row of an empty look is not rewritten each run. So one more success of
        # every stream: the run that ends it looked at the events past the pause.
        runs = {(n, r): record.successes[(n, r)] for n in names for r in ALL_RESOURCES}
        async with asyncio.timeout(60):
            await record.wait_until(lambda: all(record.successes[k] > runs[k] for k in runs))

        assert all(r.ok for r in record.last_results.values()), [r.error for r in record.last_results.values() if not r.ok]
        for shop in shops:
            assert_matches_truth(shop, db)
            counters = shop.mutator.counters
            assert counters.created > 0 and counters.updated > 0 and counters.bursts > 0, counters
            deleted = {}
            for resource in ALL_RESOURCES:
                deleted.update(sink_rows(db, resource, shop.name, deleted=True))
                truth = shop.truth(resource)
                assert not set(sink_rows(db, resource, shop.name, deleted=True)) & set(truth)
            assert counters.deleted > 0
            assert len(deleted) == counters.deleted, (shop.name, len(deleted), counters)


async def test_a_parked_shop_never_stalls_the_others(tmp_path, start_daemon):
    """beta answers 402 (frozen), gamma turns to answering 503 to everything, alpha lacks the
    read_locations scope: alpha's other streams keep syncing on schedule while beta backs off
    exponentially (1s, 2s, 4s, capped) and gamma is parked after repeated 5xx runs; only alpha's
    two resources needing read_locations are parked on their own (403). beta resumes and catches
    up once it is unfrozen."""
    configs = [small_shop(name, seed=seed) for name, seed in (("alpha", 3), ("beta", 4), ("gamma", 5))]
    async with run_simulator(*configs) as server:
        alpha, beta, gamma = (server.shops[n] for n in ("alpha", "beta", "gamma"))
        beta.set_status(402)
        alpha.set_scopes(s for s in alpha.config.scopes if s != "read_locations")
        config = write_config(
            tmp_path / "shopsync.toml", [alpha, beta, gamma], daemon={"park_backoff": "1s", "park_backoff_max": "4s"}
        )
        record = DaemonRecorder()
        daemon = await start_daemon(config, token_env(alpha), hooks=record)
        denied = ("inventory_levels", "locations")
        others = [r for r in ALL_RESOURCES if r not in denied]

        # beta's parking durations, sampled after every finished run from the start (each failed
        # run's parking is applied before the hooks hear of it, so no duration goes unseen).
        durations: list[float] = []

        def beta_durations() -> None:
            d = daemon.parking.last_duration("beta")
            if d is not None and (not durations or durations[-1] != d):
                durations.append(d)

        def gamma_synced() -> bool:
            beta_durations()
            return all(record.successes.get(("gamma", r), 0) >= 1 for r in ALL_RESOURCES)

        # gamma worked, then starts failing with 503 on every request (the client retries each
        # request, then the run fails; three such runs in a row park the shop).
        async with asyncio.timeout(30):
            await record.wait_until(gamma_synced)
        gamma.faults.set(http_503=1.0, retry_after=0.05)

        def settled() -> bool:
            beta_durations()
            return (
                all(record.successes.get(("alpha", r), 0) >= 5 for r in others)
                and "gamma" in daemon.parking.shops
                and durations[-1:] == [4.0]
            )

        async with asyncio.timeout(60):
            await record.wait_until(settled)

        # Back-off doubles per failed retry round and is capped; each round costs beta one
        # request per stream, the other 1-second ticks none.
        assert durations == [1.0, 2.0, 4.0]
        assert 3 <= beta.counters.http_status[402] <= 3 * len(ALL_RESOURCES), beta.counters.http_status
        assert "402" in daemon.parking.shops["beta"].reason
        assert "http_503" in daemon.parking.shops["gamma"].reason
        # Held by a parking of their own for the missing scope (whose current term may have just ended
        # with the retry not yet run: a parking only goes when a run succeeds).
        assert all("access" in daemon.parking.streams[("alpha", r)].reason for r in denied)
        assert "alpha" not in daemon.parking.shops
        # The reasons are in the state database, for `shopsync status`.
        rows = stream_states(tmp_path / "state.db")
        for r in denied:
            state = StreamState(**rows[("alpha", r)])
            assert state.parked_reason and "access" in state.parked_reason and state.parked_until
        beta_rows = [StreamState(**rows[("beta", r)]) for r in ALL_RESOURCES if ("beta", r) in rows]
        assert beta_rows and all("402" in (s.parked_reason or "") for s in beta_rows)
        status = daemon.status()
        by_name = {s["name"]: s for s in status["shops"]}
        assert "402" in by_name["beta"]["parked"]["reason"] and by_name["beta"]["parked"]["until"]
        assert by_name["alpha"]["parked"] is None
        alpha_rows = {r["resource"]: r for r in by_name["alpha"]["resources"]}
        assert all("access" in alpha_rows[r]["parked"]["reason"] for r in denied)
        assert all(alpha_rows[r]["watermark"] and alpha_rows[r]["parked"] is None for r in others)
        _, metrics = await get_text(daemon.http_url + "/metrics")
        assert 'shopsync_shop_parked{reason="HTTP 402: shop is frozen (402 Payment Required)",shop="beta"} 1.0' in metrics
        assert 'shopsync_stream_parked{' in metrics and 'resource="locations"' in metrics

        # Unfrozen: after its current parking ends, beta syncs everything and is no longer parked.
        beta.set_status(None)
        async with asyncio.timeout(30):
            await record.wait_until(lambda: all(record.successes.get(("beta", r), 0) >= 1 for r in ALL_RESOURCES))
        assert "beta" not in daemon.parking.shops and daemon.parking.last_duration("beta") is None
        assert_matches_truth(beta, tmp_path / "state.db")
        rows = stream_states(tmp_path / "state.db")
        assert all(persisted_park(StreamState(**rows[("beta", r)]), time.time()) is None for r in ALL_RESOURCES)


async def test_endpoints_on_a_live_daemon(tmp_path, start_daemon):
    """/healthz, /readyz, /status and /metrics answer from the running daemon."""
    async with run_simulator(small_shop("alpha", data={"orders": 100, "tie_group_size": 20, "big_orders": 0})) as server:
        alpha = server.shop()
        config = write_config(tmp_path / "shopsync.toml", [alpha])
        record = DaemonRecorder()
        daemon = await start_daemon(config, token_env(alpha), hooks=record)
        async with asyncio.timeout(30):
            await record.wait_until(lambda: all_streams_succeeded(record, ["alpha"], 1))
        url = daemon.http_url
        assert url.startswith("http://127.0.0.1:")
        code, health = await get_json(url + "/healthz")
        assert code == 200 and health["status"] == "ok"
        code, ready = await get_json(url + "/readyz")
        assert code == 200 and ready == {"status": "ready", "state": "running", "state_store": True, "schedules": True}
        code, status = await get_json(url + "/status")
        assert code == 200
        (shop,) = status["shops"]
        assert shop["name"] == "alpha" and shop["budget"]["capacity"] > 0 and shop["budget"]["restore_rate"] > 0
        assert 0 < shop["budget"]["utilisation"] <= 1.5
        rows = {r["resource"]: r for r in shop["resources"]}
        assert set(rows) == set(ALL_RESOURCES)
        assert all(r["watermark"] and r["lag_seconds"] is not None and r["next_run_at"] for r in rows.values())
        assert status["summary"].startswith("1 shop, ")
        code, text = await get_text(url + "/metrics")
        assert code == 200
        assert 'shopsync_ready 1.0' in text
        assert 'shopsync_sync_lag_seconds{resource="orders",shop="alpha"}' in text
        assert 'shopsync_records_written_total{path="bulk",resource="orders",shop="alpha"} 100.0' in text
