"""The durable records of shopsync: stream checkpoints, bulk operations, and the sink's rows.

All are frozen, keyword-only dataclasses; "changing" one means making a new one with the helpers
below (``state.with_page(...)``) and handing it to the state store, which persists it atomically
with the records it covers (:meth:`shopsync.state.store.StateStore.commit`).

Timestamps are strings in Shopify's form, ``2026-11-25T23:18:05Z`` (:func:`shopsync.timeutil.format_ts`).
Helpers that need "now" take it as an argument (a timestamp string or epoch seconds), never read a
clock themselves.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, overload

import orjson

from shopsync.timeutil import epoch_to_ts, format_ts, parse_ts

#: The sync path a window is being read with.
SyncPath = Literal["bulk", "paginated"]
SYNC_PATHS: frozenset[str] = frozenset({"bulk", "paginated"})

#: ``BulkOperationStatus`` values of the pinned Admin API (2026-10).
BULK_STATUSES: frozenset[str] = frozenset(
    {"CREATED", "RUNNING", "COMPLETED", "CANCELING", "CANCELED", "FAILED", "EXPIRED"}
)
#: Statuses after which Shopify will not change the operation any more.
BULK_TERMINAL_STATUSES: frozenset[str] = frozenset({"COMPLETED", "CANCELED", "FAILED", "EXPIRED"})

_CANONICAL_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")

Now = str | float


def canonical_ts(value: str | None) -> str | None:
    """``value`` as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC, second precision), or None.

    Sinks compare ``updated_at`` as text, which orders correctly only when every value has this one
    shape. Shopify already writes it; other shapes (offsets, fractions) are converted. Sub-second
    parts are dropped: Shopify's timestamps have second precision, so nothing is lost.
    """
    if value is None:
        return None
    if _CANONICAL_TS.match(value):
        return value
    try:
        return format_ts(parse_ts(value))
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 timestamp: {value!r}") from exc


def _now_ts(now: Now) -> str:
    if isinstance(now, str):
        canonical = canonical_ts(now)
        assert canonical is not None
        return canonical
    return epoch_to_ts(now)


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamState:
    """Checkpoint of one stream, i.e. one (shop, resource) pair.

    ``watermark``: every record with ``updatedAt <= watermark`` that Shopify's search index showed
    has been written to the sink (None: nothing synced yet).
    ``window_start``/``window_end``: the window being read now (None when idle).
    ``path``: how that window is read, ``"bulk"`` or ``"paginated"``.
    ``cursor``: the paginated cursor inside the window (for ``parent.child`` resources a small JSON
    text of per-parent progress); None at the window's start.
    ``bulk_operation_id``: the GID of the bulk operation reading the window, if any.
    ``records_in_window``: records written for the window so far (for count guards).
    ``parked_until``/``parked_reason``: the stream is not to be retried before that time.
    ``updated_at``: when this state was produced (set by the helpers that take ``now``).
    """

    shop: str
    resource: str
    watermark: str | None = None
    window_start: str | None = None
    window_end: str | None = None
    path: SyncPath | None = None
    cursor: str | None = None
    bulk_operation_id: str | None = None
    records_in_window: int = 0
    last_success_at: str | None = None
    last_error: str | None = None
    last_error_at: str | None = None
    parked_until: str | None = None
    parked_reason: str | None = None
    updated_at: str | None = None

    def __post_init__(self) -> None:
        if not self.shop or not self.resource:
            raise ValueError("StreamState needs a shop and a resource")
        if self.path is not None and self.path not in SYNC_PATHS:
            raise ValueError(f"StreamState.path must be 'bulk', 'paginated' or None, not {self.path!r}")
        if self.records_in_window < 0:
            raise ValueError("StreamState.records_in_window must not be negative")

    @property
    def key(self) -> tuple[str, str]:
        return (self.shop, self.resource)

    @property
    def in_window(self) -> bool:
        """True while a window is in flight (started, not completed)."""
        return self.window_end is not None

    def replace(self, **changes: Any) -> StreamState:
        """A copy with ``changes`` applied (validated like a new instance)."""
        return dataclasses.replace(self, **changes)

    def with_window(
        self,
        window_start: str | None,
        window_end: str,
        path: SyncPath,
        *,
        now: Now | None = None,
        bulk_operation_id: str | None = None,
    ) -> StreamState:
        """Start reading the window ``(window_start, window_end]`` with ``path``: no cursor yet."""
        return self.replace(
            window_start=window_start,
            window_end=window_end,
            path=path,
            cursor=None,
            bulk_operation_id=bulk_operation_id,
            records_in_window=0,
            updated_at=_now_ts(now) if now is not None else self.updated_at,
        )

    def with_page(self, cursor: str | None, n: int, *, now: Now | None = None) -> StreamState:
        """After a page of ``n`` records: resume from ``cursor`` next time."""
        if n < 0:
            raise ValueError("page size must not be negative")
        return self.replace(
            cursor=cursor,
            records_in_window=self.records_in_window + n,
            updated_at=_now_ts(now) if now is not None else self.updated_at,
        )

    def with_bulk_operation(self, bulk_operation_id: str | None, *, now: Now | None = None) -> StreamState:
        """Remember (or forget, with None) the bulk operation reading the current window."""
        return self.replace(
            bulk_operation_id=bulk_operation_id,
            updated_at=_now_ts(now) if now is not None else self.updated_at,
        )

    def with_bulk_export(self, bulk_operation_id: str, *, now: Now | None = None) -> StreamState:
        """The window in flight is being exported by the bulk operation ``bulk_operation_id``."""
        return self.replace(
            bulk_operation_id=bulk_operation_id,
            path="bulk",
            updated_at=_now_ts(now) if now is not None else self.updated_at,
        )

    def with_bulk_finished(self, window_start: str | None, *, now: Now | None = None) -> StreamState:
        """The window's bulk operation is done with (forgotten); what is left to read of the window
        starts at ``window_start`` (the window is read when it equals ``window_end``)."""
        return self.replace(
            bulk_operation_id=None,
            window_start=window_start,
            updated_at=_now_ts(now) if now is not None else self.updated_at,
        )

    def with_records(self, n: int, *, now: Now | None = None) -> StreamState:
        """``n`` more records of the window in flight were written (no cursor: a bulk file batch)."""
        if n < 0:
            raise ValueError("a record count must not be negative")
        return self.replace(
            records_in_window=self.records_in_window + n,
            updated_at=_now_ts(now) if now is not None else self.updated_at,
        )

    def rewound(self, *, now: Now | None = None) -> StreamState:
        """The window in flight is to be read again from its start (a count guard failed)."""
        return self.replace(
            cursor=None,
            records_in_window=0,
            updated_at=_now_ts(now) if now is not None else self.updated_at,
        )

    def succeeded(self, watermark: str | None, success_at: Now) -> StreamState:
        """A pass over a stream read without windows (deletion events) succeeded at ``success_at``:
        the watermark moves to ``watermark`` (None keeps it).

        Unlike :meth:`completed` nothing else changes, ``updated_at`` included: these rows carry no
        window, error or parking of their own.
        """
        return self.replace(
            watermark=watermark if watermark is not None else self.watermark,
            last_success_at=_now_ts(success_at),
        )

    def completed(self, window_end: str | None, now: Now) -> StreamState:
        """The window is fully written: the watermark moves to ``window_end``, the window closes.

        ``window_end`` None keeps the watermark (resources read in full each run have none).
        Clears the last error and any parking: the stream just succeeded.
        """
        ts = _now_ts(now)
        return self.replace(
            watermark=window_end if window_end is not None else self.watermark,
            window_start=None,
            window_end=None,
            path=None,
            cursor=None,
            bulk_operation_id=None,
            records_in_window=0,
            last_success_at=ts,
            last_error=None,
            last_error_at=None,
            parked_until=None,
            parked_reason=None,
            updated_at=ts,
        )

    def failed(self, error: str, now: Now) -> StreamState:
        """Record an error; the window, cursor and watermark stay so the next attempt resumes."""
        ts = _now_ts(now)
        return self.replace(last_error=error, last_error_at=ts, updated_at=ts)

    def parked(self, until: str | None, reason: str, now: Now) -> StreamState:
        """Stop retrying this stream until ``until`` (None: until someone acts) because of ``reason``.

        ``parked_until`` None with a ``parked_reason`` means parked indefinitely.
        """
        ts = _now_ts(now)
        return self.replace(parked_until=until, parked_reason=reason, updated_at=ts)

    def unparked(self, now: Now) -> StreamState:
        return self.replace(parked_until=None, parked_reason=None, updated_at=_now_ts(now))

    @property
    def is_parked(self) -> bool:
        return self.parked_reason is not None


@dataclass(frozen=True, kw_only=True, slots=True)
class BulkOperationRecord:
    """What shopsync knows about one bulk operation it started, and how far it got with its result.

    ``url`` and ``partial_data_url`` are signed download URLs (valid for 7 days). They are stored so a
    restarted process can resume the download, but kept out of ``repr`` and therefore out of logs.
    ``finished`` is shopsync's own flag: True once the result was fully written (or given up on);
    unfinished operations are what recovery on start looks for.
    """

    id: str
    shop: str
    resource: str
    window_start: str | None = None
    window_end: str | None = None
    status: str = "CREATED"
    error_code: str | None = None
    created_at: str | None = None
    completed_at: str | None = None
    object_count: int = 0
    root_object_count: int = 0
    file_size: int | None = None
    url: str | None = field(default=None, repr=False)
    partial_data_url: str | None = field(default=None, repr=False)
    bytes_downloaded: int = 0
    lines_processed: int = 0
    records_written: int = 0
    finished: bool = False
    updated_at: str | None = None

    def __post_init__(self) -> None:
        if not self.id or not self.shop or not self.resource:
            raise ValueError("BulkOperationRecord needs an id, a shop and a resource")
        if self.status not in BULK_STATUSES:
            raise ValueError(f"unknown bulk operation status {self.status!r}")

    @property
    def key(self) -> tuple[str, str]:
        """``(shop, id)``: what the ledger keys it by. Shopify numbers operations per shop, so two
        shops may each have ``gid://shopify/BulkOperation/1``; the id alone names nothing."""
        return (self.shop, self.id)

    @property
    def terminal(self) -> bool:
        """True when Shopify will not change the operation any more."""
        return self.status in BULK_TERMINAL_STATUSES

    def replace(self, **changes: Any) -> BulkOperationRecord:
        return dataclasses.replace(self, **changes)

    def with_progress(
        self,
        *,
        bytes_downloaded: int | None = None,
        lines_processed: int | None = None,
        records_written: int | None = None,
        now: Now | None = None,
    ) -> BulkOperationRecord:
        """A copy with the download/processing counters set (None keeps a counter)."""
        return self.replace(
            bytes_downloaded=self.bytes_downloaded if bytes_downloaded is None else bytes_downloaded,
            lines_processed=self.lines_processed if lines_processed is None else lines_processed,
            records_written=self.records_written if records_written is None else records_written,
            updated_at=_now_ts(now) if now is not None else self.updated_at,
        )

    def with_status(
        self,
        status: str,
        *,
        error_code: str | None = None,
        object_count: int = 0,
        root_object_count: int = 0,
        file_size: int | None = None,
        url: str | None = None,
        partial_data_url: str | None = None,
        completed_at: str | None = None,
        now: Now,
    ) -> BulkOperationRecord:
        """What Shopify answered to a poll of the operation, as of ``now``: every field of the
        answer replaces the stored one (a field it left out becomes its default)."""
        return self.replace(
            status=status,
            error_code=error_code,
            object_count=object_count,
            root_object_count=root_object_count,
            file_size=file_size,
            url=url,
            partial_data_url=partial_data_url,
            completed_at=completed_at,
            updated_at=_now_ts(now),
        )

    def mark_finished(self, now: Now) -> BulkOperationRecord:
        return self.replace(finished=True, updated_at=_now_ts(now))


@dataclass(frozen=True, kw_only=True, slots=True)
class Record:
    """One record for a sink: a Shopify node in the sink record shape (see ARCHITECTURE.md).

    Give either ``data`` (serialised by the sink with ``orjson.OPT_SORT_KEYS``) or ``text``, that
    serialisation already made (a JSON object, no newline), to avoid serialising twice. If both are
    given, ``text`` is what is written. ``updated_at`` is normalised to ``…Z`` second precision.
    """

    shop: str
    resource: str
    id: str
    updated_at: str | None
    data: dict[str, Any] | None = None
    text: bytes | None = None

    def __post_init__(self) -> None:
        if self.data is None and self.text is None:
            raise ValueError(f"record {self.id!r} has neither data nor text")
        if not self.id:
            raise ValueError("a record needs an id")
        object.__setattr__(self, "updated_at", canonical_ts(self.updated_at))

    @classmethod
    def from_node(
        cls, *, shop: str, resource: str, data: dict[str, Any], text: bytes | None = None
    ) -> Record:
        """A record from a normalised node: ``id`` and ``updatedAt`` are taken from ``data``."""
        return cls(
            shop=shop,
            resource=resource,
            id=data["id"],
            updated_at=data.get("updatedAt"),
            data=data,
            text=text,
        )

    def json_bytes(self) -> bytes:
        """The record's JSON text as written to sinks (sorted keys, compact)."""
        if self.text is not None:
            return self.text
        return orjson.dumps(self.data, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True, slots=True)
class RecordTexts(Sequence[Record]):
    """A batch of records of one shop and resource held as columns, each record's JSON text made.

    What a bulk file's reassembly hands the sink, thousands at a time: a :class:`Record` per
    record cost more than the sink's own work for it, and as Python work beside the database
    thread it slowed the sink's writes too (they take turns under the interpreter lock). The
    sinks that bind columns read :attr:`ids`, :attr:`updated_at` and :attr:`texts` as they are
    (:func:`shopsync.state.table.record_columns`); any other use sees a sequence of records, each
    made when asked for. The same checks as :class:`Record`: every record has an id, and
    ``updated_at`` values are normalised to ``…Z`` second precision.
    """

    shop: str
    resource: str
    ids: list[str]
    updated_at: list[str | None]
    texts: list[bytes]

    def __post_init__(self) -> None:
        if not len(self.ids) == len(self.updated_at) == len(self.texts):
            raise ValueError(
                f"a batch of {self.resource} has {len(self.ids)} ids, {len(self.updated_at)} updatedAt values"
                f" and {len(self.texts)} texts"
            )
        if not all(self.ids):
            raise ValueError("a record needs an id")
        object.__setattr__(self, "updated_at", [canonical_ts(u) for u in self.updated_at])

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, index: int) -> Record: ...
    @overload
    def __getitem__(self, index: slice) -> list[Record]: ...
    def __getitem__(self, index: int | slice) -> Record | list[Record]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return Record(
            shop=self.shop, resource=self.resource, id=self.ids[index], updated_at=self.updated_at[index],
            text=self.texts[index],
        )  # fmt: skip

    def __iter__(self) -> Iterator[Record]:
        for i in range(len(self.ids)):
            yield self[i]


@dataclass(frozen=True, kw_only=True, slots=True)
class Deletion:
    """A record Shopify reports deleted (a ``destroy`` event) at ``deleted_at``."""

    shop: str
    resource: str
    id: str
    deleted_at: str

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("a deletion needs an id")
        object.__setattr__(self, "deleted_at", canonical_ts(self.deleted_at))


@dataclass(frozen=True, kw_only=True, slots=True)
class WriteResult:
    """What a sink write (or a commit) did.

    ``written``: records stored (new, or replacing an older-or-equal version that differs).
    ``skipped``: records (and deletions) not applied because the sink already held a newer or an
    identical version — a replay. Append-only sinks store everything and report 0.
    ``deleted``: deletions applied.
    """

    written: int = 0
    skipped: int = 0
    deleted: int = 0

    def __add__(self, other: WriteResult) -> WriteResult:
        return WriteResult(
            written=self.written + other.written,
            skipped=self.skipped + other.skipped,
            deleted=self.deleted + other.deleted,
        )


#: The result of :meth:`StateStore.commit` is the result of the sink write it made.
CommitResult = WriteResult


@dataclass(frozen=True, kw_only=True, slots=True)
class SinkRow:
    """The newest version of one record as a sink holds it (for status, guards and tests)."""

    id: str
    updated_at: str | None
    data: bytes | None  # the record's JSON text; None for a deletion without a prior record
    deleted_at: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SinkStats:
    """Size of one (shop, resource) in a sink; None where the sink cannot tell cheaply."""

    records: int | None = None
    deleted: int | None = None
    newest_updated_at: str | None = None
    bytes: int | None = None
    files: int | None = None
