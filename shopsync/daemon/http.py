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
======== =====================================================================================

Only this module knows aiohttp's server API; the daemon hands it a :class:`Probe`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

import orjson
from aiohttp import web

from shopsync.daemon.metrics import Metrics, add_metrics_route

log = logging.getLogger(__name__)


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


def build_app(probe: Probe, metrics: Metrics) -> web.Application:
    """The aiohttp application serving the four endpoints."""
    app = web.Application()

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
    return app


class HttpServer:
    """Serves :func:`build_app` on one address; ``port`` is the bound port (useful with port 0)."""

    def __init__(self, probe: Probe, metrics: Metrics, *, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._runner = web.AppRunner(
            build_app(probe, metrics), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and listen. Raises ``OSError`` (address in use, permission) for the caller to report."""
        await self._runner.setup()
        try:
            site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
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
