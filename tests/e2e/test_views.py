"""The analyst views (README, "Views for analysts") on a synced simulated shop, in SQLite and PostgreSQL.

The README's example queries are read from README.md and run as they are written; their answers
are computed again from the simulator's truth. Every view of every shipped resource is counted
against the table it reads: one ``_v`` row per live record, one child row per element of the
nested lists in the stored JSON.
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter, defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from shopsync.queries import load_resources
from shopsync.simulator.server import SimulatedShop, run_simulator
from shopsync.state.postgres import split_schema
from shopsync.state.views import ListView, ViewPlan, plan_views
from tests.e2e.conftest import ALL_RESOURCES, sync_once, token_env, write_config
from tests.storage.conftest import pg_url  # noqa: F401 - the fresh-schema fixture
from tests.support import small_shop
from tests.support.sinks import ISSUE14_RESOURCES

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_queries(dialect: str) -> dict[str, str]:
    """The example queries of README's "Views for analysts" for ``dialect``: title → SQL."""
    text = README.read_text(encoding="utf-8")
    section = text.split("### Views for analysts", 1)[1].split("\n### ", 1)[0]
    out = {}
    for block in re.findall(r"```sql\n(.*?)```", section, re.S):
        head = re.match(r"-- (.+?)(?: \[(sqlite|postgresql)\])?\n", block)
        assert head, f"an example query without a '-- title' line: {block[:60]!r}"
        if head.group(2) in (None, dialect):
            out[head.group(1)] = block
    return out


def _money(value: object) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def _normal(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A result row with numbers as 2-decimal Decimals and dates as ISO text (both databases alike)."""
    out: list[Any] = []
    for v in row:
        if isinstance(v, float | Decimal):
            out.append(_money(v))
        elif isinstance(v, date):
            out.append(v.isoformat())
        else:
            out.append(v)
    return tuple(out)


def expected_answers(shop: SimulatedShop) -> dict[str, list[tuple[Any, ...]]]:
    """What each README query must return, from the shop's own data."""
    orders = list(shop.truth("orders").values())
    assert orders and any(o["refunds"] for o in orders), "the simulated shop should have refunds"
    by_day: dict[str, list[Decimal]] = defaultdict(list)
    for o in orders:
        if o["cancelledAt"] is None:
            by_day[o["createdAt"][:10]].append(Decimal(o["totalPriceSet"]["shopMoney"]["amount"]))
    revenue = [(shop.name, day, len(v), _money(sum(v))) for day, v in sorted(by_day.items())]
    units: Counter[str] = Counter()
    with_sku: dict[str, set[str]] = defaultdict(set)
    for o in orders:
        for li in o["lineItems"]:
            if li["sku"] is not None:
                units[li["sku"]] += li["quantity"]
                with_sku[li["sku"]].add(o["id"])
    top = sorted(units.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    # The refund rate reads the order_refunds resource (its refunds view), one record per order.
    refunds = shop.truth("order_refunds")
    assert set(refunds) == {o["id"] for o in orders}
    refunded = [r for r in refunds.values() if r["refunds"]]
    amount = sum((Decimal(r["totalRefundedSet"]["shopMoney"]["amount"]) for o in refunded for r in o["refunds"]), Decimal(0))
    return {
        "revenue by day": revenue,
        "top SKUs by units sold": [(shop.name, sku, n, len(with_sku[sku])) for sku, n in top],
        "refund rate": [(shop.name, len(orders), len(refunded), _money(Decimal(100 * len(refunded)) / len(orders)), _money(amount))],
    }


def _list_length(value: Any, chain: list[ListView]) -> int:
    """How many elements the innermost list of ``chain`` has, summed over the outer lists."""
    step, rest = chain[0], chain[1:]
    for key in step.keys:
        value = value.get(key) if isinstance(value, dict) else None
    items = value if isinstance(value, list) else []
    return len(items) if not rest else sum(_list_length(item, rest) for item in items)


def expected_counts(plans: dict[str, ViewPlan], live: dict[str, list[dict]]) -> dict[str, int]:
    """Per view, the rows it must have: live records, or the summed lengths of the stored lists."""
    out = {}
    for name, plan in plans.items():
        out[f"{name}_v"] = len(live[name])
        for lv in plan.lists:
            chain = [lv]
            while chain[0].owner is not None:
                chain.insert(0, chain[0].owner)
            out[lv.name] = sum(_list_length(data, chain) for data in live[name])
    return out


@pytest.fixture
async def shop():
    config = small_shop("views")
    async with run_simulator(config) as server:
        yield server.shop()


@pytest.fixture
def plans() -> dict[str, ViewPlan]:
    resources = load_resources()
    return {name: plan_views(resources[name]) for name in (*ALL_RESOURCES, *ISSUE14_RESOURCES)}


async def test_views_in_sqlite_answer_the_readme_queries(shop: SimulatedShop, plans: dict[str, ViewPlan], tmp_path: Path) -> None:
    config = write_config(tmp_path / "shopsync.toml", [shop], extra_shop_keys={shop.name: {"resources": list(plans)}})
    report = await sync_once(config, token_env(shop))
    assert report.ok, report
    con = sqlite3.connect(f"file:{tmp_path / 'state.db'}?mode=ro", uri=True)
    try:
        queries = readme_queries("sqlite")
        assert set(queries) == {"revenue by day", "top SKUs by units sold", "refund rate"}
        expected = expected_answers(shop)
        for title, sql in queries.items():
            got = [_normal(tuple(r)) for r in con.execute(sql)]
            assert got == expected[title], title

        live = {name: [orjson.loads(d) for (d,) in con.execute(f'SELECT data FROM "{name}" WHERE deleted_at IS NULL')]
                for name in plans}
        assert all(live.values()), {k: len(v) for k, v in live.items()}
        counts = {view: con.execute(f'SELECT count(*) FROM "{view}"').fetchone()[0] for view in expected_counts(plans, live)}
        assert counts == expected_counts(plans, live)
        assert counts["orders__line_items"] > counts["orders_v"] and counts["products__variants__selected_options"] > 0
        # A kind (__typename) is a column under its alias, or prefixed in a flattened object.
        kinds = con.execute("SELECT DISTINCT type, value__value_type FROM order_shipping_discounts__discount_applications").fetchall()
        assert kinds and all(t and v for t, v in kinds), kinds
        assert con.execute("SELECT count(*) FROM discount_nodes_v WHERE discount__typename IS NULL").fetchone()[0] == 0

        # Typed, flattened columns hold the record's values.
        truth = shop.truth("orders")
        one = next(o for o in truth.values() if o["shippingAddress"] and o["refunds"])
        row = con.execute(
            "SELECT shipping_address__city, total_price_set, total_price_set_currency, test, created_at, customer__id"
            " FROM orders_v WHERE id = ?", (one["id"],)
        ).fetchone()
        assert row == (one["shippingAddress"]["city"], float(one["totalPriceSet"]["shopMoney"]["amount"]),
                       one["totalPriceSet"]["shopMoney"]["currencyCode"], int(one["test"]), one["createdAt"],
                       one["customer"]["id"] if one["customer"] else None)
        positions = [r[0] for r in con.execute("SELECT position FROM orders__line_items WHERE order_id = ? ORDER BY position", (one["id"],))]
        assert positions == list(range(1, len(one["lineItems"]) + 1))
    finally:
        con.close()


async def test_views_in_postgresql_answer_the_readme_queries(
    shop: SimulatedShop, plans: dict[str, ViewPlan], tmp_path: Path, pg_url: str  # noqa: F811 - the fixture
) -> None:
    config = write_config(tmp_path / "shopsync.toml", [shop], sink=pg_url, extra_shop_keys={shop.name: {"resources": list(plans)}})
    report = await sync_once(config, token_env(shop))
    assert report.ok, report
    dsn, schema = split_schema(pg_url)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'SET search_path TO "{schema}"')
        queries = readme_queries("postgresql")
        assert set(queries) == {"revenue by day", "top SKUs by units sold", "refund rate"}
        expected = expected_answers(shop)
        for title, sql in queries.items():
            got = [_normal(tuple(r.values())) for r in await conn.fetch(sql)]
            assert got == expected[title], title

        live = {name: [orjson.loads(r["data"]) for r in await conn.fetch(f'SELECT data::text AS data FROM "{name}" WHERE deleted_at IS NULL')]
                for name in plans}
        assert all(live.values()), {k: len(v) for k, v in live.items()}
        counts = {view: await conn.fetchval(f'SELECT count(*) FROM "{view}"') for view in expected_counts(plans, live)}
        assert counts == expected_counts(plans, live)

        types = await conn.fetchrow(
            "SELECT pg_typeof(created_at)::text AS ts, pg_typeof(total_price_set)::text AS money,"
            " pg_typeof(test)::text AS flag, pg_typeof(subtotal_line_items_quantity)::text AS n,"
            " pg_typeof(tags)::text AS tags FROM orders_v LIMIT 1"
        )
        assert dict(types) == {"ts": "timestamp with time zone", "money": "numeric", "flag": "boolean", "n": "bigint", "tags": "jsonb"}
        truth = shop.truth("orders")
        one = next(o for o in truth.values() if o["shippingAddress"] and o["refunds"])
        row = await conn.fetchrow(
            "SELECT shipping_address__city, total_price_set, test, to_char(created_at AT TIME ZONE 'UTC',"
            " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS created FROM orders_v WHERE id = $1", one["id"]
        )
        assert tuple(row.values()) == (one["shippingAddress"]["city"], Decimal(one["totalPriceSet"]["shopMoney"]["amount"]),
                                       one["test"], one["createdAt"])
    finally:
        await conn.close()
