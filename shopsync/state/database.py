"""What the database-backed state stores and sinks share, whatever the database.

:class:`SharedDatabase` is one database — a SQLite connection or a PostgreSQL pool — that a state
store and a sink open and close independently. :class:`DatabaseUser` is either of those two users.
:class:`DatabaseStateStore` is the :class:`~shopsync.state.base.StateStore` logic both database
backends run: the read API, and the commit — rows and checkpoint in one transaction when the sink is
in the same database, otherwise the sink durably first and the checkpoint after.

The backends (:mod:`shopsync.state.sqlite`, :mod:`shopsync.state.postgres`) supply the SQL dialect
and the driver calls: SQLite runs each transaction as one callable on a worker thread, PostgreSQL
awaits asyncpg.
"""

from __future__ import annotations

import asyncio
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from shopsync.engine.crashpoints import crashpoint
from shopsync.errors import StorageError
from shopsync.state.models import (
    BulkOperationRecord,
    CommitResult,
    Deletion,
    Record,
    StreamState,
    WriteResult,
)

if TYPE_CHECKING:
    from shopsync.sinks.base import Sink

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


class SharedDatabase(ABC):
    """One database, opened by each of its users (state store, sink) and closed by the last.

    ``open``/``close`` are reference counted so the state store and a sink on the same database can
    each open and close it; the connection closes with the last ``close``.
    """

    #: Where the database is, safe to show (passwords redacted).
    url: str

    def __init__(self) -> None:
        self._users = 0
        self._lock = asyncio.Lock()

    @property
    @abstractmethod
    def location(self) -> str:
        """What messages and reprs name the database by: its file path or its redacted URL."""

    @property
    @abstractmethod
    def is_open(self) -> bool:
        """True between the first ``open`` and the last ``close``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    async def open(self) -> None:
        """Open for one more user; the first one connects. Raises StorageError naming the database."""
        async with self._lock:
            if self._users:
                self._users += 1
                return
            await self._connect()
            self._users = 1

    async def close(self) -> None:
        """Drop one user; the last one disconnects. Idempotent once every user has closed."""
        async with self._lock:
            if not self._users:
                return
            self._users -= 1
            if self._users:
                return
            await self._disconnect()

    @abstractmethod
    async def atomic(self, what: str, *steps: Callable[[Any], Any]) -> list[Any]:
        """Run ``step(conn)`` for each step, in order, in one transaction; return their results.

        A step is called as the driver needs: on SQLite's database thread, where it runs
        synchronously, or awaited on an asyncpg connection. Settled: once the transaction began it
        commits or rolls back before a cancellation reaches the caller, so nothing of the caller's
        is still running and a connection is never left mid-transaction. If a step raises, the
        transaction rolls back; database errors are raised as StorageError naming ``what``.
        """

    @abstractmethod
    async def _connect(self) -> None:
        """Connect (the first ``open``); when it raises, nothing is left open."""

    @abstractmethod
    async def _disconnect(self) -> None:
        """Release the connection (the last ``close``); it is released even when this raises."""


DB = TypeVar("DB", bound=SharedDatabase)


class DatabaseUser(ABC, Generic[DB]):
    """A state store or a sink on a :class:`SharedDatabase`: one share of it, opened and closed once."""

    def __init__(self, database: DB) -> None:
        self.database = database
        self._opened = False

    @property
    def url(self) -> str:
        return self.database.url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.database.location!r})"

    async def open(self) -> None:
        """Open the database and create or check this user's tables. A no-op when already open.

        Raises :class:`~shopsync.errors.StorageError` if the database cannot be opened or its
        schema part is newer than this code knows; the database is then not left open.
        """
        if self._opened:
            return
        await self.database.open()
        try:
            await self._open_schema()
        except BaseException:
            await self.database.close()
            raise
        self._opened = True

    async def close(self) -> None:
        """Give up this share of the database (the last share closes it). Idempotent."""
        if self._opened:
            self._opened = False
            self._forget()
            await self.database.close()

    @abstractmethod
    async def _open_schema(self) -> None:
        """In the open database: create this user's tables if missing, refuse a newer version."""

    def _forget(self) -> None:  # noqa: B027 - optional hook; most users cache nothing
        """Drop what is cached about the database's contents, which may change while closed."""


class DatabaseStateStore(DatabaseUser[DB]):
    """The :class:`~shopsync.state.base.StateStore` on a :class:`SharedDatabase`.

    ``sink`` is where :meth:`commit` writes records. A sink on this store's very ``database`` object
    that can write inside the store's transaction (it has ``prepare`` and ``write_in``) is written
    in the same transaction as the checkpoint; any other sink is written (durably) first and the
    state saved after.

    A backend supplies the dialect (:attr:`_UNFINISHED`, :meth:`_mark`), the two selects and the two
    transaction steps that write (:meth:`_save_state_in`, :meth:`_save_bulk_in`).
    """

    #: SQL condition: the bulk operation is not ``finished`` (the column's type differs).
    _UNFINISHED: ClassVar[str]

    def __init__(self, database: DB, sink: Sink | None = None) -> None:
        super().__init__(database)
        self.sink = sink

    @property
    def shares_transaction(self) -> bool:
        """True when :meth:`commit` writes rows and state in one transaction."""
        return getattr(self.sink, "database", None) is self.database and hasattr(self.sink, "write_in")

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
            lambda conn: self._save_state_in(conn, state, None),
        )

    async def get_bulk_operation(self, id: str) -> BulkOperationRecord | None:
        found = await self._select_bulk(
            f" WHERE id = {self._mark(1)}", [id], what=f"reading bulk operation {id}"
        )
        return found[0] if found else None

    async def save_bulk_operation(self, rec: BulkOperationRecord) -> None:
        await self.database.atomic(
            f"saving bulk operation {rec.id}", lambda conn: self._save_bulk_in(conn, rec)
        )

    async def list_bulk_operations(
        self,
        *,
        shop: str | None = None,
        resource: str | None = None,
        unfinished_only: bool = True,
    ) -> list[BulkOperationRecord]:
        where: list[str] = []
        params: list[Any] = []
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
        if (records or deletions) and self.sink is None:
            raise StorageError(f"{what}: no sink configured for {self.database.location}")
        sink = self.sink
        if self.shares_transaction and (records or deletions):
            # Same database: rows and checkpoint in ONE transaction. Missing tables are created
            # first, in their own transaction, so that a rollback here never leaves the sink's
            # cache of existing tables wrong.
            await sink.prepare(records, deletions)  # type: ignore[union-attr]
            steps = await self.database.atomic(
                what,
                lambda conn: sink.write_in(conn, records, deletions),  # type: ignore[union-attr]
                lambda conn: self._save_state_in(conn, state, bulk),
            )
            written: WriteResult = steps[0]
            return written
        result = WriteResult()
        if records or deletions:
            assert sink is not None
            result = await sink.write(records, deletions)  # durable on return
            crashpoint("after_sink_write")
        await self.database.atomic(what, lambda conn: self._save_state_in(conn, state, bulk))
        return result

    @staticmethod
    @abstractmethod
    def _mark(n: int) -> str:
        """The dialect's placeholder for the ``n``-th (from 1) parameter of a statement."""

    @abstractmethod
    async def _select_streams(self, where: str, params: list[Any], *, what: str) -> list[StreamState]:
        """``stream_state`` rows matching ``where`` (empty or `` WHERE …``), by (shop, resource)."""

    @abstractmethod
    async def _select_bulk(self, where: str, params: list[Any], *, what: str) -> list[BulkOperationRecord]:
        """``bulk_operations`` rows matching ``where`` (empty or `` WHERE …``), by (created_at, id)."""

    @abstractmethod
    def _save_state_in(self, conn: Any, state: StreamState, bulk: BulkOperationRecord | None) -> Any:
        """The transaction step (see ``atomic``) saving ``state`` and then, if given, ``bulk``."""

    @abstractmethod
    def _save_bulk_in(self, conn: Any, rec: BulkOperationRecord) -> Any:
        """The transaction step (see ``atomic``) inserting or replacing the bulk operation ``rec``."""
