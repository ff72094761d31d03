"""The resource registry: one ``<name>.graphql`` fragment per resource, with a header.

A resource file (docs/ARCHITECTURE.md, "Resource files") is a header of ``# key: value`` comment
lines after ``# shopsync:resource`` and exactly one fragment on the records' node type. The header
names the root connection, its extra arguments, the sort key, whether the resource is read in
``updated_at`` windows, the count field and the deletion subject; nested connections inside the
fragment carry their paginated page size as ``first: N``.

:func:`load_resources` reads the packaged files and the user's ``queries_dir`` (a user file with the
same name replaces the packaged one), checks the header against the pinned schema, builds every
document the engine will send for the resource (:mod:`shopsync.queries.builder`) and validates
each. Every error is a :class:`~shopsync.errors.QueryDocumentError` naming the file, the line in
that file and the field, so a bad user query stops ``shopsync check`` and the daemon at start.

The modules, bottom up: :mod:`~shopsync.queries.model` (``Resource``, ``NestedConnection``, limits),
:mod:`~shopsync.queries.header` (the one header parser, shared with the simulator),
:mod:`~shopsync.queries.scopes` (the access-scope set cover), :mod:`~shopsync.queries.parser` (one
file to a ``Resource``), :mod:`~shopsync.queries.builder` (the documents),
:mod:`~shopsync.queries.validation` (building them all at load) and :mod:`~shopsync.queries.loader`
(files, cache). This module only re-exports their public names.
"""

from __future__ import annotations

from shopsync.queries.header import HEADER_KEYS, HEADER_MARKER, ResourceHeader, parse_header
from shopsync.queries.loader import load_resource_text, load_resources, packaged_dir
from shopsync.queries.model import MAX_PAGE_SIZE, READ_ALL_ORDERS, NestedConnection, Resource
from shopsync.queries.scopes import minimal_scopes

__all__ = [
    "HEADER_KEYS",
    "HEADER_MARKER",
    "MAX_PAGE_SIZE",
    "NestedConnection",
    "READ_ALL_ORDERS",
    "Resource",
    "ResourceHeader",
    "load_resource_text",
    "load_resources",
    "minimal_scopes",
    "packaged_dir",
    "parse_header",
]
