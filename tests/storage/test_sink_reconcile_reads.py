"""The sink reads and removals reconciliation uses (``read_index``, ``purge``), on every sink."""

from __future__ import annotations

from shopsync.state.sink import Sink

from .conftest import KEYED_SINKS
from .test_sink_contract import T1, T2, T3, dele, rec

A, B, C = (f"gid://shopify/Order/{n}" for n in (1, 2, 3))


async def test_read_index_lists_ids_with_updated_at_and_deleted_at_without_data(sink: Sink) -> None:
    assert await sink.read_index("acme", "orders") == {}  # nothing written yet: no table, no file
    await sink.write([rec(T1, gid=A), rec(T2, gid=B), rec(T1, gid=C, shop="other")], [dele(T3, gid=B)])
    index = await sink.read_index("acme", "orders")
    assert set(index) == {A, B}
    assert (index[A].updated_at, index[A].deleted_at, index[A].data) == (T1, None, None)
    assert (index[B].updated_at, index[B].deleted_at, index[B].data) == (T2, T3, None)


async def test_purge_removes_rows_of_keyed_sinks_and_nothing_of_a_log(sink: Sink, sink_backend: str) -> None:
    await sink.write([rec(T1, gid=A), rec(T2, gid=B)])
    await sink.write([rec(T1, gid=A, shop="other")])
    removed = await sink.purge("acme", "orders", [A, C])
    left = set(await sink.read_index("acme", "orders"))
    if sink_backend in KEYED_SINKS:
        assert removed == 1 and left == {B}
    else:
        assert removed == 0 and left == {A, B}
    assert set(await sink.read_index("other", "orders")) == {A}
    assert await sink.purge("acme", "never_written", [A]) == 0
