"""Reloading, health when the loop is blocked, and secrets kept out of logs, metrics and /status."""

from __future__ import annotations

import asyncio
import io
import logging
import time

import orjson
import pytest

from shopsync.daemon.app import RunState
from shopsync.observability.logs import redact, setup_logging
from shopsync.simulator.server import run_simulator
from tests.support.daemon import (
    ALL_RESOURCES,
    DaemonRecorder,
    assert_matches_truth,
    bulk_operations,
    get_json,
    get_text,
    poll,
    small_shop,
    stream_states,
    token_env,
    until_status,
    write_config,
)

pytestmark = pytest.mark.usefixtures("quiet_logs")


async def test_reload_adds_removes_and_changes_shops_without_dropping_in_flight_work(tmp_path, start_daemon, caplog):
    """A reload (the SIGHUP handler's trigger) removes alpha while its backfill's bulk operation is
    running — that run still completes exactly — adds gamma, narrows beta's resources and changes
    its schedule. A file that is not TOML, or that moves the database, is rejected with its message
    while the running configuration continues."""
    # small_shop's data ends five minutes ago: alpha is removed before a second window could read
    # records stamped within the safety margin of the first, and gamma's first run reads it all.
    # alpha's bulk export runs for a few seconds (1,000 objects/s).
    slow = small_shop("alpha", seed=3, bulk_objects_per_second=20.0)
    settled = small_shop("gamma", seed=5)
    async with run_simulator(slow, small_shop("beta", seed=4), settled) as server:
        alpha, beta, gamma = (server.shops[n] for n in ("alpha", "beta", "gamma"))
        config = tmp_path / "shopsync.toml"
        write_config(config, [alpha, beta], shop_keys={"alpha": {"resources": ["orders"]}})
        record = DaemonRecorder()
        daemon = await start_daemon(config, token_env(alpha), hooks=record)
        db = tmp_path / "state.db"
        op = await poll(
            lambda: [o for o in bulk_operations(db) if o["shop"] == "alpha" and not o["finished"]],
            within=20, what="alpha's bulk operation",
        )
        assert ("alpha", "orders") in daemon.syncing

        write_config(config, [beta, gamma], shop_keys={"beta": {"resources": ["orders", "products"], "every": "2s"}})
        daemon.request_reload()
        async with asyncio.timeout(20):
            await record.wait_until(lambda: record.reloads == [True])
        specs = daemon.scheduler.specs
        assert {k for k in specs if k.startswith("alpha/")} == set()
        assert {k for k in specs if k.startswith("beta/")} == {"beta/orders", "beta/products"}
        assert specs["beta/orders"].every == 2.0
        assert {k for k in specs if k.startswith("gamma/")} == {f"gamma/{r}" for r in ALL_RESOURCES}

        # alpha's run in flight was not dropped: it finishes its window and commits.
        def alpha_done() -> bool:
            row = stream_states(db).get(("alpha", "orders"))
            return bool(row and row["watermark"] and row["window_end"] is None)

        await poll(alpha_done, within=30, what="alpha's in-flight backfill to commit")
        assert [o["id"] for o in bulk_operations(db) if o["shop"] == "alpha"] == [op[0]["id"]]
        assert_matches_truth(alpha, db, resources=["orders"])
        async with asyncio.timeout(30):
            await record.wait_until(lambda: all(record.successes.get(("gamma", r), 0) >= 1 for r in ALL_RESOURCES))
        assert_matches_truth(gamma, db)
        # Once idle, the removed shop is forgotten: no status rows, no metric series.
        await record.wait_until(lambda: ("alpha", "orders") not in daemon.syncing)
        assert "alpha" not in {s["name"] for s in daemon.status()["shops"]}
        _, metrics = await get_text(daemon.http_url + "/metrics")
        assert 'shop="alpha"' not in metrics and 'shop="gamma"' in metrics

        # A broken file: rejected with the parser's message, everything keeps running.
        good = config.read_text()
        config.write_text(good + "\n[daemon\n")
        beta_runs = record.successes[("beta", "orders")]
        with caplog.at_level(logging.ERROR, logger="shopsync.daemon.reload"):
            daemon.request_reload()
            async with asyncio.timeout(20):
                await record.wait_until(lambda: len(record.reloads) == 2)
        assert record.reloads == [True, False]
        rejected = [r.getMessage() for r in caplog.records if "reload rejected" in r.getMessage()]
        assert rejected and "not valid TOML" in rejected[0] and str(config) in rejected[0]
        # Moving the database needs a restart: rejected too.
        config.write_text(good.replace("state.db", "other.db"))
        with caplog.at_level(logging.ERROR, logger="shopsync.daemon.reload"):
            daemon.request_reload()
            async with asyncio.timeout(20):
                await record.wait_until(lambda: len(record.reloads) == 3)
        assert record.reloads == [True, False, False]
        assert any("database: changed; restart shopsync" in r.getMessage() for r in caplog.records)
        assert daemon.state is RunState.RUNNING
        async with asyncio.timeout(20):
            await record.wait_until(lambda: record.successes[("beta", "orders")] >= beta_runs + 2)
        assert not (tmp_path / "other.db").exists()


async def test_healthz_fails_when_the_loop_is_blocked(tmp_path, start_daemon):
    """Block the daemon's event loop for longer than the stall limit: the heartbeat and the
    systemd watchdog pings stop, /healthz answers 503 once the loop turns again, then recovers."""
    async with run_simulator(small_shop("alpha", data={"orders": 50, "tie_group_size": 10, "big_orders": 0})) as server:
        alpha = server.shop()
        config = write_config(tmp_path / "shopsync.toml", [alpha])
        daemon = await start_daemon(config, token_env(alpha), stall_after=0.5, heartbeat_every=0.1)
        url = daemon.http_url + "/healthz"
        code, body = await get_json(url)
        assert code == 200 and body["status"] == "ok"
        beats = daemon.watchdog.pings, daemon.watchdog.since_heartbeat()
        loop = asyncio.get_running_loop()
        # The daemon shares this loop: a blocking call scheduled on it stalls everything, exactly
        # as a CPU-bound bug in the daemon would.
        loop.call_soon(time.sleep, 1.5)
        code, body = await get_json(url)
        assert code == 503, body
        assert body["status"] == "stalled" and body["stalled_recently"] is True
        assert beats[1] < 0.5  # it was fresh before the block
        code, ready = await get_json(daemon.http_url + "/readyz")
        assert code == 200  # readiness is not health: the store is open and schedules armed

        await until_status(url, 200, within=5)


async def test_tokens_never_reach_logs_metrics_or_status(tmp_path, start_daemon):
    """A static token and a client-credentials shop: with debug logging on, neither the static
    token, the client secret nor the issued access token appears in the log, a metrics scrape or
    /status; a line that did carry the issued token is redacted (the client registered it)."""
    async with run_simulator(small_shop("alpha", seed=3), small_shop("beta", seed=4)) as server:
        alpha, beta = server.shops["alpha"], server.shops["beta"]
        config = write_config(tmp_path / "shopsync.toml", [alpha, beta], client_credentials=("beta",))
        buffer = io.StringIO()
        root = logging.getLogger()
        level = root.level
        handler = setup_logging(format="json", level="debug", stream=buffer)
        try:
            record = DaemonRecorder()
            daemon = await start_daemon(config, token_env(alpha), hooks=record)
            async with asyncio.timeout(30):
                await record.wait_until(
                    lambda: all(record.successes.get((s, r), 0) >= 2 for s in ("alpha", "beta") for r in ALL_RESOURCES)
                )
            issued = list(beta.tokens._issued)  # the simulator's record of tokens it granted
            assert issued, "beta should have been issued a token through the client-credentials grant"
            logging.getLogger("test").warning("leak attempt: %s", issued[0])
            _, metrics = await get_text(daemon.http_url + "/metrics")
            _, status = await get_text(daemon.http_url + "/status")
        finally:
            root.removeHandler(handler)
            root.setLevel(level)
        log_text = buffer.getvalue()
        secrets = [alpha.token, beta.config.client_secret, *issued]
        assert all(len(s) >= 10 for s in secrets)
        for name, text in (("log", log_text), ("metrics", metrics), ("status", status)):
            for secret in secrets:
                assert secret not in text, f"a secret leaked into the {name}"
        assert "leak attempt: ***" in log_text
        assert redact(issued[0]) == "***"
        lines = [orjson.loads(line) for line in log_text.splitlines()]
        assert len(lines) > 100  # debug logging really ran
        # Every line logged while syncing a stream names its shop and resource.
        engine_lines = [r for r in lines if r["logger"].startswith("shopsync.engine")]
        assert engine_lines and all(r.get("shop") and r.get("resource") for r in engine_lines)
