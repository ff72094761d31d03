"""Analyst views: the DDL built from a resource (pure) and the sinks keeping it current, in
SQLite and PostgreSQL (README, "Views for analysts")."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from shopsync.queries import Resource, load_resource_text, load_resources, packaged_dir
from shopsync.state.models import Deletion, Record
from shopsync.state.open import make_sink
from shopsync.state.postgres import split_schema
from shopsync.state.table import TableSink
from shopsync.state.views import plan_views, snake, view_sql
from tests.storage.conftest import pg_url  # noqa: F401 - the fresh-schema fixture

SMALLER_PRODUCTS = """# shopsync:resource
# root: products
# sort: UPDATED_AT
# filter: updated_at
fragment ProductRecord on Product {
  id
  productTitle: title
  updatedAt
  variants(first: 50) { edges { node { id sku } } }
}
"""


def _products(text: str | None = None) -> Resource:
    path = packaged_dir() / "products.graphql"
    return load_resource_text("products", path, text if text is not None else path.read_text())


def test_snake_case_names() -> None:
    assert [snake(n) for n in ("shippingAddress", "countryCodeV2", "address1", "id", "HTMLBody")] == [
        "shipping_address", "country_code_v2", "address1", "id", "html_body"]


def test_plan_of_the_packaged_orders() -> None:
    plan = plan_views(load_resources()["orders"])
    assert [lv.name for lv in plan.lists] == [
        "orders__tax_lines", "orders__transactions", "orders__refunds", "orders__line_items", "orders__line_items__tax_lines",
        "orders__line_items__discount_allocations",
    ]  # fmt: skip
    cols = {c.name: c for c in plan.columns}
    assert cols["shipping_address__city"].keys == ("shippingAddress", "city")
    assert cols["total_price_set"].keys == ("totalPriceSet", "shopMoney", "amount")
    assert cols["total_price_set__presentment_currency"].keys == ("totalPriceSet", "presentmentMoney", "currencyCode")
    assert cols["created_at"].scalar == "DateTime" and cols["test"].scalar == "Boolean"
    assert cols["tags"].scalar == "JSON"
    assert "line_items" not in cols and "transactions" not in cols  # lists are child views, not columns


def test_child_view_columns_and_collisions() -> None:
    plan = plan_views(_products())
    variants = next(v for v in view_sql(plan, "sqlite") if v.name == "products__variants")
    # The owner's id, the list position, and the variant's own position renamed beside it.
    assert 't.id AS "product_id"' in variants.create
    assert 'c1.key + 1 AS "position"' in variants.create
    assert "json_extract(c1.value, '$.position') AS INTEGER) AS \"product_variant_position\"" in variants.create
    nested = next(v for v in view_sql(plan, "postgresql") if v.name == "products__variants__selected_options")
    assert '"product_variant_id"' in nested.create and "c2.position AS \"position\"" in nested.create


def _product(i: int, options: int, variants: int, *, updated: str = "2026-11-01T00:00:00Z") -> Record:
    data = {
        "id": f"gid://shopify/Product/{i}", "title": f"P{i}", "productTitle": f"P{i}", "updatedAt": updated,
        "tags": ["a"], "options": [{"id": f"gid://shopify/ProductOption/{i}{k}", "name": "Size", "position": k + 1,
                                     "values": ["S"]} for k in range(options)],
        "variants": [{"id": f"gid://shopify/ProductVariant/{i}{k}", "sku": f"S{i}-{k}", "position": k + 1,
                      "price": "9.50", "selectedOptions": [{"name": "Size", "value": "S"}]} for k in range(variants)],
    }
    return Record.from_node(shop="acme", resource="products", data=data)


class _Db:
    """Query the sink's database directly, SQLite or PostgreSQL."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def rows(self, sql: str) -> list[tuple]:
        if self.url.startswith("sqlite"):
            import sqlite3

            con = sqlite3.connect(self.url.removeprefix("sqlite://"))
            try:
                return [tuple(r) for r in con.execute(sql)]
            finally:
                con.close()
        dsn, schema = split_schema(self.url)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'SET search_path TO "{schema}"')
            return [tuple(r.values()) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    async def views(self) -> set[str]:
        if self.url.startswith("sqlite"):
            return {r[0] for r in await self.rows("SELECT name FROM sqlite_master WHERE type = 'view'")}
        return {r[0] for r in await self.rows("SELECT table_name FROM information_schema.views WHERE table_schema = current_schema()")}

    async def columns(self, view: str) -> list[str]:
        if self.url.startswith("sqlite"):
            return [r[1] for r in await self.rows(f'PRAGMA table_info("{view}")')]
        return [r[0] for r in await self.rows(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
            f" AND table_name = '{view}' ORDER BY ordinal_position")]


async def _write(url: str, resource: Resource, records: list[Record], deletions: list[Deletion] = ()) -> None:
    sink = make_sink(url)
    assert isinstance(sink, TableSink)
    sink.view_resources = {"products": resource}
    await sink.open()
    try:
        await sink.write(records, list(deletions))
    finally:
        await sink.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'sink.db'}"
    return request.getfixturevalue("pg_url")


async def test_views_exclude_deleted_rows(url: str) -> None:
    await _write(url, _products(), [_product(1, 2, 3), _product(2, 1, 2)],
                 [Deletion(shop="acme", resource="products", id="gid://shopify/Product/2", deleted_at="2026-11-02T00:00:00Z")])
    db = _Db(url)
    assert await db.rows("SELECT id, title FROM products_v") == [("gid://shopify/Product/1", "P1")]
    assert await db.rows("SELECT product_id, position, sku, price FROM products__variants ORDER BY position") == [
        ("gid://shopify/Product/1", k + 1, f"S1-{k}", pytest.approx(9.5)) for k in range(3)]
    assert await db.rows("SELECT count(*) FROM products__variants__selected_options") == [(3,)]
    assert await db.rows("SELECT count(*) FROM products__options") == [(2,)]


async def test_views_follow_a_changed_fragment(url: str) -> None:
    await _write(url, _products(), [_product(1, 2, 3)])
    db = _Db(url)
    before = await db.views()
    assert {"products_v", "products__options", "products__variants", "products__variants__selected_options"} <= before
    assert "title" in await db.columns("products_v")

    # The next start runs with a smaller fragment: changed views replaced, vanished ones dropped.
    await _write(url, _products(SMALLER_PRODUCTS), [_product(1, 2, 3, updated="2026-11-03T00:00:00Z")])
    after = await db.views()
    assert {v for v in after if v.startswith("products")} == {"products_v", "products__variants"}
    assert await db.columns("products_v") == ["shop", "id", "product_title", "updated_at"]
    assert await db.columns("products__variants") == ["shop", "product_id", "position", "id", "sku"]
    assert await db.rows("SELECT product_title FROM products_v") == [("P1",)]


async def test_unchanged_views_are_left_as_they_are(pg_url: str, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    await _write(pg_url, _products(), [_product(1, 1, 1)])
    db = _Db(pg_url)
    oids = "SELECT relname, oid::bigint FROM pg_class WHERE relkind = 'v' AND relnamespace = current_schema()::regnamespace ORDER BY 1"
    first = await db.rows(oids)
    await _write(pg_url, _products(), [_product(1, 1, 1, updated="2026-11-05T00:00:00Z")])
    assert await db.rows(oids) == first and len(first) == 4
    assert not [r.getMessage() for r in caplog.records if r.name == "shopsync.state.view_sync"]


async def test_an_object_shopsync_did_not_make_is_left_alone(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'sink.db'}"
    import sqlite3

    con = sqlite3.connect(tmp_path / "sink.db")
    con.execute('CREATE VIEW "products_v" AS SELECT 42 AS answer')
    con.close()
    await _write(url, _products(), [_product(1, 1, 1)])
    db = _Db(url)
    assert await db.rows("SELECT answer FROM products_v") == [(42,)]
    assert await db.rows("SELECT count(*) FROM products__variants") == [(1,)]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
async def test_schema_command_prints_ddl_that_runs(
    dialect: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    from shopsync.commands.main import main

    assert main(["schema", "--sql", "--dialect", dialect]) == 0
    ddl = capsys.readouterr().out
    plans = {name: plan_views(r) for name, r in load_resources().items()}
    views = [v for p in plans.values() for v in p.names]
    for view in views:
        assert f'CREATE VIEW "{view}" AS' in ddl
    url = f"sqlite://{tmp_path / 'sink.db'}" if dialect == "sqlite" else request.getfixturevalue("pg_url")
    sink = make_sink(url)
    assert isinstance(sink, TableSink)
    sink.view_resources = {}  # tables only: the printed DDL makes the views
    await sink.open()
    try:
        await sink.prepare([Record(shop="acme", resource=name, id="x", updated_at=None, data={"id": "x"}) for name in plans], [])
    finally:
        await sink.close()
    db = _Db(url)
    assert not await db.views()
    if dialect == "sqlite":
        import sqlite3

        con = sqlite3.connect(tmp_path / "sink.db")
        con.executescript(ddl)
        con.close()
    else:
        dsn, schema = split_schema(url)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'SET search_path TO "{schema}"')
            await conn.execute(ddl)
        finally:
            await conn.close()
    assert await db.views() == set(views)
    for view in views:
        assert await db.rows(f'SELECT count(*) FROM "{view}"') == [(0,)]


def test_schema_command_follows_the_configured_sink(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from shopsync.commands.main import main

    queries = tmp_path / "queries"
    queries.mkdir()
    (queries / "products.graphql").write_text(SMALLER_PRODUCTS)
    config = tmp_path / "shopsync.toml"
    config.write_text(
        f'database = "sqlite:///{tmp_path / "state.db"}"\nqueries_dir = "queries"\n'
        '[sink]\nurl = "postgresql://127.0.0.1:5432/test?schema=analytics"\n'
        '[[shop]]\nname = "acme"\ndomain = "acme.myshopify.com"\naccess_token = { env = "T" }\n'
    )
    monkeypatch.setenv("T", "shpat_test")
    assert main(["schema", "--sql", "--config", str(config)]) == 0
    ddl = capsys.readouterr().out
    assert 'CREATE VIEW "analytics"."products_v" AS' in ddl and 'FROM "analytics"."products" AS t' in ddl
    assert '"product_title"' in ddl and "products__options" not in ddl
    assert "::timestamptz" in ddl  # the PostgreSQL dialect, from the sink URL
