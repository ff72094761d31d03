"""The Sink contract, run against every sink in conftest.SINK_BACKENDS."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from shopsync.errors import StorageError
from shopsync.state import Deletion, Record
from shopsync.state.models import RecordTexts, SinkRow
from shopsync.state.open import make_sink
from shopsync.state.sink import Sink

from .conftest import KEYED_SINKS, SINK_BACKENDS, SinkFactory

GID = "gid://shopify/Order/1"
T1, T2, T3 = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"


def rec(
    ts: str | None, *, gid: str = GID, shop: str = "acme", resource: str = "orders", **extra: object
) -> Record:
    return Record(
        shop=shop, resource=resource, id=gid, updated_at=ts, data={"id": gid, "updatedAt": ts, **extra}
    )


def dele(ts: str, *, gid: str = GID) -> Deletion:
    return Deletion(shop="acme", resource="orders", id=gid, deleted_at=ts)


def _data(row: SinkRow) -> bytes:
    assert row.data is not None
    return row.data


async def latest_data(sink: Sink, gid: str = GID) -> dict | None:
    row = (await sink.read_latest("acme", "orders")).get(gid)
    return None if row is None or row.data is None else orjson.loads(row.data)


async def test_write_then_read_back_sorted_json(sink: Sink) -> None:
    result = await sink.write([rec(T1, z=1, a={"y": 2, "b": 3})])
    assert result.written == 1
    row = (await sink.read_latest("acme", "orders"))[GID]
    # Sorted keys at every level, compact: the bulk and paginated paths produce identical text.
    assert (
        row.data
        == b'{"a":{"b":3,"y":2},"id":"gid://shopify/Order/1","updatedAt":"2026-01-01T00:00:00Z","z":1}'
    )
    assert row.updated_at == T1 and row.deleted_at is None


async def test_pre_serialised_text_is_written_verbatim(sink: Sink) -> None:
    text = b'{"id":"gid://shopify/Order/1","x":[1,2]}'
    await sink.write([Record(shop="acme", resource="orders", id=GID, updated_at=T1, text=text)])
    assert (await sink.read_latest("acme", "orders"))[GID].data == text


async def test_newer_and_equal_win_older_replay_does_not(sink: Sink, sink_backend: str) -> None:
    await sink.write([rec(T2, v="t2")])
    newer = await sink.write([rec(T3, v="t3")])
    assert newer.written == 1 and newer.skipped == 0
    assert await latest_data(sink) == {"id": GID, "updatedAt": T3, "v": "t3"}

    older = await sink.write([rec(T1, v="t1"), rec(T2, v="t2")])
    assert await latest_data(sink) == {"id": GID, "updatedAt": T3, "v": "t3"}
    if sink_backend in KEYED_SINKS:
        assert older.written == 0 and older.skipped == 2

    equal = await sink.write([rec(T3, v="t3-again")])
    assert equal.written == 1 and equal.skipped == 0
    assert await latest_data(sink) == {"id": GID, "updatedAt": T3, "v": "t3-again"}


async def test_an_identical_replay_is_not_rewritten(sink: Sink, sink_backend: str) -> None:
    # The overlap of incremental windows reads most changes two or three times: a keyed sink writes
    # a version once and skips its identical replays (same updated_at, same bytes), so the row's
    # synced_at says when it last changed, not when it was last read.
    first = await sink.write([rec(T2, v="t2"), rec(None, gid="gid://shopify/Order/2", v=1)])
    assert first.written == 2
    again = await sink.write([rec(T2, v="t2"), rec(None, gid="gid://shopify/Order/2", v=1)])
    if sink_backend in KEYED_SINKS:
        assert again.written == 0 and again.skipped == 2
    assert await latest_data(sink) == {"id": GID, "updatedAt": T2, "v": "t2"}
    changed = await sink.write([rec(T2, v="t2-changed"), rec(None, gid="gid://shopify/Order/2", v=2)])
    assert changed.written == 2 and changed.skipped == 0
    assert await latest_data(sink) == {"id": GID, "updatedAt": T2, "v": "t2-changed"}


async def test_records_without_updated_at_always_replace(sink: Sink) -> None:
    await sink.write([rec(None, v=1)])
    await sink.write([rec(None, v=2)])
    assert await latest_data(sink) == {"id": GID, "updatedAt": None, "v": 2}


async def test_deletion_marks_and_keeps_data(sink: Sink) -> None:
    await sink.write([rec(T1, v=1)])
    result = await sink.write([], [dele(T2)])
    assert result.deleted == 1
    row = (await sink.read_latest("acme", "orders"))[GID]
    assert row.deleted_at == T2
    assert row.data is not None and orjson.loads(row.data)["v"] == 1


async def test_replay_of_pre_deletion_version_stays_deleted(sink: Sink) -> None:
    await sink.write([rec(T1, v=1)])
    await sink.write([], [dele(T2)])
    await sink.write([rec(T1, v=1)])  # an old page read again after the deletion
    row = (await sink.read_latest("acme", "orders"))[GID]
    assert row.deleted_at == T2


async def test_version_newer_than_deletion_revives(sink: Sink) -> None:
    await sink.write([rec(T1, v=1)], [dele(T2)])
    await sink.write([rec(T3, v=3)])
    row = (await sink.read_latest("acme", "orders"))[GID]
    assert row.deleted_at is None and row.updated_at == T3


async def test_deletion_of_unseen_record_is_a_tombstone(sink: Sink) -> None:
    await sink.write([], [dele(T2)])
    row = (await sink.read_latest("acme", "orders"))[GID]
    assert row.deleted_at == T2 and row.data is None
    await sink.write([rec(T1, v=1)])  # the record shows up later from an older window
    row = (await sink.read_latest("acme", "orders"))[GID]
    assert row.deleted_at == T2
    assert row.updated_at == T1 and row.data is not None and orjson.loads(row.data)["v"] == 1  # data kept


async def test_deletion_older_than_stored_version_is_ignored(sink: Sink, sink_backend: str) -> None:
    await sink.write([rec(T3, v=3)])
    result = await sink.write([], [dele(T1)])
    assert (await sink.read_latest("acme", "orders"))[GID].deleted_at is None
    if sink_backend in KEYED_SINKS:
        assert result.deleted == 0 and result.skipped == 1


async def test_shops_and_resources_are_separate(sink: Sink) -> None:
    await sink.write(
        [
            rec(T1, shop="acme", v="acme"),
            rec(T1, shop="zeta", v="zeta"),
            rec(T1, resource="products", v="product"),
        ]
    )
    assert orjson.loads(_data((await sink.read_latest("acme", "orders"))[GID]))["v"] == "acme"
    assert orjson.loads(_data((await sink.read_latest("zeta", "orders"))[GID]))["v"] == "zeta"
    assert orjson.loads(_data((await sink.read_latest("acme", "products"))[GID]))["v"] == "product"
    assert await sink.read_latest("acme", "customers") == {}
    stats = await sink.stats("acme", "orders")
    assert stats.records == 1 or stats.bytes


async def test_data_survives_reopen(open_sink_again: SinkFactory) -> None:
    sink = await open_sink_again()
    await sink.write([rec(T1, gid=f"gid://shopify/Order/{i}") for i in range(50)])
    await sink.close()
    again = await open_sink_again()
    assert len(await again.read_latest("acme", "orders")) == 50


@pytest.mark.parametrize("bad", ["Orders", "1orders", "orders;drop", 'ord"ers', "stream_state", "meta", ""])
async def test_invalid_resource_names_are_refused(sink: Sink, bad: str) -> None:
    with pytest.raises(ValueError, match="invalid resource name"):
        await sink.write([rec(T1, resource=bad)])


@pytest.mark.parametrize("sink_backend", ["sqlite", "jsonl"])  # the file sinks
async def test_unwritable_path_raises_storage_error_naming_it(sink_backend: str, tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    url = SINK_BACKENDS[sink_backend].replace(":", ":file.txt/sub/", 1)
    sink = make_sink(url, base_dir=tmp_path)
    with pytest.raises(StorageError, match=str(blocker)):
        await sink.open()


async def test_write_on_closed_sink_raises(open_sink_again: SinkFactory) -> None:
    sink = await open_sink_again()
    await sink.close()
    with pytest.raises(StorageError, match="not open"):
        await sink.write([rec(T1)])


def text_batch(shop: str, rows: list[tuple[str, str | None, bytes]]) -> RecordTexts:
    ids, updated, texts = (list(column) for column in zip(*rows, strict=True))
    return RecordTexts(shop, "orders", ids, updated, texts)


async def test_a_batch_in_columns_writes_what_its_records_would(sink: Sink) -> None:
    """A reassembled file's batch (RecordTexts, bound as columns) leaves the rows, counts and
    normalised timestamps that the same records one by one leave."""
    rows = [
        (f"gid://shopify/Order/{i}", ts, b'{"id":"gid://shopify/Order/%d","v":%d}' % (i, i))
        for i, ts in enumerate([T1, "2026-01-02T01:00:00.250+01:00", None, T3])
    ]
    as_columns = await sink.write(text_batch("acme", rows))
    as_records = await sink.write([Record(shop="zeta", resource="orders", id=g, updated_at=u, text=t) for g, u, t in rows])
    assert as_columns == as_records and as_columns.written == 4
    acme, zeta = await sink.read_latest("acme", "orders"), await sink.read_latest("zeta", "orders")
    assert acme == zeta and acme["gid://shopify/Order/1"].updated_at == "2026-01-02T00:00:00Z"
    assert [acme[g].data for g, _u, _t in rows] == [t for _g, _u, t in rows]


async def test_a_batch_in_columns_holding_an_id_twice_keeps_the_newer(sink: Sink) -> None:
    newer, older = b'{"id":"gid://shopify/Order/1","v":"t2"}', b'{"id":"gid://shopify/Order/1","v":"t1"}'
    await sink.write(text_batch("acme", [(GID, T2, newer), (GID, T1, older)]))
    assert _data((await sink.read_latest("acme", "orders"))[GID]) == newer
