"""What the test folders share: clocks, simulated-shop presets, a shopsync.toml writer, readers
of the SQLite sink and state, and pieces of Shopify answers.

Import from here (``from tests.support import FakeClock``); the daemon's helpers (a daemon child
process, its hooks, an sd_notify socket, HTTP polling) are in :mod:`tests.support.daemon`.
"""

from tests.support.clocks import AutoTime, FakeClock, OffsetClock
from tests.support.config import toml_value, write_shopsync_toml
from tests.support.shopify import cost_extension
from tests.support.simulator import build_config, sim_config, small_config, small_shop
from tests.support.sinks import (
    ALL_RESOURCES,
    assert_matches_truth,
    bulk_operations,
    diff_records,
    read_only,
    sink_rows,
    stream_states,
)

__all__ = [
    "ALL_RESOURCES",
    "AutoTime",
    "FakeClock",
    "OffsetClock",
    "assert_matches_truth",
    "build_config",
    "bulk_operations",
    "cost_extension",
    "diff_records",
    "read_only",
    "sim_config",
    "sink_rows",
    "small_config",
    "small_shop",
    "stream_states",
    "toml_value",
    "write_shopsync_toml",
]
