"""Helpers of the daemon tests: small simulated shops, configuration files, sink comparison, a
daemon child process with its log lines, and an sd_notify socket.

Comparing a sink with the shop is shared with the end-to-end tests (tests/support.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from shopsync.simulator.config import DataConfig, MutatorConfig, SimConfig
from shopsync.simulator.server import SimulatedShop
from tests.support import ALL_RESOURCES, assert_matches_truth, diff_records, sink_rows  # noqa: F401 (re-exported)

TOKEN_ENV = "DAEMON_TEST_TOKEN"
REPO = Path(__file__).resolve().parents[2]


def small_shop(name: str, *, seed: int = 7, mutate: float = 0.0, **overrides: Any) -> SimConfig:
    """A small but realistic store (ties, a 300-line-item order, unicode) on a fast clock."""
    data = DataConfig(
        seed=seed, orders=400, products=25, customers=80, locations=2, collections=5,
        big_orders=1, big_order_line_items=300, tie_groups=1, tie_group_size=80,
    )
    if isinstance(overrides.get("data"), dict):
        overrides["data"] = replace(data, **overrides["data"])
    overrides.setdefault("data", data)
    overrides.setdefault("time_scale", 50.0)
    overrides.setdefault("index_lag", 1.0)
    if mutate:
        overrides.setdefault(
            "mutator", MutatorConfig(orders_per_day=mutate, update_ratio=2.0, delete_ratio=0.05, burst_every=0.0)
        )
    return SimConfig(shop_name=name, **overrides)


def toml_value(value: Any) -> str:
    return orjson.dumps(value).decode()


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
    lines = [f'database = "sqlite:///{path.parent / "state.db"}"', "[sync]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in sync.items()]
    lines.append("[daemon]")
    lines += [f"{k} = {toml_value(v)}" for k, v in daemon.items()]
    for shop in shops:
        lines += ["[[shop]]", f'name = "{shop.name}"', f'domain = "{shop.name}.myshopify.com"',
                  f'api_url = "{shop.graphql_url}"']
        if shop.name in client_credentials:
            (path.parent / f"{shop.name}.id").write_text(shop.config.client_id or "")
            (path.parent / f"{shop.name}.secret").write_text(shop.config.client_secret or "")
            lines += [f'client_id = {{ file = "{shop.name}.id" }}', f'client_secret = {{ file = "{shop.name}.secret" }}']
        else:
            lines.append(f'access_token = {{ env = "{TOKEN_ENV}" }}')
        for key, value in (shop_keys or {}).get(shop.name, {}).items():
            lines.append(f"{key} = {toml_value(value)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def token_env(shop: SimulatedShop) -> dict[str, str]:
    return {**os.environ, TOKEN_ENV: shop.token}


# -- the sink and the state database ------------------------------------------------------------


def stream_states(db: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Every row of ``stream_state`` (including the engine's ``@deletions`` rows), read-only."""
    if not db.exists():
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return {(r["shop"], r["resource"]): dict(r) for r in con.execute("SELECT * FROM stream_state")}
    except sqlite3.OperationalError:
        return {}
    finally:
        con.close()


def bulk_operations(db: Path) -> list[dict[str, Any]]:
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM bulk_operations ORDER BY created_at")]
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


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
        """The first log line (from index ``after``) matching ``predicate``."""
        async with asyncio.timeout(within), self._changed:
            while True:
                for line in self.lines[after:]:
                    if predicate(line):
                        return line
                if self._reader.done():
                    raise AssertionError("daemon exited before the line appeared:\n" + self.output())
                await self._changed.wait()

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
