"""``shopsync check`` through the real command line (shopsync.commands.main.main)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopsync.commands.main import main
from shopsync.queries import load_resources

TOKEN = "shpat_do_not_print_me"


@pytest.fixture(autouse=True)
def token_env(monkeypatch):
    monkeypatch.setenv("CHECK_TOKEN", TOKEN)
    monkeypatch.delenv("SHOPSYNC_CONFIG", raising=False)


def config(tmp_path: Path, extra: str = "", shops: str | None = None) -> Path:
    shops = shops if shops is not None else (
        '[[shop]]\nname = "acme"\ndomain = "acme.myshopify.com"\naccess_token = { env = "CHECK_TOKEN" }\n'
        'resources = ["orders", "inventory_levels"]\n'
        '[[shop]]\nname = "books"\ndomain = "books.myshopify.com"\naccess_token = { env = "CHECK_TOKEN" }\n'
        'resources = ["products"]\n'
    )
    path = tmp_path / "shopsync.toml"
    path.write_text(f'database = "sqlite:///state.db"\n{extra}\n{shops}')
    return path


def section(out: str, shop: str) -> str:
    """The lines printed for one shop."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"shop {shop} "))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith(" ")), len(lines))
    return "\n".join(lines[start:end])


def test_valid_configuration_prints_resources_and_scopes(tmp_path, capsys):
    assert main(["check", "--config", str(config(tmp_path))]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "every document valid against the pinned 2026-10 schema" in out
    acme = section(out, "acme")
    assert "resources: orders, inventory_levels" in acme
    scopes_line = next(line for line in acme.splitlines() if line.startswith("  access scopes:"))
    scopes = set(scopes_line.split(":", 1)[1].replace(" ", "").split(","))
    assert {"read_orders", "read_inventory", "read_all_orders"} <= scopes
    assert "read_all_orders: without it Shopify shows only the last 60 days of orders" in acme
    books = section(out, "books")
    assert "access scopes: read_products" in books and "read_all_orders" not in books
    assert out.rstrip().endswith("ok")
    assert TOKEN not in out


def test_other_api_version_warns_but_passes(tmp_path, capsys):
    assert main(["check", "--config", str(config(tmp_path, 'api_version = "2027-01"'))]) == 0
    out, err = capsys.readouterr()
    assert "warning: api_version 2027-01 differs from the pinned 2026-10" in err
    assert "api_version: 2027-01" in out


def test_configuration_error_exits_2_naming_file_and_key(tmp_path, capsys):
    path = config(tmp_path, "[sync]\noverlap = \"soon\"")
    assert main(["check", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"shopsync check: {path}: sync.overlap: ")


def test_bad_user_query_exits_2_naming_file_and_line(tmp_path, capsys):
    queries = tmp_path / "queries"
    queries.mkdir()
    (queries / "orders.graphql").write_text(
        "# shopsync:resource\n# root: orders\n# filter: updated_at\n\nfragment O on Order {\n  id\n  updatedAt\n  totl\n}\n"
    )
    assert main(["check", "--config", str(config(tmp_path, 'queries_dir = "queries"'))]) == 2
    err = capsys.readouterr().err
    assert f"{queries / 'orders.graphql'}:8:" in err and "totl" in err


def test_user_queries_are_listed(tmp_path, capsys):
    queries = tmp_path / "queries"
    queries.mkdir()
    (queries / "drafts.graphql").write_text(
        "# shopsync:resource\n# root: draftOrders\n# filter: updated_at\nfragment D on DraftOrder { id updatedAt }\n"
    )
    shops = '[[shop]]\nname = "acme"\ndomain = "acme.myshopify.com"\naccess_token = { env = "CHECK_TOKEN" }\nresources = ["drafts"]\n'
    assert main(["check", "--config", str(config(tmp_path, 'queries_dir = "queries"', shops))]) == 0
    out = capsys.readouterr().out
    assert f"{len(load_resources()) + 1} resources" in out and f"from {queries.resolve()}: drafts" in out
    assert "access scopes: read_draft_orders" in section(out, "acme")


def test_config_from_the_environment(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SHOPSYNC_CONFIG", str(config(tmp_path)))
    assert main(["check"]) == 0
    assert f"configuration: {tmp_path / 'shopsync.toml'}" in capsys.readouterr().out


def test_the_discount_nodes_need_read_discounts(tmp_path, capsys):
    shops = ('[[shop]]\nname = "acme"\ndomain = "acme.myshopify.com"\naccess_token = { env = "CHECK_TOKEN" }\n'
             'resources = ["discount_nodes", "gift_cards"]\n')  # fmt: skip
    assert main(["check", "--config", str(config(tmp_path, "", shops))]) == 0
    acme = section(capsys.readouterr().out, "acme")
    scopes_line = next(line for line in acme.splitlines() if line.startswith("  access scopes:"))
    assert "read_discounts" in scopes_line.split(":", 1)[1].replace(" ", "").split(",")
    assert "    discount_nodes: read_discounts" in acme.splitlines()
