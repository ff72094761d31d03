"""In-memory storage: a state store and a keyed sink that live in the process's memory.

Nothing here is durable beyond the process; it exists for tests and demos, and it keeps every
other promise of the storage contract (``tests/storage/test_state_contract.py`` and
``tests/storage/test_sink_contract.py`` run against it beside SQLite and PostgreSQL):

* :class:`MemoryDatabase` is what a database file would hold: stream states, bulk operation
  records and the sink's rows. Stores and sinks made on one :class:`MemoryDatabase` see the same
  data, also after they are closed and new ones opened, as with a file.
* :class:`MemoryStateStore` commits like the SQL stores: with a :class:`MemorySink` on its very
  database, the rows and the checkpoint change together (one step without an ``await``, so no
  other task and no cancellation sees half of it); with any other sink, the sink is written first
  and the state saved after.
* :class:`MemorySink` follows the newer-wins rules of the table sinks (:mod:`shopsync.state.table`)
  row for row, so a replay counts as ``skipped`` exactly as there.

A batch is applied all or nothing: the changes are worked out first and stored only if none failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from shopsync.crashpoints import crashpoint
from shopsync.errors import StorageError
from shopsync.settings import StreamKey
from shopsync.state.leases import Fence, Lease, Member, Membership, check_call, check_lease
from shopsync.state.models import (
    BulkOperationRecord,
    CommitResult,
    Deletion,
    Record,
    SinkRow,
    SinkStats,
    StreamState,
    WriteResult,
)
from shopsync.state.sink import Sink, replaces, validate_resource_name
from shopsync.state.table import by_resource, record_resources, write_result

#: The rows of one sink table: (shop, resource) -> id -> newest version.
_TableKey = tuple[str, str]
#: Rows a batch changes, applied to the database once the whole batch was worked out.
_Staged = dict[_TableKey, dict[str, SinkRow]]


@dataclass(eq=False)
class MemoryDatabase:
    """The data an in-memory state store and sink keep, shared by those made on this object."""

    #: Names the database in URLs and messages (``memory:<name>``).
    name: str = "default"
    streams: dict[StreamKey, StreamState] = field(default_factory=dict)
    #: Keyed by (shop, id), as the SQL ledgers: operation ids are unique within a shop only.
    bulk_operations: dict[tuple[str, str], BulkOperationRecord] = field(default_factory=dict)
    rows: dict[_TableKey, dict[str, SinkRow]] = field(default_factory=dict)
    #: Shop leases and daemon heartbeats (:class:`MemoryLeaseStore`), timed by ``clock``: the
    #: database's clock, as PostgreSQL's ``now()`` is.
    leases: dict[str, Lease] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)
    clock: Callable[[], float] = time.time

    @property
    def url(self) -> str:
        return f"memory:{self.name}"


class _MemoryUser:
    """Open/closed bookkeeping of a store or a sink on a :class:`MemoryDatabase`."""

    _what: str

    def __init__(self, database: MemoryDatabase) -> None:
        self.database = database
        self._opened = False

    @property
    def url(self) -> str:
        return self.database.url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.database.url!r})"

    async def open(self) -> None:
        """Open; nothing to create or connect. A no-op when already open."""
        self._opened = True

    async def close(self) -> None:
        """Close. Idempotent; the data stays in the :class:`MemoryDatabase`."""
        self._opened = False

    def _check_open(self, what: str) -> None:
        if not self._opened:
            raise StorageError(f"{what} failed: {self._what} {self.database.url} is not open")


class MemorySink(_MemoryUser):
    """The :class:`~shopsync.state.sink.Sink` keeping one newest row per record in memory."""

    _what = "in-memory sink"

    async def write(self, records: Sequence[Record] = (), deletions: Sequence[Deletion] = ()) -> WriteResult:
        self._check_open(f"writing {len(records)} records and {len(deletions)} deletions")
        return self.write_in(records, deletions)

    def write_in(self, records: Sequence[Record], deletions: Sequence[Deletion]) -> WriteResult:
        """Apply the batch now, all or nothing (the step a :class:`MemoryStateStore` commit runs)."""
        for resource in record_resources(records) | {d.resource for d in deletions}:
            validate_resource_name(resource)
        staged: _Staged = {}
        written = deleted = 0
        # Per resource, records then deletions, in batch order: what the SQL sinks' statements do.
        for _resource, recs, dels in by_resource(records, deletions):
            for r in recs:
                written += self._stage_record(staged, r)
            for d in dels:
                deleted += self._stage_deletion(staged, d)
        for key, changed in staged.items():
            self.database.rows.setdefault(key, {}).update(changed)
        return write_result(records, deletions, written, deleted)

    def _stored(self, staged: _Staged, key: _TableKey, id: str) -> SinkRow | None:
        if id in staged.get(key, {}):
            return staged[key][id]
        return self.database.rows.get(key, {}).get(id)

    def _stage_record(self, staged: _Staged, r: Record) -> int:
        """Stage ``r`` if it replaces the stored version (the rule of
        :func:`~shopsync.state.table.upsert_conflict`); 1 if it does, else 0."""
        key = (r.shop, r.resource)
        stored = self._stored(staged, key, r.id)
        data = r.json_bytes()
        deleted_at = None
        if stored is not None:
            if not replaces(r.updated_at, stored.updated_at):
                return 0
            if stored.updated_at == r.updated_at and stored.data == data:
                return 0  # an identical replay is not rewritten
            deleted_at = stored.deleted_at
            if deleted_at is not None and r.updated_at is not None and r.updated_at > deleted_at:
                deleted_at = None  # a version newer than the deletion revives the record
        row = SinkRow(id=r.id, updated_at=r.updated_at, data=data, deleted_at=deleted_at)
        staged.setdefault(key, {})[r.id] = row
        return 1

    def _stage_deletion(self, staged: _Staged, d: Deletion) -> int:
        """Stage ``d`` unless the row is already deleted or newer (the rule of
        :func:`~shopsync.state.table.delete_conflict`); 1 if it is staged, else 0."""
        key = (d.shop, d.resource)
        stored = self._stored(staged, key, d.id)
        if stored is None:
            row = SinkRow(id=d.id, updated_at=None, data=None, deleted_at=d.deleted_at)
        elif stored.deleted_at is None and (stored.updated_at is None or d.deleted_at >= stored.updated_at):
            row = SinkRow(id=d.id, updated_at=stored.updated_at, data=stored.data, deleted_at=d.deleted_at)
        else:
            return 0
        staged.setdefault(key, {})[d.id] = row
        return 1

    async def read_latest(self, shop: str, resource: str) -> dict[str, SinkRow]:
        self._check_open(f"reading table {resource} for {shop}")
        return dict(self.database.rows.get((shop, validate_resource_name(resource)), {}))

    async def read_index(self, shop: str, resource: str) -> dict[str, SinkRow]:
        rows = await self.read_latest(shop, resource)
        return {k: SinkRow(id=r.id, updated_at=r.updated_at, data=None, deleted_at=r.deleted_at) for k, r in rows.items()}

    async def purge(self, shop: str, resource: str, ids: Sequence[str]) -> int:
        self._check_open(f"removing rows of {resource} for {shop}")
        table = self.database.rows.get((shop, validate_resource_name(resource)), {})
        return sum(1 for id in ids if table.pop(id, None) is not None)

    async def stats(self, shop: str, resource: str) -> SinkStats:
        self._check_open(f"counting table {resource} for {shop}")
        rows = self.database.rows.get((shop, validate_resource_name(resource)), {}).values()
        stamps = [r.updated_at for r in rows if r.updated_at is not None]
        return SinkStats(
            records=len(rows),
            deleted=sum(1 for r in rows if r.deleted_at is not None),
            newest_updated_at=max(stamps) if stamps else None,
        )


class MemoryStateStore(_MemoryUser):
    """The :class:`~shopsync.state.store.StateStore` in memory.

    ``sink`` is where :meth:`commit` writes records: a :class:`MemorySink` on this store's very
    ``database`` changes together with the state; any other sink is written first and the state
    saved after, as the SQL stores do.
    """

    _what = "in-memory state store"

    def __init__(self, database: MemoryDatabase, sink: Sink | None = None) -> None:
        super().__init__(database)
        self.sink = sink
        #: Installed by a :class:`MemoryLeaseStore`: writes for a shop then check its lease.
        self.fence: Fence | None = None

    def _check_lease(self, shop: str) -> None:
        """The fencing check the SQL stores run in their write transaction (here: no await after it)."""
        fence = self.fence
        if fence is not None:
            check_lease(fence, shop, fence.require(shop), self.database.leases.get(shop), self.database.clock())

    @property
    def shares_transaction(self) -> bool:
        """True when :meth:`commit` changes rows and state together (a sink on this database)."""
        return isinstance(self.sink, MemorySink) and self.sink.database is self.database

    async def get_stream(self, shop: str, resource: str) -> StreamState | None:
        self._check_open(f"reading stream state of {shop}/{resource}")
        return self.database.streams.get((shop, resource))

    async def list_streams(self) -> list[StreamState]:
        self._check_open("listing stream states")
        return [self.database.streams[key] for key in sorted(self.database.streams)]

    async def save_stream(self, state: StreamState) -> None:
        self._check_open(f"saving stream state of {state.shop}/{state.resource}")
        self._check_lease(state.shop)
        self.database.streams[state.key] = state

    async def get_bulk_operation(self, shop: str, id: str) -> BulkOperationRecord | None:
        self._check_open(f"reading bulk operation {id} of {shop}")
        return self.database.bulk_operations.get((shop, id))

    async def list_bulk_operations(
        self,
        *,
        shop: str | None = None,
        resource: str | None = None,
        unfinished_only: bool = True,
    ) -> list[BulkOperationRecord]:
        self._check_open("listing bulk operations")
        found = [
            rec
            for rec in self.database.bulk_operations.values()
            if (shop is None or rec.shop == shop)
            and (resource is None or rec.resource == resource)
            and not (unfinished_only and rec.finished)
        ]
        # As the SQL stores order them: by created_at (missing first), then id, then shop.
        return sorted(found, key=lambda rec: (rec.created_at is not None, rec.created_at or "", rec.id, rec.shop))

    async def save_bulk_operation(self, rec: BulkOperationRecord) -> None:
        self._check_open(f"saving bulk operation {rec.id} of {rec.shop}")
        self._check_lease(rec.shop)
        self.database.bulk_operations[rec.key] = rec

    async def commit(
        self,
        state: StreamState,
        records: Sequence[Record] = (),
        deletions: Sequence[Deletion] = (),
        bulk: BulkOperationRecord | None = None,
    ) -> CommitResult:
        what = f"committing {len(records)} records and the checkpoint of {state.shop}/{state.resource}"
        self._check_open(what)
        self._check_lease(state.shop)
        result = WriteResult()
        if records or deletions:
            sink = self.sink
            if isinstance(sink, MemorySink) and sink.database is self.database:
                # No await from here to the state's save: rows and checkpoint change together.
                result = sink.write_in(records, deletions)
            elif sink is None:
                raise StorageError(f"{what}: no sink configured for {self.database.url}")
            else:
                result = await sink.write(records, deletions)  # durable on return
                crashpoint("after_sink_write")
                self._check_open(what)
                self._check_lease(state.shop)
        self._save(state, bulk)
        return result

    def _save(self, state: StreamState, bulk: BulkOperationRecord | None) -> None:
        self.database.streams[state.key] = state
        if bulk is not None:
            self.database.bulk_operations[bulk.key] = bulk


class MemoryLeaseStore:
    """The :class:`~shopsync.state.leases.LeaseStore` of daemon ``owner`` on ``store``'s
    :class:`MemoryDatabase`, with the PostgreSQL store's rules; installs its fence on ``store``."""

    def __init__(self, store: MemoryStateStore, owner: str) -> None:
        self._db = store.database
        self._fence = Fence(owner)
        store.fence = self._fence
        self._owner = owner

    @property
    def fence(self) -> Fence:
        return self._fence

    async def heartbeat(self, ttl: float) -> Membership:
        now = self._db.clock()
        old = self._db.members.get(self._owner)
        started = old.started_at if old is not None else now
        self._db.members[self._owner] = Member(daemon=self._owner, started_at=started, heartbeat_at=now, expires_at=now + ttl)
        alive = sorted((m for m in self._db.members.values() if m.expires_at > now), key=lambda m: m.daemon)
        return Membership(now=now, members=tuple(alive), leases=tuple(await self.list_leases()))

    async def leave(self) -> None:
        self._db.members.pop(self._owner, None)

    async def claim(self, shop: str, ttl: float) -> Lease | None:
        now = self._db.clock()
        old = self._db.leases.get(shop)
        if old is not None and old.owner not in (None, self._owner) and old.expires_at > now:
            return None
        keep = old is not None and old.owner == self._owner and old.expires_at > now
        epoch = (old.epoch if keep else old.epoch + 1) if old is not None else 1
        lease = Lease(shop=shop, owner=self._owner, epoch=epoch, expires_at=now + ttl, renewed_at=now)
        self._db.leases[shop] = lease
        return lease

    async def renew(self, held: Mapping[str, int], ttl: float) -> dict[str, Lease]:
        now = self._db.clock()
        renewed = {}
        for shop, epoch in held.items():
            old = self._db.leases.get(shop)
            if old is not None and old.owner == self._owner and old.epoch == epoch and old.expires_at > now:
                renewed[shop] = self._db.leases[shop] = replace(old, expires_at=now + ttl, renewed_at=now)
        return renewed

    async def release(self, shops: Iterable[str]) -> None:
        now = self._db.clock()
        for shop in shops:
            old = self._db.leases.get(shop)
            if old is not None and old.owner == self._owner:
                self._db.leases[shop] = replace(old, owner=None, expires_at=now, renewed_at=now)

    async def list_leases(self) -> list[Lease]:
        return [self._db.leases[s] for s in sorted(self._db.leases)]

    async def confirm(self, shop: str, epoch: int, *, extend: float | None, what: str) -> Lease:
        now = self._db.clock()
        old = self._db.leases.get(shop)
        check_call(self._owner, shop, epoch, old, now, what)
        assert old is not None
        if extend is not None and old.expires_at < now + extend:
            old = self._db.leases[shop] = replace(old, expires_at=now + extend, renewed_at=now)
        return old
