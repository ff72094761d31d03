"""When each stream runs: one APScheduler 3 job per (shop, resource), plus the daemon's own ticks.

* A shop's schedule is its ``every``/``cron`` if set, else ``[daemon] every``/``cron``; a resource
  whose file sets ``every`` (one read whole, such as gift cards) runs on that interval instead, or
  on the shop's ``resource_every`` for it;
  ``jitter`` spreads cron runs (and every stream's first run) so hundreds of shops do not fire in
  the same second.
* An interval stream's runs come at a fixed phase of the interval, from its shop and resource
  (:meth:`ScheduleSpec.phase`), so a daemon's streams are spread evenly over it: started together,
  1,400 streams every 30 s otherwise all came due within the jitter each time, and their pages
  queued behind each other for seconds. They come exactly ``every`` apart, with no random delay:
  the phases already spread them, and a delay would only add to the lag (a checkpoint waits for
  the next run), by up to the whole jitter between two runs. A run off the phase (the first one,
  a parked stream's retry) is followed by the next run at the phase (:class:`PhasedIntervalTrigger`).
* Jobs run with ``max_instances=1`` and ``coalesce=True`` and no misfire grace limit: a sync that
  is still running when its next run comes due is not started twice — the run that came due starts
  right when it ends (``on_skip``), so a stream whose run overran its interval (a large window
  during a burst) does not wait a whole interval more — and runs missed while the process was
  busy or suspended collapse into one run as soon as possible, never a queue of them.
* At start (and when a stream is added) every stream runs once, spread over the jitter, then on its
  schedule — a daemon that was down catches up at once instead of waiting for the next cron minute.

The pure part — which jobs a configuration asks for (:func:`schedule_specs`), what changed between
two configurations (:func:`diff_specs`), crontab day-of-week numbering (:func:`crontab_fields`) —
is separate from :class:`StreamScheduler`, the thin wrapper around ``AsyncIOScheduler``.
"""

from __future__ import annotations

import logging
import math
import random
import re
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger(__name__)

#: Job ids of the daemon's own periodic work (stream job ids are "shop/resource").
HEARTBEAT_JOB = "@heartbeat"
REFRESH_JOB = "@refresh"

#: Where the grid of every interval stream's run times starts (each then offset by its phase).
_GRID_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DOW_TOKEN = re.compile(r"^(\*|[0-7a-z]{1,3})(?:-([0-7a-z]{1,3}))?(?:/(\d+))?$")


@dataclass(frozen=True, kw_only=True, slots=True)
class ScheduleSpec:
    """How one stream is scheduled: ``every`` seconds (interval) or a ``cron`` expression (UTC)."""

    shop: str
    resource: str
    every: float | None = None
    cron: str | None = None
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if (self.every is None) == (self.cron is None):
            raise ValueError(f"{self.job_id}: give exactly one of every or cron")
        if self.every is not None and self.every <= 0:
            raise ValueError(f"{self.job_id}: every must be more than 0")

    @property
    def job_id(self) -> str:
        return f"{self.shop}/{self.resource}"

    def trigger(self) -> BaseTrigger:
        """The APScheduler trigger (a fresh one: triggers carry their start time). Only a cron
        trigger has the jitter; an interval one runs at its phase exactly (module docstring)."""
        if self.cron is not None:
            minute, hour, day, month, dow = crontab_fields(self.cron)
            return CronTrigger(
                minute=minute, hour=hour, day=day, month=month, day_of_week=dow, timezone=UTC,
                jitter=self.jitter if self.jitter > 0 else None,
            )  # fmt: skip
        assert self.every is not None
        start = _GRID_ORIGIN + timedelta(seconds=self.phase())
        return PhasedIntervalTrigger(seconds=self.every, timezone=UTC, start_date=start)

    def phase(self) -> float:
        """Seconds into each interval this stream runs at (0 for a cron stream): fixed by its job
        id, so the streams are spread evenly over the interval and keep their places across
        restarts, reloads and daemons."""
        if self.every is None:
            return 0.0
        return zlib.crc32(self.job_id.encode()) / 2**32 * self.every

    def first_delay(self, rng: random.Random) -> float:
        """Seconds from now to the first run: uniform over the jitter (never beyond the interval)."""
        spread = self.jitter if self.every is None else min(self.jitter, self.every)
        return rng.uniform(0.0, spread) if spread > 0 else 0.0


class PhasedIntervalTrigger(IntervalTrigger):
    """An interval trigger whose runs stay on its grid (``start_date`` + k × interval) after a run
    at any other time.

    APScheduler's own interval trigger counts each fire time from the previous one, so a job
    whose first run came at another time (now plus a part of the jitter when the daemon starts, a
    parked stream's retry) kept that time's phase for good: the 1,400 streams of a daemon started
    together all ran within the same few seconds of every interval, whatever their phases. Here
    the run after one at time t is the first grid point at least half an interval after t: the
    next grid point when t is on the grid, and never a second run seconds after an off-grid one.
    """

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        if previous_fire_time is None:
            fire_time: datetime | None = super().get_next_fire_time(None, now)
            return fire_time
        start = self.start_date.timestamp()
        length = self.interval_length
        grid_points = math.ceil((previous_fire_time.timestamp() + length / 2 - start) / length)
        return datetime.fromtimestamp(start + grid_points * length, tz=self.timezone)


def schedule_specs(settings: Any) -> dict[str, ScheduleSpec]:
    """Every stream the configuration asks for, by job id (pure)."""
    daemon = settings.daemon
    jitter = daemon.jitter.total_seconds()
    specs: dict[str, ScheduleSpec] = {}
    for shop in settings.shops:
        if shop.cron is not None:
            every, cron = None, shop.cron
        elif shop.every is not None:
            every, cron = shop.every.total_seconds(), None
        elif daemon.cron is not None:
            every, cron = None, daemon.cron
        else:
            every = (daemon.every or timedelta(minutes=5)).total_seconds()
            cron = None
        for resource in shop.resources:
            # A resource on a schedule of its own: the shop's resource_every, else its file's every.
            own = dict(shop.resource_every).get(resource) or getattr(settings.resources.get(resource), "every", None)
            if own is not None:
                spec = ScheduleSpec(shop=shop.name, resource=resource, every=own.total_seconds(), jitter=jitter)
            else:
                spec = ScheduleSpec(shop=shop.name, resource=resource, every=every, cron=cron, jitter=jitter)
            specs[spec.job_id] = spec
    return specs


@dataclass(frozen=True, kw_only=True, slots=True)
class ScheduleDiff:
    """Job ids added, removed and rescheduled between two configurations (each sorted)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


def diff_specs(old: Mapping[str, ScheduleSpec], new: Mapping[str, ScheduleSpec]) -> ScheduleDiff:
    """What applying ``new`` over ``old`` does (pure). Unchanged jobs keep their timers."""
    return ScheduleDiff(
        added=tuple(sorted(set(new) - set(old))),
        removed=tuple(sorted(set(old) - set(new))),
        changed=tuple(sorted(k for k in set(old) & set(new) if old[k] != new[k])),
    )


def crontab_fields(expr: str) -> tuple[str, str, str, str, str]:
    """The five fields of a standard crontab line, day of week rewritten for APScheduler 3.

    Crontab counts weekdays from Sunday = 0 (7 is Sunday too); APScheduler 3 from Monday = 0. Names
    mean the same in both, so numeric day-of-week values are turned into names:
    ``"0 3 * * 1-5"`` → day_of_week ``"mon,tue,wed,thu,fri"``. Raises ``ValueError`` on a malformed line.
    """
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"{expr!r}: a crontab line has 5 fields, not {len(fields)}")
    minute, hour, day, month, dow = fields
    days = _weekdays(dow)  # validates names too
    if any(ch.isdigit() for ch in dow):
        dow = ",".join(_DAYS[d] for d in sorted(days))
    return minute, hour, day, month, dow.lower()


def _weekday(token: str) -> int:
    if token.isdigit():
        value = int(token)
        if value > 7:
            raise ValueError(f"day of week {value} is out of range 0-7")
        return value % 7
    try:
        return _DAYS.index(token)
    except ValueError:
        raise ValueError(f"unknown day of week {token!r}") from None


def _weekdays(field: str) -> set[int]:
    days: set[int] = set()
    for token in field.lower().split(","):
        m = _DOW_TOKEN.match(token)
        if m is None:
            raise ValueError(f"malformed day of week {token!r}")
        first, last, step = m.group(1), m.group(2), int(m.group(3) or 1)
        if step < 1:
            raise ValueError(f"step must be at least 1 in {token!r}")
        if first == "*":
            lo, hi = 0, 6
        else:
            lo = _weekday(first)
            # "5-7" ends on Sunday written as 7: count it as 7 so the range is not empty.
            hi = (7 if last == "7" else _weekday(last)) if last else (lo if m.group(3) is None else 6)
        if hi < lo:
            raise ValueError(f"day-of-week range {token!r} runs backwards")
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return days


StreamJob = Callable[[str, str], Awaitable[object]]


class StreamScheduler:
    """``AsyncIOScheduler`` with one job per stream and the daemon's periodic ticks.

    ``run_stream(shop, resource)`` is the coroutine function each stream job awaits; ``heartbeat``
    and ``refresh`` are coroutine functions run every ``heartbeat_every`` / ``refresh_every``
    seconds. Coroutine functions run as tasks on the loop (plain functions would go to a thread
    pool), so the heartbeat proves that the loop *and* the scheduler's dispatch are turning.
    """

    def __init__(
        self,
        run_stream: StreamJob,
        *,
        heartbeat: Callable[[], Awaitable[None]],
        heartbeat_every: float,
        refresh: Callable[[], Awaitable[None]] | None = None,
        refresh_every: float = 5.0,
        rng: random.Random | None = None,
        on_skip: Callable[[str, str], None] | None = None,
    ) -> None:
        self._run_stream = run_stream
        #: Told (shop, resource) when a stream's run came due while its previous run was going.
        self._on_skip = on_skip
        self._heartbeat = heartbeat
        self._heartbeat_every = heartbeat_every
        self._refresh = refresh
        self._refresh_every = refresh_every
        self._rng = rng or random.Random()  # noqa: S311 -- schedule jitter, not a secret
        self._specs: dict[str, ScheduleSpec] = {}
        self._aps = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._aps.add_listener(self._on_skipped, EVENT_JOB_MAX_INSTANCES)
        #: Scheduled runs not started because the previous run of the stream was still going.
        self.skipped = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start dispatching (inside the running event loop)."""
        self._aps.start()
        self._aps.add_job(
            self._heartbeat, IntervalTrigger(seconds=self._heartbeat_every, timezone=UTC), id=HEARTBEAT_JOB,
            name="heartbeat", next_run_time=datetime.now(UTC),
        )
        if self._refresh is not None:
            self._aps.add_job(
                self._refresh, IntervalTrigger(seconds=self._refresh_every, timezone=UTC), id=REFRESH_JOB,
                name="refresh state",
            )

    @property
    def running(self) -> bool:
        """True while jobs are being dispatched (started, not paused or shut down)."""
        from apscheduler.schedulers.base import STATE_RUNNING

        return self._aps.state == STATE_RUNNING

    def pause(self) -> None:
        """Stop starting jobs (running ones continue). Used first thing on shutdown."""
        if self._aps.running:
            self._aps.pause()

    def shutdown(self) -> None:
        """Forget all jobs. Stream tasks must already be finished: the executor cancels leftovers."""
        if self._aps.running:
            self._aps.shutdown(wait=False)

    # -- jobs ------------------------------------------------------------------------------------
    @property
    def specs(self) -> Mapping[str, ScheduleSpec]:
        return dict(self._specs)

    def apply(self, specs: Mapping[str, ScheduleSpec], *, first_runs: Mapping[str, datetime] | None = None) -> ScheduleDiff:
        """Make the stream jobs match ``specs``: add, remove and reschedule; keep unchanged timers.

        A new job first runs at ``first_runs[job_id]`` if given (a parked stream's retry time),
        else now plus a random part of its jitter. A rescheduled job continues on its new trigger.
        """
        diff = diff_specs(self._specs, specs)
        now = datetime.now(UTC)
        for job_id in diff.removed:
            try:
                self._aps.remove_job(job_id)
            except JobLookupError:
                pass
            del self._specs[job_id]
        for job_id in diff.added:
            spec = specs[job_id]
            first = (first_runs or {}).get(job_id) or now + timedelta(seconds=spec.first_delay(self._rng))
            self._aps.add_job(
                self._run_stream, spec.trigger(), args=(spec.shop, spec.resource), id=job_id, name=job_id,
                next_run_time=first, replace_existing=True,
            )
            self._specs[job_id] = spec
        for job_id in diff.changed:
            spec = specs[job_id]
            self._aps.reschedule_job(job_id, trigger=spec.trigger())
            self._specs[job_id] = spec
        return diff

    def run_at(self, job_id: str, when: datetime) -> None:
        """Move a stream's next run to ``when`` (a parked stream's retry time); later runs follow its trigger."""
        try:
            self._aps.modify_job(job_id, next_run_time=when)
        except JobLookupError:
            pass

    def next_run(self, job_id: str) -> datetime | None:
        job = self._aps.get_job(job_id)
        return getattr(job, "next_run_time", None) if job is not None else None

    def next_runs(self) -> dict[tuple[str, str], float]:
        """When each stream job runs next (epoch seconds), by (shop, resource); jobs with none left out."""
        out = {}
        for job_id, spec in self._specs.items():
            when = self.next_run(job_id)
            if when is not None:
                out[(spec.shop, spec.resource)] = when.timestamp()
        return out

    def _on_skipped(self, event: JobSubmissionEvent) -> None:
        self.skipped += 1
        log.debug("scheduled run of %s skipped: the previous run is still going", event.job_id)
        spec = self._specs.get(event.job_id)
        if spec is not None and self._on_skip is not None:
            self._on_skip(spec.shop, spec.resource)


class _DropSkippedRunWarnings(logging.Filter):
    """APScheduler warns on every skipped run of a still-running job. With long backfills and short
    intervals that is the expected, designed behaviour (``max_instances=1``), not a warning; the
    scheduler counts them in :attr:`StreamScheduler.skipped` and logs them at debug level."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith('Execution of job "%s" skipped')


def quiet_apscheduler(level: int) -> None:
    """Keep APScheduler's per-run INFO lines out of the logs unless ``level`` is DEBUG."""
    aps = logging.getLogger("apscheduler")
    aps.setLevel(logging.DEBUG if level <= logging.DEBUG else logging.WARNING)
    scheduler_log = logging.getLogger("apscheduler.scheduler")
    if not any(isinstance(f, _DropSkippedRunWarnings) for f in scheduler_log.filters):
        scheduler_log.addFilter(_DropSkippedRunWarnings())
