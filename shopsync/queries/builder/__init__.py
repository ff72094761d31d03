"""Every GraphQL document shopsync sends, built from a resource's fragment.

Documents are assembled as graphql-core ASTs that reuse the fragment file's own nodes, so a
validation error inside the fragment carries the resource file's line; the printed text is then
validated with :func:`shopsync.shopify.schema.parse_and_validate` (once per distinct document: builders are
cached). Values that change between requests (cursors, search strings, ids, the outer page size)
are variables; only our own integers (nested page sizes) and, for bulk queries, the search string
(the whole bulk query travels as one variable of the mutation) are written into the text.

Documents and their variables:

=========================  =====================================================================
``page_query``             ``first``, ``after``, ``query`` (+ ``parentId`` for ``parent.child``)
``parent_ids_query``       ``first``, ``after``
``drain_query``            ``id`` (the parent node), ``first``, ``after``
``bulk_mutation``          ``query`` (the text from ``bulk_query``)
``bulk_status_query``      ``id``
``bulk_cancel_mutation``   ``id``
``count_query``            ``query``
``deletions_query``        ``first``, ``after``, ``query`` (from ``deletion_search``)
``object_query``           none (a single-object resource, ``root: shop``: its only document)
=========================  =====================================================================

The modules: :mod:`~.assembly` (shared AST pieces, splicing, rewriting, validation),
:mod:`~.paginated`, :mod:`~.bulk`, :mod:`~.counts`, :mod:`~.events` (deletions), :mod:`~.search`
(window search strings) and :mod:`~.page_size` (cost-based page sizing). Callers use the names
re-exported here (``builder.page_query``).
"""

from __future__ import annotations

from shopsync.queries.builder.bulk import (
    bulk_cancel_mutation,
    bulk_mutation,
    bulk_query,
    bulk_status_query,
    recent_bulk_operations_query,
)
from shopsync.queries.builder.counts import count_query
from shopsync.queries.builder.events import deletion_search, deletions_query
from shopsync.queries.builder.page_size import (
    PAGE_SIZE_STEPS,
    PageSize,
    drain_first,
    drain_page_size,
    plan_page_size,
    record_cost,
    requested_cost_of,
    round_page_size,
    shrink,
)
from shopsync.queries.builder.paginated import (
    DRAIN_PAGE,
    drain_query,
    page_query,
    page_variables,
    parent_ids_query,
)
from shopsync.queries.builder.search import window_search
from shopsync.queries.builder.singular import object_query

__all__ = [
    "DRAIN_PAGE",
    "PAGE_SIZE_STEPS",
    "PageSize",
    "bulk_cancel_mutation",
    "bulk_mutation",
    "bulk_query",
    "bulk_status_query",
    "count_query",
    "deletion_search",
    "deletions_query",
    "object_query",
    "drain_first",
    "drain_page_size",
    "drain_query",
    "page_query",
    "page_variables",
    "parent_ids_query",
    "plan_page_size",
    "record_cost",
    "recent_bulk_operations_query",
    "requested_cost_of",
    "round_page_size",
    "shrink",
    "window_search",
]
