"""Search strings for the records' connection: one ``updated_at`` window."""

from __future__ import annotations

from datetime import datetime

from shopsync.timeutil import format_ts


def window_search(start: datetime | None, end: datetime) -> str:
    """``updated_at:>='A' AND updated_at:<='B'`` (inclusive; only the upper bound when no start)."""
    upper = f"updated_at:<='{format_ts(end)}'"
    if start is None:
        return upper
    return f"updated_at:>='{format_ts(start)}' AND {upper}"



__all__ = ["window_search"]
