"""open_storage wiring and storage URLs."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from shopsync.errors import ConfigError
from shopsync.settings.urls import path_from_url, redact_url
from shopsync.state.jsonl import JsonlSink
from shopsync.state.open import open_storage
from shopsync.state.sqlite_sink import SqliteSink


async def test_same_file_shares_connection_and_transaction(tmp_path: Path) -> None:
    # Relative and absolute spellings of one file are the same database.
    storage = await open_storage("sqlite:data/s.db", f"sqlite://{tmp_path}/data/s.db", base_dir=tmp_path)
    try:
        assert storage.shared_transaction
        assert isinstance(storage.sink, SqliteSink)
        assert storage.sink.database is storage.state.database  # type: ignore[attr-defined]
        assert storage.database_url == storage.sink_url == f"sqlite://{tmp_path}/data/s.db"
    finally:
        await storage.close()
    assert "s.db" in os.listdir(tmp_path / "data")


async def test_default_sink_is_the_database(tmp_path: Path) -> None:
    async with await open_storage("sqlite:s.db", base_dir=tmp_path) as storage:
        assert storage.shared_transaction


async def test_separate_sinks_are_not_shared(tmp_path: Path) -> None:
    async with await open_storage("sqlite:s.db", "sqlite:other.db", base_dir=tmp_path) as storage:
        assert not storage.shared_transaction
    async with await open_storage("sqlite:s.db", "jsonl:out", base_dir=tmp_path, rotate_bytes=123) as storage:
        assert not storage.shared_transaction
        assert isinstance(storage.sink, JsonlSink) and storage.sink.rotate_bytes == 123
        assert storage.sink.root == tmp_path / "out"


async def test_from_settings_like_object(tmp_path: Path) -> None:
    """What shopsync.settings.Settings offers: database, sink_url, sink.rotate_bytes, path (the file)."""
    settings = SimpleNamespace(
        database="sqlite:state/s.db",
        sink_url="jsonl:out",
        sink=SimpleNamespace(rotate_bytes=777),
        path=tmp_path / "shopsync.toml",
    )
    async with await open_storage(settings) as storage:  # type: ignore[arg-type]  # duck-typed on purpose
        assert isinstance(storage.sink, JsonlSink) and storage.sink.rotate_bytes == 777
        assert storage.sink.root == tmp_path / "out"  # relative to the configuration file
        assert storage.database_url == f"sqlite://{tmp_path}/state/s.db"


@pytest.mark.parametrize(
    ("database", "sink", "message"),
    [
        ("mysql://x/y", None, "unsupported scheme 'mysql'"),
        ("sqlite:s.db", "s3://bucket/x", "unsupported scheme 's3'"),
        ("s.db", None, "no scheme"),
        ("sqlite://s.db", None, "must look like"),
        ("sqlite://host/s.db", None, "must look like"),
        ("sqlite:", None, "must look like"),
        ("sqlite:s.db?mode=ro", None, "query strings"),
    ],
)
async def test_bad_urls_are_config_errors(
    tmp_path: Path, database: str, sink: str | None, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        await open_storage(database, sink, base_dir=tmp_path)


def test_path_from_url(tmp_path: Path) -> None:
    assert path_from_url("sqlite:s.db", base_dir=tmp_path) == tmp_path / "s.db"
    assert path_from_url("sqlite:./d/s.db", base_dir=tmp_path) == tmp_path / "d" / "s.db"
    for absolute in (
        "sqlite:///var/lib/shopsync/s.db",
        "sqlite:////var/lib/shopsync/s.db",
        "sqlite:/var/lib/shopsync/s.db",
    ):
        assert path_from_url(absolute, base_dir=tmp_path) == Path("/var/lib/shopsync/s.db")
    assert path_from_url("jsonl:out/x", base_dir=tmp_path) == tmp_path / "out" / "x"
    assert path_from_url("sqlite:s.db") == Path.cwd() / "s.db"


def test_redact_url_hides_passwords() -> None:
    assert redact_url("postgresql://app:hunter2@db:5432/shop") == "postgresql://app:***@db:5432/shop"
    assert redact_url("sqlite:s.db") == "sqlite:s.db"
