"""The StateStore contract, run against every storage backend in conftest.STORAGE_BACKENDS."""

from __future__ import annotations

import asyncio

import pytest

from shopsync.errors import StorageError
from shopsync.state import BulkOperationRecord, Deletion, Record, StreamState, WriteResult
from shopsync.state.open import Storage

from .conftest import StorageFactory


def rec(i: int, ts: str = "2026-01-01T00:00:00Z", *, shop: str = "acme", resource: str = "orders") -> Record:
    gid = f"gid://shopify/Order/{i}"
    return Record(
        shop=shop, resource=resource, id=gid, updated_at=ts, data={"id": gid, "updatedAt": ts, "n": i}
    )


FULL_STATE = StreamState(
    shop="acme",
    resource="orders",
    watermark="2026-01-01T00:00:00Z",
    window_start="2026-01-01T00:00:00Z",
    window_end="2026-01-02T00:00:00Z",
    path="paginated",
    cursor="eyJsYXN0X2lkIjo0Mn0=",
    bulk_operation_id="gid://shopify/BulkOperation/7",
    records_in_window=250,
    last_success_at="2026-01-01T00:00:05Z",
    last_error="HTTP 503 from acme",
    last_error_at="2026-01-01T00:01:00Z",
    parked_until="2026-01-01T01:00:00Z",
    parked_reason="402 Payment Required",
    updated_at="2026-01-01T00:01:00Z",
)

FULL_BULK = BulkOperationRecord(
    id="gid://shopify/BulkOperation/7",
    shop="acme",
    resource="orders",
    window_start=None,
    window_end="2026-01-02T00:00:00Z",
    status="COMPLETED",
    error_code=None,
    created_at="2026-01-01T00:00:00Z",
    completed_at="2026-01-01T00:10:00Z",
    object_count=1200,
    root_object_count=300,
    file_size=123456,
    url="https://storage.example/result.jsonl?X-Goog-Signature=secret",
    partial_data_url=None,
    bytes_downloaded=65536,
    lines_processed=600,
    records_written=150,
    finished=False,
    updated_at="2026-01-01T00:11:00Z",
)


async def test_unknown_stream_is_none(store: Storage) -> None:
    assert await store.state.get_stream("acme", "orders") is None
    assert await store.state.list_streams() == []


async def test_save_and_get_round_trips_every_field(store: Storage) -> None:
    await store.state.save_stream(FULL_STATE)
    assert await store.state.get_stream("acme", "orders") == FULL_STATE
    assert await store.state.get_stream("acme", "products") is None
    assert await store.state.get_stream("other", "orders") is None


async def test_save_replaces_and_list_is_ordered(store: Storage) -> None:
    await store.state.save_stream(StreamState(shop="b", resource="orders", cursor="x"))
    await store.state.save_stream(StreamState(shop="a", resource="products"))
    await store.state.save_stream(StreamState(shop="a", resource="orders"))
    await store.state.save_stream(StreamState(shop="b", resource="orders", cursor="y"))
    streams = await store.state.list_streams()
    assert [(s.shop, s.resource) for s in streams] == [("a", "orders"), ("a", "products"), ("b", "orders")]
    assert streams[2].cursor == "y"


async def test_state_survives_reopen(open_store: StorageFactory) -> None:
    store = await open_store()
    await store.state.save_stream(FULL_STATE)
    await store.state.save_bulk_operation(FULL_BULK)
    await store.close()
    again = await open_store()
    assert await again.state.get_stream("acme", "orders") == FULL_STATE
    assert await again.state.get_bulk_operation("acme", FULL_BULK.id) == FULL_BULK


async def test_bulk_operation_round_trip_and_listing(store: Storage) -> None:
    assert await store.state.get_bulk_operation("acme", FULL_BULK.id) is None
    await store.state.save_bulk_operation(FULL_BULK)
    got = await store.state.get_bulk_operation("acme", FULL_BULK.id)
    assert got == FULL_BULK
    assert got is not None and got.url == FULL_BULK.url and got.finished is False

    other = FULL_BULK.replace(
        id="gid://shopify/BulkOperation/8", resource="products", created_at="2026-01-01T00:00:01Z"
    )
    done = FULL_BULK.replace(
        id="gid://shopify/BulkOperation/9", finished=True, created_at="2026-01-01T00:00:02Z"
    )
    elsewhere = FULL_BULK.replace(
        id="gid://shopify/BulkOperation/10", shop="zeta", created_at="2026-01-01T00:00:03Z"
    )
    for r in (other, done, elsewhere):
        await store.state.save_bulk_operation(r)

    unfinished = await store.state.list_bulk_operations()
    assert [r.id for r in unfinished] == [FULL_BULK.id, other.id, elsewhere.id]  # by created_at
    assert [r.id for r in await store.state.list_bulk_operations(shop="acme")] == [FULL_BULK.id, other.id]
    assert [r.id for r in await store.state.list_bulk_operations(shop="acme", resource="orders")] == [
        FULL_BULK.id
    ]
    every = await store.state.list_bulk_operations(shop="acme", resource="orders", unfinished_only=False)
    assert [r.id for r in every] == [FULL_BULK.id, done.id]

    await store.state.save_bulk_operation(FULL_BULK.mark_finished("2026-01-01T00:20:00Z"))
    assert FULL_BULK.id not in [r.id for r in await store.state.list_bulk_operations()]


async def test_bulk_operations_of_two_shops_with_one_id_are_kept_apart(store: Storage) -> None:
    """Shopify numbers bulk operations per shop: ``…/BulkOperation/7`` of one shop is not another's."""
    acme = FULL_BULK
    zeta = FULL_BULK.replace(shop="zeta", resource="products", status="RUNNING", object_count=5, url=None)
    await store.state.save_bulk_operation(acme)
    await store.state.save_bulk_operation(zeta)
    assert await store.state.get_bulk_operation("acme", acme.id) == acme
    assert await store.state.get_bulk_operation("zeta", acme.id) == zeta
    assert await store.state.get_bulk_operation("other", acme.id) is None

    # Updating or finishing one shop's operation leaves the other's as it was.
    await store.state.save_bulk_operation(zeta.with_progress(lines_processed=3, records_written=2))
    state = StreamState(shop="acme", resource="orders", bulk_operation_id=acme.id, path="bulk")
    await store.state.commit(state, [rec(1)], bulk=acme.mark_finished("2026-01-01T00:20:00Z"))
    assert await store.state.get_bulk_operation("zeta", acme.id) == zeta.with_progress(
        lines_processed=3, records_written=2
    )
    got = await store.state.get_bulk_operation("acme", acme.id)
    assert got is not None and got.finished and got.shop == "acme"
    unfinished = await store.state.list_bulk_operations()
    assert [(r.shop, r.id) for r in unfinished] == [("zeta", acme.id)]
    every = await store.state.list_bulk_operations(unfinished_only=False)
    assert sorted((r.shop, r.id) for r in every) == [("acme", acme.id), ("zeta", acme.id)]


async def test_commit_writes_records_then_state(store: Storage) -> None:
    state = StreamState(shop="acme", resource="orders").with_window(None, "2026-01-02T00:00:00Z", "paginated")
    result = await store.state.commit(state.with_page("c1", 3), [rec(1), rec(2), rec(3)])
    assert result == WriteResult(written=3, skipped=0, deleted=0)
    saved = await store.state.get_stream("acme", "orders")
    assert saved is not None and saved.cursor == "c1" and saved.records_in_window == 3
    rows = await store.sink.read_latest("acme", "orders")
    assert sorted(rows) == [f"gid://shopify/Order/{i}" for i in (1, 2, 3)]


async def test_commit_with_deletions_and_bulk_record(store: Storage) -> None:
    await store.state.commit(StreamState(shop="acme", resource="orders"), [rec(1)])
    bulk = FULL_BULK.with_progress(lines_processed=10, records_written=1)
    state = StreamState(
        shop="acme",
        resource="orders",
        bulk_operation_id=bulk.id,
        path="bulk",
        window_end="2026-01-02T00:00:00Z",
    )
    deletion = Deletion(
        shop="acme", resource="orders", id="gid://shopify/Order/1", deleted_at="2026-01-01T05:00:00Z"
    )
    result = await store.state.commit(state, [], [deletion], bulk=bulk)
    assert result.deleted == 1
    assert await store.state.get_bulk_operation("acme", bulk.id) == bulk
    assert (await store.state.get_stream("acme", "orders")) == state
    row = (await store.sink.read_latest("acme", "orders"))["gid://shopify/Order/1"]
    assert row.deleted_at == "2026-01-01T05:00:00Z"


async def test_commit_without_records_only_saves_state(store: Storage) -> None:
    state = StreamState(shop="acme", resource="orders").completed(
        "2026-01-02T00:00:00Z", "2026-01-02T00:00:03Z"
    )
    assert await store.state.commit(state) == WriteResult()
    assert await store.state.get_stream("acme", "orders") == state


async def test_failed_sink_write_leaves_state_unchanged(
    store: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = StreamState(shop="acme", resource="orders", cursor="c1", records_in_window=1)
    await store.state.commit(before, [rec(1)])

    def boom(*args: object, **kwargs: object) -> None:
        raise StorageError("injected sink failure")

    # Whatever the wiring (one transaction or sink first), the sink's part fails.
    monkeypatch.setattr(store.sink, "write", boom)
    if hasattr(store.sink, "write_in"):
        monkeypatch.setattr(store.sink, "write_in", boom)
    with pytest.raises(StorageError, match="injected"):
        await store.state.commit(before.with_page("c2", 1), [rec(2)])
    assert await store.state.get_stream("acme", "orders") == before
    assert "gid://shopify/Order/2" not in await store.sink.read_latest("acme", "orders")


async def test_streams_are_independent_under_concurrent_commits(store: Storage) -> None:
    async def run(shop: str, resource: str) -> None:
        state = StreamState(shop=shop, resource=resource)
        for page in range(5):
            state = state.with_page(f"{shop}-{resource}-{page}", 2)
            await store.state.commit(
                state, [rec(page * 2 + k, shop=shop, resource=resource) for k in range(2)]
            )

    pairs = [(s, r) for s in ("a", "b", "c") for r in ("orders", "products")]
    await asyncio.gather(*(run(s, r) for s, r in pairs))
    for shop, resource in pairs:
        state = await store.state.get_stream(shop, resource)
        assert state is not None and state.cursor == f"{shop}-{resource}-4" and state.records_in_window == 10
        assert len(await store.sink.read_latest(shop, resource)) == 10


async def test_commit_after_close_raises_storage_error(open_store: StorageFactory) -> None:
    store = await open_store()
    await store.close()
    with pytest.raises(StorageError, match="not open"):
        await store.state.save_stream(StreamState(shop="acme", resource="orders"))


@pytest.mark.parametrize("yields_before_cancel", [0, 1, 2, 3, 5, 8])
async def test_cancelled_commit_is_settled_all_or_nothing(store: Storage, yields_before_cancel: int) -> None:
    """Whenever the cancellation lands, once it reaches the caller the commit is either entirely
    there or (for the state) not at all, and the checkpoint never covers missing rows."""
    before = StreamState(shop="acme", resource="orders", cursor="c0")
    await store.state.commit(before, [rec(0)])
    after = before.with_page("c1", 3)
    task = asyncio.create_task(store.state.commit(after, [rec(1), rec(2), rec(3)]))
    for _ in range(yields_before_cancel):
        await asyncio.sleep(0)  # a scheduling point, to move where the cancel lands; no waiting
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    state = await store.state.get_stream("acme", "orders")
    rows = await store.sink.read_latest("acme", "orders")
    new_rows = {f"gid://shopify/Order/{i}" for i in (1, 2, 3)}
    assert state in (before, after)
    if state == after:
        assert new_rows <= rows.keys()
    elif store.shared_transaction:
        assert not new_rows & rows.keys()


async def test_implements_the_protocols(store: Storage) -> None:
    from shopsync.state.sink import Sink
    from shopsync.state.store import StateStore

    assert isinstance(store.state, StateStore)
    assert isinstance(store.sink, Sink)
