"""sd_notify over a real AF_UNIX datagram socket, and the watchdog's ping decisions."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid

import pytest

from shopsync.daemon.sdnotify import Notifier, Watchdog, watchdog_interval
from tests.support import FakeClock


@pytest.fixture
def notify_socket(tmp_path):
    """A bound datagram socket standing in for systemd's notify socket; yields (socket, path)."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    yield sock, str(path)
    sock.close()


def drain(sock: socket.socket) -> list[str]:
    """Every datagram already queued. Sends are synchronous, so nothing is in flight."""
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def test_messages_arrive_in_order(notify_socket):
    sock, path = notify_socket
    n = Notifier.from_env({"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.ready()
    assert n.status("12 shops, 3 syncing, max lag 42s")
    assert n.watchdog()
    assert n.stopping()
    assert drain(sock) == ["READY=1", "STATUS=12 shops, 3 syncing, max lag 42s", "WATCHDOG=1", "STOPPING=1"]
    n.close()


def test_abstract_socket():
    name = f"shopsync-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.setblocking(False)
    try:
        n = Notifier.from_env({"NOTIFY_SOCKET": "@" + name})
        assert n.ready(status="starting")
        assert drain(sock) == ["READY=1\nSTATUS=starting"]
    finally:
        sock.close()


def test_unset_socket_is_a_noop():
    for env in (None, {}, {"NOTIFY_SOCKET": ""}):
        n = Notifier.from_env(env)
        assert not n.enabled
        assert n.ready() is False
        assert n.status("x") is False
        assert n.watchdog() is False
        assert n.stopping() is False
        assert n.reloading() is False


def test_reloading_carries_monotonic_usec(notify_socket):
    sock, path = notify_socket
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    Notifier.from_env({"NOTIFY_SOCKET": path}).reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    (msg,) = drain(sock)
    lines = dict(line.split("=", 1) for line in msg.split("\n"))
    assert lines["RELOADING"] == "1"
    assert before <= int(lines["MONOTONIC_USEC"]) <= after


def test_newline_in_a_value_cannot_inject_a_field(notify_socket):
    sock, path = notify_socket
    Notifier.from_env({"NOTIFY_SOCKET": path}).status("ok\nREADY=1")
    assert drain(sock) == ["STATUS=ok READY=1"]


def test_send_failure_is_logged_not_raised(tmp_path, caplog):
    n = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    with caplog.at_level(logging.WARNING, logger="shopsync.daemon.sdnotify"):
        assert n.ready() is False
    assert "sd_notify" in caplog.text


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_watchdog_interval(env, expected):
    assert watchdog_interval(env) == expected


def test_watchdog_pings_only_while_the_scheduler_progresses(notify_socket, caplog):
    sock, path = notify_socket
    clock = FakeClock()
    wd = Watchdog(Notifier.from_env({"NOTIFY_SOCKET": path}), interval=20.0, clock=clock)
    assert wd.period == 10.0 and wd.stall_after == 20.0

    assert wd.tick()  # fresh: progress was recorded at construction
    clock.now += 10
    wd.heartbeat()
    clock.now += 10
    assert wd.tick()
    assert drain(sock) == ["WATCHDOG=1", "WATCHDOG=1"]

    # No heartbeat for longer than the interval: the scheduler is stuck, so the pings stop and
    # systemd will restart the service.
    clock.now += 15
    with caplog.at_level(logging.ERROR, logger="shopsync.daemon.sdnotify"):
        assert not wd.tick()
        assert not wd.tick()
    assert drain(sock) == []
    assert not wd.healthy()
    assert caplog.text.count("withholding watchdog pings") == 1

    wd.heartbeat()
    assert wd.healthy()
    assert wd.tick()
    assert drain(sock) == ["WATCHDOG=1"]
    assert wd.pings == 3


def test_watchdog_sends_status_when_it_changes(notify_socket):
    sock, path = notify_socket
    texts = iter(
        ["1 shop, 0 syncing, max lag 5s", "1 shop, 0 syncing, max lag 5s", "1 shop, 1 syncing, max lag 9s"]
    )
    wd = Watchdog(
        Notifier.from_env({"NOTIFY_SOCKET": path}),
        interval=10.0,
        status=lambda: next(texts),
        clock=FakeClock(),
    )
    wd.tick()
    wd.tick()
    wd.tick()
    assert drain(sock) == [
        "STATUS=1 shop, 0 syncing, max lag 5s",
        "WATCHDOG=1",
        "WATCHDOG=1",
        "STATUS=1 shop, 1 syncing, max lag 9s",
        "WATCHDOG=1",
    ]


def test_without_systemd_watchdog_health_is_still_tracked(notify_socket):
    sock, path = notify_socket
    clock = FakeClock()
    wd = Watchdog(Notifier.from_env({"NOTIFY_SOCKET": path}), interval=None, stall_after=60, clock=clock)
    assert not wd.tick()  # systemd asked for no pings
    assert wd.healthy()
    clock.now += 61
    assert not wd.healthy()
    assert drain(sock) == []


async def test_run_task_pings_and_measures_a_blocked_loop(notify_socket):
    sock, path = notify_socket
    loop = asyncio.get_running_loop()
    wd = Watchdog(Notifier.from_env({"NOTIFY_SOCKET": path}), interval=0.1, stall_after=30)
    task = asyncio.create_task(wd.run())
    try:
        assert await asyncio.wait_for(loop.sock_recv(sock, 4096), 5) == b"WATCHDOG=1"
        # Block the event loop (what a CPU-bound bug does): the task cannot run, so no ping can be
        # sent meanwhile, and its next wake-up (which records the lag, then pings) reports how long
        # the loop was held.
        time.sleep(0.3)  # noqa: ASYNC251 - blocking the loop is the point
        assert await asyncio.wait_for(loop.sock_recv(sock, 4096), 5) == b"WATCHDOG=1"
        assert wd.loop_lag >= 0.2
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
