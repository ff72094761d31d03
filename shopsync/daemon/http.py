"""The daemon's HTTP endpoints (aiohttp), on ``[daemon] listen`` (default ``127.0.0.1:9464``).

======== =====================================================================================
path     answer
======== =====================================================================================
/metrics Prometheus exposition (prometheus_client's own handler: text, OpenMetrics, gzip)
/healthz 200 while the daemon's own loop and scheduler are turning (the watchdog's heartbeat is
         fresh and no stall was seen lately), else 503. Says nothing about Shopify: an outage
         there must not get the container restarted. A loop blocked outright cannot answer at
         all, which a health check's timeout reports as a failure too.
/readyz  200 once the state store is open and the schedules are armed, 503 before and while stopping
/status  JSON per shop and resource (see :mod:`shopsync.daemon.status`); never a token
POST     ``/webhooks/shopify``: Shopify's webhook deliveries (:mod:`shopsync.daemon.webhooks`); 404
         unless ``[webhooks] enabled``
======== =====================================================================================

Only this module knows aiohttp's server API; the daemon hands it a :class:`Probe`.

The server runs on the sync loop itself, so a hostile or broken client must cost it little and
for a bounded time (see :class:`HttpLimits`): request heads are size-limited, a client that has not
delivered a complete head within ``head_timeout`` is dropped (slowloris), one that stops reading
its answer is dropped after ``write_stall_timeout``, and at most ``max_connections`` are open at
once; a connection beyond that is answered 503 and closed on arrival, before aiohttp builds
anything for it. aiohttp's per-request error log lines are rate-limited and lose their traceback.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from aiohttp import web

from shopsync.daemon.webhooks import MAX_BODY as WEBHOOK_MAX_BODY
from shopsync.daemon.webhooks import PATH as WEBHOOK_PATH
from shopsync.daemon.webhooks import WebhookReceiver
from shopsync.observability.metrics import Metrics, add_metrics_route

log = logging.getLogger(__name__)

#: Open connections at most. Each costs a socket, a parser and up to a few header buffers (see
#: below), so this bounds the endpoint's memory however many clients connect; scrapers and health
#: checks need a handful. Beyond it a new connection is closed at once.
MAX_CONNECTIONS = 256
#: Seconds from connecting, or from the previous answer on a kept-alive connection, to a complete
#: request head. aiohttp arms its keep-alive timer when the connection is made and incoming bytes
#: do not push it back, so this one timer is both the idle timeout and the slowloris deadline.
#: Scrapers send a head in one packet; a 15 s scrape interval simply reconnects each time.
HEAD_TIMEOUT = 10.0
#: Seconds a client may leave its answer unread (the transport's buffer above its high-water mark)
#: before the connection is aborted: otherwise a client that never reads holds a slot for ever.
WRITE_STALL_TIMEOUT = 10.0
#: Seconds aiohttp keeps reading (and discarding) a request body nobody asked for after answering
#: (its default is 10): our endpoints take no body.
LINGERING_TIME = 1.0
#: Seconds a webhook delivery's body may take to arrive (a slow body must not hold a slot for ever).
BODY_TIMEOUT = 10.0
#: Request line and one header (name + value) in bytes, and headers per request: requests here
#: are a path and a few headers. Worst case per connection is about 32 x 4 KiB of header buffers.
MAX_LINE_SIZE = 4096
MAX_FIELD_SIZE = 4096
MAX_HEADERS = 32
#: listen() backlog (the kernel's queue of connections not yet accepted; also asyncio's accept batch
#: per loop turn). aiohttp's 128 makes a burst beyond it wait on SYN retransmits (1 s, 3 s, 7 s, ...)
#: or hang half-open, instead of getting the prompt 503 that the cap gives; a batch of 1024 accepts
#: costs the loop a few tens of ms. The kernel caps it at net.core.somaxconn.
BACKLOG = 1024
#: At most one aiohttp protocol log line (a malformed request, a client gone mid-answer) per this
#: many seconds: a flood of bad requests must not become a flood of log lines.
PROTOCOL_LOG_INTERVAL = 10.0

_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@dataclass(frozen=True)
class HttpLimits:
    """Bounds on what one client can make the endpoint hold (defaults: the module constants)."""

    max_connections: int = MAX_CONNECTIONS
    head_timeout: float = HEAD_TIMEOUT
    write_stall_timeout: float = WRITE_STALL_TIMEOUT
    lingering_time: float = LINGERING_TIME
    max_line_size: int = MAX_LINE_SIZE
    max_field_size: int = MAX_FIELD_SIZE
    max_headers: int = MAX_HEADERS
    backlog: int = BACKLOG


class Probe(Protocol):
    """What the endpoints ask the daemon. Each call is an in-memory read (it runs on the loop)."""

    def health(self) -> tuple[bool, Mapping[str, Any]]: ...
    def readiness(self) -> tuple[bool, Mapping[str, Any]]: ...
    def status(self) -> Mapping[str, Any]: ...


def _json(body: Any, *, status: int = 200, indent: bool = False) -> web.Response:
    option = orjson.OPT_INDENT_2 if indent else 0
    return web.Response(
        status=status,
        body=orjson.dumps(body, option=option | orjson.OPT_APPEND_NEWLINE),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


async def _read_body(request: web.Request, limit: int) -> bytes | None:
    """The request body, or None once it is longer than ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks, size = [], 0
    while chunk := await request.content.read(65536):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(probe: Probe, metrics: Metrics, webhooks: WebhookReceiver | None = None) -> web.Application:
    """The aiohttp application serving the four endpoints (and ``/webhooks/shopify`` when enabled)."""
    app = web.Application()

    async def webhook(request: web.Request) -> web.Response:
        if webhooks is None or not webhooks.enabled:
            return web.Response(status=404, text="webhooks are not enabled ([webhooks] enabled)\n")
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                body = await _read_body(request, WEBHOOK_MAX_BODY)
        except TimeoutError:
            return web.Response(status=408, text="body not received in time\n")
        if body is None:
            return web.Response(status=413, text="body too large\n")
        answer = webhooks.receive(request.headers, body)
        return web.Response(status=answer.status, text=answer.detail + "\n", headers={"Cache-Control": "no-store"})

    async def healthz(request: web.Request) -> web.Response:
        ok, detail = probe.health()
        return _json({"status": "ok" if ok else "stalled", **detail}, status=200 if ok else 503)

    async def readyz(request: web.Request) -> web.Response:
        ok, detail = probe.readiness()
        return _json({"status": "ready" if ok else "not ready", **detail}, status=200 if ok else 503)

    async def status(request: web.Request) -> web.Response:
        return _json(probe.status(), indent=True)

    add_metrics_route(app, metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/status", status)
    app.router.add_post(WEBHOOK_PATH, webhook)
    return app


class _QuietProtocolLog(logging.Filter):
    """aiohttp logs each malformed request at ERROR with a traceback quoting up to 100 bytes of
    it. Keep one line per ``interval``, naming the exception's type only (what a client sent,
    a token included, stays out of the log), and count the lines left out."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._interval = interval
        self._clock = clock
        self._next = -math.inf
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = self._clock()
        if now < self._next:
            self._suppressed += 1
            return False
        self._next = now + self._interval
        exc = record.exc_info[1] if record.exc_info else None
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        msg = record.getMessage() + (f" ({type(exc).__name__})" if exc is not None else "")
        if self._suppressed:
            msg += f"; {self._suppressed} similar line(s) left out"
            self._suppressed = 0
        record.msg, record.args = msg, None
        return True


_protocol_log = logging.getLogger(__name__ + ".protocol")
_protocol_log.addFilter(_QuietProtocolLog(PROTOCOL_LOG_INTERVAL))


class _Refused(asyncio.Protocol):
    """A connection beyond the cap: answered 503 and closed before any parser exists for it."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if isinstance(transport, asyncio.WriteTransport):
            transport.write(_BUSY)
        transport.close()


class _Gated(asyncio.Protocol):
    """Wraps aiohttp's protocol for one connection: frees its slot in :class:`_Gate` when the
    connection ends, and aborts it when the client leaves the answer unread for too long."""

    def __init__(self, inner: asyncio.Protocol, gate: _Gate) -> None:
        self._inner = inner
        self._gate = gate
        self._transport: asyncio.BaseTransport | None = None
        self._stall: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._unstall()
        self._gate.release(self)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()
        if self._stall is None:
            self._stall = asyncio.get_running_loop().call_later(self._gate.write_stall_timeout, self._abort)

    def resume_writing(self) -> None:
        self._unstall()
        self._inner.resume_writing()

    def _unstall(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    def _abort(self) -> None:
        self._stall = None
        if isinstance(self._transport, asyncio.WriteTransport):
            self._transport.abort()


class _Gate:
    """The protocol factory: admits at most ``cap`` connections at a time.

    Counted from the factory call (asyncio may accept a whole batch before any connection is
    made) to the connection's end; the set is weak so a protocol whose transport never came to
    be cannot hold a slot."""

    def __init__(self, server: web.Server, *, cap: int, write_stall_timeout: float) -> None:
        self._server = server
        self.cap = cap
        self.write_stall_timeout = write_stall_timeout
        self._open: weakref.WeakSet[_Gated] = weakref.WeakSet()
        self.peak = 0
        self.refused = 0
        self._next_warning = -math.inf

    @property
    def open(self) -> int:
        return len(self._open)

    def __call__(self) -> asyncio.Protocol:
        if len(self._open) >= self.cap:
            self.refused += 1
            now = time.monotonic()
            if now >= self._next_warning:
                self._next_warning = now + PROTOCOL_LOG_INTERVAL
                log.warning(
                    "HTTP endpoint at its cap of %d connections: refusing new ones (%d so far)",
                    self.cap,
                    self.refused,
                )
            return _Refused()
        gated = _Gated(self._server(), self)
        self._open.add(gated)
        self.peak = max(self.peak, len(self._open))
        return gated

    def release(self, gated: _Gated) -> None:
        self._open.discard(gated)


class _GatedSite(web.BaseSite):
    """aiohttp's TCPSite, with :class:`_Gate` as the protocol factory."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, gate: _Gate, *, backlog: int) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self._gate = gate

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        self._server = await asyncio.get_running_loop().create_server(
            self._gate, self._host, self._port, backlog=self._backlog, reuse_address=True
        )


class HttpServer:
    """Serves :func:`build_app` on one address; ``port`` is the bound port (useful with port 0)."""

    def __init__(
        self,
        probe: Probe,
        metrics: Metrics,
        *,
        host: str,
        port: int,
        limits: HttpLimits = HttpLimits(),
        webhooks: WebhookReceiver | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.limits = limits
        self._gate: _Gate | None = None
        self._runner = web.AppRunner(
            build_app(probe, metrics, webhooks),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=1.0,
            logger=_protocol_log,
            keepalive_timeout=limits.head_timeout,
            lingering_time=limits.lingering_time,
            max_line_size=limits.max_line_size,
            max_field_size=limits.max_field_size,
            max_headers=limits.max_headers,
        )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def open_connections(self) -> int:
        """Connections open now (never above ``limits.max_connections``)."""
        return self._gate.open if self._gate else 0

    @property
    def peak_connections(self) -> int:
        """The most connections open at once since :meth:`start`."""
        return self._gate.peak if self._gate else 0

    @property
    def refused_connections(self) -> int:
        """Connections closed on arrival because the cap was reached."""
        return self._gate.refused if self._gate else 0

    async def start(self) -> None:
        """Bind and listen. Raises ``OSError`` (address in use, permission) for the caller to report."""
        await self._runner.setup()
        try:
            server = self._runner.server
            if server is None:  # setup() sets it; checked for the type, not expected
                raise RuntimeError("aiohttp runner has no server after setup()")
            self._gate = _Gate(
                server, cap=self.limits.max_connections, write_stall_timeout=self.limits.write_stall_timeout
            )
            site = _GatedSite(self._runner, self.host, self.port, self._gate, backlog=self.limits.backlog)
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise
        addresses = self._runner.addresses
        if addresses and isinstance(addresses[0], tuple):
            self.port = int(addresses[0][1])
        log.info("serving /metrics, /healthz, /readyz and /status on %s", self.url)

    async def close(self) -> None:
        await self._runner.cleanup()
