"""Fixtures of the daemon tests: an in-process daemon started with an injected shutdown trigger."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from shopsync.daemon.app import Daemon
from shopsync.daemon.scheduler import quiet_apscheduler
from shopsync.settings import load_settings

StartDaemon = Callable[..., Awaitable[Daemon]]


@pytest.fixture
async def start_daemon() -> AsyncIterator[StartDaemon]:
    """``await start_daemon(config, env, **daemon_kwargs)``: a running :class:`Daemon` (its
    ``run_forever`` driven by an event, as tests do instead of sending signals); all are stopped at
    the end, and a daemon that ended by itself must have returned 0."""
    running: list[tuple[Daemon, asyncio.Event, asyncio.Task[int]]] = []

    async def start(config: Path, env: dict[str, str], **kwargs: Any) -> Daemon:
        settings = load_settings(config, env=env)
        daemon = Daemon(settings, env=env, **kwargs)
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run_forever(stop.wait()))
        ready = asyncio.create_task(daemon.running.wait())
        await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            ready.cancel()
            task.result()  # raises the start error
        assert daemon.running.is_set(), "the daemon did not start within 30s"
        running.append((daemon, stop, task))
        return daemon

    yield start
    for _, stop, _ in running:
        stop.set()
    for _, _, task in running:
        assert await asyncio.wait_for(task, 30) == 0


@pytest.fixture
def quiet_logs():
    """APScheduler's per-run lines kept out of the captured output, as ``shopsync run`` does."""
    aps = logging.getLogger("apscheduler")
    level = aps.level
    quiet_apscheduler(logging.INFO)
    yield
    aps.setLevel(level)
