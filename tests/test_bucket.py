"""shopsync.shopify.bucket: leaky-bucket arithmetic (the caller passes the time)."""

from __future__ import annotations

import math

import pytest

from shopsync.shopify.bucket import LeakyBucket


def test_full_bucket_and_refill_capped_at_capacity():
    b = LeakyBucket.full(capacity=1000, rate=50, now=10.0)
    assert b.level(10.0) == 1000
    b.take(600, now=10.0)
    assert b.level(10.0) == 400
    assert b.level(14.0) == 600  # 4 s × 50
    assert b.level(100.0) == 1000  # never above capacity
    assert b.available == 400  # level() does not change the bucket


def test_try_take_changes_nothing_when_short():
    b = LeakyBucket(capacity=1000, rate=50, available=100, updated=0.0)
    assert not b.try_take(200, now=1.0)  # 150 available
    assert b.level(1.0) == 150
    assert b.try_take(150, now=1.0)
    assert b.level(1.0) == 0


def test_take_may_go_negative_and_the_debt_is_repaid_by_refill():
    b = LeakyBucket(capacity=1000, rate=100, available=50, updated=0.0)
    b.take(250, now=0.0)
    assert b.available == -200
    assert b.level(2.0) == 0
    assert b.level(3.0) == 100


def test_give_back_refunds_never_above_capacity():
    b = LeakyBucket(capacity=1000, rate=50, available=900, updated=0.0)
    b.give_back(300, now=0.0)
    assert b.available == 1000
    b.take(752, now=0.0)
    b.give_back(700, now=0.0)  # requested 752, actual 52
    assert b.available == pytest.approx(948)


def test_wait_time():
    b = LeakyBucket(capacity=1000, rate=50, available=200, updated=0.0)
    assert b.wait_time(150, now=0.0) == 0.0
    assert b.wait_time(700, now=0.0) == pytest.approx(10.0)  # (700 - 200) / 50
    assert b.wait_time(700, now=4.0) == pytest.approx(6.0)
    assert math.isinf(b.wait_time(1001, now=0.0))  # more than the bucket can ever hold
    assert math.isinf(LeakyBucket(capacity=10, rate=0, available=0, updated=0).wait_time(5, now=0))


def test_time_going_backwards_does_not_drain_or_rewind():
    b = LeakyBucket(capacity=1000, rate=50, available=500, updated=10.0)
    assert b.level(5.0) == 500
    b.refill(5.0)
    assert (b.available, b.updated) == (500, 10.0)
    b.refill(12.0)
    assert (b.available, b.updated) == (600, 12.0)
