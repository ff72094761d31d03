"""Fault switches of a simulated shop: what goes wrong, how often, decided by seeded dice.

Every decision is drawn from one ``random.Random`` per shop, seeded from the fault seed (or the data
seed) and the shop name, so a run with the same switches sees the same fault sequence.

Request faults and the bucket (decided per fault, see ``RequestFault.runs_query``):

=================  ======================================================  =================
kind               what the client receives                                bucket points
=================  ======================================================  =================
``http_500``       500 ``{"errors": "Internal Server Error"}``             none (never ran)
``http_502``       502 HTML "Bad Gateway" page                             none (never ran)
``http_503``       503 ``{"errors": "Unavailable"}`` + ``Retry-After``      none (never ran)
``http_504``       504 HTML "Gateway Timeout" page                         none (never ran)
``http_429``       429 with ``Retry-After: <retry_after>``                  none (never ran)
``drop_connection`` headers and part of the body, then the TCP connection   charged (it ran)
                   is aborted
``slow``           the normal answer after ``slow_seconds / time_scale``   charged (it ran)
``truncated_body`` 200, a complete HTTP message whose JSON is cut short    charged (it ran)
``malformed_body`` 200, ``Content-Type: application/json``, an HTML body    charged (it ran)
=================  ======================================================  =================

Bulk and download faults are deterministic switches with an optional budget of occurrences
(``bulk_fail_count``, ``download_cut_count``) so that a retry can succeed. ``bulk_order`` changes
the order of every export's root rows (:mod:`shopsync.simulator.bulk_rows`).

Hostile answers (issue 10; ``HOSTILE_MODES``: ``redirect``, ``cursor``, ``bad_data``,
``retry_status``, ``throttle_status``, ``huge_body``, ``bulk_bad_line``) are deterministic too:
each fires on every applicable request, or only the next ``<mode>_count`` ones, and only for
GraphQL requests whose operation or root field is ``<mode>_match`` when that is set. What each
one answers is :mod:`shopsync.simulator.hostile`; :meth:`Faults.take` decides and counts.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from shopsync.errors import ConfigError
from shopsync.simulator.config import BULK_FAILURES, HOSTILE_MODES, FaultConfig

#: Request faults in the order the dice walk them (one roll per request, cumulative rates).
REQUEST_FAULTS: tuple[str, ...] = (
    "http_500",
    "http_502",
    "http_503",
    "http_504",
    "http_429",
    "drop_connection",
    "slow",
    "truncated_body",
    "malformed_body",
)

_STATUS = {"http_500": 500, "http_502": 502, "http_503": 503, "http_504": 504, "http_429": 429}


@dataclass(frozen=True, kw_only=True)
class RequestFault:
    """One fault chosen for one GraphQL request."""

    kind: str

    @property
    def status(self) -> int | None:
        """The HTTP status answered instead of the query, or ``None`` for faults that let it run."""
        return _STATUS.get(self.kind)

    @property
    def runs_query(self) -> bool:
        """Whether the query executes (and is charged) before the fault shows."""
        return self.kind not in _STATUS


@dataclass(frozen=True, kw_only=True)
class BulkFailure:
    """A bulk operation that will fail with ``error_code`` after ``after`` of its objects."""

    error_code: str
    after: float


class Faults:
    """The live fault switches of one shop.

    Change them with :meth:`set` (``faults.set(http_503=0.3)``), temporarily with
    :meth:`override` (a context manager), or clear them with :meth:`reset`. ``injected`` counts
    each fault actually applied, by kind (``http_503``, ``bulk_fail``, ``download_cut`` …).
    """

    def __init__(self, config: FaultConfig, *, seed: int | str) -> None:
        self._initial = config
        self._settings = config
        self._rng = random.Random(f"faults:{seed}")
        self.injected: Counter[str] = Counter()
        self._bulk_fail_left = config.bulk_fail_count
        self._download_cut_left = config.download_cut_count
        self._hostile_left: dict[str, int | None] = {m: getattr(config, f"{m}_count") for m in HOSTILE_MODES}

    @property
    def settings(self) -> FaultConfig:
        return self._settings

    def set(self, **changes: Any) -> None:
        """Change switches by :class:`FaultConfig` field name; unknown names raise ``ConfigError``."""
        valid = {f.name for f in dataclasses.fields(FaultConfig)}
        unknown = sorted(set(changes) - valid)
        if unknown:
            raise ConfigError(f"simulator faults: unknown switch(es) {', '.join(unknown)} (known: {', '.join(sorted(valid))})")
        if changes.get("bulk_fail") not in (None, *BULK_FAILURES):
            raise ConfigError(f"simulator faults: bulk_fail must be one of {', '.join(BULK_FAILURES)}")
        for name, value in changes.items():
            if isinstance(value, float | int) and not isinstance(value, bool) and value < 0:
                raise ConfigError(f"simulator faults: {name} must not be negative")
            if isinstance(value, list):  # from the JSON control endpoint
                changes[name] = tuple(value)
        self._settings = dataclasses.replace(self._settings, **changes)  # FaultConfig checks the values
        # A new count (or a new kind of failure) starts a fresh budget of occurrences.
        if "bulk_fail_count" in changes or "bulk_fail" in changes:
            self._bulk_fail_left = self._settings.bulk_fail_count
        if "download_cut_count" in changes or "download_cut" in changes:
            self._download_cut_left = self._settings.download_cut_count
        for mode in HOSTILE_MODES:
            if mode in changes or f"{mode}_count" in changes:
                self._hostile_left[mode] = getattr(self._settings, f"{mode}_count")

    def reset(self) -> None:
        """Back to no faults at all (not to the configured ones)."""
        self._settings = FaultConfig(seed=self._initial.seed)
        self._bulk_fail_left = None
        self._download_cut_left = None
        self._hostile_left = dict.fromkeys(HOSTILE_MODES)

    @contextmanager
    def override(self, **changes: Any) -> Iterator[Faults]:
        """``with shop.faults.override(http_503=1.0): …`` — switches restored on exit."""
        saved = (self._settings, self._bulk_fail_left, self._download_cut_left, dict(self._hostile_left))
        self.set(**changes)
        try:
            yield self
        finally:
            self._settings, self._bulk_fail_left, self._download_cut_left, self._hostile_left = saved

    # -- decisions (each applied decision is counted) ---------------------------------------
    def roll_request(self) -> RequestFault | None:
        """Draw the fault for one GraphQL request (``None``: answer normally)."""
        s = self._settings
        rates = [(kind, getattr(s, kind)) for kind in REQUEST_FAULTS]
        if not any(rate for _, rate in rates):
            return None  # no dice thrown: a fault-free run does not shift the sequence
        u = self._rng.random()
        for kind, rate in rates:
            if u < rate:
                self.injected[kind] += 1
                return RequestFault(kind=kind)
            u -= rate
        return None

    def take_bulk_failure(self) -> BulkFailure | None:
        """Whether the bulk operation being started will fail (uses one of ``bulk_fail_count``)."""
        s = self._settings
        if s.bulk_fail is None or self._bulk_fail_left == 0:
            return None
        if self._bulk_fail_left is not None:
            self._bulk_fail_left -= 1
        self.injected["bulk_fail"] += 1
        return BulkFailure(error_code=s.bulk_fail, after=min(max(s.bulk_fail_after, 0.0), 1.0))

    def take_download_cut(self) -> float | None:
        """For one download: the fraction of the remaining bytes to send before cutting, or ``None``."""
        s = self._settings
        if s.download_cut <= 0 or self._download_cut_left == 0:
            return None
        if self._rng.random() >= s.download_cut:
            return None
        if self._download_cut_left is not None:
            self._download_cut_left -= 1
        self.injected["download_cut"] += 1
        return min(max(s.download_cut_at, 0.0), 1.0)

    def take(
        self,
        mode: str,
        names: Callable[[], frozenset[str]] | None = None,
        *,
        applies: Callable[[Any], bool] | None = None,
    ) -> Any:
        """The value of hostile switch ``mode`` if it fires now (uses one of ``<mode>_count``), else ``None``.

        ``names`` gives the request's operation and root field names, checked against
        ``<mode>_match`` (a request without names never matches); ``applies`` says whether the
        answer at hand can carry the fault (an answer without a connection cannot repeat a cursor),
        so an inapplicable answer neither fires nor uses the budget.
        """
        value = getattr(self._settings, mode)
        if not value or self._hostile_left[mode] == 0:
            return None
        match = getattr(self._settings, f"{mode}_match", None)
        if match is not None and (names is None or match not in names()):
            return None
        if applies is not None and not applies(value):
            return None
        left = self._hostile_left[mode]
        if left is not None:
            self._hostile_left[mode] = left - 1
        self.injected[mode] += 1
        return value

    def delay_for_slow(self, time_scale: float) -> float:
        return self._settings.slow_seconds / time_scale

    def __repr__(self) -> str:
        quiet = ("retry_after", "slow_seconds", "bulk_fail_after", "download_cut_at", "seed", "redirect_on", "throttle_status_fields")
        active = {k: v for k, v in dataclasses.asdict(self._settings).items() if v and k not in quiet and (k, v) != ("bulk_order", "sorted")}
        return f"Faults({active})"
