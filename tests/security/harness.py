"""Helpers of the secret-leak tests: distinctive secrets, a simulator child process, a recording
proxy for the client-credentials grant, child ``shopsync`` processes and a scanner for their output.

Only stable interfaces are used: the ``shopsync`` command line (``simulate``, ``sync``, ``check``,
``run``, ``status``), the simulator's control endpoints (``/_sim/faults``, ``/_sim/status/{shop}``)
and the daemon's HTTP endpoints. Nothing here imports shopsync, so the re-layout cannot break it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import sys
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

REPO = Path(__file__).resolve().parents[2]

#: The simulator's fixed client credentials (not settable from its command line); the proxy puts
#: the secret back in place of the test's own random one, so the real secret shopsync holds is ours.
SIM_CLIENT_ID = "sim-client-id"
SIM_CLIENT_SECRET = "sim-client-secret"  # noqa: S105 (the simulator's public test value)


def new_token() -> str:
    """A Shopify-shaped admin token: ``shpat_`` + 32 random hex digits."""
    return "shpat_" + secrets.token_hex(16)


def new_client_secret() -> str:
    """A random client secret with characters that URL-encoding changes (``/``, ``+``, ``=``), so
    the encoded form is a different string to search for; no ``shp*_`` prefix, so only the
    redaction registry (not a token-shape pattern) can hide it."""
    return f"{secrets.token_hex(12)}/{secrets.token_hex(6)}+{secrets.token_hex(6)}="


def forms(secret: str) -> set[str]:
    """The renderings of ``secret`` that must never appear: as is, URL-encoded (form body, query),
    JSON-escaped, and the random part of a prefixed token (a prefix-stripping rendering)."""
    out = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret),
           json.dumps(secret)[1:-1]}
    if "_" in secret:
        out.add(secret.split("_", 1)[1])
    return {f for f in out if len(f) >= 16}


# -- the simulator ---------------------------------------------------------------------------------


@dataclass
class Simulator:
    """``shopsync simulate`` as a child process on a free port."""

    proc: asyncio.subprocess.Process
    url: str
    lines: list[str]

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, args: list[str], *, within: float = 30.0) -> AsyncIterator[Simulator]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "shopsync", "simulate", "--port", "0", *args,
            env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(REPO),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        lines: list[str] = []
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(within):
                url = ""
                while True:
                    raw = await proc.stdout.readline()
                    if not raw:
                        raise AssertionError("simulator exited:\n" + "\n".join(lines))
                    line = raw.decode(errors="replace").rstrip("\n")
                    lines.append(line)
                    if m := re.search(r"listening on (http://\S+)", line):
                        url = m.group(1)
                    if "Ctrl-C stops" in line:
                        break
            assert url, lines
            drain = asyncio.create_task(_drain(proc.stdout, lines))
            yield cls(proc, url, lines)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(drain, 5)

    def graphql_url(self, shop: str, base: str | None = None) -> str:
        return f"{base or self.url}/shops/{shop}/admin/api/2026-10/graphql.json"

    async def control(self, path: str, body: dict) -> None:
        async with aiohttp.ClientSession() as s, s.post(self.url + path, json=body) as r:
            assert r.status == 200, (path, body, await r.text())


async def _drain(stream: asyncio.StreamReader, into: list[str]) -> None:
    async for raw in stream:
        into.append(raw.decode(errors="replace").rstrip("\n"))


# -- a proxy in front of the simulator for the client-credentials shops -------------------------


@dataclass
class GrantProxy:
    """Forwards ``/shops/...`` to the simulator. In token requests it swaps ``our_secret`` for the
    simulator's fixed secret (any other secret passes unchanged, so the grant fails), records every
    access token issued and answers 503 for the shops in ``fail_token_for``; in GraphQL requests it
    records which token came."""

    upstream: str
    our_secret: str
    fail_token_for: set[str] = field(default_factory=set)
    issued: list[str] = field(default_factory=list)
    used_tokens: set[str] = field(default_factory=set)
    token_requests: int = 0
    url: str = ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        path = request.rel_url.path
        shop = path.split("/")[2] if path.startswith("/shops/") else ""
        if path.endswith("/admin/oauth/access_token"):
            self.token_requests += 1
            if shop in self.fail_token_for:
                return web.json_response({"errors": "Service Unavailable"}, status=503)
            body = self._swap_secret(body, request.content_type)
        elif token := request.headers.get("X-Shopify-Access-Token"):
            self.used_tokens.add(token)
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "x-shopify-access-token", "accept")}
        async with aiohttp.ClientSession() as s, s.request(request.method, self.upstream + str(request.rel_url),
                                                           data=body, headers=headers) as r:
            data = await r.read()
            if path.endswith("/admin/oauth/access_token") and r.status == 200:
                self.issued.append(json.loads(data)["access_token"])
            keep = {k: v for k, v in r.headers.items() if k.lower() in ("content-type", "retry-after", "x-shopify-api-version")}
            return web.Response(status=r.status, body=data, headers=keep)

    def _swap_secret(self, body: bytes, content_type: str) -> bytes:
        if content_type == "application/json":
            doc = json.loads(body)
            if doc.get("client_secret") == self.our_secret:
                doc["client_secret"] = SIM_CLIENT_SECRET
            return json.dumps(doc).encode()
        form = urllib.parse.parse_qsl(body.decode(), keep_blank_values=True)
        form = [(k, SIM_CLIENT_SECRET if k == "client_secret" and v == self.our_secret else v) for k, v in form]
        return urllib.parse.urlencode(form).encode()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[GrantProxy]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        try:
            yield self
        finally:
            await runner.cleanup()


# -- shopsync child processes ----------------------------------------------------------------------


@dataclass
class Output:
    """One captured output, named for the report: ``sync (json) stderr``, ``GET /status``, a file."""

    label: str
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode(errors="replace")


@dataclass
class Finished:
    argv: list[str]
    returncode: int
    stdout: bytes
    stderr: bytes

    def outputs(self, label: str) -> list[Output]:
        return [Output(f"{label} stdout", self.stdout), Output(f"{label} stderr", self.stderr)]


def shopsync_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "shopsync", *args]


async def run_shopsync(*args: str, env: dict[str, str], within: float = 60.0) -> Finished:
    """``python -m shopsync ARGS`` to its end (killed after ``within`` seconds)."""
    argv = shopsync_argv(*args)
    proc = await asyncio.create_subprocess_exec(
        *argv, env={**env, "PYTHONPATH": str(REPO)}, cwd=str(REPO),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), within)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        raise AssertionError(f"{argv} did not finish within {within}s:\n{err.decode(errors='replace')}") from None
    assert proc.returncode is not None
    return Finished(argv, proc.returncode, out, err)


class Daemon:
    """``shopsync run`` as a child process; stdout and stderr collected as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.stdout = bytearray()
        self.stderr = bytearray()
        assert proc.stdout is not None and proc.stderr is not None
        self._readers = [asyncio.create_task(self._read(proc.stdout, self.stdout)),
                         asyncio.create_task(self._read(proc.stderr, self.stderr))]

    @classmethod
    async def start(cls, config: Path, env: dict[str, str], *, log_format: str) -> Daemon:
        argv = shopsync_argv("run", "--config", str(config), "--log-format", log_format, "--log-level", "debug")
        proc = await asyncio.create_subprocess_exec(
            *argv, env={**env, "PYTHONPATH": str(REPO)}, cwd=str(REPO),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    @staticmethod
    async def _read(stream: asyncio.StreamReader, into: bytearray) -> None:
        while chunk := await stream.read(65536):
            into.extend(chunk)

    async def url(self, *, within: float = 20.0) -> str:
        """The endpoints' base URL, from the start-up log line (text or JSON)."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            if m := re.search(rb"endpoints on (http://[0-9.:\[\]]+)", bytes(self.stderr)):
                return m.group(1).decode()
            if self.proc.returncode is not None or asyncio.get_running_loop().time() > deadline:
                raise AssertionError("no 'endpoints on' line:\n" + self.stderr.decode(errors="replace"))
            await asyncio.sleep(0.05)

    async def stop(self, *, within: float = 30.0) -> int:
        """SIGTERM, then the exit code (SIGKILL and a failure if it does not exit in time)."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(within):
                code = await self.proc.wait()
                await asyncio.gather(*self._readers)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError(f"the daemon did not exit within {within}s of SIGTERM") from None
        return code

    def outputs(self, label: str) -> list[Output]:
        return [Output(f"{label} stdout", bytes(self.stdout)), Output(f"{label} stderr", bytes(self.stderr))]


async def http_get(url: str, *, within: float = 5.0) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as s, s.get(url, timeout=aiohttp.ClientTimeout(total=within)) as r:
        return r.status, await r.read()


async def poll(predicate: Callable[[], Awaitable[Any]], *, within: float, every: float = 0.1, what: str) -> Any:
    """Await ``predicate()`` (a coroutine function) until it returns something truthy, for at most
    ``within`` seconds: polling with a deadline, never a sleep as synchronisation."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(every)


# -- scanning --------------------------------------------------------------------------------------


def files_under(root: Path, *, exclude: Iterable[Path] = ()) -> list[Output]:
    """Every regular file under ``root`` (state database with its -wal/-shm, sink, work files)."""
    skip = [p.resolve() for p in exclude]
    out = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not any(path.resolve().is_relative_to(s) for s in skip):
            out.append(Output(f"file {path.relative_to(root)}", path.read_bytes()))
    return out


def dump_outputs(outputs: Iterable[Output], into: Path) -> None:
    """Write each output to a file of ``into`` named for its label (for reading what was searched)."""
    into.mkdir(parents=True, exist_ok=True)
    for n, out in enumerate(outputs):
        (into / f"{n:02d} {re.sub(r'[^A-Za-z0-9._-]+', '_', out.label)}").write_bytes(out.data)


def leaks(outputs: Iterable[Output], named_secrets: dict[str, str]) -> list[str]:
    """Where any rendering of any secret occurs: ``'<what>' (<form>) in <output> at byte N: …context…``."""
    found = []
    for out in outputs:
        for name, secret in named_secrets.items():
            for form in sorted(forms(secret)):
                start = 0
                while (i := out.data.find(form.encode(), start)) >= 0:
                    context = out.data[max(0, i - 160): i + len(form) + 40].decode(errors="replace")
                    found.append(f"{name} ({form!r}) in {out.label} at byte {i}: …{context}…")
                    start = i + 1
                    if start and len(found) > 200:
                        return found
    return found
