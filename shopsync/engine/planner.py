"""Which path reads a window: the one estimated to finish sooner, from what the shop has shown (pure).

A fixed record count is not a cost model: 1,700 orders at ~46 points each are 13 minutes of a
Standard bucket (100 points/s) but under a minute of one bulk export. So each window's two paths
are estimated from what shopsync has measured for that shop and resource:

* **paginated** — the window's count × the points a record has actually cost on recent pages
  (nested drains included), less what the bucket holds now, at the restore rate shared fairly with
  the shop's other paginated streams: until this window is done each of them takes what it still
  wants, at most as much as this one (a stream paging an almost empty window is no competitor for
  a minute); and never less than the pages' round trips;
* **bulk** — the export time of the shop's recent operations as a function of their object count
  (a line fitted through them, a prior before any is seen), plus download and ingest at the rate
  recent files were written, plus a wait when every bulk slot of the shop is taken.

The faster one is taken, with :data:`HYSTERESIS` against the stream's previous path so that a
window near the break-even point does not flap, and bulk only when it saves at least
:data:`MIN_EXPORT_SAVING` seconds. ``bulk_threshold``, when set, overrides all this
with today's fixed count. The same model decides, between pages, whether a paginated window's
remainder would be sooner done by an export (:func:`should_hand_over`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

Path = Literal["bulk", "paginated"]

#: The other path must be estimated this many times faster before a stream leaves its previous one.
HYSTERESIS = 1.25
#: Before an operation of the shop has been seen: seconds from the start mutation to COMPLETED
#: beyond the export itself (queueing, CREATED, polls), and the export's objects per second.
#: Conservative on purpose: an unseen bulk path should have to win clearly.
PRIOR_BULK_OVERHEAD = 20.0
PRIOR_EXPORT_RATE = 2_000.0
#: Objects written per second from a downloaded file before any file was timed (the ingest
#: benchmark writes ~30,000 lines/s into SQLite; this is a third of it).
PRIOR_INGEST_RATE = 10_000.0
#: Seconds one page's round trip takes before any was timed.
PRIOR_PAGE_SECONDS = 0.5
#: At most this many cursor chains page one window at once (each a time slice of the window).
MAX_PAGE_CHAINS = 8
#: A chain is given at least this many pages of records (see :func:`page_chains`). Cutting a rest
#: costs count queries before any chain starts (one, plus two per cut) and a state row per slice;
#: with 3 pages a chain a 200-shop daemon cut its ~8-page windows of every run, and the cutting
#: and slice rows were a tenth of its CPU for a second or two saved per window.
MIN_PAGES_PER_CHAIN = 10
#: Recent operations and pages a model remembers (older ones no longer describe the shop's load).
SAMPLES = 20
#: Weight of the newest page in the running per-record cost.
EWMA_WEIGHT = 0.2
#: Bounds of a fitted export model: no shop exports faster or slower than these.
MIN_EXPORT_RATE, MAX_EXPORT_RATE = 10.0, 1_000_000.0
#: A paginated window hands over to an export only with at least this many records left, so the
#: last pages of a window are never traded for an operation's overhead.
MIN_HAND_OVER_RECORDS = 250
#: Seconds an export must save over paging before a window is exported. An operation costs more
#: than its wall time says: one of the shop's five slots, a result file to download and reassemble
#: (the daemon's CPU, shared by every shop), polls. Without this floor a daemon of 200 shops whose
#: small windows paged at 0.8 s a round trip exported 8-product windows for 0.8 s saved.
MIN_EXPORT_SAVING = 5.0


@dataclass
class ExportModel:
    """A shop's bulk exports so far: (objects, seconds from start to COMPLETED) and ingest rates."""

    exports: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    ingests: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    #: Objects per root record (line items ride with their order) over the shop's exports.
    objects_per_root: dict[str, float] = field(default_factory=dict)

    def add_export(self, resource: str, objects: int, roots: int, seconds: float) -> None:
        if seconds <= 0 or objects < 0:
            return
        self.exports.append((objects, seconds))
        if roots > 0 and objects >= roots:
            self.objects_per_root[resource] = _ewma(self.objects_per_root.get(resource), objects / roots)

    def add_ingest(self, objects: int, seconds: float) -> None:
        if objects > 0 and seconds > 0:
            self.ingests.append((objects, seconds))

    def overhead_and_rate(self) -> tuple[float, float]:
        """``seconds ≈ overhead + objects / rate`` fitted through the recent exports."""
        if not self.exports:
            return PRIOR_BULK_OVERHEAD, PRIOR_EXPORT_RATE
        xs = [float(o) for o, _ in self.exports]
        ys = [s for _, s in self.exports]
        n = len(xs)
        mx, my = sum(xs) / n, sum(ys) / n
        sxx = sum((x - mx) ** 2 for x in xs)
        if n >= 2 and sxx > 0:
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
            intercept = my - slope * mx
            if slope > 0 and intercept >= 0:
                return intercept, _clamp_rate(1.0 / slope)
        # One size seen (or a fit that makes no sense): the prior overhead, the rest is export.
        overhead = min(PRIOR_BULK_OVERHEAD, min(ys))
        spent = sum(max(y - overhead, 1e-3) for y in ys)
        return overhead, _clamp_rate(sum(xs) / spent if sum(xs) else PRIOR_EXPORT_RATE)

    def ingest_rate(self) -> float:
        if not self.ingests:
            return PRIOR_INGEST_RATE
        return max(1.0, sum(o for o, _ in self.ingests) / sum(s for _, s in self.ingests))


@dataclass
class PageModel:
    """One stream's recent pages: points per record (drains included) and seconds per page."""

    points_per_record: float | None = None
    seconds_per_page: float | None = None
    records_per_page: float | None = None

    def add_page(self, records: int, points: float, seconds: float, *, full: bool = True) -> None:
        """One page's records, points (its drains included) and round-trip seconds; ``full``:
        more pages followed it, so it held as many records as a page holds."""
        self.seconds_per_page = _ewma(self.seconds_per_page, max(0.0, seconds))
        if records <= 0:
            return  # an empty page says how long a round trip takes, not what a record costs
        self.points_per_record = _ewma(self.points_per_record, max(0.0, points) / records)
        if full:
            # A window's last page holds what was left: in a daemon's small windows nearly every
            # page is a last one, and counting them made pages look small, windows look long to
            # page and round trips look like the limit.
            self.records_per_page = _ewma(self.records_per_page, float(records))


@dataclass(frozen=True, kw_only=True)
class Budget:
    """The shop's cost budget as one stream sees it now."""

    restore_rate: float  # points per second refilled for the whole shop
    available: float  # points the bucket holds now
    free_bulk_slots: int
    #: The points each of the shop's other streams reading pages right now still wants (this one
    #: excluded; ``math.inf`` where it is not known): they share the restore rate with this one.
    others: tuple[float, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Estimate:
    """Both paths' estimated seconds for ``records`` root records."""

    records: int
    paginated: float
    bulk: float

    def faster(self) -> Path:
        return "bulk" if self.bulk < self.paginated else "paginated"


@dataclass(frozen=True, kw_only=True)
class Decision:
    """A window's path and why; ``estimate`` is None where no estimate was made."""

    path: Path
    #: not_exportable, forced, full_refresh, no_count, backfill, threshold, estimate, hysteresis,
    #: small_saving, hand_over
    reason: str
    estimate: Estimate | None = None
    count: int | None = None
    #: Shopify called ``count`` EXACT (not AT_LEAST): the window can only lose records after it
    #: was taken, so it bounds what a complete read of the window delivers from above.
    count_exact: bool = False

    def describe(self) -> str:
        if self.estimate is None:
            counted = f", {self.count} records counted" if self.count is not None else ""
            return f"{self.path} ({self.reason}{counted})"
        e = self.estimate
        return (
            f"{self.path} ({self.reason}): {e.records} records, estimated paginated {e.paginated:.1f}s "
            f"vs bulk {e.bulk:.1f}s"
        )


def estimate(
    records: int,
    *,
    pages: PageModel,
    prior_points_per_record: float,
    page_size: int,
    exports: ExportModel,
    resource: str,
    prior_objects_per_root: float,
    budget: Budget,
) -> Estimate:
    """Both paths' seconds for ``records`` root records of ``resource`` (see the module's doc);
    ``page_size`` is the records a full page holds now."""
    records = max(0, records)
    ppr = pages.points_per_record if pages.points_per_record is not None else prior_points_per_record
    demand = records * ppr
    # Fair sharing: by the time this window has its points, every other stream has had as many,
    # or all it wanted if that is less. (With n others of unknown demand: (n + 1) × demand.)
    shared = demand + sum(min(max(0.0, other), demand) for other in budget.others)
    budget_seconds = max(0.0, shared - max(0.0, budget.available)) / max(budget.restore_rate, 1e-6)
    round_trips = math.ceil(records / max(page_size, 1)) * (pages.seconds_per_page or PRIOR_PAGE_SECONDS)
    paginated = max(budget_seconds, round_trips)

    objects = records * exports.objects_per_root.get(resource, prior_objects_per_root)
    overhead, export_rate = exports.overhead_and_rate()
    bulk = overhead + objects / export_rate + objects / exports.ingest_rate()
    if budget.free_bulk_slots <= 0:
        bulk += overhead  # every slot is taken: wait about one operation's overhead for one
    return Estimate(records=records, paginated=paginated, bulk=bulk)


def decide(est: Estimate, *, previous: Path | None, count: int) -> Decision:
    """The faster path, unless the previous one is within :data:`HYSTERESIS` of it."""
    best = est.faster()
    if best == "bulk" and est.paginated - est.bulk < MIN_EXPORT_SAVING:
        return Decision(path="paginated", reason="small_saving", estimate=est, count=count)
    if previous is not None and previous != best:
        mine = est.bulk if previous == "bulk" else est.paginated
        other = est.paginated if previous == "bulk" else est.bulk
        if other * HYSTERESIS > mine:
            return Decision(path=previous, reason="hysteresis", estimate=est, count=count)
    return Decision(path=best, reason="estimate", estimate=est, count=count)


def should_hand_over(est: Estimate) -> bool:
    """Whether a paginated window's remainder (``est`` of what is left) is better exported now."""
    return est.records >= MIN_HAND_OVER_RECORDS and est.bulk * HYSTERESIS < est.paginated


def page_chains(model: PageModel, restore_rate: float, records_left: int, *, max_chains: int = MAX_PAGE_CHAINS) -> int:
    """How many cursor chains the rest of a paged window wants (1: one chain is enough).

    One chain spends at most one page's points per round trip, ``points_per_page ÷
    seconds_per_page`` a second. When that is below ``restore_rate`` (the share of the shop's
    rate this stream may spend) the chain is latency-bound — ``seconds_per_page × restore_rate >
    points_per_page`` — and ``⌈seconds × rate ÷ points⌉`` chains reach the restore rate; one more
    spends down what the bucket holds meanwhile instead of letting it sit (the shop's one cost
    budget keeps them all from being throttled). Never more than ``max_chains``, nor more than
    the rest fills with :data:`MIN_PAGES_PER_CHAIN` pages each: a slice costs count queries to
    cut and a boundary second read twice.
    """
    seconds, per_record, per_page = model.seconds_per_page, model.points_per_record, model.records_per_page
    if seconds is None or per_record is None or per_page is None or per_page <= 0 or restore_rate <= 0:
        return 1
    points = per_record * per_page
    if points <= 0 or seconds * restore_rate <= points:
        return 1  # restore-bound: one chain already spends all it may
    wanted = math.ceil(seconds * restore_rate / points) + 1
    fill = int(records_left // (per_page * MIN_PAGES_PER_CHAIN))
    chains = min(max_chains, wanted, fill)
    return chains if chains >= 2 else 1


def _ewma(old: float | None, new: float) -> float:
    return new if old is None else old + EWMA_WEIGHT * (new - old)


def _clamp_rate(rate: float) -> float:
    return min(MAX_EXPORT_RATE, max(MIN_EXPORT_RATE, rate))


__all__ = [
    "HYSTERESIS",
    "MIN_EXPORT_SAVING",
    "MAX_PAGE_CHAINS",
    "MIN_PAGES_PER_CHAIN",
    "Budget",
    "Decision",
    "Estimate",
    "ExportModel",
    "PageModel",
    "decide",
    "estimate",
    "page_chains",
    "should_hand_over",
]
