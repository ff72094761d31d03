"""``shopsync run`` as a real process: systemd notifications, real signals, PID 1, re-attaching."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from shopsync.simulator.server import run_simulator
from tests.support.daemon import (
    DaemonProcess,
    NotifySocket,
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

PROMTOOL = shutil.which("promtool")


def synced(status: dict, shop: str) -> bool:
    rows = next((s["resources"] for s in status["shops"] if s["name"] == shop), [])
    return bool(rows) and all(r["watermark"] for r in rows)


async def wait_status(url: str, predicate, *, within: float = 30.0) -> dict:
    """Poll the daemon's /status (another process) until ``predicate(doc)``."""
    async with asyncio.timeout(within):
        while True:
            _, doc = await get_json(url + "/status")
            if predicate(doc):
                return doc
            await asyncio.sleep(0.1)


async def test_systemd_notifications_reload_by_sighup_and_stop_by_sigterm(tmp_path):
    """The real daemon process tells a real notify socket READY=1, then STATUS= and WATCHDOG=1 pings;
    SIGHUP swaps shops (alpha out, gamma in) between RELOADING=1 and READY=1, a broken file is
    rejected with its message while the old configuration keeps running; SIGTERM brings STOPPING=1
    and exit code 0 well within the stop timeout. A live scrape passes `promtool check metrics`."""
    async with run_simulator(small_shop("alpha", seed=3), small_shop("beta", seed=4), small_shop("gamma", seed=5)) as server:
        alpha, beta, gamma = (server.shops[n] for n in ("alpha", "beta", "gamma"))
        config = write_config(tmp_path / "shopsync.toml", [alpha, beta])
        notify = NotifySocket(tmp_path / "notify.sock")
        env = {**token_env(alpha), "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"}
        daemon = await DaemonProcess.start(config, env)
        try:
            first = await notify.receive()
            assert first.startswith("READY=1\nSTATUS=2 shops, "), first
            await notify.until(lambda m: m.startswith("STATUS="))
            await notify.until(lambda m: m == "WATCHDOG=1")
            url = await daemon.url()
            await wait_status(url, lambda d: synced(d, "alpha") and synced(d, "beta"))

            if PROMTOOL is not None:
                _, text = await get_text(url + "/metrics")
                proc = await asyncio.create_subprocess_exec(
                    PROMTOOL, "check", "metrics", stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                )
                out, _ = await proc.communicate(text.encode())
                assert proc.returncode == 0 and out.strip() == b"", out.decode()
                assert "shopsync_records_written_total" in text

            # SIGHUP: alpha removed, gamma added.
            write_config(config, [beta, gamma])
            mark = len(daemon.lines)
            daemon.send(signal.SIGHUP)
            reloading = await notify.until(lambda m: m.startswith("RELOADING=1"))
            assert "MONOTONIC_USEC=" in reloading
            await notify.until(lambda m: m.startswith("READY=1"))
            await daemon.wait_line(lambda r: "configuration reloaded" in r.get("msg", ""), after=mark)
            doc = await wait_status(url, lambda d: synced(d, "gamma"))
            assert [s["name"] for s in doc["shops"]] == ["beta", "gamma"]

            # A broken file is rejected; beta and gamma keep syncing.
            config.write_text(config.read_text().replace('name = "beta"', 'name = "beta"\nbogus_key = 1'))
            mark = len(daemon.lines)
            daemon.send(signal.SIGHUP)
            await notify.until(lambda m: m.startswith("RELOADING=1"))
            await notify.until(lambda m: m.startswith("READY=1"))
            rejected = await daemon.wait_line(lambda r: "reload rejected" in r.get("msg", ""), after=mark)
            assert "bogus_key: unknown key" in rejected["msg"] and rejected["level"] == "error"
            before = (await get_json(url + "/status"))[1]
            done_at = {r["resource"]: r["last_success_at"] for r in before["shops"][0]["resources"]}
            await wait_status(
                url,
                lambda d: [s["name"] for s in d["shops"]] == ["beta", "gamma"]
                and all(r["last_success_at"] > done_at[r["resource"]] for r in d["shops"][0]["resources"]),
            )

            sent = time.monotonic()
            daemon.send(signal.SIGTERM)
            await notify.until(lambda m: m.startswith("STOPPING=1"))
            assert await daemon.wait(15) == 0
            assert time.monotonic() - sent < 10.0  # [daemon] stop_timeout
            await daemon.wait_line(lambda r: r.get("msg") == "stopped")
        finally:
            await daemon.kill()
            notify.close()
        # The order systemd relies on.
        kinds = [m.split("=", 1)[0] for m in notify.messages]
        assert kinds[0] == "READY" and kinds[-1] == "STOPPING"
        assert kinds.index("STATUS") < kinds.index("WATCHDOG") < kinds.index("RELOADING")


async def test_sigterm_mid_bulk_operation_then_restart_reattaches(tmp_path):
    """SIGTERM while a backfill's bulk operation runs: exit 0 at once, the operation stays recorded;
    the restarted daemon re-attaches to it — Shopify saw exactly one operation — and the data is exact."""
    # About 2,000 objects at 400/s: the operation is still running when SIGTERM comes.
    shop_config = small_shop("alpha", seed=3, bulk_objects_per_second=8.0)
    async with run_simulator(shop_config) as server:
        alpha = server.shop()
        config = write_config(
            tmp_path / "shopsync.toml", [alpha], daemon={"every": "1h"}, shop_keys={"alpha": {"resources": ["orders"]}}
        )
        db = tmp_path / "state.db"
        env = token_env(alpha)
        first = await DaemonProcess.start(config, env)
        try:
            ops = await poll(lambda: bulk_operations(db), within=20, what="a recorded bulk operation")
            assert alpha.bulk.running(), "the operation should be running at Shopify"
            sent = time.monotonic()
            first.send(signal.SIGTERM)
            assert await first.wait(15) == 0
            assert time.monotonic() - sent < 5.0
        finally:
            await first.kill()
        (op,) = bulk_operations(db)
        assert op["id"] == ops[0]["id"] and not op["finished"]
        state = stream_states(db)[("alpha", "orders")]
        assert state["bulk_operation_id"] == op["id"] and state["watermark"] is None
        assert alpha.bulk.running(), "stopping must not cancel the operation at Shopify"

        second = await DaemonProcess.start(config, env)
        try:
            await poll(lambda: stream_states(db)[("alpha", "orders")]["watermark"], within=30, what="the backfill")
            second.send(signal.SIGTERM)
            assert await second.wait(15) == 0
        finally:
            await second.kill()
        assert alpha.counters.bulk["CREATED"] == 1, alpha.counters.as_dict()["bulk_operations"]
        assert [o["id"] for o in bulk_operations(db)] == [op["id"]]
        assert_matches_truth(alpha, db, resources=["orders"])


def _child_of(pid: int) -> int | None:
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        if children:
            return int(children[0])
    return None


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0, reason="needs unshare(1) and root")
async def test_runs_as_pid_1_in_a_new_pid_namespace_and_stops_on_sigterm(tmp_path):
    """As PID 1 (a container's init) Python ignores SIGTERM unless it installed a handler; the daemon
    does, so SIGTERM from outside the namespace stops it cleanly with exit code 0."""
    async with run_simulator(small_shop("alpha", data={"orders": 50, "tie_group_size": 10, "big_orders": 0})) as server:
        alpha = server.shop()
        config = write_config(tmp_path / "shopsync.toml", [alpha])
        daemon = await DaemonProcess.start(config, token_env(alpha), prefix=["unshare", "--pid", "--fork", "--mount-proc"])
        try:
            started = await daemon.wait_line(lambda r: "daemon started" in r.get("msg", ""))
            assert "(pid 1)" in started["msg"]
            url = await daemon.url()
            await wait_status(url, lambda d: synced(d, "alpha"))
            inner = _child_of(daemon.proc.pid)
            assert inner is not None
            os.kill(inner, signal.SIGTERM)
            assert await daemon.wait(15) == 0
            await daemon.wait_line(lambda r: r.get("msg") == "stopped")
        finally:
            await daemon.kill()


async def test_stopped_process_fails_healthz_and_withholds_watchdog_pings(tmp_path):
    """SIGSTOP freezes the daemon's loop (as a hang would): /healthz stops answering and no
    WATCHDOG=1 arrives; after SIGCONT it reports the stall (503), then recovers to 200 and pings."""
    async with run_simulator(small_shop("alpha", data={"orders": 50, "tie_group_size": 10, "big_orders": 0})) as server:
        alpha = server.shop()
        config = write_config(tmp_path / "shopsync.toml", [alpha])
        notify = NotifySocket(tmp_path / "notify.sock")
        env = {**token_env(alpha), "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"}
        daemon = await DaemonProcess.start(config, env)
        try:
            url = await daemon.url()
            await notify.until(lambda m: m == "WATCHDOG=1")
            assert (await get_json(url + "/healthz"))[0] == 200
            daemon.send(signal.SIGSTOP)
            frozen_at = len(notify.messages)
            with pytest.raises(TimeoutError):
                await get_json(url + "/healthz", within=1.5)
            # Frozen well past the 1s stall limit (the wait is the scenario, not synchronisation).
            await asyncio.sleep(1.0)
            with pytest.raises(TimeoutError):
                await notify.receive(within=0.2)
            assert len(notify.messages) == frozen_at
            daemon.send(signal.SIGCONT)
            code, body = await get_json(url + "/healthz")
            assert code == 503 and body["stalled_recently"], body

            await until_status(url + "/healthz", 200, within=10)
            await notify.until(lambda m: m == "WATCHDOG=1")
            daemon.send(signal.SIGTERM)
            assert await daemon.wait(15) == 0
        finally:
            await daemon.kill()
            notify.close()
        assert any("stalled" in r.get("msg", "") for r in daemon.lines)


async def test_demo_starts_syncs_stops_on_ctrl_c_and_resumes(tmp_path):
    """`shopsync demo` (what `make demo` runs, here with a small store): it prints where to look,
    syncs the live simulated shop, stops on SIGINT with exit 0, and a second run resumes from the
    saved state — the same store (seed and anchor kept), no second backfill."""
    state_dir = tmp_path / "demo-state"
    args = ["demo", "--dir", str(state_dir), "--orders", "300", "--listen", "127.0.0.1:0", "--every", "1s"]
    runs = []
    for attempt in range(2):
        demo = await DaemonProcess.command(args, dict(os.environ), cwd=tmp_path)
        try:
            url = await demo.url()
            await demo.wait_line(lambda r: r.get("level") == "raw" and r["msg"].startswith("Ctrl-C stops"))
            banner = "\n".join(line["msg"] for line in demo.lines if line.get("level") == "raw")
            assert f"{url}/metrics" in banner and f"{url}/status" in banner
            assert "shopsync status --config demo-state/shopsync.toml" in banner
            assert ("first run: backfilling 300 orders" if attempt == 0 else "resuming from the saved state") in banner
            await wait_status(url, lambda d: synced(d, "demo"), within=60.0)
            demo.send(signal.SIGINT)
            assert await demo.wait(15) == 0
        finally:
            await demo.kill()
        runs.append(demo)
    started = [[r["msg"] for r in run.lines if "started bulk operation" in r.get("msg", "")] for run in runs]
    assert started[0] and not started[1]  # the backfill ran once
    assert {p.name for p in state_dir.iterdir()} >= {"demo.json", "shopsync.db", "shopsync.toml", "token"}
    assert (state_dir / "token").stat().st_mode & 0o077 == 0
