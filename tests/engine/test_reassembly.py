"""Bulk JSONL → complete records: order independence, depth 2, parent.child, orphans, memory.

Every test runs four times: reassembled in memory, spilled to disk from the first line, spilled
part-way through the file (a budget of a few lines), and (where the file is fed whole) read in
three parts by spill workers and read back by another. The modes' records are compared byte for byte on random files in
``test_ingest_modes.py``."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from shopsync.engine.reassembly import BulkReassembler
from shopsync.engine.records import normalize_node, serialize
from shopsync.engine.spill_worker import spill_in_parts, texts_from_worker
from shopsync.errors import BulkFileError, IntegrityError
from shopsync.queries import load_resources

DEEP = """# shopsync:resource
# root: products
# filter: updated_at
fragment P on Product {
  id
  updatedAt
  variants(first: 2) { nodes { id title metafields(first: 2) { nodes { id key } } } }
  collections(first: 2) { nodes { id } }
}
"""


#: The memory budget of every reassembly in this module (set per run by ``mode``); ``IN_PARTS``:
#: the file is read by three spill workers.
BUDGET = [0]
IN_PARTS = -3


@pytest.fixture(autouse=True, params=[0, 300, 1 << 30, IN_PARTS], ids=["spilled", "spilled-midway", "in-memory", "in-parts"])
def mode(request):
    BUDGET[0] = request.param
    yield request.param
    BUDGET[0] = 0


@pytest.fixture(scope="module")
def resources(tmp_path_factory):
    d: Path = tmp_path_factory.mktemp("q")
    (d / "deep.graphql").write_text(DEEP)
    return load_resources(d)


def line(obj) -> bytes:
    return orjson.dumps(obj) + b"\n"


def order_lines(n_orders: int, items=lambda i: i % 4):
    """Bulk lines for ``n_orders`` orders, and the same orders as a paginated API returns them."""
    lines, api_nodes = [], []
    for i in range(n_orders):
        oid = f"gid://shopify/Order/{i}"
        root = {"id": oid, "updatedAt": "2026-01-01T00:00:00Z", "name": f"#{1000 + i}", "totalPriceSet": {"shopMoney": {"amount": "1.0"}}}
        kids = [{"id": f"gid://shopify/LineItem/{i}_{k}", "quantity": k, "variant": None} for k in range(items(i))]
        lines.append(line(root))
        lines.extend(line({**kid, "__parentId": oid}) for kid in kids)
        api_nodes.append({**root, "lineItems": {"edges": [{"cursor": "c", "node": k} for k in kids], "pageInfo": {"hasNextPage": False}}})
    return lines, api_nodes


def shuffle_keeping_sibling_order(lines: list[bytes], rng: random.Random) -> list[bytes]:
    """Any order at all, except that one parent's children keep their relative order (Shopify
    keeps the order within a connection; nothing else is promised)."""
    shuffled = list(lines)
    rng.shuffle(shuffled)
    by_parent: dict[str, list[bytes]] = {}
    for raw in lines:
        by_parent.setdefault(orjson.loads(raw).get("__parentId", ""), []).append(raw)
    queues = {parent: iter(kids) for parent, kids in by_parent.items() if parent}
    return [next(queues[p]) if (p := orjson.loads(raw).get("__parentId")) else raw for raw in shuffled]


def reassemble(resource, lines, spill: Path, *, strict: bool = True):
    with BulkReassembler(resource, spill, strict=strict, memory_budget=max(0, BUDGET[0])) as r:
        if BUDGET[0] == IN_PARTS:
            path = spill.with_suffix(".jsonl")
            path.write_bytes(b"".join(raw if raw.endswith(b"\n") else raw + b"\n" for raw in lines))
            assert spill_in_parts(r, path, -IN_PARTS, strict=strict, stop=lambda: False)
            records = [orjson.loads(t) for _g, _u, t in texts_from_worker(r, path, stop=lambda: False)]
        else:
            for raw in lines:
                r.feed(raw)
            records = list(r.records())
    return records, r


def test_shuffled_file_gives_the_same_bytes_as_the_paginated_path(resources, tmp_path):
    orders = resources["orders"]
    lines, api_nodes = order_lines(50)
    lines = shuffle_keeping_sibling_order(lines, random.Random(7))
    records, r = reassemble(orders, lines, tmp_path / "spill.db")
    expected = sorted(serialize(normalize_node(n, orders)[0]) for n in api_nodes)
    assert sorted(serialize(rec) for rec in records) == expected
    assert (r.root_count, r.lines, r.object_count, r.orphan_count) == (50, len(lines), len(lines), 0)
    empty = next(rec for rec in records if rec["id"] == "gid://shopify/Order/0")
    assert empty["lineItems"] == []  # no children at all: still an empty list, as on the paginated path


def test_children_keep_file_order_within_their_parent(resources, tmp_path):
    orders = resources["orders"]
    oid = "gid://shopify/Order/1"
    kids = [f"gid://shopify/LineItem/{k}" for k in (5, 1, 9, 3)]
    lines = [line({"id": k, "__parentId": oid}) for k in kids[:2]] + [line({"id": oid})]
    lines += [line({"id": k, "__parentId": oid}) for k in kids[2:]]
    (rec,), _ = reassemble(orders, lines, tmp_path / "s.db")
    assert [c["id"] for c in rec["lineItems"]] == kids
    assert all("__parentId" not in c for c in rec["lineItems"])


def test_depth_two_and_two_nested_connections(resources, tmp_path):
    deep = resources["deep"]
    p = "gid://shopify/Product/1"
    v1, v2 = "gid://shopify/ProductVariant/1", "gid://shopify/ProductVariant/2"
    lines = [
        line({"id": "gid://shopify/Metafield/9", "key": "late", "__parentId": v2}),  # before its parent
        line({"id": v1, "title": "S", "__parentId": p}),
        line({"id": "gid://shopify/Collection/3", "__parentId": p}),
        line({"id": "gid://shopify/Metafield/1", "key": "a", "__parentId": v1}),
        line({"id": p, "updatedAt": "2026-01-01T00:00:00Z"}),
        line({"id": v2, "title": "M", "__parentId": p}),
        line({"id": "gid://shopify/Metafield/2", "key": "b", "__parentId": v1}),
    ]
    (rec,), r = reassemble(deep, lines, tmp_path / "s.db")
    assert rec == {
        "id": p,
        "updatedAt": "2026-01-01T00:00:00Z",
        "variants": [
            {"id": v1, "title": "S", "metafields": [{"id": "gid://shopify/Metafield/1", "key": "a"}, {"id": "gid://shopify/Metafield/2", "key": "b"}]},
            {"id": v2, "title": "M", "metafields": [{"id": "gid://shopify/Metafield/9", "key": "late"}]},
        ],
        "collections": [{"id": "gid://shopify/Collection/3"}],
    }
    assert r.root_count == 1 and r.orphan_count == 0


def test_parent_child_resource_yields_the_children_as_records(resources, tmp_path):
    levels = resources["inventory_levels"]
    loc = "gid://shopify/Location/1"
    lvl = "gid://shopify/InventoryLevel/5?inventory_item_id=7"
    lines = [
        line({"id": lvl, "updatedAt": "2026-01-01T00:00:00Z", "quantities": [{"name": "available", "quantity": 3}], "__parentId": loc}),
        line({"id": loc}),
        line({"id": "gid://shopify/Location/2"}),
    ]
    records, r = reassemble(levels, lines, tmp_path / "s.db")
    assert records == [{"id": lvl, "updatedAt": "2026-01-01T00:00:00Z", "quantities": [{"name": "available", "quantity": 3}]}]
    assert (r.root_count, r.parent_lines, r.orphan_count) == (1, 2, 0)


ORPHANED = [
    line({"id": "gid://shopify/Order/1"}),
    line({"id": "gid://shopify/LineItem/1", "__parentId": "gid://shopify/Order/1"}),
    line({"id": "gid://shopify/LineItem/2", "__parentId": "gid://shopify/Order/404"}),
    line({"id": "gid://shopify/LineItem/3", "__parentId": "gid://shopify/Order/404"}),
]


def test_orphans_in_a_complete_file_fail_it_naming_the_first_orphan_line(resources, tmp_path):
    with BulkReassembler(resources["orders"], tmp_path / "s.db", memory_budget=max(0, BUDGET[0])) as r:
        for raw in ORPHANED:
            r.feed(raw)
        records = r.records()
        with pytest.raises(BulkFileError, match=r"line 3: 'gid://shopify/LineItem/2' is a child of 'gid://shopify/Order/404', which is not in the file \(2 such lines\)") as info:
            next(records)  # before the first record: nothing of the file is handed out
    assert info.value.line == 3 and r.orphan_count == 2 and r.first_orphan_line == 3


def test_orphans_of_a_partial_file_are_counted_and_reported_not_silently_dropped(resources, tmp_path, caplog):
    records, r = reassemble(resources["orders"], ORPHANED, tmp_path / "s.db", strict=False)
    assert [len(rec["lineItems"]) for rec in records] == [1]
    assert r.orphan_count == 2 and r.orphan_sample == ["gid://shopify/Order/404"] and r.first_orphan_line == 3
    assert "gid://shopify/Order/404" in caplog.text


def test_grandchild_of_a_missing_child_is_an_orphan(resources, tmp_path):
    lines = [line({"id": "gid://shopify/Product/1"}), line({"id": "gid://shopify/Metafield/1", "__parentId": "gid://shopify/ProductVariant/404"})]
    (rec,), r = reassemble(resources["deep"], lines, tmp_path / "s.db", strict=False)
    assert rec["variants"] == [] and r.orphan_count == 1
    with pytest.raises(BulkFileError, match="line 2: 'gid://shopify/Metafield/1' is a child of 'gid://shopify/ProductVariant/404'"):
        reassemble(resources["deep"], lines, tmp_path / "t.db")


def test_a_file_without_orphans_is_not_refused(resources, tmp_path):
    records, r = reassemble(resources["orders"], ORPHANED[:2], tmp_path / "s.db")
    assert [len(rec["lineItems"]) for rec in records] == [1] and r.orphan_count == 0 and r.first_orphan_line is None


def test_child_type_is_read_from_the_gid(resources, tmp_path):
    # With two nested connections an unknown child type cannot be placed: refuse loudly.
    with pytest.raises(IntegrityError, match="which nested connection"):
        reassemble(resources["deep"], [line({"id": "gid://shopify/Product/1"}), line({"id": "gid://shopify/Weird/1", "__parentId": "gid://shopify/Product/1"})], tmp_path / "s.db")
    # With one, it must belong to it.
    (rec,), _ = reassemble(
        resources["orders"],
        [line({"id": "gid://shopify/Order/1"}), line({"id": "gid://shopify/OrderLineThing/1", "__parentId": "gid://shopify/Order/1"})],
        tmp_path / "t.db",
    )
    assert rec["lineItems"] == [{"id": "gid://shopify/OrderLineThing/1"}]


def test_bad_lines_duplicates_and_blank_lines(resources, tmp_path):
    orders = resources["orders"]
    with pytest.raises(BulkFileError, match="line 2 is not JSON") as info:
        reassemble(orders, [line({"id": "gid://shopify/Order/1"}), b'{"id": "gid://shop', b""], tmp_path / "a.db")
    assert info.value.line == 2
    with pytest.raises(BulkFileError, match="line 2 is not a JSON object"):
        reassemble(orders, [line({"id": "gid://shopify/Order/1"}), b'["x"]'], tmp_path / "c.db")
    with pytest.raises(BulkFileError, match="line 1: a record without an id"):
        reassemble(orders, [line({"name": "#1"})], tmp_path / "d.db")
    records, r = reassemble(
        orders,
        [line({"id": "gid://shopify/Order/1", "name": "old"}), b"\n", line({"id": "gid://shopify/Order/1", "name": "new"})],
        tmp_path / "b.db",
    )
    assert [rec["name"] for rec in records] == ["new"] and r.duplicate_roots == 1 and r.lines == 2


def test_a_record_exported_twice_keeps_its_newest_copy_and_each_child_once(resources, tmp_path):
    # A bulk export is not a snapshot: a product updated while it runs is exported again, later
    # in the file, with its children (and here the older copy even comes last).
    deep = resources["deep"]
    p = "gid://shopify/Product/1"
    v1, v2 = "gid://shopify/ProductVariant/1", "gid://shopify/ProductVariant/2"
    m1 = "gid://shopify/Metafield/1"
    lines = [
        line({"id": p, "updatedAt": "2026-01-01T00:00:05Z", "title": "new"}),
        line({"id": v1, "title": "S", "__parentId": p}),
        line({"id": m1, "key": "a", "__parentId": v1}),
        line({"id": "gid://shopify/Product/2", "updatedAt": "2026-01-01T00:00:01Z", "title": "other"}),
        line({"id": v2, "title": "M", "__parentId": p}),
        line({"id": v1, "title": "S2", "__parentId": p}),
        line({"id": m1, "key": "a2", "__parentId": v1}),
        line({"id": p, "updatedAt": "2026-01-01T00:00:00Z", "title": "old"}),
    ]
    records, r = reassemble(deep, lines, tmp_path / "s.db")
    assert [rec["title"] for rec in records] == ["new", "other"]
    assert records[0]["variants"] == [
        {"id": v1, "title": "S2", "metafields": [{"id": m1, "key": "a2"}]},
        {"id": v2, "title": "M", "metafields": []},
    ]
    # rootObjectCount counts lines: the guard compares root_lines, not distinct records.
    assert (r.root_lines, r.root_count, r.duplicate_roots) == (3, 2, 1)


def test_spill_file_is_replaced_and_removed(resources, tmp_path):
    spill = tmp_path / "spill.db"
    spill.write_bytes(b"stale garbage from a crash")
    with BulkReassembler(resources["orders"], spill, memory_budget=max(0, BUDGET[0])) as r:
        r.feed(line({"id": "gid://shopify/Order/1"}))
        assert [rec["id"] for rec in r.records()] == ["gid://shopify/Order/1"]
        assert spill.exists()
        with pytest.raises(RuntimeError):
            r.feed(line({"id": "gid://shopify/Order/2"}))
    assert not spill.exists()


def test_a_grandchild_under_a_child_of_another_connection_fails_the_file(resources, tmp_path):
    # A metafield hangs from variants; one whose __parentId is a collection cannot be placed.
    p, c = "gid://shopify/Product/1", "gid://shopify/Collection/3"
    lines = [line({"id": p}), line({"id": c, "__parentId": p}), line({"id": "gid://shopify/Metafield/1", "__parentId": c})]
    with pytest.raises(BulkFileError, match=r"'gid://shopify/Metafield/1' \(Metafield\) is under 'gid://shopify/Collection/3', which is not a ProductVariant of deep"):
        reassemble(resources["deep"], lines, tmp_path / "s.db")
