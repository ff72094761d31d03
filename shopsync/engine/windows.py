"""Watermark and window arithmetic for incremental syncs (pure).

A stream's **watermark** is the end of the last window whose every record is durably in the sink:
"every record with ``updatedAt`` ≤ watermark has been read". The next **window** reads
``[watermark − overlap, now − safety_margin]``:

* Bounds are **inclusive** (``updated_at:>='A' AND updated_at:<='B'``), because ``updatedAt`` has
  one-second precision and many records share a second: a record updated exactly at the boundary
  second is read by both windows touching it, never by neither. Re-reading is harmless (the sinks
  upsert newer-wins by id).
* The **safety margin** keeps the window's end out of the search index's lag: a record updated
  seconds ago may not be searchable yet, so the window ends a margin before now.
* The **overlap** re-reads the last stretch before the watermark, catching records whose index
  entry arrived later than the safety margin allowed for.
* Window ends are whole seconds (what a search string can say), so a committed watermark is exactly
  the bound that was queried.

A window with ``start == end`` is valid (it covers that one second). :func:`next_window` returns
``None`` only when time has not moved past the watermark (nothing new can be found) or the window
would end before it starts (a ``start_date`` in the future).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shopsync.timeutil import format_ts, parse_ts

_OPEN = ".."  # ISO 8601-2 notation for an open interval end


def floor_second(dt: datetime) -> datetime:
    """``dt`` in UTC without its sub-second part."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).replace(microsecond=0)


#: Windows without a lower bound start here when they must be split (Shopify was founded in 2006).
SHOPIFY_EPOCH = datetime.fromisoformat("2006-01-01T00:00:00+00:00")

@dataclass(frozen=True)
class Window:
    """Records with ``start ≤ updatedAt ≤ end``; ``start is None`` means from the beginning."""

    start: datetime | None
    end: datetime

    def __post_init__(self) -> None:
        if self.start is not None and self.start > self.end:
            raise ValueError(f"window starts after it ends: {format_ts(self.start)} > {format_ts(self.end)}")

    @property
    def is_backfill(self) -> bool:
        """A window from the beginning of time (the first sync of a stream)."""
        return self.start is None

    def __str__(self) -> str:
        return window_to_state(self)


def next_window(
    watermark: datetime | None,
    now: datetime,
    *,
    safety_margin: timedelta,
    overlap: timedelta,
    start_date: datetime | None,
) -> Window | None:
    """The next window to read, or ``None`` if there is nothing new yet.

    ``end = now − safety_margin`` (floored to the second); ``start = watermark − overlap``, never
    before ``start_date``; without a watermark ``start = start_date`` (``None``: from the beginning).
    """
    end = floor_second(now - safety_margin)
    if watermark is not None:
        if end <= watermark:
            return None  # nothing was updated after the watermark that the index can show yet
        start: datetime | None = floor_second(watermark - overlap)
        if start_date is not None and start < start_date:  # type: ignore[operator]
            start = floor_second(start_date)
    else:
        start = floor_second(start_date) if start_date is not None else None
    if start is not None and end < start:
        return None
    return Window(start, end)


def split(window: Window, parts: int = 2, *, earliest: datetime | None = None) -> list[Window]:
    """Cut ``window`` into ``parts`` consecutive windows (after a bulk ``TIMEOUT``).

    Neighbours share their boundary second (inclusive bounds: a record at the boundary is read
    twice, never missed). A window without a start needs ``earliest``, the resource's oldest
    ``updatedAt`` (or any time before it), to place the cuts; its first part keeps ``start=None``
    so nothing older than ``earliest`` is ever excluded. A window too short to cut (under
    ``parts`` seconds) is returned whole, as the only element.
    """
    if parts < 2:
        raise ValueError("parts must be at least 2")
    lo = window.start if window.start is not None else earliest
    if lo is None:
        raise ValueError("splitting a window without a start needs the earliest record time")
    lo = floor_second(lo)
    if lo >= window.end:  # everything is at or after `end`'s second, or earliest was a guess too late
        return [window]
    span = int((window.end - lo).total_seconds())
    if span < parts:
        return [window]
    cuts = [lo + timedelta(seconds=span * i // parts) for i in range(1, parts)]
    bounds = [window.start, *cuts, window.end]
    return [Window(bounds[i], bounds[i + 1]) for i in range(parts)]  # type: ignore[arg-type]


def retry_window(start: datetime | None, end: datetime, failed_ends: Sequence[datetime], *, earliest: datetime) -> Window:
    """The next export of the part ``[start, end]`` of a window after exports starting at ``start``
    failed, their windows ending at ``failed_ends`` (none: the whole part).

    A failed export proves nothing about what it covered (its file need not follow any order), so
    the part is exported again from ``start``: the first half of the smallest failed window, the
    other half following once that one is read. Each repeated failure halves again; a window too
    short to cut (under two seconds) is exported whole again. ``earliest`` places the cut of a
    window without a start (see :func:`split`).
    """
    if not failed_ends:
        return Window(start, end)
    smallest = min(min(failed_ends), end)
    if start is not None and smallest <= start:
        smallest = end  # a failed window of ``start``'s one second: halve the whole part (a part that advances)
    return split(Window(start, smallest), 2, earliest=earliest)[0]


def committed_watermark(window: Window) -> datetime:
    """The watermark after ``window`` is durably written: its end (records ≤ end are read)."""
    return window.end


def window_to_state(window: Window) -> str:
    """``2026-01-01T00:00:00Z/2026-01-02T00:00:00Z`` (``../…`` without a start)."""
    start = format_ts(window.start) if window.start is not None else _OPEN
    return f"{start}/{format_ts(window.end)}"


def window_from_state(text: str) -> Window:
    """The inverse of :func:`window_to_state`."""
    start_text, sep, end_text = text.partition("/")
    if not sep or not end_text:
        raise ValueError(f"not a window: {text!r}")
    start = None if start_text == _OPEN else parse_ts(start_text)
    return Window(start, parse_ts(end_text))


def watermark_to_state(watermark: datetime | None) -> str | None:
    return format_ts(watermark) if watermark is not None else None


def watermark_from_state(text: str | None) -> datetime | None:
    return parse_ts(text) if text else None


__all__ = [
    "Window",
    "committed_watermark",
    "floor_second",
    "next_window",
    "retry_window",
    "split",
    "watermark_from_state",
    "watermark_to_state",
    "window_from_state",
    "window_to_state",
]
