"""The state records: helpers, validation, normalisation."""

from __future__ import annotations

import orjson
import pytest

from shopsync.state import BulkOperationRecord, Deletion, Record, StreamState
from shopsync.state.models import RecordTexts, canonical_ts


def test_window_page_complete_cycle() -> None:
    s = StreamState(shop="acme", resource="orders", watermark="2026-01-01T00:00:00Z")
    s = s.with_window("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "paginated", now=1767225600.0)
    assert s.in_window and s.cursor is None and s.updated_at == "2026-01-01T00:00:00Z"
    s = s.with_page("c1", 250).with_page("c2", 100)
    assert s.cursor == "c2" and s.records_in_window == 350
    s = s.failed("HTTP 503", "2026-01-01T00:00:09Z")
    assert s.cursor == "c2" and s.last_error == "HTTP 503"  # an error keeps the place
    done = s.completed("2026-01-02T00:00:00Z", "2026-01-02T00:00:10Z")
    assert done.watermark == "2026-01-02T00:00:00Z"
    assert (done.window_start, done.window_end, done.path, done.cursor, done.records_in_window) == (
        None,
        None,
        None,
        None,
        0,
    )
    assert done.last_success_at == "2026-01-02T00:00:10Z" and done.last_error is None
    assert s.cursor == "c2"  # frozen: the original is untouched


def test_completed_without_window_end_keeps_watermark() -> None:
    s = StreamState(shop="acme", resource="locations", watermark="2026-01-01T00:00:00Z")
    assert s.completed(None, 0.0).watermark == "2026-01-01T00:00:00Z"


def test_parking() -> None:
    s = StreamState(shop="acme", resource="orders").parked(
        "2026-01-01T01:00:00Z", "402 Payment Required", 0.0
    )
    assert s.is_parked and s.parked_until == "2026-01-01T01:00:00Z"
    assert not s.unparked(0.0).is_parked


def test_stream_state_validation() -> None:
    with pytest.raises(ValueError, match="path"):
        StreamState(shop="acme", resource="orders", path="rest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        StreamState(shop="acme", resource="orders", records_in_window=-1)
    with pytest.raises(TypeError):
        StreamState("acme", "orders")  # type: ignore[call-arg]  # keyword-only


def test_bulk_record_hides_urls_from_repr() -> None:
    b = BulkOperationRecord(
        id="gid://shopify/BulkOperation/1", shop="acme", resource="orders", url="https://x/?sig=SECRET"
    )
    assert "SECRET" not in repr(b)
    assert b.url == "https://x/?sig=SECRET"
    with pytest.raises(ValueError, match="status"):
        BulkOperationRecord(id="gid://x", shop="acme", resource="orders", status="DONE")
    assert BulkOperationRecord(id="g", shop="a", resource="r", status="EXPIRED").terminal
    assert not BulkOperationRecord(id="g", shop="a", resource="r", status="RUNNING").terminal
    p = b.with_progress(bytes_downloaded=10, now=0.0).with_progress(records_written=3)
    assert (p.bytes_downloaded, p.lines_processed, p.records_written) == (10, 0, 3)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
        ("2026-01-01T01:00:00+01:00", "2026-01-01T00:00:00Z"),
        ("2026-01-01T00:00:00.999Z", "2026-01-01T00:00:00Z"),
        (None, None),
    ],
)
def test_canonical_timestamps(given: str | None, expected: str | None) -> None:
    assert canonical_ts(given) == expected


def test_record_normalises_and_serialises() -> None:
    r = Record.from_node(
        shop="acme", resource="orders", data={"updatedAt": "2026-01-01T01:00:00+01:00", "id": "g", "b": 1}
    )
    assert r.id == "g" and r.updated_at == "2026-01-01T00:00:00Z"
    assert r.json_bytes() == orjson.dumps(r.data, option=orjson.OPT_SORT_KEYS)
    assert Record(shop="a", resource="r", id="g", updated_at=None, text=b"{}").json_bytes() == b"{}"
    with pytest.raises(ValueError, match="neither"):
        Record(shop="a", resource="r", id="g", updated_at=None)
    with pytest.raises(ValueError, match="timestamp"):
        Record(shop="a", resource="r", id="g", updated_at="yesterday", data={})
    assert (
        Deletion(shop="a", resource="r", id="g", deleted_at="2026-01-01T00:00:00.5Z").deleted_at
        == "2026-01-01T00:00:00Z"
    )


def test_record_texts_are_a_sequence_of_records_with_the_same_checks() -> None:
    texts = RecordTexts("acme", "orders", ["g1", "g2", "g3"], ["2026-01-01T01:00:00+01:00", None, "2026-01-02T00:00:00Z"],
                        [b'{"a":1}', b'{"a":2}', b'{"a":3}'])  # fmt: skip
    assert texts.updated_at == ["2026-01-01T00:00:00Z", None, "2026-01-02T00:00:00Z"]
    records = [Record(shop="acme", resource="orders", id=f"g{i}", updated_at=u, text=b'{"a":%d}' % i)
               for i, u in zip((1, 2, 3), texts.updated_at, strict=True)]  # fmt: skip
    assert len(texts) == 3 and list(texts) == records and texts[1] == records[1] and texts[-1] == records[2]
    assert texts[1:] == records[1:] and texts[::-2] == records[::-2]
    with pytest.raises(IndexError):
        texts[3]
    with pytest.raises(ValueError, match="a record needs an id"):
        RecordTexts("acme", "orders", ["g1", ""], [None, None], [b"{}", b"{}"])
    with pytest.raises(ValueError, match="timestamp"):
        RecordTexts("acme", "orders", ["g1"], ["yesterday"], [b"{}"])
    with pytest.raises(ValueError, match="orders has 2 ids, 1 updatedAt values and 2 texts"):
        RecordTexts("acme", "orders", ["g1", "g2"], [None], [b"{}", b"{}"])
