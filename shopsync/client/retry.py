"""What to do after a failed request (pure: the caller sleeps, shrinks, parks or gives up).

The decision depends only on the error's class (see :mod:`shopsync.errors`) and the attempt
number, so the whole policy is testable without a network or a clock:

==========================  ===============  ================================================
error                        action           delay
==========================  ===============  ================================================
TransientError               ``retry``        ``retry_after`` (429, capped at ``cap``) or
                                              full-jitter backoff; ``fail`` once
                                              ``max_attempts`` is used up
ThrottledError               ``wait_budget``  ``(requested − available) / restore_rate``, or 1 s
QueryTooCostlyError          ``shrink``       none: resend smaller, never as is
ShopUnavailableError         ``park``         none: the daemon's park backoff applies
anything else                ``fail``         none
==========================  ===============  ================================================
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal, Protocol

from shopsync.errors import (
    QueryTooCostlyError,
    ShopsyncError,
    ShopUnavailableError,
    ThrottledError,
    TransientError,
)

Action = Literal["retry", "wait_budget", "shrink", "park", "fail"]

#: Shopify's advice after a throttle when the deficit cannot be computed (shopify-api-facts §2).
DEFAULT_THROTTLE_WAIT = 1.0
#: Never re-send a throttled query sooner than this, even if the arithmetic says 0 (the bucket
#: model and Shopify disagreed, so give it a moment).
MIN_THROTTLE_WAIT = 0.1


@dataclass(frozen=True)
class RetryDecision:
    action: Action
    delay: float | None
    reason: str


class BackoffSettings(Protocol):
    """The retry figures of the settings (:class:`shopsync.settings.SyncConfig` has them)."""

    @property
    def max_attempts(self) -> int: ...

    @property
    def backoff_base(self) -> timedelta: ...

    @property
    def backoff_cap(self) -> timedelta: ...


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt *n* waits ``uniform(0, min(cap, base·2ⁿ⁻¹))``.

    ``attempt`` counts the attempts made so far (1 after the first failure). ``rng`` is injectable
    so tests are deterministic.
    """

    max_attempts: int = 8
    base: float = 0.5
    cap: float = 60.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base <= 0 or self.cap < self.base:
            raise ValueError("backoff needs 0 < base <= cap")

    @classmethod
    def from_settings(cls, sync: BackoffSettings, rng: random.Random | None = None) -> RetryPolicy:
        """From :class:`shopsync.settings.SyncConfig` (``max_attempts``, ``backoff_base``, ``backoff_cap``)."""
        return cls(
            max_attempts=sync.max_attempts,
            base=sync.backoff_base.total_seconds(),
            cap=sync.backoff_cap.total_seconds(),
            rng=rng or random.Random(),  # noqa: S311 -- backoff jitter, not a secret
        )

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (≥ 1)."""
        ceiling = min(self.cap, self.base * 2 ** max(0, attempt - 1))
        return self.rng.uniform(0.0, ceiling)

    def decide(self, error: BaseException, attempt: int) -> RetryDecision:
        """The action after ``error`` ended attempt number ``attempt``."""
        if isinstance(error, TransientError):
            if attempt >= self.max_attempts:
                return RetryDecision("fail", None, f"{error.reason}: gave up after {attempt} attempts")
            if error.retry_after is not None and math.isfinite(error.retry_after) and error.retry_after >= 0:
                # Honoured, but never longer than the backoff cap: a hostile or broken answer
                # asking for a day must not stall the shop for a day (the attempts still count).
                delay = min(error.retry_after, self.cap)
                capped = f", capped at {self.cap:g}s" if delay < error.retry_after else ""
                return RetryDecision("retry", delay, f"{error.reason}: server asked to retry after {error.retry_after:g}s{capped}")
            return RetryDecision("retry", self.backoff(attempt), f"{error.reason}: attempt {attempt}/{self.max_attempts}")
        if isinstance(error, ThrottledError):
            return RetryDecision("wait_budget", throttle_wait(error), "throttled")
        if isinstance(error, QueryTooCostlyError):
            return RetryDecision("shrink", None, f"query cost {error.cost:g} over the limit {error.max_cost:g}")
        if isinstance(error, ShopUnavailableError):
            scope = "resource" if error.resource_only else "shop"
            return RetryDecision("park", None, f"{scope} unavailable (HTTP {error.status}): {error.reason}")
        if isinstance(error, ShopsyncError):
            return RetryDecision("fail", None, f"{type(error).__name__}: {error}")
        return RetryDecision("fail", None, f"unexpected {type(error).__name__}: {error}")


def throttle_wait(error: ThrottledError) -> float:
    """Seconds until the bucket holds the requested cost, from Shopify's ``throttleStatus``."""
    if error.available is None or not error.restore_rate or error.restore_rate <= 0:
        return DEFAULT_THROTTLE_WAIT
    return max(MIN_THROTTLE_WAIT, (error.requested - error.available) / error.restore_rate)


__all__ = ["Action", "RetryDecision", "RetryPolicy", "throttle_wait"]
