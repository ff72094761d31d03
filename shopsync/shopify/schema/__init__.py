"""The pinned Shopify Admin schema: loading, document validation, required access scopes.

Both the engine (which must only send valid documents) and the simulator (which must reject
invalid ones like Shopify does) validate against the same file, so neither can drift from the real
API.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import cast

import orjson
from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    IntrospectionQuery,
    build_client_schema,
    parse,
    validate,
)

from shopsync import API_VERSION
from shopsync.errors import QueryDocumentError

SCHEMA_SHA256 = {
    "2026-01": "28804b33e23becb5296f168545781daa8747a4574ac2089515f3c572d82670b1",
    "2026-04": "f14a1d924a2ce4a5824dcaa832a90a9fe8d20d0ad16f71240b854401c08b5769",
    "2026-07": "5bcde995c89c59acdb2ee494378d96f45ce7378a16ec829a74b71d696a08ef19",
    "2026-10": "f3b522f264556925eada700e795e4a002a9cba83444ebcc6c0d724254a0c6593",
}


def schema_path(version: str = API_VERSION):
    return resources.files(__package__) / f"admin_{version}.json.gz"


@cache
def introspection(version: str = API_VERSION) -> dict:
    """The raw introspection result (``{"__schema": …}``), with Shopify's extra keys."""
    raw = schema_path(version).read_bytes()
    return orjson.loads(gzip.decompress(raw))["data"]


def schema_sha256(version: str = API_VERSION) -> str:
    return hashlib.sha256(schema_path(version).read_bytes()).hexdigest()


@cache
def load_schema(version: str = API_VERSION) -> GraphQLSchema:
    """The pinned schema as a graphql-core schema (built once per process)."""
    return build_client_schema(cast(IntrospectionQuery, introspection(version)), assume_valid=True)


@dataclass(frozen=True)
class AccessInfo:
    """Shopify's ``requiredAccess`` text for one type or field, and the scopes named in it."""

    text: str
    scopes: tuple[str, ...]


_SCOPE_RE = re.compile(r"`([a-z_]+)`")


@cache
def _access_index(version: str) -> dict[tuple[str, str | None], str]:
    index: dict[tuple[str, str | None], str] = {}
    for t in introspection(version)["__schema"]["types"]:
        if t.get("requiredAccess"):
            index[(t["name"], None)] = t["requiredAccess"]
        for f in t.get("fields") or ():
            if f.get("requiredAccess"):
                index[(t["name"], f["name"])] = f["requiredAccess"]
    return index


def required_access(type_name: str, field_name: str | None = None, version: str = API_VERSION) -> AccessInfo | None:
    """What Shopify says is needed to read ``type_name`` (or one of its fields), or ``None``."""
    text = _access_index(version).get((type_name, field_name))
    if text is None:
        return None
    return AccessInfo(text=text.strip(), scopes=tuple(dict.fromkeys(_SCOPE_RE.findall(text))))


def format_graphql_error(err: GraphQLError, origin: str) -> str:
    where = ""
    if err.locations:
        loc = err.locations[0]
        where = f":{loc.line}:{loc.column}"
    return f"{origin}{where}: {err.message}"


def parse_and_validate(source: str, *, origin: str, version: str = API_VERSION) -> DocumentNode:
    """Parse and validate ``source`` against the pinned schema.

    Raises :class:`QueryDocumentError` naming ``origin`` (a file path or a label), the line and
    column, and graphql-core's message (which names the offending field).
    """
    try:
        document = parse(source)
    except GraphQLError as exc:
        raise QueryDocumentError(format_graphql_error(exc, origin)) from exc
    errors = validate(load_schema(version), document)
    if errors:
        raise QueryDocumentError("; ".join(format_graphql_error(e, origin) for e in errors))
    return document
