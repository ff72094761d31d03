"""Watermark / window arithmetic: inclusive bounds, overlap, safety margin, splitting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shopsync.engine.windows import (
    Window,
    committed_watermark,
    next_window,
    split,
    watermark_from_state,
    watermark_to_state,
    window_from_state,
    window_to_state,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
MARGIN = timedelta(seconds=60)
OVERLAP = timedelta(minutes=5)


def nw(watermark, now, start_date=None):
    return next_window(watermark, now, safety_margin=MARGIN, overlap=OVERLAP, start_date=start_date)


def contains(window: Window, t: datetime) -> bool:
    """What the search string ``updated_at:>='start' AND updated_at:<='end'`` selects."""
    return (window.start is None or window.start <= t) and t <= window.end


def test_first_window_reads_from_the_beginning_or_start_date():
    assert nw(None, T0) == Window(None, T0 - MARGIN)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    assert nw(None, T0, start) == Window(start, T0 - MARGIN)
    assert nw(None, T0).is_backfill and not nw(None, T0, start).is_backfill


def test_next_window_starts_an_overlap_before_the_watermark_and_ends_a_margin_before_now():
    w = nw(T0, T0 + timedelta(minutes=10))
    assert w == Window(T0 - OVERLAP, T0 + timedelta(minutes=10) - MARGIN)
    # start_date is a floor even for the overlap
    late_start = T0 - timedelta(minutes=1)
    assert nw(T0, T0 + timedelta(minutes=10), late_start).start == late_start


def test_end_is_floored_to_whole_seconds():
    w = nw(None, T0 + timedelta(milliseconds=999))
    assert w.end == T0 - MARGIN and w.end.microsecond == 0


def test_no_window_until_time_passes_the_watermark():
    assert nw(T0, T0 + MARGIN) is None  # end == watermark: nothing new is searchable yet
    assert nw(T0, T0 + MARGIN + timedelta(seconds=1)) == Window(T0 - OVERLAP, T0 + timedelta(seconds=1))
    assert nw(None, T0, start_date=T0) is None  # start_date after now - margin


def test_a_one_second_window_is_valid():
    w = Window(T0, T0)
    assert contains(w, T0)
    with pytest.raises(ValueError):
        Window(T0, T0 - timedelta(seconds=1))


def test_consecutive_windows_leave_no_gap_and_reread_the_boundary_second():
    first = nw(None, T0)
    wm = committed_watermark(first)
    assert wm == first.end
    second = nw(wm, T0 + timedelta(minutes=3))
    # A record updated exactly at the watermark second, and one just inside the overlap, are read
    # again: both bounds are inclusive.
    assert contains(first, wm) and contains(second, wm)
    assert contains(second, wm - OVERLAP)
    assert not contains(second, wm - OVERLAP - timedelta(seconds=1))


@given(
    st.lists(st.integers(min_value=1, max_value=3600), min_size=1, max_size=20),
    st.integers(min_value=0, max_value=7200),
)
def test_successive_windows_cover_every_second_up_to_the_watermark(steps, probe_offset):
    """Any timestamp ≤ the final watermark lies in some window (no gaps, whatever the schedule)."""
    now, wm, windows = T0, None, []
    for step in steps:
        now += timedelta(seconds=step)
        w = nw(wm, now)
        if w is None:
            continue
        windows.append(w)
        wm = committed_watermark(w)
    if wm is None:
        return
    probe = wm - timedelta(seconds=probe_offset)
    assert any(contains(w, probe) for w in windows)


def test_split_shares_boundaries_and_covers_the_window():
    w = Window(T0, T0 + timedelta(hours=1))
    a, b = split(w)
    assert (a.start, a.end, b.start, b.end) == (T0, T0 + timedelta(minutes=30), T0 + timedelta(minutes=30), w.end)
    parts = split(w, 3)
    assert [p.start for p in parts[1:]] == [p.end for p in parts[:-1]]
    assert parts[0].start == w.start and parts[-1].end == w.end


def test_split_without_start_needs_the_earliest_record_and_keeps_the_open_start():
    w = Window(None, T0)
    with pytest.raises(ValueError):
        split(w)
    a, b = split(w, earliest=T0 - timedelta(days=2))
    assert a.start is None and a.end == T0 - timedelta(days=1) and b == Window(T0 - timedelta(days=1), T0)


def test_split_of_a_window_too_short_returns_it_whole():
    assert split(Window(T0, T0)) == [Window(T0, T0)]
    assert split(Window(T0, T0 + timedelta(seconds=1)), 2) == [Window(T0, T0 + timedelta(seconds=1))]
    assert split(Window(None, T0), earliest=T0 + timedelta(days=1)) == [Window(None, T0)]


def test_state_strings_round_trip():
    w = Window(T0, T0 + timedelta(hours=2))
    assert window_to_state(w) == "2026-03-01T12:00:00Z/2026-03-01T14:00:00Z"
    assert window_from_state(window_to_state(w)) == w
    open_w = Window(None, T0)
    assert window_to_state(open_w) == "../2026-03-01T12:00:00Z"
    assert window_from_state("../2026-03-01T12:00:00Z") == open_w
    with pytest.raises(ValueError):
        window_from_state("2026-03-01T12:00:00Z")
    assert watermark_from_state(watermark_to_state(T0)) == T0
    assert watermark_to_state(None) is None and watermark_from_state(None) is None


# -- the next export after failed ones (issue 9) --------------------------------------------------
def test_retry_window_halves_the_smallest_failed_window_from_the_same_start():
    from shopsync.engine.windows import retry_window

    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC)
    early = datetime(2006, 1, 1, tzinfo=UTC)
    assert retry_window(start, end, [], earliest=early) == Window(start, end)
    assert retry_window(start, end, [end], earliest=early) == Window(start, datetime(2026, 1, 2, tzinfo=UTC))
    # Two failures at this start: the smaller window is halved again.
    noon = datetime(2026, 1, 2, tzinfo=UTC)
    assert retry_window(start, end, [end, noon], earliest=early) == Window(start, datetime(2026, 1, 1, 12, tzinfo=UTC))
    # A window without a start is cut from `earliest` and keeps start=None.
    assert retry_window(None, end, [end], earliest=early).start is None
    # Too short to cut: exported whole again. A failed window of the start's one second gives a
    # part that still advances past it (the whole part, halved).
    one = start + timedelta(seconds=1)
    assert retry_window(start, end, [one], earliest=early) == Window(start, one)
    assert retry_window(start, end, [start], earliest=early) == Window(start, noon)
