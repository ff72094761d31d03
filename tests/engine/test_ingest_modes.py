"""In memory or spilled to disk, a bulk file reassembles into the same bytes, in memory that stays flat.

``BulkReassembler`` holds a file's records in memory up to its budget (``[sync] ingest_memory``)
and spills to disk past it. The budget must change nothing but memory: random files (shuffled,
records exported twice, orphans in partial files, a 300-child record, objects that look like a
nested list) give byte-identical records whatever the budget, and their text is the canonical
serialisation (``records.serialize``) of the record. A file read in parts by spill workers
(``[sync] ingest_workers``) gives those same bytes and counts, and names a bad line by its number
in the whole file. A file ten times the budget is reassembled in a child process whose Python
allocations stay within a small multiple of the budget.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopsync.engine import spill_worker
from shopsync.engine.reassembly import BulkReassembler
from shopsync.engine.records import serialize
from shopsync.errors import BulkFileError, StorageError
from shopsync.queries import load_resources

ORDERS = load_resources()["orders"]
#: In memory from the first line, spilled from the first line, spilled after a few lines.
BUDGETS = (1 << 30, 0, 600)


def ts(second: int) -> str:
    return f"2026-01-01T00:00:{second:02d}Z"


@st.composite
def bulk_files(draw: st.DrawFn) -> tuple[list[bytes], bool]:
    """Lines of a bulk orders file in any order (siblings keep theirs), and whether it is strict."""
    n_roots = draw(st.integers(0, 12))
    big = draw(st.one_of(st.none(), st.integers(0, max(0, n_roots - 1))))
    groups: list[list[dict]] = []
    for i in range(n_roots):
        oid = f"gid://shopify/Order/{draw(st.integers(1, 40))}"  # repeated ids: exported twice
        root = {"id": oid, "updatedAt": ts(draw(st.integers(0, 5))), "name": f"#{i}", "ü": "ø"}
        if draw(st.booleans()):
            # Looks like the slot of the nested list: the template must not be fooled.
            root["totals"] = {"lineItems": [], "x": draw(st.integers(0, 3))}
        count = 300 if i == big else draw(st.integers(0, 5))
        kids = [
            {"id": f"gid://shopify/LineItem/{draw(st.integers(1, 400)) if count < 300 else k}", "quantity": draw(st.integers(0, 9)),
             "__parentId": oid, "title": draw(st.sampled_from(["a", "b\n", 'q"', "\u2028"]))}
            for k in range(count)
        ]  # fmt: skip
        groups.append([root, *kids])
    strict = draw(st.booleans())
    orphans = [] if strict else [
        {"id": f"gid://shopify/LineItem/9{k}", "__parentId": "gid://shopify/Order/404"} for k in range(draw(st.integers(0, 3)))
    ]  # fmt: skip
    rows = [row for group in groups for row in group] + orphans
    rng = random.Random(draw(st.integers(0, 2**32)))
    shuffled = list(rows)
    rng.shuffle(shuffled)
    # Shopify keeps the order within one parent's connection; nothing else is promised.
    queues: dict[str, list[dict]] = {}
    for row in rows:
        if "__parentId" in row:
            queues.setdefault(row["__parentId"], []).append(row)
    ordered = [queues[r["__parentId"]].pop(0) if "__parentId" in r else r for r in shuffled]
    return [orjson.dumps(r) + b"\n" for r in ordered], strict


def reassembled(
    lines: list[bytes], spill: Path, budget: int, strict: bool, *, parts: int = 1
) -> tuple[list[tuple], dict]:
    with BulkReassembler(ORDERS, spill, strict=strict, memory_budget=budget) as r:
        if parts > 1:
            # Spill workers, one per part of the file (what bulk_files does past the budget).
            path = spill.with_suffix(".jsonl")
            path.write_bytes(b"".join(lines))
            assert spill_worker.spill_in_parts(r, path, parts, strict=strict, stop=lambda: False)
            texts = list(spill_worker.texts_from_worker(r, path, stop=lambda: False))  # and read back by one
        else:
            r.feed_lines(lines)
            texts = list(r.texts())
        counts = {
            "lines": r.lines, "root_lines": r.root_lines, "root_count": r.root_count, "orphans": r.orphan_count,
            "first_orphan": r.first_orphan_line, "duplicates": r.duplicate_roots, "sample": r.orphan_sample,
        }  # fmt: skip
        if budget in (0, 1 << 30):
            assert r.spilled == (budget == 0)
    return texts, counts


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bulk_files())
def test_in_memory_and_spilled_give_the_same_bytes(tmp_path: Path, case: tuple[list[bytes], bool]) -> None:
    lines, strict = case
    results = [reassembled(lines, tmp_path / f"spill-{budget}.db", budget, strict) for budget in BUDGETS]
    (texts, counts), *others = results
    for other in others:
        assert other == (texts, counts)
    # The text is the record's canonical serialisation, and the record is complete.
    ids = [gid for gid, _u, _t in texts]
    assert ids == sorted(set(ids))
    for gid, updated_at, text in texts:
        record = orjson.loads(text)
        assert serialize(record) == text and record["id"] == gid and record["updatedAt"] == updated_at
        assert all("__parentId" not in kid for kid in record["lineItems"])
        kid_ids = [kid["id"] for kid in record["lineItems"]]
        assert len(kid_ids) == len(set(kid_ids))  # each child once, even when exported twice
    # Every child of a record in the file is in it; the orphans (partial files) are not.
    expected_kids = {row["id"] for row in map(orjson.loads, lines) if row.get("__parentId") in set(ids)}
    assert {kid["id"] for _g, _u, t in texts for kid in orjson.loads(t)["lineItems"]} == expected_kids


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bulk_files(), st.integers(2, 4))
def test_a_file_read_in_parts_by_spill_workers_gives_the_same_bytes(
    tmp_path: Path, case: tuple[list[bytes], bool], parts: int
) -> None:
    lines, strict = case
    one = reassembled(lines, tmp_path / "one.db", 1 << 30, strict)
    assert reassembled(lines, tmp_path / f"parts-{parts}.db", 0, strict, parts=parts) == one
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]  # the parts' files go with the spill


def test_split_ranges_cuts_at_line_starts_and_covers_every_byte_once(tmp_path: Path) -> None:
    rng = random.Random(5)
    for case in range(30):
        lines = [b"x" * rng.randint(0, 40) + b"\n" for _ in range(rng.randint(0, 30))]
        path = tmp_path / f"f{case}.jsonl"
        path.write_bytes(b"".join(lines) + (b"tail" if case % 3 == 0 else b""))
        data = path.read_bytes()
        for parts in (1, 2, 3, 7):
            ranges = spill_worker.split_ranges(path, parts)
            assert len(ranges) <= parts
            assert [a for a, _b in ranges[1:]] == [b for _a, b in ranges[:-1]]  # contiguous
            if data:
                assert ranges[0][0] == 0 and ranges[-1][1] == len(data)
            assert all(data[a - 1 : a] == b"\n" for a, _b in ranges[1:])  # each starts a line
            read = b"".join(b"".join(block) for a, b in ranges for block in spill_worker.range_blocks(path, a, b))
            assert read == data


def orders_file(n: int, *, bad_at: int | None = None) -> list[bytes]:
    lines = []
    for i in range(n):
        oid = f"gid://shopify/Order/{i}"
        lines.append(orjson.dumps({"id": oid, "updatedAt": ts(1), "name": f"#{i}"}) + b"\n")
        lines.append(orjson.dumps({"id": f"gid://shopify/LineItem/{i}", "__parentId": oid}) + b"\n")
    if bad_at is not None:
        lines[bad_at - 1] = b'{"id": "gid://shopify/Order/x", \n'
    return lines


def test_a_bad_line_in_a_later_part_is_named_by_its_line_in_the_whole_file(tmp_path: Path) -> None:
    lines = orders_file(50, bad_at=83)
    with pytest.raises(BulkFileError, match=r"^bulk result line 83 is not JSON") as caught:
        reassembled(lines, tmp_path / "s.db", 0, True, parts=3)
    assert caught.value.line == 83
    # The earliest bad line wins, whichever part finishes first.
    lines[9] = b"[1]\n"
    with pytest.raises(BulkFileError, match=r"^bulk result line 10 is not a JSON object"):
        reassembled(lines, tmp_path / "s2.db", 0, True, parts=3)


def test_an_orphan_in_a_later_part_is_named_by_its_line_in_the_whole_file(tmp_path: Path) -> None:
    lines = orders_file(40)
    lines.insert(70, orjson.dumps({"id": "gid://shopify/LineItem/x", "__parentId": "gid://shopify/Order/404"}) + b"\n")
    with pytest.raises(BulkFileError, match=r"^bulk result line 71: 'gid://shopify/LineItem/x' is a child of"):
        reassembled(lines, tmp_path / "s.db", 0, True, parts=2)
    _texts, counts = reassembled(lines, tmp_path / "p.db", 0, False, parts=2)
    assert counts["orphans"] == 1 and counts["first_orphan"] == 71 and counts["lines"] == 81


def failing_worker(tmp_path: Path) -> str:
    """An "interpreter" that takes its job and fails, saying why on stderr."""
    script = tmp_path / "failing-python"
    script.write_text("#!/bin/sh\ncat > /dev/null\necho 'MemoryError: no room' >&2\nexit 3\n")
    script.chmod(0o755)
    return str(script)


def test_a_worker_that_fails_is_a_storage_error_naming_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "orders.jsonl"
    path.write_bytes(b"".join(orders_file(20)))
    monkeypatch.setattr(spill_worker.sys, "executable", failing_worker(tmp_path))
    with BulkReassembler(ORDERS, tmp_path / "s.db") as r:
        with pytest.raises(StorageError, match=r"orders\.jsonl: a bulk spill worker failed \(exit 3\): MemoryError: no room"):
            spill_worker.spill_in_parts(r, path, 2, strict=True, stop=lambda: False)


def test_a_worker_reading_records_back_that_fails_is_a_storage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "orders.jsonl"
    path.write_bytes(b"".join(orders_file(20)))
    with BulkReassembler(ORDERS, tmp_path / "s.db") as r:
        assert spill_worker.spill_in_parts(r, path, 2, strict=True, stop=lambda: False)
        monkeypatch.setattr(spill_worker.sys, "executable", failing_worker(tmp_path))
        with pytest.raises(StorageError, match=r"orders\.jsonl: a bulk spill worker ended before its last record \(exit 3\): MemoryError"):
            list(spill_worker.texts_from_worker(r, path, stop=lambda: False))
        # Records are never read back here once handed over: no silent empty file.
        with pytest.raises(RuntimeError, match="after hand_over"):
            list(r.texts())


def test_a_stop_ends_the_workers_and_leaves_no_part_behind(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    path.write_bytes(b"".join(orders_file(2000)))
    with BulkReassembler(ORDERS, tmp_path / "s.db") as r:
        assert spill_worker.spill_in_parts(r, path, 2, strict=True, stop=lambda: True) is False
    with BulkReassembler(ORDERS, tmp_path / "t.db") as r:
        assert spill_worker.spill_in_parts(r, path, 2, strict=True, stop=lambda: False)
        assert list(spill_worker.texts_from_worker(r, path, stop=lambda: True)) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["orders.jsonl"]


def test_a_worker_gets_no_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPSYNC_ACCESS_TOKEN", "shpat_not_for_workers")
    monkeypatch.setenv("PATH", "/usr/bin")
    env = spill_worker._worker_env()
    assert "shpat_not_for_workers" not in env.values() and env["PATH"] == "/usr/bin"
    assert (Path(env["PYTHONPATH"]) / "shopsync" / "engine" / "spill_worker.py").is_file()


def test_worker_slots_never_grant_more_than_the_capacity_nor_a_lone_worker() -> None:
    slots = spill_worker.WorkerSlots()
    assert slots.take(2, 3) == 2 and slots.in_use == 2
    assert slots.take(2, 3) == 1 and slots.in_use == 2  # one slot free: read in this process
    slots.give(1)  # a file read in this process held none
    assert slots.in_use == 2
    slots.give(2)
    assert slots.take(4, 3) == 3 and slots.take(2, 5) == 2 and slots.in_use == 5
    slots.give(3)
    slots.give(2)
    assert slots.in_use == 0


def test_parts_for_reads_a_file_alone_until_it_passes_the_budget_and_a_part_is_worth_a_process() -> None:
    part = spill_worker.MIN_PART_BYTES
    assert spill_worker.parts_for(10 * part, workers=1, memory_budget=0) == 1
    assert spill_worker.parts_for(10 * part, workers=2, memory_budget=11 * part) == 1
    assert spill_worker.parts_for(part // 2, workers=2, memory_budget=0) == 1
    assert spill_worker.parts_for(3 * part, workers=4, memory_budget=0) == 3
    assert spill_worker.parts_for(10 * part, workers=2, memory_budget=part) == 2


def test_a_spill_midway_keeps_the_newest_copy_held_before_it(tmp_path: Path) -> None:
    # The newer copy is in memory when the budget is passed; the older one arrives after.
    oid = "gid://shopify/Order/1"
    lines = [orjson.dumps({"id": oid, "updatedAt": ts(9), "name": "new"})]
    lines += [orjson.dumps({"id": f"gid://shopify/Order/{k}", "updatedAt": ts(1)}) for k in range(2, 50)]
    lines += [orjson.dumps({"id": oid, "updatedAt": ts(1), "name": "old"})]
    for budget in BUDGETS:
        texts, counts = reassembled(lines, tmp_path / f"s{budget}.db", budget, True)
        assert orjson.loads(texts[0][2])["name"] == "new" and counts["duplicates"] == 1
    # Read in parts, the two copies are in different parts: the newer one still wins, and of two
    # copies equally new the later line.
    tie = [*lines[:-1], orjson.dumps({"id": oid, "updatedAt": ts(9), "name": "later"})]
    for parts in (2, 3):
        texts, counts = reassembled([x + b"\n" for x in lines], tmp_path / f"p{parts}.db", 0, True, parts=parts)
        assert orjson.loads(texts[0][2])["name"] == "new" and counts["duplicates"] == 1
        texts, _ = reassembled([x + b"\n" for x in tie], tmp_path / f"t{parts}.db", 0, True, parts=parts)
        assert orjson.loads(texts[0][2])["name"] == "later"


CHILD = textwrap.dedent(
    """
    import sys, tracemalloc
    from pathlib import Path
    from shopsync.engine.reassembly import BulkReassembler
    from shopsync.queries import load_resources

    budget, orders = int(sys.argv[1]), int(sys.argv[2])
    resource = load_resources()["orders"]
    pad = "x" * 600

    def lines():
        for i in range(orders):
            oid = "gid://shopify/Order/%d" % i
            yield b'{"id":"%s","updatedAt":"2026-01-01T00:00:00Z","note":"%s"}\\n' % (oid.encode(), pad.encode())
            for k in range(4):
                yield b'{"id":"gid://shopify/LineItem/%d_%d","__parentId":"%s","t":"%s"}\\n' % (i, k, oid.encode(), pad.encode())

    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    size = complete = 0
    with BulkReassembler(resource, Path(sys.argv[3]), memory_budget=budget) as r:
        block = []
        for raw in lines():
            size += len(raw)
            block.append(raw)
            if len(block) >= 1000:
                r.feed_lines(block)
                block = []
        r.feed_lines(block)
        for _gid, _u, text in r.texts():
            complete += text.count(b"LineItem/") == 4
    peak = tracemalloc.get_traced_memory()[1] - base
    print(size, peak, complete, int(r.spilled))
    """
)


@pytest.mark.slow
def test_memory_stays_flat_over_a_file_ten_times_the_budget(tmp_path: Path) -> None:
    budget = 2 << 20
    orders = 7_000  # 5 lines of ~650 bytes each: about 22 MB, ten times the budget
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(budget), str(orders), str(tmp_path / "spill.db")],
        capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    size, peak, complete, spilled = map(int, done.stdout.split())
    assert size > 10 * budget and complete == orders and spilled == 1
    # The budget, a batch of spill inserts and one record: nowhere near the file's size.
    assert peak < 3 * budget, (size, peak)


def test_a_spill_file_cut_short_is_an_error_naming_it(tmp_path: Path) -> None:
    from shopsync.engine.spill import SpillData
    from shopsync.errors import StorageError

    data = SpillData(tmp_path / "spill.data")
    data.open()
    try:
        off, length = data.append(b'{"id":"gid://shopify/Order/1"}')
        data.flush()
        assert data.read(off, length) == b'{"id":"gid://shopify/Order/1"}'
        os.truncate(data.path, length - 3)  # as a full disk or another process would leave it
        with pytest.raises(StorageError, match=r"spill\.data: the bulk spill file ends inside the text of \d+ bytes at 0"):
            data.read(off, length)
    finally:
        data.close()


@pytest.mark.parametrize(
    "records",
    [
        (["gid://shopify/Order/1"], [None], [5]),
        (["gid://shopify/Order/1", "gid://shopify/Order/2"], [None], [1, 2]),
        (["gid://shopify/Order/1"], [None]),
        [["gid://shopify/Order/1", None, 7]],
    ],
)
def test_a_frame_whose_records_do_not_add_up_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, records: object) -> None:
    """A reader's frame names each record's length; texts that are not those lengths (or columns
    of different lengths) are a StorageError naming the file, never records cut in the wrong place."""
    path = tmp_path / "orders.jsonl"
    path.write_bytes(b"".join(orders_file(20)))
    head = orjson.dumps({"records": records})
    blob = b'{"a":1}'  # 7 bytes: neither 5 nor 3
    (tmp_path / "frame").write_bytes(spill_worker._FRAME.pack(len(head), len(blob)) + head + blob)
    script = tmp_path / "lying-python"
    script.write_text(f"#!/bin/sh\ncat > /dev/null\ncat {tmp_path / 'frame'}\n")
    script.chmod(0o755)
    with BulkReassembler(ORDERS, tmp_path / "s.db") as r:
        assert spill_worker.spill_in_parts(r, path, 2, strict=True, stop=lambda: False)
        monkeypatch.setattr(spill_worker.sys, "executable", str(script))
        with pytest.raises(StorageError, match=r"orders\.jsonl: a bulk spill worker sent a frame whose records do not add up"):
            list(spill_worker.texts_from_worker(r, path, stop=lambda: False))
