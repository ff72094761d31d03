"""One shop, one budget: the engine keeps a shop's client and budget across harmless reloads."""

from __future__ import annotations

from shopsync.engine.engine import SyncEngine
from shopsync.settings import load_settings


def _config(tmp_path, shops: list[tuple[str, str]], name="shopsync.toml"):
    lines = [f'database = "sqlite:///{tmp_path / "state.db"}"']
    for shop, token_var in shops:
        lines += ["[[shop]]", f'name = "{shop}"', f'domain = "{shop}.myshopify.com"', f'access_token = {{ env = "{token_var}" }}']
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_runtime_survives_reordering_and_is_replaced_when_credentials_change(tmp_path):
    env = {"TOKEN_A": "shpat_aaaaaaaa", "TOKEN_B": "shpat_bbbbbbbb", "TOKEN_B2": "shpat_cccccccc"}
    first = load_settings(_config(tmp_path, [("a", "TOKEN_A"), ("b", "TOKEN_B")]), env=env)
    # "a" removed: "b" moves to index 0, which must not look like a different shop.
    second = load_settings(_config(tmp_path, [("b", "TOKEN_B")], "second.toml"), env=env)
    third = load_settings(_config(tmp_path, [("b", "TOKEN_B2")], "third.toml"), env=env)
    async with SyncEngine(first, None, work_dir=tmp_path) as engine:
        runtime = engine.runtime(first.shop("b"))
        assert engine.runtime(second.shop("b")) is runtime
        assert engine.existing_runtime("b") is runtime
        replaced = engine.runtime(third.shop("b"))
        assert replaced is not runtime and replaced.budget is not runtime.budget
        assert engine.existing_runtime("nope") is None
