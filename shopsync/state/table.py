"""What the SQLite and PostgreSQL sinks share: one table per resource, rows upserted newer-wins.

Each resource has a table keyed by ``(shop, id)`` with the columns ``updated_at``, ``data``,
``synced_at`` and ``deleted_at`` (their SQL types differ per database). The rules, written here once
as the ``ON CONFLICT`` clauses both databases run:

* A record replaces the stored row only if its ``updated_at`` is newer than or equal to the stored
  one (:func:`~shopsync.state.sink.replaces`), so replaying an old page never overwrites newer data.
  ``deleted_at`` survives a replay of the pre-deletion version and is cleared only by a strictly
  newer one. A record identical to the stored row (same ``updated_at``, same data) is not
  rewritten: the overlap of incremental windows re-reads each change two or three times, and a
  rewrite would cost WAL and index writes and move ``synced_at``, which downstream loads use to
  find what changed.
* A deletion marks the row (inserting a tombstone if the record was never seen) unless it is
  already marked or the stored version is newer than the deletion.
* Every record or deletion those rules refuse (older, identical or already deleted) counts as
  ``skipped``.

:class:`TableSink` keeps what does not depend on the database: the cache of existing tables,
:meth:`TableSink.prepare`, the write orchestration and the counting; the backends
(:mod:`shopsync.state.sqlite_sink`, :mod:`shopsync.state.postgres_sink`) run the statements.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Generic

from shopsync.queries import Resource
from shopsync.state.database import ConnT, DatabaseT, DatabaseUser
from shopsync.state.models import Deletion, Record, RecordTexts, WriteResult
from shopsync.state.sink import validate_resource_name


def upsert_conflict(stored: str) -> str:
    """The ``ON CONFLICT`` clause of a record insert: newer-or-equal wins (see the module doc).

    ``stored`` names the existing row in the statement: the quoted table, or its alias.
    """
    return (
        " ON CONFLICT (shop, id) DO UPDATE SET"
        " updated_at = excluded.updated_at, data = excluded.data, synced_at = excluded.synced_at,"
        f" deleted_at = CASE WHEN {stored}.deleted_at IS NOT NULL AND excluded.updated_at IS NOT NULL"
        f" AND excluded.updated_at > {stored}.deleted_at THEN NULL ELSE {stored}.deleted_at END"
        f" WHERE (excluded.updated_at IS NULL OR {stored}.updated_at IS NULL"
        f" OR excluded.updated_at >= {stored}.updated_at)"
        # An identical replay changes nothing. This is safe for a row marked deleted: its
        # deleted_at is at or after its updated_at, so an equal updated_at could not revive it.
        f" AND (excluded.data IS DISTINCT FROM {stored}.data"
        f" OR excluded.updated_at IS DISTINCT FROM {stored}.updated_at)"
    )


def delete_conflict(stored: str) -> str:
    """The ``ON CONFLICT`` clause of a tombstone insert: mark the row deleted unless it is already
    marked or its stored version is newer than the deletion. ``stored`` as in :func:`upsert_conflict`."""
    return (
        " ON CONFLICT (shop, id) DO UPDATE SET"
        " deleted_at = excluded.deleted_at, synced_at = excluded.synced_at"
        f" WHERE {stored}.deleted_at IS NULL AND ({stored}.updated_at IS NULL"
        f" OR excluded.deleted_at >= {stored}.updated_at)"
    )


def by_resource(
    records: Sequence[Record], deletions: Sequence[Deletion]
) -> list[tuple[str, Sequence[Record], list[Deletion]]]:
    """The batch split per resource, in batch order within each, resources in name order (a
    :class:`RecordTexts` is one resource already: it is passed on whole, as columns)."""
    recs: dict[str, Sequence[Record]] = {}
    if isinstance(records, RecordTexts):
        if records:
            recs[records.resource] = records
    else:
        grouped: dict[str, list[Record]] = {}
        for r in records:
            grouped.setdefault(r.resource, []).append(r)
        recs.update(grouped)
    dels: dict[str, list[Deletion]] = {}
    for d in deletions:
        dels.setdefault(d.resource, []).append(d)
    return [(resource, recs.get(resource, ()), dels.get(resource, [])) for resource in sorted(recs.keys() | dels.keys())]


def record_resources(records: Sequence[Record]) -> set[str]:
    """The resources a batch of records holds."""
    if isinstance(records, RecordTexts):
        return {records.resource} if records else set()
    return {r.resource for r in records}


def record_columns(records: Sequence[Record]) -> tuple[list[str], list[str], list[str | None], list[bytes]]:
    """A batch's shops, ids, ``updated_at`` values and JSON texts, as the sinks bind them: a
    :class:`RecordTexts`'s own lists (no object per record), else read off each :class:`Record`."""
    if isinstance(records, RecordTexts):
        return [records.shop] * len(records), records.ids, records.updated_at, records.texts
    return (
        [r.shop for r in records], [r.id for r in records], [r.updated_at for r in records],
        [r.json_bytes() for r in records],
    )  # fmt: skip


def write_result(
    records: Sequence[Record], deletions: Sequence[Deletion], written: int, deleted: int
) -> WriteResult:
    """What a batch did, from the rows the statements changed: the rest was ``skipped``."""
    return WriteResult(
        written=written,
        skipped=(len(records) - written) + (len(deletions) - deleted),
        deleted=deleted,
    )


class TableSink(DatabaseUser[DatabaseT], Generic[DatabaseT, ConnT]):
    """The :class:`~shopsync.state.sink.Sink` logic of the one-table-per-resource sinks.

    ``database`` may be the state store's database (then the state store writes through
    :meth:`write_in` inside its own transaction) or a separate one. ``clock`` gives ``synced_at``
    (epoch seconds). A backend supplies :meth:`write_in`, :meth:`_create_tables`, the schema check
    and the reads; ``ConnT`` is its driver's connection, which :meth:`write_in` receives.
    """

    def __init__(self, database: DatabaseT, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(database)
        self.clock = clock
        # Tables known to exist (created in a committed transaction). ``write_in`` creates a missing
        # one inside the caller's transaction but does not add it: a rollback would undo it.
        self._tables: set[str] = set()
        # Analyst views (state/view_sync.py): which resources' fragments; None = the packaged ones.
        self.view_resources: Mapping[str, Resource] | None = None

    def _forget(self) -> None:
        self._tables.clear()

    async def prepare(self, records: Sequence[Record], deletions: Sequence[Deletion]) -> None:
        """Create the tables of the batch's resources that do not exist yet (own transaction)."""
        resources = record_resources(records) | {d.resource for d in deletions}
        missing = sorted(resources - self._tables)
        if not missing:
            return
        for name in missing:
            validate_resource_name(name)
        await self._create_tables(missing, what=f"creating sink tables {', '.join(missing)}")
        self._tables.update(missing)

    async def write(self, records: Sequence[Record] = (), deletions: Sequence[Deletion] = ()) -> WriteResult:
        if not records and not deletions:
            return WriteResult()
        await self.prepare(records, deletions)
        what = f"writing {len(records)} records and {len(deletions)} deletions"
        steps = await self.database.atomic(what, lambda conn: self.write_in(conn, records, deletions))
        written = steps[0]
        assert isinstance(written, WriteResult)
        return written

    @abstractmethod
    def write_in(self, conn: ConnT, records: Sequence[Record], deletions: Sequence[Deletion]) -> object:
        """Write the batch with ``conn`` inside the caller's open transaction: a transaction step
        (see :meth:`~shopsync.state.database.SharedDatabase.atomic`) giving the :class:`WriteResult`
        (directly on SQLite's database thread, as an awaitable on asyncpg).

        Tables missing from the cache (no :meth:`prepare` call) are created in that transaction.
        """

    @abstractmethod
    async def _create_tables(self, names: list[str], *, what: str) -> None:
        """Create the (validated) resource tables ``names`` in one transaction of their own."""
