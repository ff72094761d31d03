"""Configuration fuzzing: every mistake in shopsync.toml is one message and exit code 2, never a traceback.

Hypothesis starts from a valid configuration and mutates it — wrong types, missing and unknown
keys, bad URLs, negative, huge and non-finite numbers, unicode, bad secret references and paths —
then runs ``shopsync check`` in-process (:func:`shopsync.commands.main.main`). A configuration
that loads exits 0; one that does not exits 2 with a message on stderr naming the file. Any other
exception escapes ``main`` and fails the test with its traceback.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import os
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from shopsync.commands.main import main

TOKEN_ENV = "FUZZ_SHOP_TOKEN"

VALID: dict[str, Any] = {
    "database": "sqlite:state/shopsync.db",
    "sink": {"url": "jsonl:out", "rotate_bytes": 1 << 20},
    "sync": {"path": "auto", "safety_margin": "60s", "overlap": "5m", "bulk_threshold": 5000, "max_attempts": 8},
    "daemon": {"listen": "127.0.0.1:9464", "every": "5m", "jitter": "10s", "log_format": "auto", "log_level": "info"},
    "shop": [
        {
            "name": "acme",
            "domain": "acme.myshopify.com",
            "access_token": {"env": TOKEN_ENV},
            "resources": ["orders", "products"],
            "start_date": dt.date(2024, 1, 1),
        }
    ],
}

# Keys each table knows (and a few it does not), so mutations mostly hit real keys.
TABLE_KEYS: dict[str, list[str]] = {
    "": ["api_version", "database", "queries_dir", "work_dir", "sink", "sync", "daemon", "shop", "databse", "ünïcode"],
    "sink": ["url", "rotate_bytes", "rotate"],
    "sync": [
        "path", "safety_margin", "overlap", "bulk_threshold", "max_concurrent_bulk", "request_timeout",
        "max_connections", "max_attempts", "backoff_base", "backoff_cap", "bulk_poll_min", "bulk_poll_max", "safty_margin",
    ],
    "daemon": [
        "listen", "every", "cron", "jitter", "stop_timeout", "log_format", "log_level", "park_backoff",
        "park_backoff_max", "port",
    ],
    "shop.0": [
        "name", "domain", "access_token", "client_id", "client_secret", "api_url", "resources", "start_date",
        "every", "cron", "token",
    ],
    "shop.0.access_token": ["env", "file", "credential", "vault"],
}

texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
durations = st.sampled_from(["45s", "5m", "1h30m", "0s", "-5m", "5 m", "1d", "9999999999d", "s", "", "1e400s", "nan"])
urls = st.sampled_from([
    "sqlite:", "sqlite:///", "sqlite:x.db", "sqlite:////abs/x.db", "jsonl:", "jsonl:///", "mysql://h/db",
    "postgresql://", "postgresql://u:p@h:99999/db", "postgresql://h/db?schema=Bad-Name", "http://[::1", "://",
    "http://127.0.0.1:8080/admin/api/2026-10/graphql.json", "ftp://x", "https://acme.myshopify.com",
    "sqlite:\x00.db", "file:///etc/passwd", "sqlite:%zz", "jsonl:/dev/null/x",
])
secret_paths = st.sampled_from([
    "missing.token", "", ".", "/", "/dev/null", "/dev/zero", "/proc/self/mem", "shopsync.toml", "state",
    "a\x00b", "../" * 30 + "etc/shadow", "~nobody/x", "x" * 5000, "tokens/ok.token", "\u202etoken",
])
secret_refs = st.one_of(
    st.builds(lambda p: {"file": p}, secret_paths),
    st.builds(lambda n: {"credential": n}, st.sampled_from(["acme", "../x", "a/b", "", "..", "a\x00"])),
    st.builds(lambda n: {"env": n}, st.sampled_from([TOKEN_ENV, "UNSET_VAR_X", "", "A=B", "a\x00"])),
    st.dictionaries(st.sampled_from(["env", "file", "credential", "vault"]), texts, max_size=3),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, -1, 2**63 - 1, -(2**63), 10**18]),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
    durations,
    urls,
    st.dates(),
    st.datetimes(timezones=st.sampled_from([None, dt.UTC])),
    st.times(),
)
values = st.recursive(
    st.one_of(scalars, secret_refs),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
    max_leaves=6,
)


@st.composite
def mutation(draw: st.DrawFn) -> tuple[str, str, str, Any]:
    table = draw(st.sampled_from(sorted(TABLE_KEYS)))
    known = st.sampled_from(TABLE_KEYS[table])
    key = draw(st.one_of(known, known, known, texts.filter(bool)))  # mostly keys the table knows
    op = draw(st.sampled_from(["set", "set", "set", "delete", "replace_table"]))
    value = draw(secret_refs if key in ("access_token", "client_id", "client_secret") and draw(st.booleans()) else values)
    return op, table, key, value


def lookup(doc: dict[str, Any], table: str) -> Any:
    node: Any = doc
    for part in filter(None, table.split(".")):
        if isinstance(node, list):
            if not node:
                return None
            node = node[0]
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            return None
    return node


def apply(doc: dict[str, Any], mutations: list[tuple[str, str, str, Any]]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    for op, table, key, value in mutations:
        if op == "replace_table" and table:
            parent_path, _, name = table.rpartition(".")
            parent = lookup(doc, parent_path)
            if isinstance(parent, dict):
                parent[name] = value
            elif isinstance(parent, list) and parent and name.isdigit():
                parent[0] = value
            continue
        node = lookup(doc, table)
        if not isinstance(node, dict):
            continue
        if op == "delete":
            node.pop(key, None)
        else:
            node[key] = value
    return doc


# -- a small TOML writer (the standard library only reads TOML) ----------------------------------


def toml_key(key: str) -> str:
    return key if key and all(c.isascii() and (c.isalnum() or c in "-_") for c in key) else toml_string(key)


def toml_string(text: str) -> str:
    # JSON escapes are TOML escapes; TOML also wants DEL escaped.
    return orjson.dumps(text).decode().replace("\x7f", "\\u007F")


def toml_inline(value: Any) -> str | None:
    """An inline TOML value, or None for what TOML cannot write (None, NaN is fine: ``nan``)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, list):
        items = [t for t in (toml_inline(v) for v in value) if t is not None]
        return "[" + ", ".join(items) + "]"
    if isinstance(value, dict):
        items = [f"{toml_key(k)} = {t}" for k, v in value.items() if (t := toml_inline(v)) is not None]
        return "{ " + ", ".join(items) + " }"
    raise TypeError(type(value))


def to_toml(doc: dict[str, Any]) -> str:
    lines = []
    tables = []
    for key, value in doc.items():
        if key == "shop" and isinstance(value, list) and value and all(isinstance(s, dict) for s in value):
            tables.append((key, value))
        elif isinstance(value, dict) and key in ("sink", "sync", "daemon"):
            tables.append((key, value))
        elif (text := toml_inline(value)) is not None:
            lines.append(f"{toml_key(key)} = {text}")
    for key, value in tables:
        for table in value if isinstance(value, list) else [value]:
            lines.append(f"[[{key}]]" if isinstance(value, list) else f"[{key}]")
            lines += [f"{toml_key(k)} = {t}" for k, v in table.items() if (t := toml_inline(v)) is not None]
    return "\n".join(lines) + "\n"


# -- the property --------------------------------------------------------------------------------


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(TOKEN_ENV, SECRETS[0])
    monkeypatch.delenv("SHOPSYNC_CONFIG", raising=False)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "acme").write_text(SECRETS[1] + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    (tmp_path / "tokens").mkdir()
    (tmp_path / "tokens" / "ok.token").write_text(SECRETS[2] + "\n")
    (tmp_path / "tokens" / "ok.token").chmod(0o600)
    (tmp_path / "state").mkdir()
    return tmp_path


#: The workspace's secrets, and Shopify's token prefixes followed by a token's characters.
SECRETS = ("shpat_fuzz_token_value", "shpat_credential", "shpat_file_token")
TOKEN_SHAPED = re.compile(r"\b(?:shpat|shpca|shppa|shpss)_[A-Za-z0-9]+")


def run_check(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["check", "--config", str(config)])
    return code, capsys.readouterr().err


def record(code: int, err: str) -> None:
    """--hypothesis-show-statistics then shows how many examples load and what refuses the rest."""
    event(f"exit {code}: {err.split(': ')[2] if err.count(': ') >= 2 else err.strip()[:40]}")


def assert_clean_outcome(config: Path, code: int, err: str) -> None:
    assert code in (0, 2), (code, err)
    if code == 2:
        lines = err.strip().splitlines()
        assert lines, "exit code 2 without a message"
        assert lines[0].startswith(f"shopsync check: {config}: "), err
        assert "Traceback" not in err
        # A secret never appears in a message: not the workspace's, not token-shaped text of the
        # file's own (a token pasted as a key). Hypothesis also draws the test's own literals.
        assert not any(secret in err for secret in SECRETS), err
        assert not TOKEN_SHAPED.search(err), err


def test_the_valid_base_configuration_passes(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = workspace / "shopsync.toml"
    config.write_text(to_toml(VALID))
    code, err = run_check(config, capsys)
    assert (code, err) == (0, "")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(mutation(), min_size=1, max_size=4))
@example([("set", "shop.0", "access_token", {"file": "a\x00b"})])
@example([("set", "shop.0.access_token", "file", "x" * 5000)])
@example([("set", "shop.0", "access_token", {"credential": "a\x00"})])
@example([("set", "", "work_dir", "a\x00b")])
@example([("set", "", "queries_dir", "a\x00b")])
@example([("set", "", "database", "sqlite:\x00.db")])
@example([("set", "sink", "url", "jsonl:\x00")])
@example([("set", "sync", "safety_margin", 1e308)])
@example([("set", "sync", "safety_margin", float("nan"))])
@example([("set", "sync", "overlap", 10**18)])
@example([("set", "daemon", "listen", "127.0.0.1:99999999999999999999")])
@example([("set", "shop.0", "start_date", "9999-12-31T23:59:59+99:00")])
@example([("set", "shop.0", "every", -(2**63))])
@example([("set", "shop.0", "name", "\u00e9")])
@example([("set", "shop.0", "api_url", "http://[::1")])
@example([("replace_table", "shop.0", "x", [1, 2])])
@example([("set", "", "shpat_", [])])  # found by Hypothesis: a key named like a token's prefix
@example([("set", "", "shpat_0123abcdef", 1)])  # a token pasted as a key is not echoed
@example([("set", "shop.0", "shpat_credential", 1)])
def test_mutated_configurations_exit_0_or_2_with_a_message(
    workspace: Path, capsys: pytest.CaptureFixture[str], mutations: list[tuple[str, str, str, Any]]
) -> None:
    config = workspace / "shopsync.toml"
    config.write_text(to_toml(apply(VALID, mutations)))
    code, err = run_check(config, capsys)
    record(code, err)
    assert_clean_outcome(config, code, err)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200), st.integers(min_value=0, max_value=400))
def test_damaged_files_exit_2(workspace: Path, capsys: pytest.CaptureFixture[str], noise: bytes, at: int) -> None:
    """Bytes spliced into a valid file: not TOML, not UTF-8, or a changed value; never a traceback."""
    base = to_toml(VALID).encode()
    at = min(at, len(base))
    config = workspace / "shopsync.toml"
    config.write_bytes(base[:at] + noise + base[at:])
    code, err = run_check(config, capsys)
    record(code, err)
    assert_clean_outcome(config, code, err)


def test_config_file_itself_unreadable_or_odd(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for target in (workspace / "missing.toml", workspace / "state", Path("/dev/null")):
        code, err = run_check(target, capsys)
        assert_clean_outcome(target, code, err)
        assert code == 2
    assert os.path.exists(workspace / "state")
