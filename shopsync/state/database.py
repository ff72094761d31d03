"""One database shared by the state store and the sink that live in it.

Two roles, two classes:

* :class:`SharedDatabase` is the database itself — a SQLite connection or a PostgreSQL pool — with
  a reference-counted ``open``/``close`` and :meth:`SharedDatabase.atomic`, the one way to run a
  transaction whatever the driver.
* :class:`DatabaseUser` is one *user* of such a database: the SQL state store
  (:mod:`shopsync.state.sql_store`) or a table sink (:mod:`shopsync.state.table`). Each opens and
  closes its own share and creates or checks its own tables; the connection closes with the last
  share.

A state store and a sink built on the same :class:`SharedDatabase` *object* write the sink's rows
and the checkpoint in one transaction (see :class:`~shopsync.state.sql_store.SqlStateStore`).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from shopsync.errors import StorageError

#: The driver's connection a transaction step receives (``sqlite3.Connection``, ``asyncpg.Connection``).
ConnT = TypeVar("ConnT")

#: One step of a transaction, called with the driver's connection (see :meth:`SharedDatabase.atomic`).
Step = Callable[[ConnT], object]


@dataclass(frozen=True, kw_only=True)
class Migration(Generic[ConnT]):
    """One numbered step of a schema: it brings version ``version - 1`` to ``version``.

    ``apply`` is SQL (statements separated by ``;``; a backend may put its schema's name in it) or a
    function of the connection run inside the migrating transaction. Step 1 creates the schema
    from nothing. A step, once released, never changes: a database at its version was made by it.
    """

    version: int
    description: str
    apply: str | Callable[[ConnT], object]


def check_migrations(migrations: Sequence[Migration[Any]]) -> int:
    """The version the steps lead to; ValueError unless they are numbered 1, 2, … without a gap."""
    numbers = [m.version for m in migrations]
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"migrations must be numbered 1, 2, … in order, not {numbers}")
    return len(numbers)


def pending_migrations(
    migrations: Sequence[Migration[ConnT]], found: int | None, *, key: str, where: str
) -> list[Migration[ConnT]]:
    """The steps to run on a database whose ``key`` is at version ``found`` (None: never created).

    Pure. Raises :class:`~shopsync.errors.StorageError` naming ``where`` (the database) when
    ``found`` is newer than the last step: that database was written by a newer shopsync, and
    what this code would write could break it.
    """
    current = check_migrations(migrations)
    at = found or 0
    if at > current:
        raise StorageError(
            f"{where} has {key} {at}, newer than this shopsync understands ({current}); "
            "upgrade shopsync or point it at another database"
        )
    if at < 0:
        raise StorageError(f"{where} has {key} {at}, which no shopsync wrote")
    return list(migrations[at:])


class SharedDatabase(ABC, Generic[ConnT]):
    """One database, opened by each of its users (state store, sink) and closed by the last.

    ``open``/``close`` are reference counted so the state store and a sink on the same database can
    each open and close it; the connection closes with the last ``close``.
    """

    def __init__(self) -> None:
        self._users = 0
        self._lock = asyncio.Lock()
        #: Refuse to open while another process has it open this way: set by the state store of
        #: ``shopsync run``/``sync`` before the first ``open``. SQLite honours it (a file lock);
        #: PostgreSQL, made to be shared, ignores it.
        self.exclusive = False

    @property
    @abstractmethod
    def url(self) -> str:
        """Where the database is, safe to show (passwords redacted)."""

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
    async def atomic(self, what: str, *steps: Step[ConnT]) -> list[object]:
        """Run ``step(conn)`` for each step, in order, in one transaction; return their results.

        A step is called as the driver needs: on SQLite's database thread, where it runs
        synchronously, or on an asyncpg connection, where what it returns is awaited. Settled: once
        the transaction began it commits or rolls back before a cancellation reaches the caller, so
        nothing of the caller's is still running and a connection is never left mid-transaction.
        If a step raises, the transaction rolls back; database errors are raised as StorageError
        naming ``what``.
        """

    @abstractmethod
    async def _connect(self) -> None:
        """Connect (the first ``open``); when it raises, nothing is left open."""

    @abstractmethod
    async def _disconnect(self) -> None:
        """Release the connection (the last ``close``); it is released even when this raises."""


#: The concrete :class:`SharedDatabase` a :class:`DatabaseUser` runs on.
DatabaseT = TypeVar("DatabaseT", bound="SharedDatabase[Any]")


class DatabaseUser(ABC, Generic[DatabaseT]):
    """A state store or a sink on a :class:`SharedDatabase`: one share of it, opened and closed once."""

    def __init__(self, database: DatabaseT) -> None:
        self.database = database
        self._opened = False

    @property
    def url(self) -> str:
        """The database's URL, safe to show (passwords redacted)."""
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
