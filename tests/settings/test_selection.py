"""``--shop`` and ``--resource`` of ``shopsync sync`` and ``shopsync reconcile``."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopsync.commands.main import main
from shopsync.commands.selection import select_streams
from shopsync.settings import load_settings

CONFIG = """database = "sqlite:///{db}"
[[shop]]
name = "acme"
domain = "acme.myshopify.com"
access_token = {{ env = "T" }}
[[shop]]
name = "globex"
domain = "globex.myshopify.com"
access_token = {{ env = "T" }}
resources = ["orders", "products"]
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "shopsync.toml"
    path.write_text(CONFIG.format(db=tmp_path / "state.db"))
    return path


def test_shops_and_resources_are_narrowed_to_those_named(config: Path) -> None:
    settings = load_settings(config, env={"T": "shpat_x"})
    assert [s.name for s in select_streams(settings, None, None, command="sync") or []] == ["acme", "globex"]
    chosen = select_streams(settings, ["globex"], ["orders", "customers"], command="sync")
    assert chosen is not None and [(s.name, s.resources) for s in chosen] == [("globex", ("orders",))]


@pytest.mark.parametrize("command", ["sync", "reconcile"])
@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--shop", "initech"], "unknown shop(s): initech"), (["--resource", "order"], "unknown resource(s): order")],
)
def test_an_unknown_name_exits_2_naming_it(config: Path, command: str, flags: list[str], message: str,
                                           capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T", "shpat_x")
    assert main([command, "--config", str(config), *flags]) == 2
    assert f"shopsync {command}: {message}" in capsys.readouterr().err
