"""The sink protocol: where records go, durably, with newer-wins or append-only semantics.

A sink receives :class:`~shopsync.state.models.Record` and :class:`~shopsync.state.models.Deletion`
batches for any (shop, resource). ``write`` returns only when the batch is durable (committed or
fsynced): the state store relies on that to save the checkpoint after it.

Implementations: :class:`shopsync.state.sqlite_sink.SqliteSink` and
:class:`shopsync.state.postgres_sink.PostgresSink` (one table per resource, upsert newer-wins, rules and
shared logic in :mod:`shopsync.state.table`; each can share its state store's database and
transaction), :class:`shopsync.state.jsonl.JsonlSink` (append-only change log files) and
:class:`shopsync.state.memory.MemorySink` (in memory, for tests and demos). Every implementation
passes ``tests/storage/test_sink_contract.py``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from shopsync.settings.model import DEFAULT_ROTATE_BYTES
from shopsync.settings.urls import is_shop_name
from shopsync.state.models import Deletion, Record, SinkRow, SinkStats, WriteResult

__all__ = [
    "DEFAULT_ROTATE_BYTES",
    "Deletion",
    "Record",
    "Sink",
    "SinkRow",
    "SinkStats",
    "WriteResult",
    "replaces",
    "validate_resource_name",
    "validate_shop_name",
]

_RESOURCE_NAME = re.compile(r"[a-z_][a-z0-9_]*\Z")
# Names a resource table must not take in a database shared with the state store.
RESERVED_NAMES = frozenset({"meta", "stream_state", "bulk_operations"})


def validate_resource_name(name: str) -> str:
    """Return ``name`` if it can be a table/directory name (``[a-z_][a-z0-9_]*``), else ValueError."""
    if not isinstance(name, str) or not _RESOURCE_NAME.match(name) or len(name) > 63:
        raise ValueError(f"invalid resource name {name!r}: use lowercase letters, digits and _ (max 63)")
    if name in RESERVED_NAMES or name.startswith("sqlite_") or name.startswith("pg_"):
        raise ValueError(f"invalid resource name {name!r}: reserved for shopsync's own tables")
    return name


def validate_shop_name(name: str) -> str:
    """Return ``name`` if it is safe as one path component (letters, digits, ``.``, ``_``, ``-``)."""
    if not is_shop_name(name, 200):
        raise ValueError(f"invalid shop name {name!r}: use letters, digits, '.', '_' and '-'")
    return name


def replaces(updated_at: str | None, stored_updated_at: str | None) -> bool:
    """Whether a record version with ``updated_at`` replaces the stored one (the newer-wins rule).

    Newer or equal wins, so a replay of the same version is harmless (the keyed sinks leave a row
    alone when the replay is identical to it, see :func:`~shopsync.state.table.upsert_conflict`);
    a version without ``updated_at`` (resources that have none), or a stored one without it,
    always replaces.
    Timestamps are canonical (``2026-11-25T23:18:05Z``), so comparing the text orders them.
    """
    return updated_at is None or stored_updated_at is None or updated_at >= stored_updated_at


@runtime_checkable
class Sink(Protocol):
    """Where records go.

    Semantics every sink keeps:

    * ``write`` is durable on return; if it raises :class:`~shopsync.errors.StorageError`, the
      caller must treat the whole batch as not written (some of it may be; replaying it is harmless).
    * Redelivery is harmless: for keyed sinks a record replaces the stored one only when its
      ``updated_at`` is newer or equal and it differs (an older or identical replay is counted in
      ``skipped``); for append-only sinks every line carries ``updatedAt`` so readers keep the
      newest.
    * Deletions mark the record deleted at ``deleted_at``; they never erase the data.
    """

    @property
    def url(self) -> str:
        """Where the sink writes, safe to show (passwords redacted), e.g. ``jsonl:///srv/out``."""
        ...

    async def open(self) -> None:
        """Open (creating if missing). Raises StorageError naming the path/database on failure."""
        ...

    async def close(self) -> None:
        """Release files/connections. Idempotent."""
        ...

    async def write(self, records: Sequence[Record] = (), deletions: Sequence[Deletion] = ()) -> WriteResult:
        """Durably store ``records`` and ``deletions`` (any shops/resources) before returning."""
        ...

    async def read_latest(self, shop: str, resource: str) -> dict[str, SinkRow]:
        """The newest version of every record of (shop, resource), keyed by id.

        For tests, guards and tools; it reads everything, so it is not for hot paths.
        """
        ...

    async def stats(self, shop: str, resource: str) -> SinkStats:
        """Cheap size figures for ``shopsync status``."""
        ...

    async def read_index(self, shop: str, resource: str) -> dict[str, SinkRow]:
        """Every record of (shop, resource) keyed by id, without its data (``data`` None): the
        ``updated_at`` and ``deleted_at`` that reconciliation compares with the shop."""
        ...

    async def purge(self, shop: str, resource: str, ids: Sequence[str]) -> int:
        """Remove the rows ``ids`` of (shop, resource) for good (``[reconcile] delete_rows``);
        returns how many were removed. An append-only sink removes nothing (its deletion lines
        stand) and returns 0."""
        ...
