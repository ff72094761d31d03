"""The state store logic both SQL backends run: reads, saves, and the commit with the sink.

:class:`SqlStateStore` keeps ``stream_state`` and ``bulk_operations`` in a
:class:`~shopsync.state.database.SharedDatabase`. Its :meth:`~SqlStateStore.commit` writes rows and
checkpoint in one transaction when the sink is a table sink on the very same database object,
otherwise the sink durably first and the checkpoint after.

The backends (:mod:`shopsync.state.sqlite`, :mod:`shopsync.state.postgres`) supply the SQL dialect
and the transaction steps: SQLite runs each transaction as one callable on a worker thread,
PostgreSQL awaits asyncpg.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Generic

from shopsync.crashpoints import crashpoint
from shopsync.errors import StorageError
from shopsync.state.database import ConnT, DatabaseT, DatabaseUser, Step
from shopsync.state.models import (
    BulkOperationRecord,
    CommitResult,
    Deletion,
    Record,
    StreamState,
    WriteResult,
)
from shopsync.state.table import TableSink

if TYPE_CHECKING:
    from shopsync.state.leases import Fence
    from shopsync.state.sink import Sink

#: The columns of ``stream_state`` and ``bulk_operations``: the fields of the records they hold.
STREAM_COLUMNS = tuple(f.name for f in dataclasses.fields(StreamState))
BULK_COLUMNS = tuple(f.name for f in dataclasses.fields(BulkOperationRecord))


def upsert_sql(table: str, columns: Sequence[str], key: Sequence[str], marks: Sequence[str]) -> str:
    """``INSERT`` of ``columns`` that, on a ``key`` conflict, replaces every other column.

    ``marks`` are the dialect's placeholders, one per column (``?`` or ``$1``, ``$2`` …).
    """
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(marks)})"
        f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )


class SqlStateStore(DatabaseUser[DatabaseT], Generic[DatabaseT, ConnT]):
    """The :class:`~shopsync.state.store.StateStore` on a :class:`~shopsync.state.database.SharedDatabase`.

    ``sink`` is where :meth:`commit` writes records. A :class:`~shopsync.state.table.TableSink` on
    this store's very ``database`` object is written in the same transaction as the checkpoint; any
    other sink is written (durably) first and the state saved after.

    A backend supplies the dialect (:attr:`_UNFINISHED`, :meth:`_mark`), the two selects and the two
    transaction steps that write (:meth:`_save_state_in`, :meth:`_save_bulk_in`).
    """

    #: SQL condition: the bulk operation is not ``finished`` (the column's type differs).
    _UNFINISHED: ClassVar[str]

    def __init__(self, database: DatabaseT, sink: Sink | None = None) -> None:
        super().__init__(database)
        self.sink = sink
        #: Set by a lease store (:mod:`shopsync.state.leases`): every write for a shop then checks,
        #: in its own transaction, that this process still holds the shop's lease at its epoch.
        self.fence: Fence | None = None

    def _fenced(self, shop: str, *steps: Step[ConnT]) -> tuple[Step[ConnT], ...]:
        """``steps`` preceded by the lease check of ``shop`` when a fence is installed."""
        fence = self.fence
        if fence is None:
            return steps
        epoch = fence.require(shop)  # LeaseLostError before any I/O when not held at all
        return (lambda conn: self._check_lease_in(conn, fence, shop, epoch), *steps)

    @property
    def shares_transaction(self) -> bool:
        """True when :meth:`commit` writes rows and state in one transaction."""
        return self._transaction_sink() is not None

    def _transaction_sink(self) -> TableSink[DatabaseT, ConnT] | None:
        """The sink when it can write inside this store's transactions (same database object)."""
        sink = self.sink
        if isinstance(sink, TableSink) and sink.database is self.database:
            return sink
        return None

    async def get_stream(self, shop: str, resource: str) -> StreamState | None:
        found = await self._select_streams(
            f" WHERE shop = {self._mark(1)} AND resource = {self._mark(2)}",
            [shop, resource],
            what=f"reading stream state of {shop}/{resource}",
        )
        return found[0] if found else None

    async def list_streams(self) -> list[StreamState]:
        return await self._select_streams("", [], what="listing stream states")

    async def save_stream(self, state: StreamState) -> None:
        await self.database.atomic(
            f"saving stream state of {state.shop}/{state.resource}",
            *self._fenced(state.shop, lambda conn: self._save_state_in(conn, state, None)),
        )

    async def get_bulk_operation(self, shop: str, id: str) -> BulkOperationRecord | None:
        found = await self._select_bulk(
            f" WHERE shop = {self._mark(1)} AND id = {self._mark(2)}",
            [shop, id],
            what=f"reading bulk operation {id} of {shop}",
        )
        return found[0] if found else None

    async def save_bulk_operation(self, rec: BulkOperationRecord) -> None:
        await self.database.atomic(
            f"saving bulk operation {rec.id} of {rec.shop}",
            *self._fenced(rec.shop, lambda conn: self._save_bulk_in(conn, rec)),
        )

    async def list_bulk_operations(
        self,
        *,
        shop: str | None = None,
        resource: str | None = None,
        unfinished_only: bool = True,
    ) -> list[BulkOperationRecord]:
        where: list[str] = []
        params: list[str] = []
        for column, value in (("shop", shop), ("resource", resource)):
            if value is not None:
                params.append(value)
                where.append(f"{column} = {self._mark(len(params))}")
        if unfinished_only:
            where.append(self._UNFINISHED)
        return await self._select_bulk(
            " WHERE " + " AND ".join(where) if where else "", params, what="listing bulk operations"
        )

    async def commit(
        self,
        state: StreamState,
        records: Sequence[Record] = (),
        deletions: Sequence[Deletion] = (),
        bulk: BulkOperationRecord | None = None,
    ) -> CommitResult:
        what = f"committing {len(records)} records and the checkpoint of {state.shop}/{state.resource}"
        if not records and not deletions:
            await self.database.atomic(what, *self._fenced(state.shop, lambda conn: self._save_state_in(conn, state, bulk)))
            return WriteResult()
        shared = self._transaction_sink()
        if shared is not None:
            # Same database: rows and checkpoint in ONE transaction. Missing tables are created
            # first, in their own transaction, so that a rollback here never leaves the sink's
            # cache of existing tables wrong.
            await shared.prepare(records, deletions)
            steps = await self.database.atomic(
                what,
                *self._fenced(
                    state.shop,
                    lambda conn: shared.write_in(conn, records, deletions),
                    lambda conn: self._save_state_in(conn, state, bulk),
                ),
            )
            written = steps[-2]
            assert isinstance(written, WriteResult)
            return written
        if self.sink is None:
            raise StorageError(f"{what}: no sink configured for {self.database.location}")
        if self.fence is not None:
            # Another database holds the rows: the lease is checked just before writing them, and
            # again in the checkpoint's transaction (a write that raced a takeover is replayed
            # harmlessly by the new owner, whose checkpoint it cannot move).
            await self.database.atomic(what, *self._fenced(state.shop))
        result = await self.sink.write(records, deletions)  # durable on return
        crashpoint("after_sink_write")
        await self.database.atomic(what, *self._fenced(state.shop, lambda conn: self._save_state_in(conn, state, bulk)))
        return result

    @staticmethod
    @abstractmethod
    def _mark(n: int) -> str:
        """The dialect's placeholder for the ``n``-th (from 1) parameter of a statement."""

    @abstractmethod
    async def _select_streams(self, where: str, params: list[str], *, what: str) -> list[StreamState]:
        """``stream_state`` rows matching ``where`` (empty or `` WHERE …``), by (shop, resource)."""

    @abstractmethod
    async def _select_bulk(self, where: str, params: list[str], *, what: str) -> list[BulkOperationRecord]:
        """``bulk_operations`` rows matching ``where`` (empty or `` WHERE …``), by (created_at, id, shop)."""

    @abstractmethod
    def _save_state_in(self, conn: ConnT, state: StreamState, bulk: BulkOperationRecord | None) -> object:
        """The transaction step (see ``atomic``) saving ``state`` and then, if given, ``bulk``."""

    def _check_lease_in(self, conn: ConnT, fence: Fence, shop: str, epoch: int) -> object:
        """The transaction step checking (and holding until commit) that ``fence`` still holds
        ``shop`` at ``epoch``; raises :class:`~shopsync.errors.LeaseLostError` otherwise. Only
        backends with leases (PostgreSQL) implement it."""
        raise StorageError(f"{self.database.location} keeps no leases: a fence cannot be installed on it")

    @abstractmethod
    def _save_bulk_in(self, conn: ConnT, rec: BulkOperationRecord) -> object:
        """The transaction step (see ``atomic``) inserting or replacing the bulk operation ``rec``
        (keyed by ``rec.shop`` and ``rec.id``)."""
