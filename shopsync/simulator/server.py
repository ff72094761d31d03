"""The simulated shop's HTTP side: an aiohttp app speaking the Shopify GraphQL Admin API.

One server process can host several shops (the daemon benchmark runs hundreds):

* ``POST /shops/{name}/admin/api/{version}/graphql.json`` — each shop; the first shop is also at
  the bare ``POST /admin/api/{version}/graphql.json``.
* ``POST /shops/{name}/admin/oauth/access_token`` (and bare for the first shop) — the
  client-credentials grant (:mod:`shopsync.simulator.auth`).
* ``GET /_sim/files/{shop}/{name}`` — bulk result files (signed URLs, ``Range``).
* Control endpoints for out-of-process use: ``GET /_sim/counters``, ``POST /_sim/faults``,
  ``GET /_sim/truth/{shop}/{resource}``, ``POST /_sim/mutator/{pause|resume}``,
  ``POST /_sim/status/{shop}``, ``GET /_sim/trap`` (what the redirect trap recorded).
* ``/_sim/moved/…`` + any of the paths above: the same endpoint, never redirected — where a
  ``redirect = "same_host"`` fault points (counted as ``redirects_followed``).

The redirect trap (:mod:`shopsync.simulator.trap`, ``server.trap``) is a second server on
another loopback address, started when a ``redirect = "other_host"`` fault first fires (or up
front with ``run_simulator(..., trap=True)``).

A GraphQL request is answered in Shopify's order: version (falls forward), token (401), shop
status (402/403/423), injected HTTP faults, body, parse + validate against the pinned schema
(Shopify-shaped ``errors``), variables, requested cost (``MAX_COST_EXCEEDED`` over 1000), the
app's leaky bucket (``THROTTLED``), execution, actual cost and refund, ``extensions.cost``.

In tests::

    async with run_simulator(SimConfig(...), port=0) as server:
        shop = server.shop()
        ... shop.graphql_url, shop.token_url, shop.faults, shop.counters, shop.truth("orders")
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from shopsync.errors import ConfigError
from shopsync.simulator.answers import (
    cost_extension,
    max_cost_body,
    served_version,
    throttle_status,
    throttled_body,
)
from shopsync.simulator.bulk import UrlSigner
from shopsync.simulator.config import SimConfig
from shopsync.simulator.counters import Counters
from shopsync.simulator.documents import Compiled, compile_document
from shopsync.simulator.shop import SIM_MOVED, SimulatedShop
from shopsync.simulator.trap import TrapServer


class SimulatorServer:
    """An aiohttp application hosting one or more :class:`SimulatedShop`."""

    def __init__(self, configs: Iterable[SimConfig], *, clock: Callable[[], float] = time.time, files_dir: Path | None = None) -> None:
        configs = list(configs) or [SimConfig()]
        names = [c.shop_name for c in configs]
        if len(set(names)) != len(names):
            raise ConfigError(f"simulator: shop names must be unique, got {names}")
        self.url = ""
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if files_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="shopsync-sim-")
            files_dir = Path(self._tmp.name)
        signer = UrlSigner(secrets.token_bytes(32))
        self.shops: dict[str, SimulatedShop] = {}
        for cfg in configs:
            self.shops[cfg.shop_name] = SimulatedShop(
                cfg, clock=clock, files_dir=files_dir, signer=signer, public_url=lambda: self.url, trap_url=self.trap_url
            )
        #: The redirect trap once started (:meth:`start_trap`).
        self.trap: TrapServer | None = None
        self._trap_lock = asyncio.Lock()
        self.first = self.shops[names[0]]
        self.app = self._build_app()
        self._runner: web.AppRunner | None = None

    def shop(self, name: str | None = None) -> SimulatedShop:
        """The named shop, or the first one."""
        if name is None:
            return self.first
        try:
            return self.shops[name]
        except KeyError:
            raise ConfigError(f"simulator: no shop named {name!r}") from None

    def _lookup(self, request: web.Request) -> SimulatedShop:
        name = request.match_info.get("shop")
        if name is None:
            return self.first
        shop = self.shops.get(name)
        if shop is None:
            raise web.HTTPNotFound(text='{"errors":"Not Found"}', content_type="application/json")
        return shop

    async def start_trap(self) -> TrapServer:
        """The redirect trap, started on first call (127.0.0.2, or 127.0.0.1 where that cannot bind)."""
        async with self._trap_lock:
            if self.trap is None:
                trap = TrapServer(upstream=lambda: self.url)
                await trap.start()
                self.trap = trap
            return self.trap

    async def trap_url(self) -> str:
        return (await self.start_trap()).url

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)

        async def graphql(request: web.Request) -> web.StreamResponse:
            return await self._lookup(request).handle_graphql(request)

        async def token(request: web.Request) -> web.StreamResponse:
            return await self._lookup(request).handle_token(request)

        async def files(request: web.Request) -> web.StreamResponse:
            shop = self._lookup(request)
            redirect = await shop.redirect_answer(request, "download")
            return redirect if redirect is not None else await shop.bulk.download(request)

        def moved(handler: Callable[[web.Request], Any]) -> Callable[[web.Request], Any]:
            async def serve(request: web.Request) -> web.StreamResponse:
                request[SIM_MOVED] = True
                self._lookup(request).counters.redirects_followed += 1
                return await handler(request)

            return serve

        for prefix, wrap in (("", lambda h: h), ("/_sim/moved", moved)):
            app.router.add_post(f"{prefix}/admin/api/{{version}}/graphql.json", wrap(graphql))
            app.router.add_post(f"{prefix}/shops/{{shop}}/admin/api/{{version}}/graphql.json", wrap(graphql))
            app.router.add_post(f"{prefix}/admin/oauth/access_token", wrap(token))
            app.router.add_post(f"{prefix}/shops/{{shop}}/admin/oauth/access_token", wrap(token))
            app.router.add_get(f"{prefix}/_sim/files/{{shop}}/{{name}}", wrap(files))
        app.router.add_get("/_sim/trap", self._trap_records)
        app.router.add_get("/_sim/counters", self._counters)
        app.router.add_post("/_sim/faults", self._faults)
        app.router.add_get("/_sim/truth/{shop}/{resource}", self._truth)
        app.router.add_post("/_sim/mutator/{action}", self._mutator)
        app.router.add_post("/_sim/status/{shop}", self._status)
        return app

    # -- control endpoints -------------------------------------------------------------------------
    async def _counters(self, request: web.Request) -> web.Response:
        wanted = request.query.get("shop")
        shops = [self.shop(wanted)] if wanted else list(self.shops.values())
        return _json({s.name: s.counters.as_dict() for s in shops})

    async def _trap_records(self, request: web.Request) -> web.Response:
        """``{"url": <trap url or null>, "requests": [{method, host, path, query, credentials}, …]}``."""
        trap = self.trap
        return _json({"url": trap.url if trap else None, "requests": [r.as_dict() for r in trap.requests] if trap else []})

    async def _faults(self, request: web.Request) -> web.Response:
        """Body: ``{"shop": "name" (optional: all shops), "reset": true?, "<switch>": value, …}``."""
        try:
            body = orjson.loads(await request.read())
            if not isinstance(body, dict):
                raise TypeError("expected a JSON object")
            name = body.pop("shop", None)
            shops = [self.shop(name)] if name else list(self.shops.values())
            reset = bool(body.pop("reset", False))
            for s in shops:
                if reset:
                    s.faults.reset()
                s.faults.set(**body)
        except (orjson.JSONDecodeError, TypeError, ConfigError) as exc:
            return _json({"error": str(exc)}, status=400)
        return _json({s.name: repr(s.faults) for s in shops})

    async def _truth(self, request: web.Request) -> web.Response:
        try:
            shop = self.shop(request.match_info["shop"])
            records = shop.truth(request.match_info["resource"])
        except ConfigError as exc:
            return _json({"error": str(exc)}, status=404)
        return _json(records)

    async def _mutator(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        if action not in ("pause", "resume"):
            return _json({"error": f"unknown action {action!r}; use pause or resume"}, status=404)
        wanted = request.query.get("shop")
        shops = [self.shop(wanted)] if wanted else list(self.shops.values())
        done = []
        for s in shops:
            if s.mutator is not None:
                getattr(s.mutator, action)()
                done.append(s.name)
        return _json({"action": action, "shops": done})

    async def _status(self, request: web.Request) -> web.Response:
        """Body ``{"status": 402 | 403 | 423 | null}``."""
        try:
            shop = self.shop(request.match_info["shop"])
            body = orjson.loads(await request.read())
            shop.set_status(body.get("status"))
        except (orjson.JSONDecodeError, AttributeError, ConfigError) as exc:
            return _json({"error": str(exc)}, status=400)
        return _json({"shop": shop.name, "status": shop.status_override})

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0, *, trap: bool = False) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        # aiohttp keeps the listening server private; its sockets tell which port port=0 bound.
        sockets = getattr(site._server, "sockets", None) or ()
        bound = sockets[0].getsockname()[1] if sockets else port
        self.url = f"http://{host}:{bound}"
        for shop in self.shops.values():
            await shop.start()
        if trap:
            await self.start_trap()

    async def close(self) -> None:
        for shop in self.shops.values():
            await shop.close()
        if self.trap is not None:
            await self.trap.close()
            self.trap = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.cleanup()


def _json(body: Any, *, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


@asynccontextmanager
async def run_simulator(
    *configs: SimConfig,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Callable[[], float] = time.time,
    files_dir: Path | None = None,
    trap: bool = False,
) -> AsyncIterator[SimulatorServer]:
    """Serve simulated shops for the duration of the block (port 0: an ephemeral port).

    ``server.url`` is the base URL; ``server.shop()`` the first shop, ``server.shops[name]`` any.
    ``trap=True`` starts the redirect trap (``server.trap``) now rather than on first use.
    """
    server = SimulatorServer(configs, clock=clock, files_dir=files_dir)
    await server.start(host, port, trap=trap)
    try:
        yield server
    finally:
        await server.close()


__all__ = [
    "Compiled",
    "Counters",
    "SimulatedShop",
    "SimulatorServer",
    "TrapServer",
    "compile_document",
    "cost_extension",
    "max_cost_body",
    "run_simulator",
    "served_version",
    "throttle_status",
    "throttled_body",
]
