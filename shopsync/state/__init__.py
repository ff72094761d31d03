"""The storage layer: state stores (checkpoints, bulk operations) and sinks (the records).

Interfaces: :class:`~shopsync.state.store.StateStore` (:mod:`shopsync.state.store`) and
:class:`~shopsync.state.sink.Sink` (:mod:`shopsync.state.sink`); the records they hold are in
:mod:`shopsync.state.models`. Implementations:

* SQL, one database shared by store and sink (:mod:`~shopsync.state.database`): the store logic in
  :mod:`~shopsync.state.sql_store`, the table sinks in :mod:`~shopsync.state.table`, and per
  database :mod:`~shopsync.state.sqlite` / :mod:`~shopsync.state.sqlite_sink` and
  :mod:`~shopsync.state.postgres` / :mod:`~shopsync.state.postgres_sink`;
* :mod:`~shopsync.state.jsonl`, an append-only change-log sink;
* :mod:`~shopsync.state.memory`, a state store and sink in memory (tests, demos).
"""

from shopsync.state.models import (
    BULK_STATUSES,
    BULK_TERMINAL_STATUSES,
    BulkOperationRecord,
    CommitResult,
    Deletion,
    Record,
    StreamState,
    WriteResult,
)
from shopsync.state.sink import Sink
from shopsync.state.store import StateStore

__all__ = [
    "BULK_STATUSES",
    "BULK_TERMINAL_STATUSES",
    "BulkOperationRecord",
    "CommitResult",
    "Deletion",
    "Record",
    "Sink",
    "StateStore",
    "StreamState",
    "WriteResult",
]
