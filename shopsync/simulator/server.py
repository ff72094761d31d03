"""The simulated shop's HTTP side: an aiohttp app speaking the Shopify GraphQL Admin API.

One server process can host several shops (the daemon benchmark runs hundreds):

* ``POST /shops/{name}/admin/api/{version}/graphql.json`` — each shop; the first shop is also at
  the bare ``POST /admin/api/{version}/graphql.json``.
* ``POST /shops/{name}/admin/oauth/access_token`` (and bare for the first shop) — the
  client-credentials grant (:mod:`shopsync.simulator.auth`).
* ``GET /_sim/files/{shop}/{name}`` — bulk result files (signed URLs, ``Range``).
* Control endpoints for out-of-process use: ``GET /_sim/counters``, ``POST /_sim/faults``,
  ``GET /_sim/truth/{shop}/{resource}``, ``POST /_sim/mutator/{pause|resume}``,
  ``POST /_sim/status/{shop}``.

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
import logging
import re
import secrets
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    get_named_type,
    parse,
    validate,
    visit,
)
from graphql.execution.values import get_variable_values

from shopsync.bucket import LeakyBucket
from shopsync.cost import MAX_QUERY_COST, CostError, actual_cost, requested_cost
from shopsync.errors import ConfigError
from shopsync.schema import load_schema, required_access
from shopsync.simulator.auth import INVALID_TOKEN_BODY, TokenRegistry
from shopsync.simulator.bulk import BulkManager, UrlSigner, abort_transport
from shopsync.simulator.config import SHOP_STATUSES, SimConfig
from shopsync.simulator.executor import Executor
from shopsync.simulator.faults import Faults, RequestFault
from shopsync.simulator.mutator import Mutator
from shopsync.simulator.store import ShopStore

log = logging.getLogger(__name__)

THROTTLE_DOC = "https://shopify.dev/api/usage/rate-limits"
_VERSION_RE = re.compile(r"^(\d{4}-(01|04|07|10)|unstable)$")
_RESOURCES_DIR = Path(__file__).resolve().parent.parent / "queries" / "resources"

#: Whole-shop answers (shopify-api-facts §5).
STATUS_BODIES: dict[int, dict] = {
    402: {"errors": "Unavailable Shop"},
    403: {"errors": "[API] This action requires merchant approval for read_orders scope."},
    423: {"errors": "Unavailable Shop"},
}


# ---------------------------------------------------------------------------------------------
# Pure pieces: documents, errors, cost answers
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Compiled:
    """A parsed document and what validation said; cached by document text."""

    document: DocumentNode | None
    errors: tuple[dict, ...]
    #: requiredAccess scope alternatives of every type and field the document touches.
    access: tuple[tuple[str, ...], ...]


def _location(err: GraphQLError) -> list[dict]:
    return [{"line": loc.line, "column": loc.column} for loc in err.locations or ()]


_SHOPIFY_MESSAGES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], tuple[str, dict]]]] = [
    (
        re.compile(r"^Cannot query field '(?P<f>[^']+)' on type '(?P<t>[^']+)'"),
        lambda m: (
            f"Field '{m['f']}' doesn't exist on type '{m['t']}'",
            {"code": "undefinedField", "typeName": m["t"], "fieldName": m["f"]},
        ),
    ),
    (
        re.compile(r"^Unknown argument '(?P<a>[^']+)' on field '(?:[^'.]+\.)?(?P<f>[^']+)'"),
        lambda m: (
            f"Field '{m['f']}' doesn't accept argument '{m['a']}'",
            {"code": "argumentNotAccepted", "name": m["f"], "typeName": "Field", "argumentName": m["a"]},
        ),
    ),
    (
        re.compile(r"^Argument '(?:[^'.]+\.)?(?P<f>[^'(.]+)\((?P<a>[^:)]+):\)' of type '[^']+' is required"),
        lambda m: (
            f"Field '{m['f']}' is missing required arguments: {m['a']}",
            {"code": "missingRequiredArguments", "className": "Field", "name": m["f"], "arguments": m["a"]},
        ),
    ),
    (
        re.compile(r"^Field '(?P<f>[^']+)' argument '(?P<a>[^']+)' of type '[^']+' is required"),
        lambda m: (
            f"Field '{m['f']}' is missing required arguments: {m['a']}",
            {"code": "missingRequiredArguments", "className": "Field", "name": m["f"], "arguments": m["a"]},
        ),
    ),
    (
        re.compile(r"^Unknown type '(?P<t>[^']+)'"),
        lambda m: (f"No such type {m['t']}, so it can't be a fragment condition", {"code": "undefinedType", "typeName": m["t"]}),
    ),
    (
        re.compile(r"^Variable '\$(?P<v>[^']+)' is never used"),
        lambda m: (f"Variable ${m['v']} is declared by anonymous query but not used", {"code": "variableNotUsed", "variableName": m["v"]}),
    ),
    (
        re.compile(r"^Variable '\$(?P<v>[^']+)' is not defined"),
        lambda m: (f"Variable ${m['v']} is used by anonymous query but not declared", {"code": "variableNotDefined", "variableName": m["v"]}),
    ),
    (
        re.compile(r"^Field '(?P<f>[^']+)' of type '(?P<t>[^']+)' must have a selection of subfields"),
        lambda m: (
            f"Field must have selections (field '{m['f']}' returns {m['t'].strip('[]!')} but has no selections. Did you mean '{m['f']} {{ ... }}'?)",
            {"code": "selectionMismatch", "nodeName": f"field '{m['f']}'", "typeName": m["t"].strip("[]!")},
        ),
    ),
]


def shopify_error(err: GraphQLError) -> dict:
    """A graphql-core validation error in the shape Shopify (graphql-ruby) answers."""
    for pattern, build in _SHOPIFY_MESSAGES:
        m = pattern.match(err.message)
        if m:
            message, extensions = build(m)
            return {"message": message, "locations": _location(err), "extensions": extensions}
    return {"message": err.message, "locations": _location(err), "extensions": {"code": "validationError"}}


def _touched_access(document: DocumentNode) -> tuple[tuple[str, ...], ...]:
    schema = load_schema()
    info = TypeInfo(schema)
    found: set[tuple[str, ...]] = set()

    class _Collect(Visitor):
        def enter_field(self, node: FieldNode, *_: Any) -> None:
            parent = info.get_parent_type()
            if parent is not None:
                acc = required_access(parent.name, node.name.value)
                if acc and acc.scopes:
                    found.add(acc.scopes)
            named = get_named_type(info.get_type())
            if named is not None:
                acc = required_access(named.name)
                if acc and acc.scopes:
                    found.add(acc.scopes)

    visit(document, TypeInfoVisitor(info, _Collect()))
    return tuple(sorted(found))


def _access_of(document: DocumentNode) -> Compiled:
    return Compiled(document, (), _touched_access(document))


@lru_cache(maxsize=2048)
def compile_document(source: str) -> Compiled:
    """Parse and validate against the pinned schema (LRU-cached by document text)."""
    try:
        document = parse(source)
    except GraphQLError as exc:
        detail = exc.message.removeprefix("Syntax Error: ")
        return Compiled(None, ({"message": f"syntax error, {detail}", "locations": _location(exc)},), ())
    errors = validate(load_schema(), document)
    if errors:
        return Compiled(None, tuple(shopify_error(e) for e in errors), ())
    return Compiled(document, (), _touched_access(document))


def throttle_status(bucket: LeakyBucket, now: float) -> dict:
    """Shopify's ``throttleStatus``: floats for the bucket size and rate, whole points available."""
    return {
        "maximumAvailable": float(bucket.capacity),
        "currentlyAvailable": int(bucket.level(now)),
        "restoreRate": float(bucket.rate),
    }


def cost_extension(requested: int, actual: int | None, bucket: LeakyBucket, now: float) -> dict:
    return {
        "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": throttle_status(bucket, now),
        }
    }


def throttled_body(requested: int, bucket: LeakyBucket, now: float) -> dict:
    """The 200 + ``THROTTLED`` answer (no ``data``; ``actualQueryCost`` null)."""
    return {
        "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED", "documentation": THROTTLE_DOC}}],
        "extensions": cost_extension(requested, None, bucket, now),
    }


def max_cost_body(requested: int) -> dict:
    """The 200 + ``MAX_COST_EXCEEDED`` answer; nothing ran and nothing is charged."""
    return {
        "errors": [
            {
                "message": f"Query cost is {requested}, which exceeds the single query max cost limit ({MAX_QUERY_COST}).",
                "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested, "maxCost": MAX_QUERY_COST},
            }
        ]
    }


def served_version(requested: str, config: SimConfig) -> str | None:
    """The version served for a path version: itself if supported, else the pinned one (fall
    forward); ``None`` for a malformed version (404)."""
    if not _VERSION_RE.match(requested):
        return None
    return requested if requested in config.supported_versions else config.api_version


# ---------------------------------------------------------------------------------------------
# Counters
# ---------------------------------------------------------------------------------------------
@dataclass
class Counters:
    """What one shop has answered. ``as_dict()`` is what ``GET /_sim/counters`` returns."""

    faults: Counter[str]
    bulk: Counter[str]
    requests: int = 0
    throttled: int = 0
    max_cost_exceeded: int = 0
    invalid_documents: int = 0
    auth_failures: int = 0
    points_requested: int = 0  # requested cost of the queries that ran
    points_spent: int = 0  # their actual cost (requested minus the refunds)
    http_status: Counter[int] = field(default_factory=Counter)

    @property
    def downloads(self) -> int:
        return self.bulk["downloads"]

    def as_dict(self) -> dict[str, Any]:
        statuses = ("CREATED", "COMPLETED", "FAILED", "CANCELED")
        return {
            "requests": self.requests,
            "throttled": self.throttled,
            "max_cost_exceeded": self.max_cost_exceeded,
            "invalid_documents": self.invalid_documents,
            "auth_failures": self.auth_failures,
            "points_requested": self.points_requested,
            "points_spent": self.points_spent,
            "http_status": {str(k): v for k, v in sorted(self.http_status.items())},
            "faults": dict(self.faults),
            "bulk_operations": {s: self.bulk[s] for s in statuses if self.bulk[s]},
            "downloads": self.bulk["downloads"],
            "downloads_cut": self.bulk["downloads_cut"],
            "download_bytes": self.bulk["download_bytes"],
        }


# ---------------------------------------------------------------------------------------------
# One shop
# ---------------------------------------------------------------------------------------------
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
    ) -> None:
        self.name = config.shop_name
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
        )
        self.bulk.denied_scope = lambda document: self.denied_scope(_access_of(document))
        self.counters = Counters(faults=self.faults.injected, bulk=self.bulk.stats)
        self.status_override: int | None = config.status_override
        self.granted_scopes: frozenset[str] = frozenset(config.scopes)
        self._buckets: dict[str, LeakyBucket] = {}
        self.mutator: Mutator | None = None
        self._mutator_task: asyncio.Task | None = None
        self._mutator_stop = asyncio.Event()
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
        ex.node_resolver("BulkOperation", self.bulk.resolve_bulk_operation)

    # -- the GraphQL endpoint ---------------------------------------------------------------------
    async def handle_graphql(self, request: web.Request) -> web.StreamResponse:
        self.counters.requests += 1
        version = served_version(request.match_info["version"], self.config)
        if version is None:
            return self._answer(404, {"errors": "Not Found"}, {})
        headers = {"X-Shopify-API-Version": version, "X-Request-Id": str(uuid.uuid4())}
        app = self.tokens.app_for(request.headers.get("X-Shopify-Access-Token"))
        if app is None:
            self.counters.auth_failures += 1
            return self._answer(401, INVALID_TOKEN_BODY, headers)
        if self.status_override is not None:
            return self._answer(self.status_override, STATUS_BODIES[self.status_override], headers)

        fault = self.faults.roll_request()
        if fault is not None and fault.status is not None:
            return self._fault_status(fault, headers)

        try:
            payload = orjson.loads(await request.read())
            query = payload["query"]
            if not isinstance(query, str):
                raise TypeError("query is not a string")
            variables = payload.get("variables") or {}
            operation_name = payload.get("operationName")
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return self._answer(400, {"errors": {"query": "Required parameter missing or invalid"}}, headers)

        status, body = self.run_graphql(app, query, variables, operation_name)
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(self.faults.delay_for_slow(self.config.time_scale))
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
                    {"message": e.message, "locations": _location(e), "extensions": {"code": "INVALID_VARIABLE"}} for e in coerced
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
        actual = min(requested, actual_cost(self.schema, document, data, values, operation_name))
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

    # -- answering ---------------------------------------------------------------------------------
    def _answer(self, status: int, body: Any, headers: Mapping[str, str]) -> web.Response:
        self.counters.http_status[status] += 1
        return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)

    def _fault_status(self, fault: RequestFault, headers: dict[str, str]) -> web.Response:
        status = fault.status
        assert status is not None
        self.counters.http_status[status] += 1
        retry_after = f"{self.faults.settings.retry_after:g}"
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


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------
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
            self.shops[cfg.shop_name] = SimulatedShop(cfg, clock=clock, files_dir=files_dir, signer=signer, public_url=lambda: self.url)
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

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)

        async def graphql(request: web.Request) -> web.StreamResponse:
            return await self._lookup(request).handle_graphql(request)

        async def token(request: web.Request) -> web.StreamResponse:
            return await self._lookup(request).handle_token(request)

        async def files(request: web.Request) -> web.StreamResponse:
            return await self._lookup(request).bulk.download(request)

        app.router.add_post("/admin/api/{version}/graphql.json", graphql)
        app.router.add_post("/shops/{shop}/admin/api/{version}/graphql.json", graphql)
        app.router.add_post("/admin/oauth/access_token", token)
        app.router.add_post("/shops/{shop}/admin/oauth/access_token", token)
        app.router.add_get("/_sim/files/{shop}/{name}", files)
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
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = site._server.sockets if site._server is not None else ()  # type: ignore[union-attr]
        bound = sockets[0].getsockname()[1] if sockets else port
        self.url = f"http://{host}:{bound}"
        for shop in self.shops.values():
            await shop.start()

    async def close(self) -> None:
        for shop in self.shops.values():
            await shop.close()
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
) -> AsyncIterator[SimulatorServer]:
    """Serve simulated shops for the duration of the block (port 0: an ephemeral port).

    ``server.url`` is the base URL; ``server.shop()`` the first shop, ``server.shops[name]`` any.
    """
    server = SimulatorServer(configs, clock=clock, files_dir=files_dir)
    await server.start(host, port)
    try:
        yield server
    finally:
        await server.close()


__all__ = [
    "Compiled",
    "Counters",
    "SimulatedShop",
    "SimulatorServer",
    "compile_document",
    "cost_extension",
    "max_cost_body",
    "run_simulator",
    "served_version",
    "throttle_status",
    "throttled_body",
]
