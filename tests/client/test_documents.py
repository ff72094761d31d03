"""The validated-document cache shared by every shop client, and requests sent as their text."""

from __future__ import annotations

import pytest
from gql import GraphQLRequest
from graphql import parse

import shopsync.client.documents as documents
from shopsync.client.documents import DocumentCache, TextRequest, shared_documents
from shopsync.errors import QueryDocumentError

SHOP = "query Shop { shop { name } }"


def test_a_text_is_validated_once_for_the_whole_process(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = documents.validate

    def counting(schema, document):  # type: ignore[no-untyped-def]
        calls.append("validate")
        return real(schema, document)

    monkeypatch.setattr(documents, "validate", counting)
    cache = DocumentCache()
    first = cache.get(SHOP, "a")
    assert cache.get(SHOP, "b") is first  # a second shop asking for the same text
    assert calls == ["validate"]


def test_an_invalid_document_is_refused_every_time_and_never_cached() -> None:
    cache = DocumentCache(size=4)
    for _ in range(2):
        with pytest.raises(QueryDocumentError, match="nmae"):
            cache.get("query { shop { nmae } }", "orders.graphql")


def test_the_cache_is_bounded_dropping_the_least_recently_used() -> None:
    cache = DocumentCache(size=2)
    texts = [f"query Q{i} {{ shop {{ name }} }}" for i in range(3)]
    a = cache.get(texts[0], "t")
    cache.get(texts[1], "t")
    assert cache.get(texts[0], "t") is a  # used again: now the most recent
    cache.get(texts[2], "t")  # drops texts[1]
    assert cache.get(texts[0], "t") is a
    assert cache.get(texts[1], "t") is not None  # parsed again: a new object
    assert len(cache._documents) == 2


def test_shared_documents_is_one_cache() -> None:
    assert shared_documents() is shared_documents()


def test_a_text_request_sends_the_validated_text_and_otherwise_what_gql_sends() -> None:
    text = "query Shop($n: Int) {\n  shop { name }\n}"
    document = parse(text)
    ours = TextRequest(text, document, variable_values={"n": 1}).payload
    theirs = GraphQLRequest(document, variable_values={"n": 1}).payload
    assert ours["query"] == text != theirs["query"]  # gql re-prints the tree
    assert {k: v for k, v in ours.items() if k != "query"} == {k: v for k, v in theirs.items() if k != "query"}
