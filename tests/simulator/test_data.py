"""Lazy, seeded generation of the simulated shop's base data (shopsync.simulator.data)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import orjson

from shopsync.simulator.config import DataConfig
from shopsync.simulator.data import (
    MODELLED_FIELDS,
    SHIFT,
    Ref,
    ShopData,
    apply_update,
    decimal_amount,
    sample_records,
)

ANCHOR = 1_790_000_000.0
#: Fields served by the executor's special resolvers rather than stored under their name.
SPECIAL_FIELDS = {
    "InventoryItem": {"inventoryLevels", "inventoryLevel"},
    "Location": {"inventoryLevels", "inventoryLevel"},
    "InventoryLevel": {"quantities"},
    # issue 14: computed when asked for (metafield_fields, collection_fields, media_fields)
    "Order": {"metafields", "fulfillments", "returns", "taxLines", "shippingLines", "discountApplications", "risk"},
    # derived from the order when asked for (order_detail_fields)
    "LineItem": {"taxLines"},
    "OrderTransaction": {"parentTransaction", "formattedGateway", "manualPaymentGateway", "paymentId", "authorizationCode", "errorCode"},
    "Refund": {"processedAt", "refundLineItems", "transactions"},
    "Customer": {"metafields"},
    "Collection": {"metafields", "products"},
    "Product": {"metafields", "media"},
}


def data(**kw) -> ShopData:
    kw.setdefault("anchor", ANCHOR)
    kw.setdefault("orders", 2_000)
    return ShopData(DataConfig(**kw), now=ANCHOR + 5)


def dump(rec: object) -> bytes:
    return orjson.dumps(rec, default=lambda r: r.gid if isinstance(r, Ref) else str(r), option=orjson.OPT_SORT_KEYS)


def test_same_seed_same_records_different_seed_different() -> None:
    a, b, c = data(seed=5), data(seed=5), data(seed=6)
    for t in ("Order", "Customer", "Product", "InventoryItem", "InventoryLevel", "Location", "Collection"):
        for idx in (0, 1, a.count(t) // 2, a.count(t) - 1):
            assert dump(a.generate(t, idx)) == dump(b.generate(t, idx)), (t, idx)
    assert list(a.updated["Order"]) == list(b.updated["Order"])
    differ = sum(dump(a.generate("Order", i)) != dump(c.generate("Order", i)) for i in range(50))
    assert differ == 50
    assert list(a.updated["Order"]) != list(c.updated["Order"])


def test_order_i_does_not_depend_on_reading_order() -> None:
    a, b = data(seed=9), data(seed=9)
    first = [dump(a.generate("Order", i)) for i in range(30)]
    second = [dump(b.generate("Order", i)) for i in reversed(range(30))][::-1]
    assert first == second


def test_timestamps_lie_in_history_and_ties_share_a_second() -> None:
    d = data(orders=5_000, history_days=100, tie_groups=2, tie_group_size=600)
    start = d.anchor - 100 * 86_400
    for t in ("Order", "Customer", "Product", "InventoryItem", "InventoryLevel", "Location", "Collection"):
        created, updated = d.created[t], d.updated[t]
        assert all(start <= c <= u <= d.anchor for c, u in zip(created, updated, strict=True)), t
        assert all(created[i] <= created[i + 1] for i in range(len(created) - 1)), t  # ids grow with time
        keys = d.updated_keys[t]
        assert list(keys) == sorted(keys) and len(keys) == len(updated)
        assert all(updated[k & ((1 << SHIFT) - 1)] == k >> SHIFT for k in keys)
    assert len(d.tie_groups) == 2
    for first, size, second in d.tie_groups:
        assert size == 600
        members = range(first, first + size)
        assert {d.updated["Order"][i] for i in members} == {second}
        rec = d.generate("Order", first + 7)
        assert rec["updatedAt"] >= rec["createdAt"]


def test_tie_groups_shrink_to_fit_small_stores() -> None:
    d = data(orders=100, tie_groups=2, tie_group_size=600)
    assert [size for _f, size, _s in d.tie_groups] == [50, 50]


def test_big_orders_and_line_item_ids_locate_their_order() -> None:
    d = data(orders=1_000, big_orders=3, big_order_line_items=400)
    assert len(d.big_orders) == 3
    for idx in d.big_orders:
        rec = d.generate("Order", idx)
        items = rec["lineItems"]
        assert len(items) == 400 and len({li["id"] for li in items}) == 400
        assert rec["subtotalLineItemsQuantity"] == sum(li["quantity"] for li in items)
        assert d.locate(items[399]["id"]) == ("Order", idx, "LineItem", int(items[399]["id"].rsplit("/", 1)[1]))
    small = [len(d.generate("Order", i)["lineItems"]) for i in range(200) if i not in d.big_orders]
    assert 1 <= min(small) and max(small) <= 5


def test_shapes_money_nulls_and_text() -> None:
    d = data(orders=3_000)
    orders = [d.generate("Order", i) for i in range(600)]
    bag = orders[0]["totalPriceSet"]
    assert set(bag) == {"shopMoney", "presentmentMoney"} and set(bag["shopMoney"]) == {"amount", "currencyCode"}
    amounts = [o["totalPriceSet"]["shopMoney"]["amount"] for o in orders]
    assert all(isinstance(a, str) and float(a) >= 0 for a in amounts)
    assert {o["presentmentCurrencyCode"] for o in orders} >= {"USD", "EUR", "JPY"}
    assert any(o["cancelledAt"] is not None for o in orders) and any(o["cancelledAt"] is None for o in orders)
    assert any(o["note"] is None for o in orders) and any(o["note"] for o in orders)
    assert any(o["phone"] is None for o in orders)
    assert any(o["customer"] is None for o in orders)
    assert any(o["shippingAddress"] and o["shippingAddress"]["company"] is None for o in orders)
    variants = [v for p in range(d.count("Product")) for v in d.generate("Product", p)["variants"]]
    assert any(v["compareAtPrice"] is None for v in variants) and any(v["compareAtPrice"] for v in variants)
    text = dump([orders, [d.generate("Customer", i) for i in range(200)]]).decode()
    assert any(ch in text for ch in "🎁👍🔥🌈")  # emoji
    assert any("\u0590" <= ch <= "\u05ff" for ch in text)  # Hebrew
    assert any("\u0600" <= ch <= "\u06ff" for ch in text)  # Arabic
    assert orders[1]["id"].startswith("gid://shopify/Order/")


def test_decimal_format_is_shopifys() -> None:
    assert [decimal_amount(c) for c in (1000, 1250, 12345, 5, 0)] == ["10.0", "12.5", "123.45", "0.05", "0.0"]


def test_modelled_fields_are_what_the_generator_produces() -> None:
    d = data(orders=50)
    for t, rec in sample_records(d).items():
        keys = {k for k in rec if not k.startswith("_")}
        declared = MODELLED_FIELDS[t] - SPECIAL_FIELDS.get(t, set())
        assert declared == keys, (t, declared ^ keys)


def test_update_copies_and_bumps_updated_at() -> None:
    import random

    d = data(orders=20)
    rec = d.generate("Order", 3)
    before = dump(rec)
    new = apply_update("Order", rec, random.Random(1).random, int(ANCHOR) + 60)
    assert dump(rec) == before  # the original (possibly cached) record is untouched
    assert new["updatedAt"] != rec["updatedAt"] and new["id"] == rec["id"]


def test_a_million_orders_build_small() -> None:
    # In a subprocess so that the memory figure is this build's alone. (How fast it builds is a
    # timing, so it is not asserted here: machines are shared and noisy.)
    code = textwrap.dedent(
        """
        import json, resource
        from shopsync.simulator.config import DataConfig
        from shopsync.simulator.store import ShopStore
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        store = ShopStore(DataConfig(orders=1_000_000))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rec = store.get(store.gid_of("Order", 999_999))
        print(json.dumps({"rss_mb": (after - before) / 1024, "count": store.live_count("Order"),
                          "last": rec["name"]}))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["count"] == 1_000_000 and figures["last"] == "#1001000"
    assert figures["rss_mb"] < 200, figures


def test_generated_values_conform_to_the_schema() -> None:
    """Every modelled field's value has the schema's type: enums in range, non-null where required."""
    import re

    from graphql import GraphQLEnumType, get_named_type, is_list_type, is_non_null_type

    from shopsync.shopify.schema import load_schema

    schema = load_schema()
    ts = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
    scalars = {
        "String": str, "ID": str, "Int": int, "Boolean": bool, "HTML": str, "URL": str,
        "UnsignedInt64": str, "Decimal": str, "Money": str, "FormattedString": str,
    }  # fmt: skip
    problems: list[str] = []

    def check(type_name: str, rec: dict, where: str) -> None:
        t = schema.get_type(type_name)
        for name in MODELLED_FIELDS.get(type_name, ()):
            if name in SPECIAL_FIELDS.get(type_name, ()) or name not in rec:
                continue
            ftype = t.fields[name].type  # type: ignore[union-attr]
            check_value(ftype, rec[name], f"{where}.{name}")

    def check_value(ftype, value, where: str) -> None:  # noqa: ANN001
        if value is None:
            if is_non_null_type(ftype):
                problems.append(f"{where}: null in a non-null field")
            return
        inner = ftype.of_type if is_non_null_type(ftype) else ftype
        if is_list_type(inner):
            if not isinstance(value, list):
                problems.append(f"{where}: not a list")
                return
            for i, v in enumerate(value):
                check_value(inner.of_type, v, f"{where}[{i}]")
            return
        named = get_named_type(ftype)
        if named.name.endswith("Connection") and isinstance(value, list):  # records hold all the nodes
            node_type = get_named_type(named.fields["nodes"].type)  # type: ignore[union-attr]
            for i, v in enumerate(value):
                check(v.get("__typename", node_type.name), v, f"{where}[{i}]")
            return
        if isinstance(value, Ref):
            if not value.gid.startswith("gid://shopify/"):
                problems.append(f"{where}: bad reference {value.gid}")
            return
        if isinstance(named, GraphQLEnumType):
            if value not in named.values:
                problems.append(f"{where}: {value!r} is not a {named.name}")
        elif named.name == "DateTime":
            if not ts.match(value):
                problems.append(f"{where}: bad timestamp {value!r}")
        elif named.name in ("Decimal", "Money"):
            float(value)
        elif named.name in scalars:
            if type(value) is not scalars[named.name]:
                problems.append(f"{where}: {value!r} is not {named.name}")
        elif named.name == "JSON":
            pass
        elif isinstance(value, dict):
            check(value.get("__typename", named.name), value, where)
        else:
            problems.append(f"{where}: unexpected {value!r} for {named.name}")

    d = data(orders=400, big_orders=0)
    for t in ("Order", "Customer", "Product", "InventoryItem", "InventoryLevel", "Location", "Collection"):
        for idx in range(min(d.count(t), 150)):
            check(t, d.generate(t, idx), f"{t}[{idx}]")
    event = d.make_event(0, subject_type="ORDER", subject_id="gid://shopify/Order/1", subject_name="#1001", at=int(ANCHOR))
    check("BasicEvent", event, "event")
    assert problems == []
