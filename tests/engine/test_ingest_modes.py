"""In memory or spilled to disk, a bulk file reassembles into the same bytes, in memory that stays flat.

``BulkReassembler`` holds a file's records in memory up to its budget (``[sync] ingest_memory``)
and spills to disk past it. The budget must change nothing but memory: random files (shuffled,
records exported twice, orphans in partial files, a 300-child record, objects that look like a
nested list) give byte-identical records whatever the budget, and their text is the canonical
serialisation (``records.serialize``) of the record. A file ten times the budget is reassembled
in a child process whose Python allocations stay within a small multiple of the budget.
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

from shopsync.engine.reassembly import BulkReassembler
from shopsync.engine.records import serialize
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


def reassembled(lines: list[bytes], spill: Path, budget: int, strict: bool) -> tuple[list[tuple], dict]:
    with BulkReassembler(ORDERS, spill, strict=strict, memory_budget=budget) as r:
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


def test_a_spill_midway_keeps_the_newest_copy_held_before_it(tmp_path: Path) -> None:
    # The newer copy is in memory when the budget is passed; the older one arrives after.
    oid = "gid://shopify/Order/1"
    lines = [orjson.dumps({"id": oid, "updatedAt": ts(9), "name": "new"})]
    lines += [orjson.dumps({"id": f"gid://shopify/Order/{k}", "updatedAt": ts(1)}) for k in range(2, 50)]
    lines += [orjson.dumps({"id": oid, "updatedAt": ts(1), "name": "old"})]
    for budget in BUDGETS:
        texts, counts = reassembled(lines, tmp_path / f"s{budget}.db", budget, True)
        assert orjson.loads(texts[0][2])["name"] == "new" and counts["duplicates"] == 1


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
