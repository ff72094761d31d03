"""The state store protocol: durable checkpoints and bulk operations, committed with the data.

A state store keeps, per stream (shop, resource), a :class:`~shopsync.state.models.StreamState`
and, per bulk operation shopsync started, a :class:`~shopsync.state.models.BulkOperationRecord`.
Everything is keyed by shop: streams by (shop, resource), bulk operations by (shop, id).
It owns the one operation the engine's correctness rests on, :meth:`StateStore.commit`: records
reach the sink durably *before or together with* the checkpoint that covers them, never after.

Implementations: :class:`shopsync.state.sqlite.SqliteStateStore` (the embedded default) and
:class:`shopsync.state.postgres.PostgresStateStore`, which share their logic, commit included, in
:class:`shopsync.state.sql_store.SqlStateStore`; and :class:`shopsync.state.memory.MemoryStateStore`
(in the process's memory, for tests and demos). Every implementation passes
``tests/storage/test_state_contract.py``.

Errors: every failure of the underlying database or file system is raised as
:class:`shopsync.errors.StorageError` naming the file (or database) and the cause. When a method
raises, nothing it was asked to write has been applied to the state, and no state that existed
before is overwritten or deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from shopsync.state.models import BulkOperationRecord, CommitResult, Deletion, Record, StreamState


@runtime_checkable
class StateStore(Protocol):
    """Durable per-stream checkpoints and bulk operation records."""

    @property
    def url(self) -> str:
        """Where the state lives, safe to show (passwords redacted), e.g. ``sqlite:///var/lib/x.db``."""
        ...

    @property
    def shares_transaction(self) -> bool:
        """True when :meth:`commit` writes the sink's rows and the state in one transaction."""
        ...

    async def open(self) -> None:
        """Open (creating if missing) the store and check its schema version.

        Raises :class:`~shopsync.errors.StorageError` if it cannot be opened or created, or if it was
        written by a newer shopsync (its schema version is higher than this code knows).
        """
        ...

    async def close(self) -> None:
        """Release the connection. Idempotent. Everything committed before stays committed."""
        ...

    async def get_stream(self, shop: str, resource: str) -> StreamState | None:
        """The saved state of one stream, or None if it was never saved."""
        ...

    async def list_streams(self) -> list[StreamState]:
        """Every saved stream, ordered by (shop, resource)."""
        ...

    async def save_stream(self, state: StreamState) -> None:
        """Durably save ``state`` (insert or replace the stream's row) without writing records.

        Use for changes that cover no records: starting a window, recording an error, parking.
        """
        ...

    async def get_bulk_operation(self, shop: str, id: str) -> BulkOperationRecord | None:
        """The bulk operation with GID ``id`` of ``shop``, or None.

        Operations are keyed by (shop, id): Shopify numbers them per shop, so another shop's
        operation may have the same id, and is never returned here.
        """
        ...

    async def list_bulk_operations(
        self,
        *,
        shop: str | None = None,
        resource: str | None = None,
        unfinished_only: bool = True,
    ) -> list[BulkOperationRecord]:
        """Bulk operations, optionally of one shop/resource; by default only those not ``finished``
        (the ones recovery on start must re-attach to). Ordered by ``created_at``, id, then shop."""
        ...

    async def save_bulk_operation(self, rec: BulkOperationRecord) -> None:
        """Durably insert or replace the bulk operation record ``rec`` (keyed by ``rec.key``:
        ``(rec.shop, rec.id)``); another shop's operation with the same id is left alone."""
        ...

    async def commit(
        self,
        state: StreamState,
        records: Sequence[Record] = (),
        deletions: Sequence[Deletion] = (),
        bulk: BulkOperationRecord | None = None,
    ) -> CommitResult:
        """Make ``records`` and ``deletions`` durable in the sink, then save ``state`` (and ``bulk``).

        When the sink lives in the same database as the state, all of it is ONE transaction: after
        a crash at any instant either everything is there or nothing is (no duplicate, no loss).
        Otherwise the sink write completes durably (fsynced) first and the state is saved after, so
        a crash in between leaves records that the unchanged checkpoint will replay: the
        checkpoint never moves past data that is not durably written.

        Returns what the sink did (``written``, ``skipped``, ``deleted``). On any failure it
        raises :class:`~shopsync.errors.StorageError` and the saved state is unchanged.

        Cancellation: a commit that has started runs to its end before ``CancelledError`` reaches
        the caller, so once it does nothing is in flight; read the state back to learn whether
        the commit happened.
        """
        ...
