"""Validating a resource by building every document the engine can send for it.

Each builder validates the document it builds against the pinned schema (errors name the resource
file's line), so building them all at load time stops a bad user query before the first sync.
"""

from __future__ import annotations

from shopsync.errors import QueryDocumentError, QueryTooCostlyError
from shopsync.queries import builder
from shopsync.queries.model import Resource


def validate_documents(resource: Resource) -> None:
    """Build every document the engine can send for ``resource``; each builder validates.

    Raises :class:`~shopsync.errors.QueryDocumentError` for a document that does not validate, or
    for a fragment so heavy that one record per page is over Shopify's cost limit.
    """
    if resource.singular:  # one query is all such a resource sends
        builder.object_query(resource)
        return
    builder.page_query(resource)
    if resource.parent_field:
        builder.parent_ids_query(resource)
    for nc in resource.all_nested():
        builder.drain_query(resource, nc)
    if resource.exportable:
        builder.bulk_query(resource, None)
        if resource.incremental:
            builder.bulk_query(resource, "updated_at:>='2000-01-01T00:00:00Z'")
    builder.count_query(resource)
    # A fragment so heavy that one record (or one drained node) per page exceeds Shopify's cap
    # could never be read page by page.
    try:
        builder.plan_page_size(resource, child_counts=None)
        for nc in resource.all_nested():
            builder.drain_page_size(resource, nc)
    except QueryTooCostlyError as exc:
        raise QueryDocumentError(f"{exc} (Shopify's limit for one query)") from exc


__all__ = ["validate_documents"]
