"""Pure retry decisions: backoff with full jitter, and the action for each error class."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from shopsync.client.retry import DEFAULT_THROTTLE_WAIT, MIN_THROTTLE_WAIT, RetryPolicy
from shopsync.errors import (
    ConfigError,
    IntegrityError,
    QueryError,
    QueryTooCostlyError,
    ResourceUnavailableError,
    ShopUnavailableError,
    StorageError,
    ThrottledError,
    TransientError,
)


def policy(seed: int = 1, **kw) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=kw.pop("max_attempts", 5), base=0.5, cap=8.0, rng=random.Random(seed), **kw
    )


def test_backoff_is_full_jitter_under_an_exponential_capped_ceiling():
    p = policy()
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 8.0), (30, 8.0)]:
        samples = [p.backoff(attempt) for _ in range(300)]
        assert all(0.0 <= s <= ceiling for s in samples)
        assert max(samples) > 0.8 * ceiling and min(samples) < 0.2 * ceiling  # spread over [0, ceiling]


def test_backoff_is_deterministic_with_a_seeded_rng():
    assert [policy(42).backoff(a) for a in range(1, 6)] == [policy(42).backoff(a) for a in range(1, 6)]
    assert [policy(42).backoff(a) for a in range(1, 6)] != [policy(43).backoff(a) for a in range(1, 6)]


def test_transient_errors_retry_until_max_attempts():
    p = policy(max_attempts=3)
    err = TransientError("503 from shop", reason="http_503")
    d1, d2, d3 = (p.decide(err, attempt) for attempt in (1, 2, 3))
    assert (d1.action, d2.action, d3.action) == ("retry", "retry", "fail")
    assert 0 <= d1.delay <= 0.5 and 0 <= d2.delay <= 1.0 and d3.delay is None
    assert "http_503" in d1.reason and "3 attempts" in d3.reason


def test_retry_after_wins_over_backoff():
    d = policy().decide(TransientError("429", reason="http_429", retry_after=7.5), 1)
    assert (d.action, d.delay) == ("retry", 7.5)


def test_throttled_waits_for_the_deficit_at_the_restore_rate():
    p = policy()
    d = p.decide(ThrottledError("Throttled", requested=752, available=252, restore_rate=100.0), 1)
    assert (d.action, d.delay) == ("wait_budget", pytest.approx(5.0))
    unknown = p.decide(ThrottledError("Throttled", requested=752, available=None, restore_rate=None), 1)
    assert unknown.delay == DEFAULT_THROTTLE_WAIT
    already = p.decide(ThrottledError("Throttled", requested=100, available=500, restore_rate=50.0), 1)
    assert already.delay == MIN_THROTTLE_WAIT  # the model disagreed with Shopify: brief pause, not a spin
    # throttles never exhaust the attempts
    assert (
        p.decide(ThrottledError("Throttled", requested=1, available=0, restore_rate=1.0), 99).action
        == "wait_budget"
    )


def test_other_classes():
    p = policy()
    shrink = p.decide(QueryTooCostlyError("too costly", cost=1066, max_cost=1000), 1)
    assert (shrink.action, shrink.delay) == ("shrink", None) and "1066" in shrink.reason
    park = p.decide(ShopUnavailableError("locked", status=423, reason="shop is locked"), 1)
    assert park.action == "park" and "423" in park.reason and "shop" in park.reason
    scope = p.decide(
        ResourceUnavailableError("scope", status=403, reason="missing read_orders"), 1
    )
    assert scope.action == "park" and "resource" in scope.reason
    for err in (
        QueryError("bad field"),
        IntegrityError("count"),
        StorageError("disk"),
        ConfigError("x"),
        RuntimeError("?"),
    ):
        assert p.decide(err, 1).action == "fail"


def test_from_settings_and_validation():
    class Sync:
        max_attempts = 4
        backoff_base = timedelta(seconds=1)
        backoff_cap = timedelta(seconds=30)

    p = RetryPolicy.from_settings(Sync(), rng=random.Random(0))
    assert (p.max_attempts, p.base, p.cap) == (4, 1.0, 30.0)
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base=2.0, cap=1.0)
