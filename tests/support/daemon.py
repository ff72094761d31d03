"""Helpers of the daemon tests: configuration files, the daemon's hooks recorded, HTTP polling,
a daemon child process with its log lines, and an sd_notify socket.

Small simulated shops (:func:`small_shop`), comparing a sink with the shop and reading the state
tables are shared with the other folders (:mod:`tests.support`) and re-exported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from shopsync.engine.engine import StreamResult
from shopsync.settings import StreamKey
from shopsync.simulator.server import SimulatedShop
from tests.support import (  # noqa: F401 (re-exported)
    ALL_RESOURCES,
    assert_matches_truth,
    bulk_operations,
    diff_records,
    sink_rows,
    small_shop,
    stream_states,
    write_shopsync_toml,
)

TOKEN_ENV = "DAEMON_TEST_TOKEN"
REPO = Path(__file__).resolve().parents[2]


def write_config(
    path: Path,
    shops: list[SimulatedShop],
    *,
    daemon: dict[str, Any] | None = None,
    sync: dict[str, Any] | None = None,
    shop_keys: dict[str, dict[str, Any]] | None = None,
    client_credentials: tuple[str, ...] = (),
) -> Path:
    """A shopsync.toml for ``shops``: state in ``state.db`` next to it, endpoints on an ephemeral port.

    Shops named in ``client_credentials`` use the client-credentials grant (secrets from files
    next to the config), the others the static token from ``$DAEMON_TEST_TOKEN``.
    """
    sync = {
        "safety_margin": "2s", "overlap": "30s", "bulk_poll_min": "0.05s", "bulk_poll_max": "0.3s",
        "backoff_base": "0.05s", "backoff_cap": "0.3s", "max_attempts": 3, **(sync or {}),
    }
    daemon = {"listen": "127.0.0.1:0", "every": "1s", "jitter": 0, "stop_timeout": "10s",
              "park_backoff": "1s", "park_backoff_max": "8s", **(daemon or {})}
    return write_shopsync_toml(path, shops, token_env=TOKEN_ENV, sync=sync, daemon=daemon, shop_keys=shop_keys,
                               client_credentials=client_credentials)


def token_env(shop: SimulatedShop) -> dict[str, str]:
    return {**os.environ, TOKEN_ENV: shop.token}


# -- what the daemon finished ---------------------------------------------------------------------


@dataclass
class DaemonRecorder:
    """The daemon's hooks (:class:`shopsync.daemon.hooks.DaemonHooks`) in tests: each stream's last
    result, how many runs of each succeeded, each reload's outcome (True applied, False rejected).

    ``Daemon(settings, hooks=recorder)``, then ``await recorder.wait_until(predicate)`` instead of
    sleeping (wrapped in ``asyncio.timeout``).
    """

    last_results: dict[StreamKey, StreamResult] = field(default_factory=dict)
    successes: dict[StreamKey, int] = field(default_factory=dict)
    reloads: list[bool] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def run_finished(self, result: StreamResult) -> None:
        key = (result.shop, result.resource)
        self.last_results[key] = result
        if result.ok:
            self.successes[key] = self.successes.get(key, 0) + 1
        await self._notify()

    async def reload_finished(self, applied: bool) -> None:
        self.reloads.append(applied)
        await self._notify()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds, checked now and after every finished run and reload
        (a run's task waits until the waiter has checked: no outcome goes unseen)."""
        async with self._changed:
            await self._changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


# -- waiting on another process or task -------------------------------------------------------


async def poll(predicate: Callable[[], Any], *, within: float, every: float = 0.05, what: str = "condition") -> Any:
    """Poll an *external* condition (another process, a file) until truthy; fail after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(every)


async def get_json(url: str, *, within: float = 5.0) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.get(url, timeout=aiohttp.ClientTimeout(total=within)) as r:
        return r.status, orjson.loads(await r.read())


async def until_status(url: str, code: int, *, within: float = 10.0) -> None:
    """Poll ``url`` (served by another process or task) until it answers ``code``."""
    async with asyncio.timeout(within):
        while True:
            if (await get_json(url))[0] == code:
                return
            await asyncio.sleep(0.1)


async def get_text(url: str, *, within: float = 5.0) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url, timeout=aiohttp.ClientTimeout(total=within)) as r:
        return r.status, await r.text()


# -- a daemon child process ------------------------------------------------------------------------


class DaemonProcess:
    """``python -m shopsync run`` as a child process; its JSON log lines are collected as they come."""

    def __init__(self, proc: asyncio.subprocess.Process, argv: list[str]) -> None:
        self.proc = proc
        self.argv = argv
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, config: Path, env: dict[str, str], *, prefix: list[str] | None = None,
                    log_level: str = "info") -> DaemonProcess:
        """``shopsync run --config CONFIG`` with JSON logs (``prefix``: e.g. an ``unshare`` command)."""
        args = ["run", "--config", str(config), "--log-format", "json", "--log-level", log_level]
        return await cls.command(args, env, prefix=prefix)

    @classmethod
    async def command(cls, args: list[str], env: dict[str, str], *, prefix: list[str] | None = None,
                      cwd: Path = REPO) -> DaemonProcess:
        """``python -m shopsync ARGS`` as a child process."""
        argv = [*(prefix or []), sys.executable, "-m", "shopsync", *args]
        proc = await asyncio.create_subprocess_exec(
            *argv, env={**env, "PYTHONPATH": str(REPO)}, cwd=str(cwd),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        return cls(proc, argv)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            text = raw.decode(errors="replace").rstrip("\n")
            self.raw.append(text)
            try:
                line = orjson.loads(text)
            except orjson.JSONDecodeError:
                line = {"msg": text, "level": "raw"}
            async with self._changed:
                self.lines.append(line if isinstance(line, dict) else {"msg": text})
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    async def wait_line(self, predicate: Callable[[dict[str, Any]], bool], *, within: float = 20.0,
                        after: int = 0) -> dict[str, Any]:
        """The first log line (from index ``after``) matching ``predicate``; on a timeout, an
        AssertionError with the lines printed since ``after`` (the last 60)."""
        try:
            async with asyncio.timeout(within), self._changed:
                while True:
                    for line in self.lines[after:]:
                        if predicate(line):
                            return line
                    if self._reader.done():
                        raise AssertionError("daemon exited before the line appeared:\n" + self.output())
                    await self._changed.wait()
        except TimeoutError:
            tail = "\n".join(orjson.dumps(line).decode() for line in self.lines[after:][-60:])
            raise AssertionError(f"no such line within {within}s; the daemon printed meanwhile:\n{tail}") from None

    async def url(self, *, within: float = 20.0) -> str:
        line = await self.wait_line(lambda r: "endpoints on" in r.get("msg", ""), within=within)
        return line["msg"].rsplit(" ", 1)[-1]

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    async def wait(self, within: float = 30.0) -> int:
        async with asyncio.timeout(within):
            code = await self.proc.wait()
            await self._reader
        return code

    def output(self) -> str:
        return "\n".join(self.raw)

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            with contextlib.suppress(Exception):
                await self.wait(10)


class NotifySocket:
    """A datagram socket standing in for systemd's ``$NOTIFY_SOCKET``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[str] = []

    async def receive(self, within: float = 20.0) -> str:
        async with asyncio.timeout(within):
            data = await asyncio.get_running_loop().sock_recv(self.sock, 4096)
        text = data.decode()
        self.messages.append(text)
        return text

    async def until(self, predicate: Callable[[str], bool], within: float = 20.0) -> str:
        async with asyncio.timeout(within):
            while True:
                message = await self.receive(within)
                if predicate(message):
                    return message

    def close(self) -> None:
        self.sock.close()
