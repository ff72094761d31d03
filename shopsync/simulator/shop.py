"""One simulated shop: its data store, executor, tokens, buckets, bulk operations and faults.

:class:`SimulatedShop` answers the GraphQL and token endpoints of one shop in Shopify's order:
version (falls forward), token (401), shop status (402/403/423), injected HTTP faults, body,
parse + validate against the pinned schema (Shopify-shaped ``errors``), variables, requested cost
(``MAX_COST_EXCEEDED`` over 1000), the app's leaky bucket (``THROTTLED``), execution, actual cost
and refund, ``extensions.cost``. The HTTP routing is :mod:`shopsync.simulator.server`.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from graphql import OperationDefinitionNode
from graphql.execution.values import get_variable_values

from shopsync.errors import ConfigError
from shopsync.shopify.bucket import LeakyBucket
from shopsync.shopify.cost import MAX_QUERY_COST, CostError, actual_cost, requested_cost
from shopsync.shopify.schema import load_schema
from shopsync.simulator.answers import (
    STATUS_BODIES,
    cost_extension,
    max_cost_body,
    served_version,
    throttled_body,
)
from shopsync.simulator.auth import INVALID_TOKEN_BODY, TokenRegistry
from shopsync.simulator.bulk import BulkManager, UrlSigner, abort_transport
from shopsync.simulator.config import SHOP_STATUSES, SimConfig
from shopsync.simulator.counters import Counters
from shopsync.simulator.documents import Compiled, access_of, compile_document, error_locations
from shopsync.simulator.executor import Executor
from shopsync.simulator.faults import Faults, RequestFault
from shopsync.simulator.hostile import (
    bad_data_applies,
    cursor_applies,
    padded_parts,
    request_names,
    retry_after_value,
    rewrite_bad_data,
    rewrite_cursor,
    rewrite_throttle_status,
    root_afters,
)
from shopsync.simulator.mutator import Mutator
from shopsync.simulator.store import ShopStore
from shopsync.simulator.webhooks import WebhookSubscriptions

__all__ = ["SIM_MOVED", "SimulatedShop"]

_RESOURCES_DIR = Path(__file__).resolve().parent.parent / "queries" / "resources"
#: Where an "other_host" redirect points when the shop runs without a trap server (never resolves).
_NO_TRAP_URL = "http://trap.invalid"
_PADDING_CHUNK = b"x" * (1 << 20)
#: Set on requests that came through ``/_sim/moved`` (a followed same-host redirect): never redirected.
SIM_MOVED = web.RequestKey("sim_moved", bool)


class SimulatedShop:
    """Everything one simulated shop owns: data store, executor, tokens, buckets, bulk, faults.

    Public attributes: ``name``, ``config``, ``store`` (ShopStore), ``executor``, ``faults``
    (:class:`~shopsync.simulator.faults.Faults`), ``counters`` (:class:`Counters`), ``bulk``
    (:class:`~shopsync.simulator.bulk.BulkManager`), ``tokens``, ``mutator`` (or ``None``);
    ``graphql_url`` / ``token_url`` / ``base_url`` once the server listens.
    """

    def __init__(
        self,
        config: SimConfig,
        *,
        clock: Callable[[], float],
        files_dir: Path,
        signer: UrlSigner,
        public_url: Callable[[], str],
        trap_url: Callable[[], Awaitable[str]] | None = None,
    ) -> None:
        self.name = config.shop_name
        #: The base URL of the redirect trap (started on first use by the server).
        self._trap_url = trap_url
        self.config = config
        self.clock = clock
        self._public_url = public_url
        self.schema = load_schema()
        self.store = ShopStore(
            config.data, clock=clock, index_lag=config.index_lag / config.time_scale, shop_name=config.shop_name
        )
        self.executor = Executor(self.store, self.schema)
        self.tokens = TokenRegistry(config, clock=clock)
        fault_seed = config.faults.seed if config.faults.seed is not None else config.data.seed
        self.faults = Faults(config.faults, seed=f"{fault_seed}:{config.shop_name}")
        self.bulk = BulkManager(
            shop_name=config.shop_name,
            schema=self.schema,
            executor=self.executor,
            faults=self.faults,
            directory=files_dir / config.shop_name,
            signer=signer,
            public_url=public_url,
            clock=clock,
            objects_per_second=config.bulk_objects_per_second * config.time_scale,
            max_concurrent=config.max_concurrent_bulk,
            url_ttl=config.bulk_url_ttl,
            cancel_delay=config.bulk_cancel_delay / config.time_scale,
            start_delay=config.bulk_start_delay / config.time_scale,
        )
        self.bulk.denied_scope = lambda document: self.denied_scope(access_of(document))
        self.counters = Counters(faults=self.faults.injected, bulk=self.bulk.stats)
        self.status_override: int | None = config.status_override
        self.granted_scopes: frozenset[str] = frozenset(config.scopes)
        self._buckets: dict[str, LeakyBucket] = {}
        self.mutator: Mutator | None = None
        self._mutator_task: asyncio.Task | None = None
        self._mutator_stop = asyncio.Event()
        #: ``webhookSubscriptionCreate``'s subscriptions (simulator/webhooks.py delivers to them).
        self.webhook_subscriptions = WebhookSubscriptions()
        self._register_resolvers()

    # -- URLs -----------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """The shop's root (what ``https://{shop}.myshopify.com`` is on Shopify)."""
        return f"{self._public_url()}/shops/{self.name}"

    @property
    def graphql_url(self) -> str:
        return f"{self.base_url}/admin/api/{self.config.api_version}/graphql.json"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/admin/oauth/access_token"

    @property
    def token(self) -> str:
        """The first configured static access token (tests and the CLI print it)."""
        return self.config.access_tokens[0]

    # -- switches -------------------------------------------------------------------------------
    def set_status(self, status: int | None) -> None:
        """Answer every request with 402 (frozen), 403 (missing scope), 423 (locked), or normally."""
        if status is not None and status not in SHOP_STATUSES:
            raise ConfigError(f"simulator shop {self.name}: status must be one of {sorted(SHOP_STATUSES)} or None")
        self.status_override = status

    def set_scopes(self, scopes: Iterable[str]) -> None:
        """Grant exactly these scopes; a document touching a type that needs another answers 403."""
        self.granted_scopes = frozenset(scopes)

    def revoke_tokens(self, *, static: bool = False) -> int:
        """Revoke the client-credentials tokens (and the static ones with ``static=True``)."""
        return self.tokens.revoke_tokens(static=static)

    def denied_scope(self, compiled: Compiled) -> str | None:
        """The first scope a document needs (any one of a type's alternatives) that is not granted."""
        for alternatives in compiled.access:
            if not self.granted_scopes.intersection(alternatives):
                return alternatives[0]
        return None

    def bucket(self, app: str) -> LeakyBucket:
        """The leaky bucket of one app on this shop (created full on first use)."""
        b = self._buckets.get(app)
        if b is None:
            size, rate = self.config.bucket_limits()
            b = self._buckets[app] = LeakyBucket.full(size, rate, self.clock())
        return b

    def truth(self, resource: str) -> dict[str, dict]:
        """The shop's current data for one resource in sink-record shape, keyed by GID."""
        path = _RESOURCES_DIR / f"{resource}.graphql"
        if not path.exists():
            raise ConfigError(f"simulator shop {self.name}: no resource file {path}")
        return {rec["id"]: rec for rec in self.executor.materialize_resource(path)}

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        if self.config.mutator.orders_per_day > 0:
            self.mutator = Mutator(
                self.store, self.config.mutator, time_scale=self.config.time_scale, seed=self.config.data.seed, clock=self.clock
            )
            self._mutator_task = asyncio.get_running_loop().create_task(
                self.mutator.run(self._mutator_stop), name=f"sim-mutator-{self.name}"
            )

    async def close(self) -> None:
        self._mutator_stop.set()
        if self._mutator_task is not None:
            try:
                await asyncio.wait_for(self._mutator_task, timeout=5)
            except (TimeoutError, asyncio.CancelledError):
                self._mutator_task.cancel()
        await self.bulk.close()

    def _register_resolvers(self) -> None:
        ex = self.executor
        ex.register_root_field("bulkOperation", self.bulk.resolve_bulk_operation)
        ex.register_root_field("currentBulkOperation", self.bulk.resolve_current)
        ex.register_root_field("bulkOperations", self.bulk.resolve_list)
        ex.register_mutation("bulkOperationRunQuery", self.bulk.resolve_run_query)
        ex.register_mutation("bulkOperationCancel", self.bulk.resolve_cancel)
        ex.register_mutation("webhookSubscriptionCreate", self.webhook_subscriptions.resolve_create)
        ex.node_resolver("BulkOperation", self.bulk.resolve_bulk_operation)

    # -- the GraphQL endpoint ---------------------------------------------------------------------
    async def handle_graphql(self, request: web.Request) -> web.StreamResponse:
        self.counters.requests += 1
        version = served_version(request.match_info["version"], self.config)
        if version is None:
            return self._answer(404, {"errors": "Not Found"}, {})
        raw = await request.read()
        names = functools.cache(lambda: request_names(raw))
        redirect = await self.redirect_answer(request, "graphql", names)
        if redirect is not None:  # a misbehaving front: it answers before looking at the token
            return redirect
        headers = {"X-Shopify-API-Version": version, "X-Request-Id": str(uuid.uuid4())}
        app = self.tokens.app_for(request.headers.get("X-Shopify-Access-Token"))
        if app is None:
            self.counters.auth_failures += 1
            return self._answer(401, INVALID_TOKEN_BODY, headers)
        if self.status_override is not None:
            return self._answer(self.status_override, STATUS_BODIES[self.status_override], headers)

        retry_status = self.faults.take("retry_status", names)
        if retry_status is not None:
            return self._fault_status(RequestFault(kind=f"http_{retry_status}"), headers)
        fault = self.faults.roll_request()
        if fault is not None and fault.status is not None:
            return self._fault_status(fault, headers)

        try:
            payload = orjson.loads(raw)
            query = payload["query"]
            if not isinstance(query, str):
                raise TypeError("query is not a string")
            variables = payload.get("variables") or {}
            operation_name = payload.get("operationName")
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return self._answer(400, {"errors": {"query": "Required parameter missing or invalid"}}, headers)

        status, body = self.run_graphql(app, query, variables, operation_name)
        self._spoil(body, query, variables, operation_name, names)
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(self.faults.delay_for_slow(self.config.time_scale))
        if fault is None or fault.kind == "slow":
            huge = self.faults.take("huge_body", names)
            if huge:
                return await self._send_huge(request, status, body, headers, huge)
        return await self._send(request, status, body, headers, fault)

    def run_graphql(self, app: str, query: str, variables: Mapping[str, Any], operation_name: str | None) -> tuple[int, dict]:
        """Validate, cost, charge and execute one document for ``app`` → (HTTP status, body)."""
        compiled = compile_document(query)
        if compiled.document is None:
            self.counters.invalid_documents += 1
            return 200, {"errors": list(compiled.errors)}
        document = compiled.document
        denied = self.denied_scope(compiled)
        if denied is not None:
            return 403, {"errors": f"[API] This action requires merchant approval for {denied} scope."}
        ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if operation_name is not None:
            ops = [o for o in ops if o.name is not None and o.name.value == operation_name]
        if len(ops) != 1:
            self.counters.invalid_documents += 1
            message = (
                f'No operation named "{operation_name}"' if operation_name else "An operation name is required"
            )
            return 200, {"errors": [{"message": message}]}
        op = ops[0]
        coerced = get_variable_values(self.schema, op.variable_definitions or (), dict(variables))
        if isinstance(coerced, list):
            self.counters.invalid_documents += 1
            return 200, {
                "errors": [
                    {"message": e.message, "locations": error_locations(e), "extensions": {"code": "INVALID_VARIABLE"}} for e in coerced
                ]
            }
        values = coerced.coerced
        try:
            requested = requested_cost(self.schema, document, values, operation_name)
        except CostError as exc:
            self.counters.invalid_documents += 1
            return 200, {"errors": [{"message": str(exc), "extensions": {"code": "BAD_REQUEST"}}]}
        if requested > MAX_QUERY_COST:
            self.counters.max_cost_exceeded += 1
            return 200, max_cost_body(requested)
        bucket = self.bucket(app)
        now = self.clock()
        if not bucket.try_take(requested, now):
            self.counters.throttled += 1
            return 200, throttled_body(requested, bucket, now)
        result = self.executor.execute(document, values, operation_name)
        data = result.data
        actual = min(requested, actual_cost(self.schema, document, data, values, operation_name, result.runtime_types))
        now = self.clock()
        bucket.give_back(requested - actual, now)
        self.counters.points_requested += requested
        self.counters.points_spent += actual
        body: dict[str, Any] = {}
        if result.errors:
            body["errors"] = list(result.errors)
        body["data"] = data
        body["extensions"] = cost_extension(requested, actual, bucket, now)
        return 200, body

    # -- hostile answers (issue 10) -------------------------------------------------------------
    async def redirect_answer(
        self, request: web.Request, endpoint: str, names: Callable[[], frozenset[str]] | None = None
    ) -> web.Response | None:
        """The ``redirect`` fault's answer for this request, or ``None`` to answer normally.

        ``other_host`` points at the trap (another loopback address), ``same_host`` at this
        simulator's ``/_sim/moved`` twin of the path; both keep the path and query. Requests that
        already arrived through ``/_sim/moved`` are never redirected again.
        """
        if request.get(SIM_MOVED) or endpoint not in self.faults.settings.redirect_on:
            return None
        mode = self.faults.take("redirect", names)
        if mode is None:
            return None
        if mode == "same_host":
            base = f"{self._public_url()}/_sim/moved"
        else:
            base = await self._trap_url() if self._trap_url is not None else _NO_TRAP_URL
        location = f"{base}{request.path_qs}"
        status = self.faults.settings.redirect_status or (307 if endpoint == "graphql" else 302)
        self.counters.http_status[status] += 1
        text = f'<html><body>You are being <a href="{location}">redirected</a>.</body></html>'
        return web.Response(status=status, text=text, content_type="text/html", headers={"Location": location})

    def _spoil(
        self, body: dict, query: str, variables: Mapping[str, Any], operation_name: str | None, names: Callable[[], frozenset[str]]
    ) -> None:
        """Apply the answer-rewriting hostile switches (cursor, bad_data, throttle_status) in place."""
        s = self.faults.settings
        if s.cursor is not None and isinstance(body.get("data"), dict):
            document = compile_document(query).document
            afters = root_afters(document, operation_name, variables) if document is not None else {}
            mode = self.faults.take("cursor", names, applies=lambda m: cursor_applies(body["data"], m, afters))
            if mode is not None:
                rewrite_cursor(body["data"], mode, afters)
        if s.bad_data is not None:
            mode = self.faults.take("bad_data", names, applies=lambda m: bad_data_applies(body, m))
            if mode is not None:
                rewrite_bad_data(body, mode)
        if s.throttle_status is not None and isinstance(body.get("extensions"), dict):
            mode = self.faults.take("throttle_status", names)
            if mode is not None:
                rewrite_throttle_status(body, mode, s.throttle_status_fields)

    async def _send_huge(self, request: web.Request, status: int, body: dict, headers: dict[str, str], size: int) -> web.StreamResponse:
        """The answer padded past ``size`` bytes, streamed from one shared chunk (cheap to serve)."""
        head, padding, tail = padded_parts(orjson.dumps(body), size)
        self.counters.http_status[status] += 1
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_type = "application/json"
        if not self.faults.settings.huge_body_chunked:
            resp.content_length = len(head) + padding + len(tail)
        await resp.prepare(request)
        try:
            await resp.write(head)
            while padding > 0:
                chunk = _PADDING_CHUNK[: min(padding, len(_PADDING_CHUNK))]
                await resp.write(chunk)
                padding -= len(chunk)
            await resp.write(tail)
            await resp.write_eof()
        except ConnectionError:  # the client refused to read it all: that is the point
            pass
        return resp

    # -- answering ---------------------------------------------------------------------------------
    def _answer(self, status: int, body: Any, headers: Mapping[str, str]) -> web.Response:
        self.counters.http_status[status] += 1
        return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)

    def _fault_status(self, fault: RequestFault, headers: dict[str, str]) -> web.Response:
        status = fault.status
        assert status is not None
        self.counters.http_status[status] += 1
        retry_after = retry_after_value(self.faults.settings.retry_after_text, self.faults.settings.retry_after, self.clock())
        if status == 429:
            body = orjson.dumps({"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."})
            return web.Response(status=429, body=body, content_type="application/json", headers={**headers, "Retry-After": retry_after})
        if status == 503:
            body = orjson.dumps({"errors": "Unavailable"})
            return web.Response(status=503, body=body, content_type="application/json", headers={**headers, "Retry-After": retry_after})
        if status == 500:
            return web.Response(status=500, body=orjson.dumps({"errors": "Internal Server Error"}), content_type="application/json", headers=headers)
        title = {502: "502 Bad Gateway", 504: "504 Gateway Timeout"}[status]
        return web.Response(status=status, text=f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>", content_type="text/html", headers=headers)

    async def _send(
        self, request: web.Request, status: int, body: dict, headers: dict[str, str], fault: RequestFault | None
    ) -> web.StreamResponse:
        raw = orjson.dumps(body)
        kind = fault.kind if fault is not None else None
        if kind == "drop_connection":
            self.counters.http_status[status] += 1
            resp = web.StreamResponse(status=status, headers=headers)
            resp.content_type = "application/json"
            resp.content_length = len(raw)
            await resp.prepare(request)
            await resp.write(raw[: len(raw) // 2])
            abort_transport(request)
            return resp
        if kind == "truncated_body":
            raw = raw[: max(1, len(raw) // 2)]
        elif kind == "malformed_body":
            raw = b"<!DOCTYPE html><html><body><p>There was a problem loading this website.</p></body></html>"
        self.counters.http_status[status] += 1
        return web.Response(status=status, body=raw, content_type="application/json", headers=headers)

    async def handle_token(self, request: web.Request) -> web.Response:
        redirect = await self.redirect_answer(request, "token")
        if redirect is not None:
            return redirect
        if request.content_type == "application/json":
            try:
                raw = orjson.loads(await request.read())
                form = {k: str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
            except orjson.JSONDecodeError:
                form = {}
        else:
            form = {k: str(v) for k, v in (await request.post()).items()}
        answer = self.tokens.grant(form)
        self.counters.http_status[answer.status] += 1
        return web.Response(status=answer.status, body=orjson.dumps(answer.body), content_type="application/json")
