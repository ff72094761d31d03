"""contrib/: the Grafana dashboard and the Prometheus alert rules use only metrics shopsync exports,
and promtool accepts (and unit-tests) the rules."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "contrib" / "grafana" / "shopsync.json"
ALERTS = ROOT / "contrib" / "prometheus" / "alerts.yml"
ALERT_TESTS = Path(__file__).with_name("alerts_test.yml")
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not on PATH (Debian package `prometheus`; .ci/run installs it)"
)

#: Series Prometheus itself attaches to every target.
PROMETHEUS_SERIES = {"up"}
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "inf", "nan",
}  # fmt: skip


@pytest.fixture
def exported(make_metrics) -> set[str]:
    """Every sample name a populated Metrics exposes (with _total, _bucket, _sum, _count …), plus
    the series Prometheus attaches to every target."""
    text = generate_latest(make_metrics().registry).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples} | PROMETHEUS_SERIES


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers that are not functions, keywords, label
    names inside {…} or by/without/on/ignoring (…), durations in […], strings or Grafana variables."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings (label values, regexes)
    e = re.sub(r"\{[^}]*\}", " ", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)  # range durations, $__rate_interval
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\{?\w+\}?", " ", e)  # Grafana variables outside brackets
    names = set()
    for m in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def test_the_name_extractor():
    assert metric_names(
        'sum by (shop, le) (rate(shopsync_x_bucket{shop=~"$shop", le!="1"}[$__rate_interval])) / on (shop) group_left max(y) > 0.5'
    ) == {"shopsync_x_bucket", "y"}
    assert metric_names(
        'time() - max by (instance) (shopsync_start_time_seconds{job=~"$job"}) > bool 5e3'
    ) == {"shopsync_start_time_seconds"}
    assert metric_names("increase(shopsync_recordz_total[$__range]) * 60") == {
        "shopsync_recordz_total"
    }  # a typo is seen


def dashboard_exprs(doc: dict) -> list[tuple[str, str]]:
    out = []

    def walk(panels: list[dict]) -> None:
        for p in panels:
            out.extend((p["title"], t["expr"]) for t in p.get("targets", []))
            walk(p.get("panels", []))

    walk(doc["panels"])
    return out


def test_dashboard_uses_only_exported_metrics(exported):
    doc = orjson.loads(DASHBOARD.read_bytes())
    exprs = dashboard_exprs(doc)
    assert len(exprs) >= 20
    used: set[str] = set()
    for title, expr in exprs:
        names = metric_names(expr)
        assert names, (title, expr)
        assert names <= exported, (title, names - exported)
        used |= names
    # Template variables: label_values(metric, label) — the metric must exist too.
    for var in doc["templating"]["list"]:
        query = var.get("query")
        if isinstance(query, dict):
            metric = re.match(r"label_values\((\w+)", query["query"]).group(1)
            assert metric in exported, (var["name"], metric)
    # It shows what an operator asks first: lag, throughput, budget, throttles, bulk, outcomes.
    for name in (
        "shopsync_sync_lag_seconds",
        "shopsync_records_written_total",
        "shopsync_query_cost_spent_points_total",
        "shopsync_budget_restore_rate_points_per_second",
        "shopsync_throttled_total",
        "shopsync_bulk_operations_total",
        "shopsync_graphql_requests_total",
        "shopsync_shop_parked",
    ):
        assert name in used, name
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))


def alert_exprs(text: str) -> list[tuple[str, str]]:
    """(alert, expr) from the rules file: `expr:` inline or as a `|` block (no YAML library here)."""
    out, alert, lines = [], None, text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if m := re.match(r"\s*- alert:\s*(\S+)", line):
            alert = m.group(1)
        elif m := re.match(r"(\s*)expr:\s*(.*)$", line):
            indent, rest = len(m.group(1)), m.group(2).strip()
            if rest in ("|", ">"):
                block = []
                while i + 1 < len(lines) and (
                    not lines[i + 1].strip() or len(lines[i + 1]) - len(lines[i + 1].lstrip()) > indent
                ):
                    i += 1
                    block.append(lines[i].strip())
                rest = " ".join(block)
            out.append((alert, rest))
        i += 1
    return out


def test_alerts_use_only_exported_metrics_and_cover_the_failure_modes(exported):
    exprs = alert_exprs(ALERTS.read_text())
    alerts = {a for a, _ in exprs}
    assert {
        "ShopsyncDown",
        "ShopsyncAbsent",
        "ShopsyncLagHigh",
        "ShopsyncShopParked",
        "ShopsyncBulkOperationsFailing",
        "ShopsyncThrottlingSustained",
    } <= alerts
    for alert, expr in exprs:
        names = metric_names(expr)
        assert names and names <= exported, (alert, names - exported)


@needs_promtool
def test_promtool_check_rules():
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_promtool_alert_unit_tests():
    # Series in, alerts out: lag (and parked streams excluded), down, bulk failures, throttling.
    result = subprocess.run(
        [PROMTOOL, "test", "rules", ALERT_TESTS.name],
        cwd=ALERT_TESTS.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
