"""The one document of a single-object resource (``root: shop``): ``query Object { shop { … } }``.

Shopify's bulk operations need a connection, so such a resource has no bulk form, no pages, no
count and no ids listing: this query is everything the engine sends for it.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from shopsync.queries.builder.assembly import finish_document, parse_skeleton
from shopsync.queries.model import Resource


@lru_cache(maxsize=64)
def object_query(resource: Resource) -> str:
    """``query Object``: the resource's one record, the root object through the fragment."""
    if not resource.singular:
        raise ValueError(f"{resource.name} is not a single-object resource")
    frag = resource.fragment_ast
    assert frag is not None
    text = f"query Object {{\n  {resource.root_field} {{ ...{resource.fragment_name} }}\n}}"
    skeleton = parse_skeleton(text, resource, "object")
    return finish_document(replace(skeleton, definitions=(*skeleton.definitions, frag)), resource, "object")


__all__ = ["object_query"]
