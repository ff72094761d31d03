"""The count document: how many records a search matches (for progress and checks)."""

from __future__ import annotations

from functools import lru_cache

from shopsync.queries.builder.assembly import finish_document, parse_skeleton
from shopsync.queries.model import Resource
from shopsync.shopify.schema import load_schema


def count_query(resource: Resource) -> str | None:
    """``query Count($query: String)`` on the resource's count field (no limit), or ``None``."""
    if resource.count_field is None:
        return None
    return _count_query(resource)


@lru_cache(maxsize=64)
def _count_query(resource: Resource) -> str:
    field_def = load_schema().query_type.fields[resource.count_field]  # type: ignore[union-attr]
    args = ["query: $query"] + (["limit: null"] if "limit" in field_def.args else [])
    text = f"query Count($query: String) {{\n  {resource.count_field}({', '.join(args)}) {{ count precision }}\n}}"
    return finish_document(parse_skeleton(text, resource, "count"), resource, "count")



__all__ = ["count_query"]
