"""Validated GraphQL documents, cached by text, and the request that sends one as that text.

Every document shopsync sends is parsed and validated against the pinned schema before it goes
out. A daemon sends the same few dozen texts (per resource and page size) for every shop, over and
over: one cache for the whole process (per schema) validates each text once, where a cache per shop
client validated it again for each of hundreds of shops. A profile of the 50-shop steady state
showed validation at about 4 % and re-printing the document from its syntax tree for every request
(gql's ``GraphQLRequest.payload``) at about 7–12 % of the daemon's CPU; :class:`TextRequest` sends
the validated text itself instead.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from gql import GraphQLRequest
from graphql import DocumentNode, GraphQLError, GraphQLSchema, parse, validate

from shopsync.errors import QueryDocumentError
from shopsync.shopify.schema import format_graphql_error, load_schema

__all__ = ["DOCUMENT_CACHE_SIZE", "DocumentCache", "TextRequest", "shared_documents"]

#: Documents kept per cache (least recently used dropped first).
DOCUMENT_CACHE_SIZE = 1024


class DocumentCache:
    """Document text → parsed and validated :class:`DocumentNode`, for one schema (default: the
    pinned one). Raises :class:`QueryDocumentError` for a document that does not parse or validate
    (never cached: the error is raised again each time)."""

    def __init__(self, schema: GraphQLSchema | None = None, size: int = DOCUMENT_CACHE_SIZE) -> None:
        self._schema = schema
        self._size = size
        self._documents: OrderedDict[str, DocumentNode] = OrderedDict()
        self._lock = threading.Lock()  # clients of several event loops (tests, threads) may share it

    @property
    def schema(self) -> GraphQLSchema:
        return self._schema if self._schema is not None else load_schema()

    def get(self, text: str, origin: str) -> DocumentNode:
        with self._lock:
            cached = self._documents.get(text)
            if cached is not None:
                self._documents.move_to_end(text)
                return cached
        try:
            document = parse(text)
        except GraphQLError as exc:
            raise QueryDocumentError(format_graphql_error(exc, origin)) from exc
        errors = validate(self.schema, document)
        if errors:
            raise QueryDocumentError("; ".join(format_graphql_error(e, origin) for e in errors))
        with self._lock:
            self._documents[text] = document
            if len(self._documents) > self._size:
                self._documents.popitem(last=False)
        return document


_SHARED = DocumentCache()


def shared_documents() -> DocumentCache:
    """The process-wide cache for the pinned schema."""
    return _SHARED


class TextRequest(GraphQLRequest):
    """A request sent as the document's own (validated) text, not re-printed from its syntax tree."""

    def __init__(self, text: str, document: DocumentNode, *, variable_values: dict[str, Any] | None = None) -> None:
        super().__init__(document, variable_values=variable_values)
        self.text = text

    @property
    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"query": self.text}
        if self.operation_name:
            payload["operationName"] = self.operation_name
        if self.variable_values:
            payload["variables"] = self.variable_values
        if self.extensions:
            payload["extensions"] = self.extensions
        return payload
