"""Progress of a one-shot ``shopsync sync``: bars on a terminal, periodic log lines otherwise.

:class:`Progress` is the engine observer that tallies, per stream (shop, resource), the records
written, the path, and the state of the bulk operation being polled; it renders nothing itself.
Two presenters read it:

* :class:`BarDisplay` (stderr is a terminal): one line per stream, redrawn in place a few times a
  second — an activity bar (the total is unknown until a window ends), records, records/s and the
  bulk operation's status and object count. Log lines are printed *above* the bars through
  :attr:`BarDisplay.log_stream`, which the logging handler writes to.
* :class:`LogReporter` (anything else: journald, CI, a file): every ``interval`` seconds one log
  line per stream that moved, carrying ``shop`` and ``resource`` fields like every other line.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Protocol

from shopsync.settings import StreamKey

log = logging.getLogger("shopsync.progress")

BAR_WIDTH = 20
#: Seconds between redraws of the bars.
REDRAW_EVERY = 0.25
#: Seconds between progress log lines.
LOG_EVERY = 10.0


@dataclass
class StreamProgress:
    """What one stream has done so far in this run."""

    shop: str
    resource: str
    records: int = 0
    path: str | None = None
    bulk_status: str | None = None
    bulk_objects: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    ok: bool | None = None  # None while running or waiting
    watermark: str | None = None
    error: str | None = None
    # records/s over the last redraw interval (smoothed)
    rate: float = 0.0
    _rate_records: int = 0
    _rate_at: float | None = None
    _logged_records: int = -1
    _logged_bulk: tuple[str | None, int] = (None, -1)

    @property
    def label(self) -> str:
        return f"{self.shop}/{self.resource}"

    @property
    def state(self) -> str:
        if self.ok is True:
            return "done"
        if self.ok is False:
            return "failed"
        return "running" if self.started_at is not None else "waiting"


class StreamOutcome(Protocol):
    """How one stream's run ended, as :meth:`Progress.finish` reads it (the engine's ``StreamResult``)."""

    @property
    def shop(self) -> str: ...
    @property
    def resource(self) -> str: ...
    @property
    def ok(self) -> bool: ...
    @property
    def error(self) -> str | None: ...
    @property
    def watermark(self) -> str | None: ...
    @property
    def path(self) -> str | None: ...


class Progress:
    """Engine observer tallying per-stream progress (cheap; never raises).

    Implements :class:`shopsync.observability.events.EngineObserver` (every method of it, and
    nothing else: a new engine event must be added here too).
    """

    def __init__(self, streams: Iterable[StreamKey], *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.streams: dict[StreamKey, StreamProgress] = {
            (shop, resource): StreamProgress(shop=shop, resource=resource) for shop, resource in streams
        }
        self.started_at = clock()

    def _get(self, shop: str, resource: str) -> StreamProgress | None:
        s = self.streams.get((shop, resource))
        if s is not None and s.started_at is None:
            s.started_at = self.clock()
        return s

    # -- EngineObserver ----------------------------------------------------------------------
    def on_records(self, shop: str, resource: str, path: str, count: int) -> None:
        s = self._get(shop, resource)
        if s is not None:
            s.records += count
            s.path = path

    def on_bulk_status(self, shop: str, resource: str, status: str, object_count: int) -> None:
        s = self._get(shop, resource)
        if s is not None:
            s.path = "bulk"
            s.bulk_status, s.bulk_objects = status, object_count

    def on_bulk_finished(self, shop: str, resource: str, status: str, duration: float, objects: int) -> None:
        s = self._get(shop, resource)
        if s is not None:
            s.bulk_status, s.bulk_objects = status.upper(), objects

    def on_guard_mismatch(self, shop: str, resource: str, kind: str) -> None:
        return None

    def on_path_decision(self, shop: str, resource: str, path: str, reason: str) -> None:
        return None

    def on_checkpoint(self, shop: str, resource: str, watermark: str | None) -> None:
        s = self._get(shop, resource)
        if s is not None:
            s.ok, s.watermark, s.finished_at = True, watermark, self.clock()

    # -- the end --------------------------------------------------------------------------------
    def finish(self, results: Iterable[StreamOutcome]) -> None:
        """Mark every stream from the engine's ``StreamResult`` list (ok or failed)."""
        now = self.clock()
        for r in results:
            s = self.streams.get((r.shop, r.resource))
            if s is None:
                continue
            s.ok = bool(r.ok)
            s.error = None if r.ok else r.error
            s.watermark = r.watermark or s.watermark
            s.path = r.path or s.path
            s.finished_at = s.finished_at or now

    def update_rates(self) -> None:
        now = self.clock()
        for s in self.streams.values():
            if s._rate_at is not None and now > s._rate_at:
                instant = (s.records - s._rate_records) / (now - s._rate_at)
                s.rate = instant if s.rate == 0 else 0.7 * s.rate + 0.3 * instant
            s._rate_records, s._rate_at = s.records, now

    def counts(self) -> dict[str, int]:
        out = {"waiting": 0, "running": 0, "done": 0, "failed": 0}
        for s in self.streams.values():
            out[s.state] += 1
        return out

    def total_records(self) -> int:
        return sum(s.records for s in self.streams.values())

    # -- rendering (pure) ----------------------------------------------------------------------
    def lines(self, *, width: int = 100, height: int = 40, now: float | None = None) -> list[str]:
        """The bar block: one line per stream (running first), cut to ``height`` with a summary line."""
        now = self.clock() if now is None else now
        order = {"running": 0, "waiting": 1, "failed": 2, "done": 3}
        streams = sorted(self.streams.values(), key=lambda s: (order[s.state], s.shop, s.resource))
        label_w = min(40, max((len(s.label) for s in streams), default=10))
        room = max(1, height - 1)
        shown = streams[:room] if len(streams) > room else streams
        out = [_fit(self._line(s, label_w, now), width) for s in shown]
        c = self.counts()
        summary = (
            f"{c['done']}/{len(streams)} streams done, {c['running']} running, {c['waiting']} waiting"
            + (f", {c['failed']} failed" if c["failed"] else "")
            + f" — {self.total_records():,} records in {now - self.started_at:.0f}s"
        )
        if len(shown) < len(streams):
            summary = f"… {len(streams) - len(shown)} more; " + summary
        out.append(_fit(summary, width))
        return out

    @staticmethod
    def _line(s: StreamProgress, label_w: int, now: float) -> str:
        label = s.label[:label_w].ljust(label_w)
        if s.state == "done":
            bar = "=" * BAR_WIDTH
            via = f" via {s.path}" if s.path else ""
            text = f"done: {s.records:,} records{via}, up to {s.watermark or '-'}"
        elif s.state == "failed":
            bar = "x" * BAR_WIDTH
            text = f"FAILED: {s.error or 'unknown error'}"
        elif s.state == "waiting":
            bar = " " * BAR_WIDTH
            text = "waiting"
        else:
            # Activity, not completion: the number of records in a window is not known ahead.
            pos = int((now - (s.started_at or now)) * 8) % (BAR_WIDTH + 4)
            bar = "".join("=" if pos - 4 < i <= pos else " " for i in range(BAR_WIDTH))
            parts = [f"{s.records:,} records"]
            if s.rate >= 1:
                parts.append(f"{s.rate:,.0f}/s")
            if s.bulk_status:
                parts.append(f"bulk {s.bulk_status} {s.bulk_objects:,} objects")
            elif s.path:
                parts.append(s.path)
            text = "  ".join(parts)
        return f"{label} [{bar}] {text}"

    # -- log lines --------------------------------------------------------------------------------
    def log_lines(self, logger: logging.Logger = log) -> int:
        """Log one line per running stream that moved since the last call, and a summary; returns lines."""
        self.update_rates()
        n = 0
        for s in self.streams.values():
            if s.state != "running":
                continue
            bulk = (s.bulk_status, s.bulk_objects)
            if s.records == s._logged_records and bulk == s._logged_bulk:
                continue
            s._logged_records, s._logged_bulk = s.records, bulk
            detail = f", bulk operation {s.bulk_status} with {s.bulk_objects:,} objects" if s.bulk_status else ""
            logger.info(
                "progress: %s records so far (%.0f/s)%s", f"{s.records:,}", s.rate, detail,
                extra={"shop": s.shop, "resource": s.resource, "records": s.records},
            )
            n += 1
        c = self.counts()
        logger.info(
            "progress: %d/%d streams done, %d running, %d waiting, %d failed, %s records",
            c["done"], len(self.streams), c["running"], c["waiting"], c["failed"], f"{self.total_records():,}",
        )
        return n + 1


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


class _LogStream:
    """A text stream for the logging handler that prints above the bars."""

    def __init__(self, display: BarDisplay) -> None:
        self._display = display

    def write(self, text: str) -> int:
        self._display.write_above(text)
        return len(text)

    def flush(self) -> None:
        self._display.flush()

    def isatty(self) -> bool:
        return self._display.isatty()


class BarDisplay:
    """Draws :meth:`Progress.lines` at the bottom of a terminal, redrawn in place."""

    def __init__(self, progress: Progress, out: IO[str], *, interval: float = REDRAW_EVERY) -> None:
        self.progress = progress
        self.out = out
        self.interval = interval
        self._drawn = 0  # lines of the block currently on screen
        self._lock = threading.Lock()  # logging may write from another thread
        self.log_stream = _LogStream(self)

    def isatty(self) -> bool:
        isatty = getattr(self.out, "isatty", None)
        return bool(isatty and isatty())

    def _erase(self) -> str:
        # Cursor to the start of the block's first line, then clear to the end of the screen.
        return f"\x1b[{self._drawn}F\x1b[J" if self._drawn else ""

    def _block(self) -> str:
        size = shutil.get_terminal_size((100, 24))
        lines = self.progress.lines(width=max(20, size.columns - 1), height=max(3, size.lines - 2))
        self._drawn = len(lines)
        return "\n".join(lines) + "\n"

    def draw(self) -> None:
        with self._lock:
            self.progress.update_rates()
            erase = self._erase()
            self.out.write(erase + self._block())
            self.out.flush()

    def write_above(self, text: str) -> None:
        with self._lock:
            erase = self._erase()
            self._drawn = 0
            redraw = self._block() if text.endswith("\n") else ""
            self.out.write(erase + text + redraw)

    def flush(self) -> None:
        with self._lock:
            self.out.flush()

    async def run(self) -> None:
        """Redraw every ``interval`` seconds until cancelled."""
        while True:
            self.draw()
            await asyncio.sleep(self.interval)

    def close(self) -> None:
        """Draw the final state once more and leave it on screen."""
        self.draw()
        with self._lock:
            self._drawn = 0


class LogReporter:
    """Logs :meth:`Progress.log_lines` every ``interval`` seconds."""

    def __init__(self, progress: Progress, *, interval: float = LOG_EVERY) -> None:
        self.progress = progress
        self.interval = interval

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.progress.log_lines()

    def close(self) -> None:
        return None
