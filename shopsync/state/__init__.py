"""Durable state: per-stream checkpoints and bulk operation records (see :mod:`shopsync.state.base`)."""

from shopsync.state.base import StateStore
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

__all__ = [
    "BULK_STATUSES",
    "BULK_TERMINAL_STATUSES",
    "BulkOperationRecord",
    "CommitResult",
    "Deletion",
    "Record",
    "StateStore",
    "StreamState",
    "WriteResult",
]
