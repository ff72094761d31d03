"""A SQLite state database is one process's only while ``shopsync run`` or ``sync`` has it open.

The lock is an exclusive ``flock`` on ``<database>.lock``: a second holder is refused with the file
and the holder's pid named; ``shopsync status`` (read-only, no lock) works beside it; the lock of a
process killed with SIGKILL blocks nothing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
from pathlib import Path

import pytest

from shopsync.errors import StorageError
from shopsync.state import StreamState
from shopsync.state.open import open_storage, read_state
from shopsync.state.sqlite_file import lock_path

# A child process holding the state database open exclusively until its stdin closes.
HOLDER = """
import asyncio, sys
from shopsync.state.open import open_storage

async def main():
    storage = await open_storage(sys.argv[1], exclusive=True)
    print("holding", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await storage.close()

asyncio.run(main())
"""


async def start_holder(url: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, url,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    if line != b"holding\n":
        assert proc.stderr is not None
        raise AssertionError(f"holder did not start: {line!r} {(await proc.stderr.read())[-2000:]!r}")
    return proc


async def stop_holder(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
    await proc.wait()


async def test_a_second_exclusive_open_is_refused_naming_file_and_pid(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    first = await open_storage(f"sqlite://{db}", exclusive=True)
    try:
        with pytest.raises(StorageError) as info:
            await open_storage(f"sqlite://{db}", exclusive=True)
        message = str(info.value)
        assert f"SQLite state database {db} is in use by process {os.getpid()}" in message
        assert f"{db}.lock" in message
        # A plain open (tests, tools) and the read-only status read do not take the lock.
        await first.state.save_stream(StreamState(shop="acme", resource="orders", cursor="c"))
        streams, _ = read_state(f"sqlite://{db}", None)
        assert [s.cursor for s in streams] == ["c"]
    finally:
        await first.close()
    assert stat.S_IMODE(os.stat(lock_path(db)).st_mode) == 0o600
    # Released on close: the next one gets it.
    again = await open_storage(f"sqlite://{db}", exclusive=True)
    await again.close()


async def test_another_process_holding_it_is_refused_and_its_death_frees_it(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    url = f"sqlite://{db}"
    holder = await start_holder(url)
    try:
        with pytest.raises(StorageError, match=rf"in use by process {holder.pid} \(it holds {db}\.lock\)"):
            await open_storage(url, exclusive=True)
        # kill -9: no clean-up runs, the lock file stays with the dead pid in it ...
        holder.send_signal(signal.SIGKILL)
        await holder.wait()
        assert lock_path(db).read_text().strip() == str(holder.pid)
    finally:
        await stop_holder(holder)
    # ... and blocks nothing: the kernel released the flock with the process.
    storage = await open_storage(url, exclusive=True)
    try:
        assert lock_path(db).read_text().strip() == str(os.getpid())
    finally:
        await storage.close()


async def test_a_failed_exclusive_open_leaves_the_holder_working(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    first = await open_storage(f"sqlite://{db}", exclusive=True)
    try:
        with pytest.raises(StorageError, match="in use by"):
            await open_storage(f"sqlite://{db}", exclusive=True)
        # The refusal released nothing of the holder's: a third try is still refused.
        with pytest.raises(StorageError, match="in use by"):
            await open_storage(f"sqlite://{db}", exclusive=True)
        await first.state.save_stream(StreamState(shop="acme", resource="orders"))
    finally:
        await first.close()


def _write_config(tmp_path: Path, db: Path) -> Path:
    config = tmp_path / "shopsync.toml"
    config.write_text(
        f'database = "sqlite://{db}"\n'
        "[daemon]\n"
        'listen = "127.0.0.1:0"\n'
        "[[shop]]\n"
        'name = "acme"\n'
        'domain = "acme.myshopify.com"\n'
        'api_url = "http://127.0.0.1:9/admin/api/2026-10/graphql.json"\n'
        'access_token = { env = "LOCK_TEST_TOKEN" }\n'
        'resources = ["orders"]\n'
    )
    return config


async def _cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shopsync", *args,
        env={**os.environ, "LOCK_TEST_TOKEN": "shpat_lock_test"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_run_and_sync_are_refused_beside_a_holder_and_status_works(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    config = _write_config(tmp_path, db)
    holder = await start_holder(f"sqlite://{db}")
    try:
        code, _, err = await _cli("run", "--config", str(config), "--log-format", "text")
        assert code == 1, err[-2000:]
        assert f"SQLite state database {db} is in use by process {holder.pid}" in err, err[-2000:]

        code, _, err = await _cli("sync", "--config", str(config), "--progress", "off")
        assert code == 1, err[-2000:]
        assert f"shopsync sync: SQLite state database {db} is in use by process {holder.pid}" in err, err[-2000:]
        assert "Traceback" not in err

        code, out, err = await _cli("status", "--config", str(config), "--json")
        assert code == 0, err[-2000:]
        assert "acme" in out
    finally:
        await stop_holder(holder)
