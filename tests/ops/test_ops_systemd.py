"""systemd/shopsync.service: `systemd-analyze verify` silent, security exposure ≤ 2.0, consistent
settings, and Python working under MemoryDenyWriteExecute.

`systemd-analyze verify` checks that ExecStart's binary exists, and /usr/local/bin/shopsync is not
installed on a build machine, so the tests verify a copy whose ExecStart points at an executable
in a temp dir; every other line is the shipped unit's.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shopsync.timeutil import parse_duration

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "shopsync.service"
EXEC_START = "/usr/local/bin/shopsync run --config /etc/shopsync/shopsync.toml"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None,
    reason="systemd-analyze not on PATH (Debian package `systemd`; .ci/run installs it)",
)


def unit_settings(text: str) -> dict[str, list[str]]:
    """Key → values of the active (uncommented) lines, in order."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, val = line.partition("=")
            out.setdefault(key, []).append(val)
    return out


def runnable_copy(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with ExecStart's binary replaced by an executable that exists."""
    text = UNIT.read_text() if text is None else text
    fake = tmp_path / "bin" / "shopsync"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    assert EXEC_START in text
    copy = tmp_path / "shopsync.service"
    copy.write_text(text.replace("/usr/local/bin/shopsync", str(fake)))
    return copy


def verify(path: Path) -> str:
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    return (result.stdout + result.stderr).strip() + (
        "" if result.returncode == 0 else f"\n(exit {result.returncode})"
    )


@needs_analyze
def test_verify_prints_nothing(tmp_path):
    assert verify(runnable_copy(tmp_path)) == ""


@needs_analyze
def test_verify_prints_nothing_with_the_credential_examples_enabled(tmp_path):
    text = re.sub(r"(?m)^#(LoadCredential=)", r"\1", UNIT.read_text())
    assert text.count("\nLoadCredential=") == 2
    assert verify(runnable_copy(tmp_path, text)) == ""


@needs_analyze
def test_verify_does_complain_about_a_misspelled_key(tmp_path):
    # The "prints nothing" checks are only worth something if verify speaks up on a mistake.
    text = UNIT.read_text().replace("ProtectHome=yes", "ProtectHomes=yes")
    assert "ProtectHomes" in verify(runnable_copy(tmp_path, text))


@needs_analyze
def test_security_exposure_is_at_most_2(tmp_path):
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=yes", str(runnable_copy(tmp_path))],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout


def test_settings_the_daemon_relies_on():
    s = unit_settings(UNIT.read_text())
    assert s["Type"] == ["notify"]
    assert s["ExecStart"] == [EXEC_START]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["Restart"] == ["on-failure"]
    assert s["RestartPreventExitStatus"] == ["2"]  # bad configuration: restarting cannot help
    assert s["DynamicUser"] == ["yes"]
    assert s["StateDirectory"] == ["shopsync"] and s["ConfigurationDirectory"] == ["shopsync"]
    # systemd's SIGKILL must come after the daemon's own stop deadline ([daemon] stop_timeout = 20s).
    stop_timeout = parse_duration("20s").total_seconds()
    assert parse_duration(s["TimeoutStopSec"][0]).total_seconds() >= stop_timeout + 5
    # Pings go out every WatchdogSec/2 from the scheduler's progress; a minute tolerates a slow page.
    assert parse_duration(s["WatchdogSec"][0]).total_seconds() >= 30
    assert s["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert "IPAddressDeny" not in s  # Shopify's addresses are not fixed


MDWE_PROBE = r"""
import ctypes, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit(77)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except OSError:
    pass
else:
    sys.exit("W+X mapping allowed: MDWE is not in force")
# Everything the daemon loads, then real work: TLS context, SQLite, JSON, an HTTP round trip.
import asyncio, sqlite3, ssl
import aiohttp, apscheduler, asyncpg, gql, graphql, orjson, prometheus_client
from aiohttp import web
import shopsync.observability.logs, shopsync.observability.metrics, shopsync.daemon.sdnotify, shopsync.shopify.schema
ssl.create_default_context()
db = sqlite3.connect(":memory:")
db.execute("create table t (x)")
db.execute("insert into t values (1)")
shopsync.shopify.schema.load_schema()
async def main():
    app = web.Application()
    app.router.add_get("/", lambda request: web.json_response({"ok": True}))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/") as resp:
            assert (await resp.json()) == {"ok": True}
    await runner.cleanup()
asyncio.run(main())
print("ok")
"""


def mdwe_supported() -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(66, 0, 0, 0, 0) >= 0  # PR_GET_MDWE: Linux ≥ 6.3


@pytest.mark.skipif(
    not mdwe_supported(),
    reason="kernel has no PR_SET_MDWE (Linux < 6.3): cannot emulate MemoryDenyWriteExecute",
)
def test_python_and_the_dependencies_run_with_memory_deny_write_execute():
    # The unit sets MemoryDenyWriteExecute=yes; the kernel's per-process MDWE is the same W^X rule.
    result = subprocess.run([sys.executable, "-c", MDWE_PROBE], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "ok"
