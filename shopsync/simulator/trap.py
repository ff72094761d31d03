"""The redirect trap: a second tiny HTTP server, on another loopback address, that is *not* the shop.

The ``redirect = "other_host"`` fault sends clients here (``Location`` = the trap's URL + the
original path). The trap records every request — method, host, path, and which credentials came
with it (``X-Shopify-Access-Token``, ``Authorization``, a ``client_secret`` in the body or query)
— and answers as a plausible impostor: a GraphQL POST gets empty connections (``hasNextPage``
false) with a normal-looking cost extension, the token endpoint a made-up token, so a client
that follows the redirect "succeeds" with wrong data. A bulk result file (``GET /_sim/files/…``)
is fetched from the simulator (``upstream``) and passed on, because following a file redirect
*without* credentials is the right behaviour and the copy should still end exact.

It listens on 127.0.0.2 (another host to any client); where that address cannot be bound, on
127.0.0.1 with another port (``TrapServer.host`` says which, and a warning is logged). In tests::

    async with run_trap(upstream=lambda: server.url) as trap:
        ... trap.url, trap.requests, trap.leaks(), trap.clear()

``SimulatorServer`` starts one itself (``server.trap``) when a redirect first needs it, or up
front with ``run_simulator(..., trap=True)``; ``GET /_sim/trap`` lists what it recorded.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass

import aiohttp
import orjson
from aiohttp import web
from graphql import FieldNode, GraphQLError, OperationDefinitionNode, parse

__all__ = ["TRAP_HOST", "TRAP_TOKEN", "TrapRequest", "TrapServer", "run_trap"]

log = logging.getLogger(__name__)

TRAP_HOST = "127.0.0.2"
#: The token the trap's token endpoint hands out (a client that stores it was fooled).
TRAP_TOKEN = "shpat_trap_not_the_shop"
_EMPTY_CONNECTION = {
    "nodes": [],
    "edges": [],
    "pageInfo": {"hasNextPage": False, "hasPreviousPage": False, "startCursor": None, "endCursor": None},
}
_COST = {
    "cost": {
        "requestedQueryCost": 3,
        "actualQueryCost": 2,
        "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 1998, "restoreRate": 100.0},
    }
}


@dataclass(frozen=True, kw_only=True)
class TrapRequest:
    """One request that reached the trap. Credentials are recorded by name only, never by value."""

    method: str
    host: str
    path: str
    query: str
    #: Which of ``X-Shopify-Access-Token``, ``Authorization``, ``client_secret`` arrived.
    credentials: tuple[str, ...]

    @property
    def access_token(self) -> bool:
        return "X-Shopify-Access-Token" in self.credentials

    @property
    def authorization(self) -> bool:
        return "Authorization" in self.credentials

    @property
    def client_secret(self) -> bool:
        return "client_secret" in self.credentials

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class TrapServer:
    """The impostor host. ``upstream()`` is the simulator's base URL, for passing on result files."""

    def __init__(self, *, upstream: Callable[[], str] | None = None) -> None:
        self.upstream = upstream
        self.requests: list[TrapRequest] = []
        self.host = ""
        self.port = 0
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def leaks(self) -> list[TrapRequest]:
        """The recorded requests that carried any credential."""
        return [r for r in self.requests if r.credentials]

    def clear(self) -> None:
        self.requests.clear()

    async def start(self, host: str = TRAP_HOST, port: int = 0) -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        try:
            site = web.TCPSite(self._runner, host, port)
            await site.start()
        except OSError as exc:
            log.warning("simulator trap: cannot listen on %s (%s); using 127.0.0.1 on another port", host, exc)
            host = "127.0.0.1"
            site = web.TCPSite(self._runner, host, 0)
            await site.start()
        sockets = getattr(site._server, "sockets", None) or ()
        self.host = host
        self.port = sockets[0].getsockname()[1] if sockets else port
        self.url = f"http://{host}:{self.port}"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        credentials = [h for h in ("X-Shopify-Access-Token", "Authorization") if h in request.headers]
        if b"client_secret" in raw or "client_secret" in request.query_string:
            credentials.append("client_secret")
        self.requests.append(
            TrapRequest(
                method=request.method,
                host=request.host,
                path=request.path,
                query=request.query_string,
                credentials=tuple(credentials),
            )
        )
        if request.method == "GET" and request.path.startswith("/_sim/files/") and self.upstream is not None:
            return await self._pass_file_on(request)
        if request.path.endswith("/oauth/access_token"):
            body: dict = {"access_token": TRAP_TOKEN, "scope": "read_orders", "expires_in": 86_399}
        else:
            body = {"data": _impostor_data(raw), "extensions": _COST}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _pass_file_on(self, request: web.Request) -> web.StreamResponse:
        assert self.upstream is not None
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {"Range": request.headers["Range"]} if "Range" in request.headers else {}
        # The simulator's "moved" route serves the file without redirecting again.
        async with self._session.get(f"{self.upstream()}/_sim/moved{request.path_qs}", headers=headers) as up:
            resp = web.StreamResponse(status=up.status)
            for name in ("Content-Type", "Content-Length", "Content-Range", "Accept-Ranges", "ETag"):
                if name in up.headers:
                    resp.headers[name] = up.headers[name]
            await resp.prepare(request)
            async for chunk in up.content.iter_chunked(64 * 1024):
                await resp.write(chunk)
            await resp.write_eof()
            return resp


def _impostor_data(raw: bytes) -> dict:
    """An empty connection for each root field the request asked for (or ``{}``)."""
    try:
        payload = orjson.loads(raw)
        document = parse(payload["query"])
    except (orjson.JSONDecodeError, GraphQLError, KeyError, TypeError):
        return {}
    data: dict = {}
    for op in document.definitions:
        if isinstance(op, OperationDefinitionNode):
            for sel in op.selection_set.selections:
                if isinstance(sel, FieldNode):
                    data[sel.alias.value if sel.alias else sel.name.value] = dict(_EMPTY_CONNECTION)
    return data


@asynccontextmanager
async def run_trap(*, host: str = TRAP_HOST, port: int = 0, upstream: Callable[[], str] | None = None) -> AsyncIterator[TrapServer]:
    """Serve a trap for the duration of the block."""
    trap = TrapServer(upstream=upstream)
    await trap.start(host, port)
    try:
        yield trap
    finally:
        await trap.close()
