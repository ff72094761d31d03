"""Simulated shops for the tests: one way to build a :class:`SimConfig` from a preset, and the
presets the test folders use (tiny for protocol tests, small for the daemon, realistic end to end)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from shopsync.simulator.config import DataConfig, FaultConfig, MutatorConfig, SimConfig


def build_config(data: DataConfig, overrides: dict[str, Any], **defaults: Any) -> SimConfig:
    """A SimConfig on the preset ``data``: ``overrides`` win over ``defaults``; an override
    ``data=`` given as a dict changes fields of the preset, ``faults=`` as a dict builds a
    :class:`FaultConfig`."""
    overrides = dict(overrides)
    if isinstance(overrides.get("data"), dict):
        overrides["data"] = replace(data, **overrides["data"])
    if isinstance(overrides.get("faults"), dict):
        overrides["faults"] = FaultConfig(**overrides["faults"])
    return SimConfig(**{"data": data, **defaults, **overrides})


def small_config(**overrides: Any) -> SimConfig:
    """A store small enough to build in milliseconds; ``data=``/``faults=`` may be dicts of changes."""
    data = DataConfig(seed=7, orders=30, products=6, customers=12, locations=2, collections=3, big_orders=0, tie_groups=0)
    return build_config(data, overrides, time_scale=100.0)


def small_shop(name: str, *, seed: int = 7, mutate: float = 0.0, **overrides: Any) -> SimConfig:
    """A small but realistic store (ties, a 300-line-item order, unicode) on a fast clock.

    Its base data ends five minutes ago, as :func:`sim_config`'s does: with the simulator's default
    anchor (the current minute) a test started in the first seconds of a minute found the records
    stamped at the anchor beyond its first window (``now − safety_margin``) and missing from it.
    """
    data = DataConfig(
        seed=seed, orders=400, products=25, customers=80, locations=2, collections=5,
        big_orders=1, big_order_line_items=300, tie_groups=1, tie_group_size=80,
        anchor=float(int(time.time()) - 300),
    )
    defaults: dict[str, Any] = {"time_scale": 50.0, "index_lag": 1.0}
    if mutate:
        defaults["mutator"] = MutatorConfig(orders_per_day=mutate, update_ratio=2.0, delete_ratio=0.05, burst_every=0.0)
    return build_config(data, overrides, shop_name=name, **defaults)


def sim_config(name: str = "sim", **overrides: Any) -> SimConfig:
    """A small realistic shop for end-to-end runs: ties, a 400-line-item order, unicode, fast clock.

    The base data ends five minutes ago: a sync's window stops ``safety_margin`` before now, and
    records stamped in the last seconds (the simulator's default anchor is the current minute)
    would legitimately wait for the next run, which would make single-run comparisons flaky.
    """
    data = DataConfig(
        anchor=float(int(time.time()) - 300),
        seed=11, orders=2_000, products=60, customers=300, locations=3, collections=8,
        big_orders=1, big_order_line_items=400, tie_groups=1, tie_group_size=300,
    )
    return build_config(data, overrides, shop_name=name, time_scale=50.0, index_lag=1.0)
