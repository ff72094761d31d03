"""kill -9 of a real process committing pages: nothing acknowledged is lost, the checkpoint never
points past durable rows, a shared database never holds a duplicate, replay is bounded."""

from __future__ import annotations

import collections
import os
import random
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from shopsync.state.jsonl import list_files
from shopsync.state.open import open_storage

from . import crash_writer
from .conftest import STORAGE_BACKENDS

WRITER = Path(crash_writer.__file__)
DEADLINE = 30.0  # seconds for a subprocess to produce the acknowledgements we wait for


def run_writer(
    tmp_path: Path,
    database_url: str,
    sink_url: str | None,
    *,
    kill_after: int | None,
    kill_delay: float = 0.0,
    env: dict[str, str] | None = None,
) -> tuple[list[int], int]:
    """Run the writer; SIGKILL it ``kill_delay`` seconds after ``kill_after`` ACKs (or let it kill
    itself at a crash point).

    Returns every page it acknowledged (including ACKs still in the pipe when it died) and its
    exit status.
    """
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), database_url, sink_url or "", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    acked: list[int] = []
    buffer = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + DEADLINE
        while kill_after is None or len(acked) < kill_after:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                proc.kill()
                pytest.fail(f"writer produced {len(acked)} ACKs in {DEADLINE}s: {proc.stderr.read()!r}")  # type: ignore[union-attr]
            if not sel.select(timeout=remaining):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break  # the writer died (a crash point, or a failure reported below)
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            acked += [int(line.split()[1]) for line in lines]
    if proc.poll() is None:
        # Not synchronisation: a delay that moves the kill to another instant of the next commit.
        time.sleep(kill_delay)
        proc.send_signal(signal.SIGKILL)
    rest, err = proc.communicate(timeout=DEADLINE)
    lines = (buffer + rest).split(b"\n")
    acked += [int(line.split()[1]) for line in lines[:-1]]  # a line without "\n" was not printed whole
    assert proc.returncode == -signal.SIGKILL, err.decode()
    return acked, proc.returncode


def jsonl_id_counts(root: Path) -> collections.Counter[str]:
    """How many complete lines each id has; every complete line must parse."""
    counts: collections.Counter[str] = collections.Counter()
    for _, path in list_files(root / "acme" / "orders"):
        data = path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        for line in complete.splitlines():
            counts[orjson.loads(line)["id"]] += 1
    return counts


async def check_after_crash(
    tmp_path: Path,
    urls: tuple[str, str | None],
    acked: list[int],
    previous_page: int,
    line_counts_before: collections.Counter[str],
) -> tuple[int, collections.Counter[str]]:
    """Reopen and check the invariants; returns the checkpoint's page and the JSONL line counts."""
    database_url, sink_url = urls
    storage = await open_storage(database_url, sink_url, base_dir=tmp_path)
    try:
        state = await storage.state.get_stream("acme", "orders")
        assert state is not None
        page = crash_writer.page_of_cursor(state.cursor)
        assert acked == list(range(previous_page + 1, previous_page + 1 + len(acked)))
        # Every acknowledged page is checkpointed; at most one more commit finished unacknowledged.
        assert acked[-1] <= page <= acked[-1] + 1
        assert state.records_in_window == (page + 1) * crash_writer.PAGE

        rows = await storage.sink.read_latest("acme", "orders")
        expected = {crash_writer.record_id(n) for n in range((page + 1) * crash_writer.PAGE)}
        assert expected <= rows.keys(), "the checkpoint points past rows that are not in the sink"
        for row in rows.values():
            assert row.data is not None
            assert orjson.loads(row.data)["page"] <= page + 1
        counts: collections.Counter[str] = collections.Counter()
        if storage.shared_transaction:
            # One transaction: exactly the checkpointed pages, not a row more.
            assert rows.keys() == expected
        if sink_url is not None and sink_url.startswith("jsonl"):
            counts = jsonl_id_counts(tmp_path / "out")
            checkpointed_before = (previous_page + 1) * crash_writer.PAGE
            for n in range(checkpointed_before):
                # Pages checkpointed in an earlier round are never written again (bounded replay).
                rid = crash_writer.record_id(n)
                assert counts[rid] == line_counts_before[rid], f"{rid} was replayed although checkpointed"
            # Only the page written but not checkpointed before the previous kill is replayed.
            assert max(counts.values()) <= 2
        else:
            assert (await storage.sink.stats("acme", "orders")).records == len(rows)  # keyed: no duplicates
        return page, counts
    finally:
        await storage.close()


async def test_kill_9_loses_nothing_acknowledged(
    tmp_path: Path, storage_urls: tuple[str, str | None]
) -> None:
    """Runs for every backend of conftest.STORAGE_BACKENDS."""
    database_url, sink_url = storage_urls
    page = -1
    counts: collections.Counter[str] = collections.Counter()
    # Kill at different depths and delays so the SIGKILL lands at different instants of a commit
    # (before, during and after the sink write, the state save, the fsyncs).
    rng = random.Random()
    for kill_after in (2, 5, 9, 14, 23):
        acked, _ = run_writer(
            tmp_path, database_url, sink_url, kill_after=kill_after, kill_delay=rng.uniform(0, 0.01)
        )
        assert len(acked) >= kill_after
        page, counts = await check_after_crash(tmp_path, storage_urls, acked, page, counts)


async def test_crash_between_jsonl_write_and_checkpoint(tmp_path: Path) -> None:
    """Crash point after_sink_write: the 5th page is durable in the log, its checkpoint is not."""
    database_url, sink_url = STORAGE_BACKENDS["sqlite+jsonl"]
    acked, _ = run_writer(
        tmp_path, database_url, sink_url, kill_after=None, env={"SHOPSYNC_CRASHPOINT": "after_sink_write:5"}
    )
    assert acked == [0, 1, 2, 3]
    storage = await open_storage(database_url, sink_url, base_dir=tmp_path)
    state = await storage.state.get_stream("acme", "orders")
    assert state is not None and state.cursor == "page-3"
    rows = await storage.sink.read_latest("acme", "orders")
    assert len(rows) == 5 * crash_writer.PAGE  # page 4 is in the log, ahead of the checkpoint

    # Resuming replays page 4 once: the log holds it twice, readers keep one version per id.
    resumed = state.with_page("page-4", crash_writer.PAGE)
    await storage.commit(resumed, crash_writer.page_records(4))
    await storage.close()
    counts = jsonl_id_counts(tmp_path / "out")
    assert {
        counts[crash_writer.record_id(n)] for n in range(4 * crash_writer.PAGE, 5 * crash_writer.PAGE)
    } == {2}
    assert {counts[crash_writer.record_id(n)] for n in range(4 * crash_writer.PAGE)} == {1}


def _crash_child(code: str, spec: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHOPSYNC_CRASHPOINT": spec}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=DEADLINE)


def test_crash_points_are_armed_explicitly_not_at_import() -> None:
    """The environment variable alone arms nothing; arm_from_environment() arms ``name:N``."""
    inert = _crash_child("from shopsync.crashpoints import crashpoint\ncrashpoint('mid_page')\nprint('alive')", "mid_page")
    assert (inert.returncode, inert.stdout) == (0, "alive\n"), inert.stderr
    armed = _crash_child(
        "import os\nfrom shopsync import crashpoints\ncrashpoints.arm_from_environment(os.environ)\n"
        "crashpoints.crashpoint('polling')\ncrashpoints.crashpoint('mid_page')\nprint('first', flush=True)\n"
        "crashpoints.crashpoint('mid_page')\nprint('second')",
        "mid_page:2",
    )
    assert (armed.returncode, armed.stdout) == (-signal.SIGKILL, "first\n"), armed.stderr
