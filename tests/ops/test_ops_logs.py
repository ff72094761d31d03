"""Structured logging: formats, per-task context, and secrets that never reach the output."""

from __future__ import annotations

import asyncio
import io
import logging
import secrets

import orjson
import pytest

from shopsync.errors import ConfigError
from shopsync.observability.logs import bind, log_context, redact, register_secret, setup_logging

log = logging.getLogger("shopsync.test")


class Revealable:
    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"


class TtyStringIO(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    logging.captureWarnings(False)


def json_lines(stream: io.StringIO) -> list[dict]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines() if line]


def test_json_line_has_the_standard_fields_and_context():
    out = io.StringIO()
    setup_logging("json", "info", stream=out)
    with log_context(shop="acme", resource="orders"):
        log.info("wrote %d records", 250, extra={"path": "bulk", "window": {"from": "a", "to": "b"}})
    log.info("outside")
    first, second = json_lines(out)
    assert first["level"] == "info"
    assert first["logger"] == "shopsync.test"
    assert first["msg"] == "wrote 250 records"
    assert first["shop"] == "acme" and first["resource"] == "orders"
    assert first["path"] == "bulk" and first["window"] == {"from": "a", "to": "b"}
    assert first["ts"].endswith("Z") and first["ts"][10] == "T"
    assert list(first)[:6] == ["ts", "level", "logger", "msg", "shop", "resource"]
    assert "shop" not in second and second["msg"] == "outside"


def test_text_line_is_readable():
    out = io.StringIO()
    setup_logging("text", "info", stream=out)
    with log_context(shop="acme", resource="orders"):
        log.warning("retrying", extra={"reason": "http_503", "attempt": 2})
    line = out.getvalue().strip()
    assert " WARNING shopsync.test [shop=acme resource=orders] retrying " in line
    assert line.endswith("attempt=2 reason=http_503")


def test_auto_picks_text_on_a_terminal_and_json_otherwise():
    tty, pipe = TtyStringIO(), io.StringIO()
    setup_logging("auto", stream=tty)
    log.info("hello")
    setup_logging("auto", stream=pipe)  # replaces the first handler
    log.info("hello")
    assert "INFO  shopsync.test hello" in tty.getvalue()
    assert tty.getvalue().count("hello") == 1
    assert json_lines(pipe)[0]["msg"] == "hello"


def test_level_filters_and_bad_values_name_the_key():
    out = io.StringIO()
    setup_logging("json", "warning", stream=out)
    log.info("quiet")
    log.error("loud")
    assert [d["msg"] for d in json_lines(out)] == ["loud"]
    with pytest.raises(ConfigError, match="log_level"):
        setup_logging("json", "chatty", stream=out)
    with pytest.raises(ConfigError, match="log_format"):
        setup_logging("yaml", "info", stream=out)  # type: ignore[arg-type]


async def test_context_follows_each_task():
    out = io.StringIO()
    setup_logging("json", stream=out)

    async def stream(shop: str, resource: str, gate: asyncio.Event) -> None:
        bind(shop=shop, resource=resource)
        await gate.wait()  # both tasks have bound their context before either logs
        log.info("page")

    gate = asyncio.Event()
    with log_context(run="r1"):
        tasks = [
            asyncio.create_task(stream("acme", "orders", gate)),
            asyncio.create_task(stream("globex", "products", gate)),
        ]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*tasks)
    log.info("after")
    lines = json_lines(out)
    assert {(d["shop"], d["resource"], d["run"]) for d in lines[:2]} == {
        ("acme", "orders", "r1"),
        ("globex", "products", "r1"),
    }
    assert "shop" not in lines[2] and "run" not in lines[2]  # bind() in a task never leaks out of it


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_registered_secret_never_appears(fmt):
    # Characters that JSON and repr() escape, so every rendering of the value is covered.
    token = f'shpat_{secrets.token_hex(16)}"\\{secrets.token_hex(4)}'
    client_secret = f"cs-{secrets.token_hex(12)}"
    register_secret(token)
    register_secret(Revealable(client_secret))  # a wrapper like shopsync.settings.Secret works as well
    out = io.StringIO()
    setup_logging(fmt, "debug", stream=out)
    with log_context(shop="acme"):
        log.info(f"token in the message {token}")  # noqa: G004 - a caller that formats it in
        log.info("token in args %s and %r", token, token)
        log.info(
            "token in extra", extra={"token": token, "headers": {"X-Other": token}, "list": [client_secret]}
        )
        try:
            raise ValueError(f"refused {token} / {client_secret}")
        except ValueError:
            log.exception("token in an exception")
        try:
            raise RuntimeError("wrapped") from KeyError(token)
        except RuntimeError:
            log.exception("chained")
    text = out.getvalue()
    for value in (token, client_secret, token.replace('"', '\\"'), repr(token)[1:-1], secrets_core(token)):
        assert value not in text
    assert text.count("***") == 9  # 1 + 2 + 3 extras + 2 in the exception + 1 chained
    assert "Traceback" in text and "ValueError: refused ***" in text
    if fmt == "json":
        assert len(json_lines(out)) == 5  # still valid JSON after redaction


def secrets_core(token: str) -> str:
    # The random part alone: a partial leak (e.g. the prefix redacted, the rest printed) fails too.
    return token.split("_", 1)[1][:32]


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("sending X-Shopify-Access-Token: abcd1234efgh", "abcd1234efgh"),
        ("headers {'X-Shopify-Access-Token': 'zzyyxx998877'}", "zzyyxx998877"),
        ('{"x-shopify-access-token":"qwertyuiop12"}', "qwertyuiop12"),
        ("POST /oauth body client_id=1&client_secret=s3cr3tvalue&grant_type=x", "s3cr3tvalue"),
        ("callback?access_token=tok98765432&expires=1", "tok98765432"),
        ('{"access_token": "tok12345678", "scope": "read_orders"}', "tok12345678"),
        ("a bare shpca_0123456789abcdef in text", "shpca_0123456789abcdef"),
        ("a bare shpat_fedcba9876543210 in text", "fedcba9876543210"),
        ("Authorization: Bearer eyJhbGciOi.abc", "eyJhbGciOi.abc"),
    ],
)
def test_token_shaped_text_is_redacted_without_registration(text, leak):
    assert leak not in redact(text)
    assert "***" in redact(text)
    # And through each formatter, where JSON escapes the quotes around the key.
    for fmt in ("json", "text"):
        out = io.StringIO()
        setup_logging(fmt, stream=out)
        log.info("%s", text, extra={"detail": text})
        assert leak not in out.getvalue() and out.getvalue().count("***") >= 2, (fmt, out.getvalue())


def test_unrelated_text_is_left_alone():
    line = "acme/orders: wrote 250 records in window 2026-01-01T00:00:00Z..2026-01-02T00:00:00Z, cost 752"
    assert redact(line) == line


def test_short_values_are_not_registered():
    register_secret("abc")
    register_secret("")
    register_secret(None)
    assert redact("abc abc") == "abc abc"
