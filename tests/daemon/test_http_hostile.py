"""The daemon's HTTP endpoint against hostile clients: malformed requests, slowloris, 1,000
connections at once, a client that never reads. Real sockets on 127.0.0.1; the hostile clients run
in a child process when they are many, so the lag measured on the server's loop is the server's."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

from shopsync.daemon.http import MAX_CONNECTIONS, HttpLimits, HttpServer
from shopsync.observability.metrics import Metrics

HOST = "127.0.0.1"
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
#: The bound the issue asks for: the sync loop must not stall while the endpoint is under load.
MAX_LOOP_LAG = 0.5
ROOT = Path(__file__).resolve().parents[2]
SECRET = b"shpat_0123456789abcdef-hostile"


class StubProbe:
    def health(self) -> tuple[bool, Mapping[str, Any]]:
        return True, {"heartbeat_age_seconds": 0.0}

    def readiness(self) -> tuple[bool, Mapping[str, Any]]:
        return True, {}

    def status(self) -> Mapping[str, Any]:
        return {"shops": {}}


Serve = Callable[..., Awaitable[HttpServer]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[HttpServer] = []

    async def start(limits: HttpLimits | None = None, metrics: Metrics | None = None) -> HttpServer:
        metrics = metrics or Metrics(process_metrics=False)
        server = HttpServer(StubProbe(), metrics, host=HOST, port=0, limits=limits or HttpLimits())
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


def status_of(answer: bytes) -> int | None:
    """The status code of a raw HTTP answer, None when the server closed without one."""
    if not answer.startswith(b"HTTP/1."):
        return None
    return int(answer.split(b" ", 2)[1])


async def exchange(port: int, data: bytes, *, within: float = 5.0) -> bytes:
    """Send ``data`` on a new connection; everything answered until the server closes (b"" on reset)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), within)
    try:
        with suppress(ConnectionError):  # the server may close while we send; its answer may be readable
            writer.write(data)
            await asyncio.wait_for(writer.drain(), within)
        try:
            return await asyncio.wait_for(reader.read(), within)
        except ConnectionError:
            return b""
    finally:
        writer.close()
        with suppress(ConnectionError):
            await writer.wait_closed()


async def healthz(port: int) -> int | None:
    return status_of(await exchange(port, HEALTHZ))


async def until(predicate: Callable[[], bool], *, within: float, what: str) -> None:
    """Wait for a condition of the server (observed on its own loop), failing after ``within`` s."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.01)


class LagMonitor:
    """A callback due every ``every`` seconds on the running loop. ``max_lag`` is its worst
    lateness by the wall clock; ``max_own_lag`` the worst lateness the loop's own work can account
    for (the lateness, capped by the CPU time this thread used meanwhile): on a loaded machine the
    process may also wait for a CPU, which is the machine's stall, not the loop's.

    While it runs, the objects that existed before it started are frozen out of the garbage
    collector: late in a full test run the test process holds a heap of hundreds of thousands of
    objects from earlier tests, and one full collection of it (0.7 s seen in CI) is that heap's
    stall, not the server's. Objects the server makes meanwhile are collected as in production."""

    def __init__(self, every: float = 0.01) -> None:
        self.every = every
        self.max_lag = 0.0
        self.max_own_lag = 0.0
        self.ticks = 0
        self._loop = asyncio.get_running_loop()
        gc.collect()
        gc.freeze()
        self._cpu = time.thread_time()
        self._due = self._loop.time() + every
        self._handle = self._loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        now, cpu = self._loop.time(), time.thread_time()
        lag = now - self._due
        self.max_lag = max(self.max_lag, lag)
        self.max_own_lag = max(self.max_own_lag, min(lag, cpu - self._cpu))
        self.ticks += 1
        self._cpu = cpu
        self._due = now + self.every
        self._handle = self._loop.call_at(self._due, self._tick)

    def stop(self) -> None:
        self._handle.cancel()
        gc.unfreeze()

    def __str__(self) -> str:
        return (
            f"loop lag max {self.max_lag * 1000:.1f} ms by the wall clock, "
            f"{self.max_own_lag * 1000:.1f} ms of the loop's own work, over {self.ticks} ticks"
        )


async def in_subprocess(kind: str, port: int, n: int) -> Any:
    """Run a hostile client (:func:`burst` or :func:`hold_idle`) in a child Python process, so
    it competes with the server for CPU as another process would, not for the GIL."""
    code = f"from tests.daemon.test_http_hostile import client_main; client_main({kind!r}, {port}, {n})"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(child.communicate(), 120)
    finally:
        if child.returncode is None:
            child.kill()
    assert child.returncode == 0, err.decode()[-2000:]
    return json.loads(out)


def client_main(kind: str, port: int, n: int) -> None:
    """The child's entry point: the client's results as JSON on stdout."""
    clients = {"burst": burst, "hold_idle": hold_idle}
    print(json.dumps(asyncio.run(clients[kind](port, n))))


# -- (1) malformed requests --------------------------------------------------------------------

MALFORMED = {
    "tls_client_hello": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(32)),
    "garbage_line": b"HELLO THERE\r\n\r\n",
    "bad_version": b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
    "no_version": b"GET /healthz\r\n\r\n",
    "bad_method_chars": b"G(T /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "nul_in_header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "space_before_colon": b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n",
    "negative_length": b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "length_and_chunked": b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
    b"Transfer-Encoding: chunked\r\n\r\nabc",
    "bad_chunk": b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "long_request_line": b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "long_header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: " + SECRET * 1000 + b"\r\n\r\n",
    "many_headers": b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    + b"".join(b"X-%d: v\r\n" % i for i in range(500))
    + b"\r\n",
    "endless_line": b"GET /" + b"A" * 1_000_000,
}


@pytest.mark.parametrize("name", MALFORMED)
async def test_a_malformed_request_gets_a_4xx_or_a_closed_connection(serve: Serve, name: str) -> None:
    server = await serve()
    status = status_of(await exchange(server.port, MALFORMED[name]))
    assert status is None or 400 <= status < 500, (name, status)
    assert await healthz(server.port) == 200
    await until(lambda: server.open_connections == 0, within=5, what="connections closed")


async def test_malformed_requests_are_logged_rarely_and_without_what_they_carried(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = await serve()
    for _ in range(3):
        for data in MALFORMED.values():
            await exchange(server.port, data)
    assert await healthz(server.port) == 200
    ours = [r for r in caplog.records if r.name.startswith(("shopsync.daemon.http", "aiohttp"))]
    protocol = [r for r in ours if r.name == "shopsync.daemon.http.protocol"]
    assert len(protocol) <= 1, [r.getMessage() for r in protocol]  # one per PROTOCOL_LOG_INTERVAL
    for record in ours:
        assert record.exc_info is None, record.getMessage()
        assert SECRET.decode()[:12] not in record.getMessage()
    assert SECRET.decode()[:12] not in caplog.text


# -- (2) slowloris -----------------------------------------------------------------------------


async def test_a_slowloris_client_is_dropped_at_the_head_deadline_while_others_are_served(
    serve: Serve,
) -> None:
    deadline = 1.0
    server = await serve(HttpLimits(head_timeout=deadline))
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection(HOST, server.port)
    connected = loop.time()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")

    async def dribble() -> int:
        sent = 0
        with suppress(ConnectionError):
            for _ in range(200):  # 20 s at most: far past the deadline
                writer.write(b"a")
                await writer.drain()
                sent += 1
                await asyncio.sleep(0.1)  # the client's pace, one header byte every 0.1 s
        return sent

    async def until_closed() -> bytes:
        try:
            return await reader.read()
        except ConnectionError:
            return b""

    dribbler = asyncio.create_task(dribble())
    closed = asyncio.create_task(until_closed())
    served = 0
    while not closed.done():
        assert await healthz(server.port) == 200  # a normal client meanwhile
        served += 1
        await asyncio.wait({closed}, timeout=0.1)
        assert loop.time() - connected < deadline + 5, "the slow client was never dropped"
    elapsed = loop.time() - connected
    dribbler.cancel()
    writer.close()

    assert closed.result() == b""  # dropped, never answered
    assert deadline - 0.05 <= elapsed < deadline + 1.0, elapsed
    assert served >= 3
    await until(lambda: server.open_connections == 0, within=5, what="the slow connection freed")


async def test_a_connection_that_sends_nothing_is_dropped_at_the_head_deadline(serve: Serve) -> None:
    server = await serve(HttpLimits(head_timeout=0.5))
    reader, writer = await asyncio.open_connection(HOST, server.port)
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert 0.45 <= time.monotonic() - started < 1.5
    writer.close()


# -- (3) 1,000 connections at once -------------------------------------------------------------


async def burst(port: int, n: int) -> dict[str, int]:
    """``n`` connections opened at once, each asking /healthz: how many ended how."""

    async def one() -> str:
        try:
            answer = await exchange(port, HEALTHZ, within=30)
        except ConnectionError:
            return "reset"
        return str(status_of(answer) or "closed")

    return dict(Counter(await asyncio.gather(*(one() for _ in range(n)))))


async def test_1000_concurrent_requests_leave_the_loop_turning_and_the_server_up(serve: Serve) -> None:
    server = await serve()
    monitor = LagMonitor()
    try:
        outcomes = await in_subprocess("burst", server.port, 1000)
    finally:
        monitor.stop()
    print(f"\n1000 concurrent requests: {dict(outcomes)}; peak {server.peak_connections} open; {monitor}")

    assert sum(outcomes.values()) == 1000
    assert set(outcomes) <= {"200", "503", "closed", "reset"}, outcomes
    # every admitted connection was answered; the rest were refused on arrival
    assert outcomes["200"] == 1000 - server.refused_connections
    assert outcomes["200"] >= MAX_CONNECTIONS
    assert server.peak_connections <= MAX_CONNECTIONS
    assert monitor.max_own_lag < MAX_LOOP_LAG, str(monitor)
    assert await healthz(server.port) == 200
    await until(lambda: server.open_connections == 0, within=5, what="connections closed")


# -- (4) open connections bounded --------------------------------------------------------------


async def hold_idle(port: int, n: int) -> list[tuple[float, str]]:
    """``n`` connections opened at once that send nothing: (seconds until the server closed it,
    what it answered: "503" refused on arrival, "" dropped at the head deadline, "reset") each."""

    async def one() -> tuple[float, str]:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 30)
        connected = time.monotonic()
        try:
            answer = str(status_of(await asyncio.wait_for(reader.read(), 30)) or "")
        except ConnectionError:
            answer = "reset"
        writer.close()
        return time.monotonic() - connected, answer

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def test_open_connections_never_exceed_the_cap(serve: Serve) -> None:
    deadline = 2.0
    server = await serve(HttpLimits(head_timeout=deadline))
    seen = 0

    async def watch() -> None:
        nonlocal seen
        while True:
            seen = max(seen, server.open_connections)
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    monitor = LagMonitor()
    try:
        ended = await in_subprocess("hold_idle", server.port, 1000)
    finally:
        monitor.stop()
        watcher.cancel()
    answers = Counter(answer for _, answer in ended)
    print(
        f"\n1000 idle connections: {dict(answers)} ('' = dropped at the head deadline); "
        f"peak {server.peak_connections} open; {monitor}"
    )

    assert server.peak_connections == MAX_CONNECTIONS  # reached, never passed
    assert seen <= MAX_CONNECTIONS
    assert set(answers) <= {"503", "", "reset"}, answers
    assert answers["503"] + answers["reset"] == server.refused_connections  # refused on arrival
    assert answers[""] == 1000 - server.refused_connections >= MAX_CONNECTIONS
    assert max(seconds for seconds, _ in ended) < deadline + 2.0  # none outlived the deadline
    assert monitor.max_own_lag < MAX_LOOP_LAG, str(monitor)
    assert await healthz(server.port) == 200
    await until(lambda: server.open_connections == 0, within=5, what="connections closed")


async def test_a_client_that_never_reads_its_answers_is_aborted(serve: Serve) -> None:
    server = await serve(HttpLimits(write_stall_timeout=0.5))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window fills soon
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (HOST, server.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    request = b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n"
    # reset once aborted, or blocked (timeout) once the server stops reading
    with suppress(ConnectionError, TimeoutError):
        for _ in range(20):  # pipelined requests, answers never read
            writer.write(request * 1000)
            await asyncio.wait_for(writer.drain(), 5)
            if server.open_connections == 0:
                break
    await until(lambda: server.open_connections == 0, within=15, what="the stalled connection aborted")
    writer.close()
    assert await healthz(server.port) == 200
