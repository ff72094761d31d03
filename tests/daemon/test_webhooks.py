"""Webhooks at /webhooks/shopify (issue 13): verified, counted, de-duplicated, and making syncs and
bulk polls sooner — against an in-process daemon and the simulator's signed deliveries."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from shopsync.daemon.app import Daemon
from shopsync.daemon.webhooks import PATH, SUBSCRIPTION_MUTATION, SeenIds, sign, verify
from shopsync.shopify.schema import parse_and_validate
from shopsync.simulator.server import SimulatedShop, run_simulator
from shopsync.simulator.webhooks import WebhookSender
from tests.support.daemon import (
    DaemonRecorder,
    bulk_operations,
    get_json,
    poll,
    sink_rows,
    small_shop,
    stream_states,
    token_env,
    write_config,
)

pytestmark = pytest.mark.usefixtures("quiet_logs")

SECRET_ENV = "WEBHOOK_TEST_SECRET"
SECRET = "whsec-not-the-client-secret"


def webhook_config(
    path: Path, shop: SimulatedShop, *, secret: bool = True, sync: dict | None = None, daemon: dict | None = None
) -> Path:
    """One shop syncing orders; [webhooks] enabled; the shop's signing secret from $WEBHOOK_TEST_SECRET
    (``secret``) or, without it, its client secret (client-credentials grant)."""
    config = write_config(
        path,
        [shop],
        shop_keys={shop.name: {"resources": ["orders"]}},
        sync=sync,
        daemon={"every": "1h", **(daemon or {})},
        client_credentials=() if secret else (shop.name,),
    )
    text = config.read_text()
    if secret:
        text = text.replace(f'name = "{shop.name}"', f'name = "{shop.name}"\nwebhook_secret = {{ env = "{SECRET_ENV}" }}', 1)
    config.write_text(text + "\n[webhooks]\nenabled = true\n")
    return config


def env_for(shop: SimulatedShop) -> dict[str, str]:
    return {**token_env(shop), SECRET_ENV: SECRET}


def received(daemon: Daemon, outcome: str) -> float:
    return daemon.metrics.registry.get_sample_value("shopsync_webhooks_received_total", {"outcome": outcome}) or 0.0


def actions(daemon: Daemon, resource: str, action: str) -> float:
    labels = {"shop": "sim", "resource": resource, "action": action}
    return daemon.metrics.registry.get_sample_value("shopsync_webhook_actions_total", labels) or 0.0


def test_signature_is_shopifys_base64_hmac_and_compared_exactly():
    body = b'{"id": 1}'
    good = sign("secret", body)
    assert verify("secret", body, good)
    assert not verify("secret", body + b" ", good)
    assert not verify("other", body, good)
    assert not verify("secret", body, good[:-2])


def test_seen_ids_are_bounded_and_forget_the_oldest():
    seen = SeenIds(capacity=3)
    assert [seen.seen("s", i) for i in "abc"] == [False] * 3
    assert seen.seen("s", "a") and not seen.seen("t", "a")  # per shop; "a" is now the newest
    assert len(seen) == 3
    assert not seen.seen("s", "b")  # forgotten: it was the oldest when ("t", "a") came


def test_the_subscription_mutation_validates_against_the_pinned_schema():
    parse_and_validate(SUBSCRIPTION_MUTATION, origin="webhook subscription")


async def test_unsigned_forged_stale_and_unknown_deliveries_are_refused_and_counted(tmp_path, start_daemon, caplog):
    async with run_simulator(small_shop("sim")) as server:
        shop = server.shop()
        record = DaemonRecorder()
        daemon = await start_daemon(webhook_config(tmp_path / "shopsync.toml", shop), env_for(shop), hooks=record)
        async with asyncio.timeout(30):
            await record.wait_until(lambda: record.successes.get(("sim", "orders"), 0) >= 1)
        url = f"{daemon.http_url}{PATH}"
        sender = WebhookSender.for_shop(shop, url, secret=SECRET)
        gid = next(iter(shop.truth("orders")))
        payload = sender.record_payload(gid)

        caplog.set_level(logging.WARNING, logger="shopsync.daemon.webhooks")
        forged = await sender.deliver("orders/updated", payload, signature=sign("sim-client-secret", b"{}"))
        unsigned = await sender.deliver("orders/updated", payload, unsigned=True)
        stale = await sender.deliver("orders/updated", payload, at=time.time() - 3600)
        client_secret = await WebhookSender.for_shop(shop, url).deliver("orders/updated", payload)
        stranger = WebhookSender(url=url, domain="evil.myshopify.com", secret=SECRET)
        unknown = await stranger.deliver("orders/updated", payload)

        assert [d.status for d in (forged, unsigned, stale, client_secret, unknown)] == [401] * 5
        assert received(daemon, "rejected_signature") == 2  # forged, and signed with the wrong secret
        assert received(daemon, "rejected_unsigned") == 1
        assert received(daemon, "rejected_stale") == 1
        assert received(daemon, "rejected_unknown_shop") == 1
        assert received(daemon, "accepted") == 0
        assert actions(daemon, "orders", "sync") == 0 and daemon.triggers is not None and not daemon.triggers.armed
        # One log line for the burst (the metric counts each), naming the cause, never a secret.
        refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("webhook refused")]
        assert refused == ["webhook refused (401): shop sim: the signature does not match the body"]

        good = await sender.deliver("orders/updated", payload)
        assert good.status == 200 and received(daemon, "accepted") == 1
        huge = await sender.deliver("orders/updated", {**payload, "note": "x" * (9 * 1024 * 1024)})
        assert huge.status == 413 and received(daemon, "accepted") == 1
        # Nothing secret in what the endpoint serves.
        _, status = await get_json(f"{daemon.http_url}/status")
        served = str(status) + (await _metrics_text(daemon))
        assert SECRET not in served and "sim-client-secret" not in served


async def _metrics_text(daemon: Daemon) -> str:
    from tests.support.daemon import get_text

    _, text = await get_text(f"{daemon.http_url}/metrics")
    return text


async def test_a_repeated_webhook_id_is_ignored(tmp_path, start_daemon):
    async with run_simulator(small_shop("sim")) as server:
        shop = server.shop()
        record = DaemonRecorder()
        # The client secret signs them (no webhook_secret); a long safety margin keeps the
        # triggered run armed for the whole test.
        config = webhook_config(tmp_path / "shopsync.toml", shop, secret=False, sync={"safety_margin": "30s"})
        daemon = await start_daemon(config, env_for(shop), hooks=record)
        async with asyncio.timeout(30):
            await record.wait_until(lambda: record.successes.get(("sim", "orders"), 0) >= 1)
        sender = WebhookSender.for_shop(shop, f"{daemon.http_url}{PATH}")
        gid = next(iter(shop.truth("orders")))
        first = await sender.deliver("orders/updated", sender.record_payload(gid))
        again = await sender.deliver("orders/updated", sender.record_payload(gid), webhook_id=first.webhook_id)
        other = await sender.deliver("orders/updated", sender.record_payload(gid))
        assert (first.status, again.status, other.status) == (200, 200, 200)
        assert "already received" in again.text and "already received" not in other.text
        assert received(daemon, "accepted") == 2 and received(daemon, "duplicate") == 1
        # The first armed a run; the third (a new id) coalesced with it; the repeat did nothing.
        assert actions(daemon, "orders", "sync") == 1 and actions(daemon, "orders", "coalesced") == 1
        assert daemon.triggers is not None and daemon.triggers.armed == {("sim", "orders")}


async def test_orders_updated_triggers_a_sync_that_arrives_before_the_next_scheduled_run(tmp_path, start_daemon):
    async with run_simulator(small_shop("sim", index_lag=0.0)) as server:
        shop = server.shop()
        record = DaemonRecorder()
        config = webhook_config(tmp_path / "shopsync.toml", shop, sync={"safety_margin": "1s", "path": "paginated"})
        daemon = await start_daemon(config, env_for(shop), hooks=record)
        async with asyncio.timeout(30):
            await record.wait_until(lambda: record.successes.get(("sim", "orders"), 0) >= 1)
        assert daemon.scheduler is not None
        next_scheduled = daemon.scheduler.next_run("sim/orders")
        assert next_scheduled is not None and next_scheduled.timestamp() > time.time() + 600  # every = 1h

        gid = next(iter(shop.truth("orders")))
        updated = shop.store.update(gid)
        db = tmp_path / "state.db"
        assert (sink_rows(db, "orders", "sim")[gid] or {}).get("updatedAt") != updated["updatedAt"]
        sender = WebhookSender.for_shop(shop, f"{daemon.http_url}{PATH}", secret=SECRET)
        delivered = await sender.deliver("orders/updated", sender.record_payload(gid))
        assert delivered.status == 200
        async with asyncio.timeout(30):
            await record.wait_until(lambda: record.successes.get(("sim", "orders"), 0) >= 2)
        arrived = time.time()
        assert (sink_rows(db, "orders", "sim")[gid] or {}).get("updatedAt") == updated["updatedAt"]
        assert arrived < next_scheduled.timestamp()
        assert daemon.scheduler.next_run("sim/orders") == next_scheduled  # the schedule is unchanged
        assert actions(daemon, "orders", "sync") == 1


async def test_bulk_operations_finish_ends_the_poll_before_its_next_poll_was_due(tmp_path, start_daemon):
    poll_every = 20.0
    # About 2,000 exported objects at 500/s: the export takes a few seconds, so the daemon's
    # first poll (right after the start) finds it RUNNING and waits poll_every for the next one.
    config = small_shop("sim", bulk_objects_per_second=10.0)
    async with run_simulator(config) as server:
        shop = server.shop()
        record = DaemonRecorder()
        sync = {"path": "bulk", "bulk_poll_min": f"{poll_every}s", "bulk_poll_max": f"{poll_every}s"}
        daemon = await start_daemon(webhook_config(tmp_path / "shopsync.toml", shop, sync=sync), env_for(shop), hooks=record)
        db = tmp_path / "state.db"

        op = await poll(lambda: next(iter(shop.bulk.operations.values()), None), within=30, what="a bulk operation")
        async with asyncio.timeout(30):
            await op.finished.wait()
        assert op.status == "COMPLETED"
        export_seconds = (op.completed_at or 0) - op.created_at
        assert export_seconds > 1.0
        # The daemon polled it while it ran and is now waiting for its next poll: its ledger
        # still says RUNNING although Shopify (the simulator) has finished.
        ledger = await poll(lambda: [r for r in bulk_operations(db) if r["id"] == op.gid], within=10, what="the ledger row")
        assert ledger[0]["status"] in ("CREATED", "RUNNING")
        assert record.successes.get(("sim", "orders"), 0) == 0

        sender = WebhookSender.for_shop(shop, f"{daemon.http_url}{PATH}", secret=SECRET)
        delivered = await sender.bulk_finished(op.gid)
        assert delivered.status == 200
        async with asyncio.timeout(poll_every):
            await record.wait_until(lambda: ("sim", "orders") in record.last_results)
        finished = time.time()
        assert record.last_results[("sim", "orders")].ok
        # Every poll came at or after the operation's creation, so the next one was due no
        # sooner than created + poll_every: the stream finished before it.
        assert finished < op.created_at + poll_every, (finished - op.created_at, export_seconds)
        assert actions(daemon, "", "bulk_wake") == 1
        # The window ended a safety margin before it began: an order updated later is the next
        # run's. Every order up to the window's end is in the sink.
        end = stream_states(db)[("sim", "orders")]["watermark"]
        due = {gid for gid, o in shop.truth("orders").items() if o["updatedAt"] <= end}
        missing = due - set(sink_rows(db, "orders", "sim"))
        assert due and not missing, (end, sorted(missing)[:5])


async def test_check_prints_the_subscriptions_and_creates_them_when_asked(tmp_path, capsys):
    from shopsync.commands.main import main

    async with run_simulator(small_shop("sim")) as server:
        shop = server.shop()
        config = webhook_config(tmp_path / "shopsync.toml", shop)
        public = "https://sync.example.com/webhooks/shopify"
        config.write_text(config.read_text() + f'url = "{public}"\n')
        env = env_for(shop)

        def check(*extra: str) -> int:
            import os
            from unittest import mock

            with mock.patch.dict(os.environ, env):
                return main(["check", "--config", str(config), *extra])

        assert await asyncio.to_thread(check) == 0
        out = capsys.readouterr().out
        assert f"webhooks: 3 subscriptions to {public}, verified with the shop's webhook_secret:" in out
        for line in ("bulk_operations/finish (BULK_OPERATIONS_FINISH)", "orders/updated (ORDERS_UPDATED)",
                     "orders/delete (ORDERS_DELETE)"):
            assert f"    {line}" in out
        assert shop.webhook_subscriptions.items == []  # printing contacts nobody

        assert await asyncio.to_thread(check, "--create-webhooks") == 0
        out = capsys.readouterr().out
        created = {(s.topic, s.uri) for s in shop.webhook_subscriptions.items}
        assert created == {(t, public) for t in ("BULK_OPERATIONS_FINISH", "ORDERS_UPDATED", "ORDERS_DELETE")}
        assert "shop sim: orders/updated: created gid://shopify/WebhookSubscription/" in out

        # Again: nothing new, each reported as already there.
        assert await asyncio.to_thread(check, "--create-webhooks") == 0
        out = capsys.readouterr().out
        assert len(shop.webhook_subscriptions.items) == 3 and out.count("already subscribed at") == 3
        assert SECRET not in out and shop.token not in out


async def test_webhooks_are_off_by_default_and_a_reload_turns_them_on(tmp_path, start_daemon):
    async with run_simulator(small_shop("sim")) as server:
        shop = server.shop()
        config = webhook_config(tmp_path / "shopsync.toml", shop)
        enabled = config.read_text()
        config.write_text(enabled.replace("[webhooks]\nenabled = true\n", ""))
        daemon = await start_daemon(config, env_for(shop))
        sender = WebhookSender.for_shop(shop, f"{daemon.http_url}{PATH}", secret=SECRET)
        gid = next(iter(shop.truth("orders")))
        off = await sender.deliver("orders/updated", sender.record_payload(gid))
        assert off.status == 404 and received(daemon, "accepted") == 0

        config.write_text(enabled)
        assert await daemon.reload()
        on = await sender.deliver("orders/updated", sender.record_payload(gid))
        assert on.status == 200 and received(daemon, "accepted") == 1
