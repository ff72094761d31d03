"""JSONL specifics: line format, rotation, append-only files, torn tails, fsync, locking, errors."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from shopsync.errors import StorageError
from shopsync.state import Deletion, Record
from shopsync.state import jsonl as jsonl_module
from shopsync.state.jsonl import JsonlSink, list_files, read_latest


def rec(i: int, ts: str = "2026-01-01T00:00:00Z", pad: int = 0) -> Record:
    gid = f"gid://shopify/Order/{i}"
    return Record(shop="acme", resource="orders", id=gid, updated_at=ts, data={"id": gid, "pad": "x" * pad})


def stream_dir(root: Path) -> Path:
    return root / "acme" / "orders"


def append_bytes(path: Path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


async def open_sink(root: Path, rotate_bytes: int = 1 << 20) -> JsonlSink:
    sink = JsonlSink(root, rotate_bytes=rotate_bytes)
    await sink.open()
    return sink


async def test_line_format(tmp_path: Path) -> None:
    sink = await open_sink(tmp_path)
    await sink.write(
        [rec(1)],
        [
            Deletion(
                shop="acme", resource="orders", id="gid://shopify/Order/2", deleted_at="2026-01-02T00:00:00Z"
            )
        ],
    )
    await sink.close()
    lines = (stream_dir(tmp_path) / "00000001.jsonl").read_bytes().splitlines(keepends=True)
    assert lines == [
        b'{"shop":"acme","resource":"orders","id":"gid://shopify/Order/1","updatedAt":"2026-01-01T00:00:00Z",'
        b'"data":{"id":"gid://shopify/Order/1","pad":""}}\n',
        b'{"shop":"acme","resource":"orders","id":"gid://shopify/Order/2","updatedAt":"2026-01-02T00:00:00Z",'
        b'"deletedAt":"2026-01-02T00:00:00Z","data":null}\n',
    ]
    for line in lines:
        orjson.loads(line)


async def test_rotation_by_size_and_files_never_rewritten(tmp_path: Path) -> None:
    sink = await open_sink(tmp_path, rotate_bytes=1000)
    contents: dict[str, bytes] = {}
    final: dict[str, bytes] = {}
    n = 0
    for _ in range(12):
        await sink.write([rec(n + k, pad=100) for k in range(3)])  # ~600 bytes per write
        n += 3
        files = list_files(stream_dir(tmp_path))
        for _, path in files:
            data = path.read_bytes()
            if path.name in contents:
                assert data.startswith(contents[path.name]), f"{path.name} was rewritten, not appended to"
            if path.name in final:
                assert data == final[path.name], f"{path.name} changed after a newer file existed"
            contents[path.name] = data
        for _, path in files[:-1]:
            final.setdefault(path.name, contents[path.name])
    await sink.close()
    files = list_files(stream_dir(tmp_path))
    assert [p.name for _, p in files][:3] == ["00000001.jsonl", "00000002.jsonl", "00000003.jsonl"]
    sizes = [p.stat().st_size for _, p in files]
    line_size = len(jsonl_module.record_line(rec(0, pad=100)))
    assert all(s <= 1000 for s in sizes), sizes
    assert all(s + line_size > 1000 for s in sizes[:-1])  # a file is closed only when the next line won't fit
    assert len(read_latest(tmp_path, "acme", "orders")) == n == 36
    total_lines = sum(len(p.read_bytes().splitlines()) for _, p in files)
    assert total_lines == 36


async def test_oversized_line_gets_its_own_file(tmp_path: Path) -> None:
    sink = await open_sink(tmp_path, rotate_bytes=100)
    await sink.write([rec(1, pad=500), rec(2, pad=500)])
    await sink.close()
    assert [p.stat().st_size > 500 for _, p in list_files(stream_dir(tmp_path))] == [True, True]


async def test_reopen_appends_to_intact_last_file(tmp_path: Path) -> None:
    sink = await open_sink(tmp_path)
    await sink.write([rec(1)])
    await sink.close()
    sink = await open_sink(tmp_path)
    await sink.write([rec(2)])
    await sink.close()
    files = list_files(stream_dir(tmp_path))
    assert len(files) == 1 and len(files[0][1].read_bytes().splitlines()) == 2


async def test_torn_last_line_is_left_alone_and_a_new_file_started(tmp_path: Path) -> None:
    sink = await open_sink(tmp_path)
    await sink.write([rec(1), rec(2)])
    await sink.close()
    first = stream_dir(tmp_path) / "00000001.jsonl"
    # What a crash in the middle of write() leaves: part of a line, no newline.
    torn = jsonl_module.record_line(rec(3))[:40]
    append_bytes(first, torn)
    before = first.read_bytes()

    assert sorted(read_latest(tmp_path, "acme", "orders")) == [
        "gid://shopify/Order/1",
        "gid://shopify/Order/2",
    ]
    sink = await open_sink(tmp_path)
    await sink.write([rec(3), rec(4)])
    await sink.close()

    assert first.read_bytes() == before  # never rewritten, never truncated
    second = stream_dir(tmp_path) / "00000002.jsonl"
    assert len(second.read_bytes().splitlines()) == 2
    assert len(read_latest(tmp_path, "acme", "orders")) == 4


async def test_power_loss_zero_tail_is_treated_as_torn(tmp_path: Path) -> None:
    sink = await open_sink(tmp_path)
    await sink.write([rec(1)])
    await sink.close()
    append_bytes(stream_dir(tmp_path) / "00000001.jsonl", b"\0" * 64)
    sink = await open_sink(tmp_path)
    await sink.write([rec(2)])
    await sink.close()
    assert len(list_files(stream_dir(tmp_path))) == 2
    assert len(read_latest(tmp_path, "acme", "orders")) == 2


async def test_write_fsyncs_file_and_new_directory_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(jsonl_module.os, "fsync", spy)
    sink = await open_sink(tmp_path)
    synced.clear()
    await sink.write([rec(1)])
    file = str(stream_dir(tmp_path) / "00000001.jsonl")
    assert file in synced  # the data
    assert str(stream_dir(tmp_path)) in synced  # the new file's directory entry
    assert str(tmp_path / "acme") in synced  # the new resource directory's entry
    synced.clear()
    await sink.write([rec(2)])
    assert synced == [file]  # appending to an existing file: only the file
    await sink.close()


async def test_failed_append_never_appends_to_that_file_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = await open_sink(tmp_path)
    await sink.write([rec(1)])
    real_write = os.write

    def short_then_enospc(fd: int, data: bytes) -> int:
        real_write(fd, bytes(data[:10]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(jsonl_module.os, "write", short_then_enospc)
    with pytest.raises(StorageError, match=r"00000001\.jsonl.*No space left"):
        await sink.write([rec(2)])
    monkeypatch.undo()
    await sink.write([rec(3)])
    await sink.close()
    files = list_files(stream_dir(tmp_path))
    assert [p.name for _, p in files] == ["00000001.jsonl", "00000002.jsonl"]
    assert not files[0][1].read_bytes().endswith(b"\n")  # the torn tail stays where it was
    assert sorted(read_latest(tmp_path, "acme", "orders")) == [
        "gid://shopify/Order/1",
        "gid://shopify/Order/3",
    ]


async def test_second_writer_is_refused(tmp_path: Path) -> None:
    sink = await open_sink(tmp_path)
    with pytest.raises(StorageError, match="in use by another"):
        await open_sink(tmp_path)
    await sink.close()
    again = await open_sink(tmp_path)  # the lock goes with close
    await again.close()


async def test_invalid_shop_name_is_refused(tmp_path: Path) -> None:
    sink = await open_sink(tmp_path)
    for bad in ("../x", ".hidden", "a/b", ""):
        with pytest.raises(ValueError, match="invalid shop name"):
            await sink.write([Record(shop=bad, resource="orders", id="g", updated_at=None, data={})])
    await sink.close()
    assert sorted(os.listdir(tmp_path)) == [".shopsync.lock"]


async def test_text_with_newline_is_refused(tmp_path: Path) -> None:
    sink = await open_sink(tmp_path)
    with pytest.raises(ValueError, match="newline"):
        await sink.write([Record(shop="acme", resource="orders", id="g", updated_at=None, text=b'{\n"a":1}')])
    await sink.close()
