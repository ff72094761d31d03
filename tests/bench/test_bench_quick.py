"""The benchmarks' ``--quick`` slices run and print their key figures.

``make bench`` and ``make chaos`` run the full benchmarks and the long campaign; these tests run
the small slices each benchmark offers, as the user would (``python -m bench NAME --quick``,
``python -m bench.chaos --quick``), and parse what they print, so a benchmark that breaks or
stops reporting a figure fails here. The daemon slice mostly waits (a 10 s settle and a 30 s
measurement), so it is started first and runs beside the others: the file takes about as long as
its longest slice.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Longest a slice may take before it counts as hung (each takes well under a minute alone).
DEADLINE_S = 240


def run_slice(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=DEADLINE_S
    )


def figure(pattern: str, text: str) -> re.Match[str]:
    m = re.search(pattern, text, re.MULTILINE)
    assert m, f"no line matching {pattern!r} in:\n{text[-3000:]}"
    return m


def number(text: str) -> float:
    return float(text.replace(",", ""))


@pytest.fixture(scope="module", autouse=True)
def daemon_slice(request: pytest.FixtureRequest) -> Iterator[subprocess.Popen[str] | None]:
    """``python -m bench daemon --quick`` started with the module when its test is selected."""
    if not any(item.name == "test_daemon_quick" for item in request.session.items):
        yield None
        return
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "daemon", "--quick"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def test_simulator_quick() -> None:
    done = run_slice("bench", "simulator", "--quick")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    out = done.stdout
    assert number(figure(r"start-up with 20,000 orders: ([\d.]+) s from spawn to listening", out)[1]) > 0
    page = figure(r"orders page \(first: (\d+),.*: p50 ([\d.]+) ms, p95 ([\d.]+) ms \((\d+) pages\)", out)
    assert int(page[1]) >= 1 and int(page[4]) == 20
    assert 0 < float(page[2]) <= float(page[3])
    bulk = figure(r"bulk export: ([\d,]+) objects in ([\d.]+) s = ([\d,]+) objects/s", out)
    assert number(bulk[1]) > 20_000 and number(bulk[3]) > 0  # orders plus their line items
    assert figure(r"(\d+) shops x ([\d,]+) orders in one process", out)[1] == "20"


def test_engine_quick(tmp_path: Path) -> None:
    figures = tmp_path / "engine.json"
    done = run_slice("bench", "engine", "--quick", "--json", str(figures))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    out = done.stdout
    backfill = figure(
        r"^\(a\) backfill of 5,000 orders .*: ([\d,]+) records in ([\d.]+) s wall, ([\d.]+) CPU s, peak RSS (\d+) MB", out
    )
    assert number(backfill[1]) > 5_000 and float(backfill[3]) > 0 and int(backfill[4]) > 0
    orders = figure(r"^\s+orders\s+([\d,]+) records via ([\w+]+)\s+in\s+([\d.]+) s = ([\d,]+) records/s", out)
    assert (number(orders[1]), orders[2]) == (5_000, "bulk")
    assert figure(r"split orders .*dominant: (waiting|poll lag|download|fsync|reassemble\+write)", out)
    for label, changed in (("b", 100), ("c", 260)):
        head = figure(rf"^\({label}\) paginated.*: ([\d,]+) records in ([\d.]+) s = ([\d.]+) records/s", out)
        assert number(head[1]) == changed, head[0]  # exactly the records changed after the backfill
        budget = figure(
            rf"^\({label}\) .*\n\s+(\d+) requests, THROTTLED (\d+) \(([\d.]+)%\), points spent (\d+) = ([\d.]+)%", out
        )
        assert float(budget[3]) < 1.0, budget[0]  # THROTTLED share under 1%
        assert 0 < float(budget[5]) <= 100.5, budget[0]  # never more than the bucket allowed
    doc = orjson.loads(figures.read_bytes())
    assert doc["paginated"]["throttled_pct"] < 1.0 and doc["paginated_multi"]["throttled_pct"] < 1.0
    assert doc["backfill"]["split"]["orders"]["objects"] > 5_000


def test_chaos_quick() -> None:
    # Strict: one clean sync after the kills must leave each sink equal to its shop.
    done = run_slice("bench.chaos", "--quick")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    out = done.stdout
    rounds = re.findall(r"^round\s+\d+/3 .*(ok|FAIL)$", out, re.MULTILINE)
    assert rounds == ["ok", "ok", "ok"], out[-3000:]
    summary = figure(
        r"^chaos summary: seed=1 rounds=3 rounds_failed=0 kills=(\d+) .* checks=(\d+) checks_failed=0 .*result=PASS$", out
    )
    assert int(summary[1]) >= 1, "no round was killed"
    assert int(summary[2]) >= 2, "both lanes (SQLite and JSONL sinks) are checked"
    assert len(re.findall(r"^check (sqlite|jsonl) .* PASS$", out, re.MULTILINE)) == int(summary[2])
    assert "all rounds passed" in out


def test_daemon_quick(daemon_slice: subprocess.Popen[str] | None) -> None:
    assert daemon_slice is not None
    out, _ = daemon_slice.communicate(timeout=DEADLINE_S)
    assert daemon_slice.returncode == 0, out[-3000:]
    backfill = figure(r"backfill of every stream: (\d+) s, (\d+) CPU s, peak RSS (\d+) MB", out)
    assert int(backfill[3]) > 0
    lag = figure(r"sync lag over ([\d,]+) samples: p50 ([\d.]+) s, p99 ([\d.]+) s, max ([\d.]+) s; (\d+) streams with errors, (\d+) shops parked", out)
    assert number(lag[1]) > 0 and float(lag[2]) <= float(lag[3]) <= float(lag[4])
    assert (lag[5], lag[6]) == ("0", "0")
    assert figure(r"SIGTERM → exit (\d+) in ([\d.]+) s", out)[1] == "0"
