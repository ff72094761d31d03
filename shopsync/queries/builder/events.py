"""The events documents: destroyed records, read from ``events`` oldest first."""

from __future__ import annotations

from datetime import datetime

from shopsync.queries.builder.assembly import static_document
from shopsync.timeutil import format_ts

_DELETIONS = """query Deleted($first: Int!, $after: String, $query: String) {
  events(first: $first, after: $after, query: $query, sortKey: CREATED_AT) {
    pageInfo { hasNextPage endCursor }
    edges { node { ... on BasicEvent { id action createdAt subjectId subjectType } } }
  }
}"""


def deletions_query() -> str:
    """``query Deleted($first: Int!, $after: String, $query: String)`` over ``events``, oldest first."""
    return static_document(_DELETIONS, "deletions")


def deletion_search(subject_type: str, since: datetime | None, until: datetime | None = None) -> str:
    """The ``events`` search for destroyed records of one subject type, created in ``[since, until]``."""
    search = f"action:destroy AND subject_type:{subject_type}"
    if since is not None:
        search += f" AND created_at:>='{format_ts(since)}'"
    if until is not None:
        search += f" AND created_at:<='{format_ts(until)}'"
    return search



__all__ = ["deletion_search", "deletions_query"]
