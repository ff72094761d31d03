"""Structured logs on stderr for journald and container runtimes, with secrets redacted.

* :func:`setup_logging` installs one handler on the root logger: JSON lines when the stream is not
  a terminal (journald, ``docker logs``, a log shipper), readable text on a terminal.
* :func:`log_context` / :func:`bind` attach fields (``shop``, ``resource``, …) to every line logged
  in the current task: they live in a :class:`contextvars.ContextVar`, which asyncio copies into each
  new task, so a stream's task logs its own shop and resource without passing them around.
* :func:`register_secret` adds a value (an access token, a client secret) that is replaced by
  ``***`` in every line, wherever it occurs: message, arguments, extra fields, exception text and
  traceback; :func:`register_secrets` adds every secret a loaded configuration holds. Token-shaped text (``shpat_…``, ``X-Shopify-Access-Token: …``, ``access_token=…``) is
  redacted even when nobody registered it. Redaction runs on the finished line, so no field escapes it.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args
from urllib.parse import urlsplit

import orjson

from shopsync.errors import ConfigError

if TYPE_CHECKING:
    from shopsync.settings import Settings

REDACTED = "***"
#: Shorter values are not registered: replacing every "abc" in every line would mangle the logs,
#: and a real token or secret is 32+ characters.
MIN_SECRET_LENGTH = 6

LogFormat = Literal["auto", "json", "text"]
LOG_FORMATS: tuple[LogFormat, ...] = get_args(LogFormat)


def as_log_format(value: str) -> LogFormat:
    """``value`` (a configuration or command-line string) as a :data:`LogFormat`; raises
    :class:`~shopsync.errors.ConfigError` for any other string."""
    for known in LOG_FORMATS:
        if value == known:
            return known
    raise ConfigError(f"[daemon] log_format: unknown format {value!r} (use auto, json or text)")


class SupportsReveal(Protocol):
    def reveal(self) -> str: ...


class LogStream(Protocol):
    """Where :func:`setup_logging` writes: any text stream (a file, or the progress display's)."""

    def write(self, text: str, /) -> object: ...
    def flush(self) -> object: ...


# The default is read-only: every change makes a new mapping, so tasks never share one by accident.
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "shopsync_log_context", default=MappingProxyType({})
)

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}
# Context keys printed first, in this order; others follow alphabetically.
_LEADING = ("shop", "resource")

# Token-shaped text redacted whether or not it was registered. Each keeps its first group (the
# key) and replaces the value.
# Key quotes may be escaped (``\"``) when the text sits inside a JSON string, hence ``[\\'"]*``.
_PATTERNS: tuple[re.Pattern[str], ...] = (
    # Header in any rendering: "X-Shopify-Access-Token: v", "'X-Shopify-Access-Token': 'v'", JSON.
    re.compile(r"""(?i)(x-shopify-access-token[\\'"]*\s*[:=,]\s*[\\'"]*)[^\s\\'",}\]]+"""),
    re.compile(r"""(?i)(authorization[\\'"]*\s*[:=,]\s*[\\'"]*(?:bearer|basic)?\s*)[^\s\\'",}\]]+"""),
    # Form, query string, JSON or repr: access_token=v, "access_token": "v", client_secret='v'.
    re.compile(
        r"""(?i)((?:access_token|client_secret|refresh_token)[\\'"]*\s*[:=]\s*[\\'"]*)[^\s\\'"&,}\]]+"""
    ),
    # Shopify token prefixes: admin/custom/private app tokens, shared secrets.
    re.compile(r"()\b(?:shpat|shpca|shppa|shpss)_[A-Za-z0-9]+"),
)

_secrets_lock = threading.Lock()
_secrets: set[str] = set()
_secret_re: re.Pattern[str] | None = None


def register_secret(value: str | SupportsReveal | None) -> None:
    """Redact ``value`` from every log line from now on (process-wide; idempotent).

    The config layer registers every token and client secret it loads (a ``str`` or an object with
    ``reveal()``, like :class:`shopsync.settings.Secret`); the client registers each access token it
    is issued. Values shorter than :data:`MIN_SECRET_LENGTH` are ignored.
    """
    if value is not None and not isinstance(value, str):
        value = value.reveal()
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    forms = _forms(value)
    with _secrets_lock:
        if forms <= _secrets:
            return
        _secrets.update(forms)
        _compile_secrets()


def unregister_secret(value: str) -> None:
    """Stop redacting ``value`` (an access token that has expired)."""
    with _secrets_lock:
        forms = _forms(value) & _secrets
        if forms:
            _secrets.difference_update(forms)
            _compile_secrets()


def _forms(value: str) -> set[str]:
    # The JSON-escaped form too: a secret with a quote or backslash looks different inside a JSON
    # string, and the repr form for extras rendered with repr().
    return {value, orjson.dumps(value).decode()[1:-1], repr(value)[1:-1]}


def _compile_secrets() -> None:
    global _secret_re
    # Longest first, so a secret containing another is replaced whole.
    ordered = sorted(_secrets, key=len, reverse=True)
    _secret_re = re.compile("|".join(re.escape(s) for s in ordered)) if ordered else None


def register_secrets(settings: Settings) -> int:
    """Redact every secret the configuration loaded from all log lines; returns how many.

    Covers the shops' access tokens, client ids and client secrets (:class:`shopsync.settings.Secret`)
    and passwords in the database and sink URLs. Call at start and after each reload.
    """
    count = 0
    for shop in settings.shops:
        for secret in (shop.access_token, shop.client_id, shop.client_secret, shop.webhook_secret):
            if secret is not None:
                register_secret(secret)
                count += 1
    for url in {settings.database, settings.sink_url}:
        password = urlsplit(url).password
        if password:
            register_secret(password)
            count += 1
    return count


def redact(text: str) -> str:
    """``text`` with registered secrets and token-shaped values replaced by ``***``."""
    pattern = _secret_re
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    for p in _PATTERNS:
        text = p.sub(lambda m: m.group(1) + REDACTED, text)
    return text


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every line logged inside the block (in this task and tasks it creates)."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: Any) -> None:
    """Add ``fields`` to every later line of the current context (a task's own copy under asyncio)."""
    _context.set({**_context.get(), **fields})


def current_context() -> Mapping[str, Any]:
    return _context.get()


class _ContextFilter(logging.Filter):
    """Copies the context fields onto the record when it is handled (still in the caller's task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "_shopsync_context"):
            record._shopsync_context = dict(_context.get())
        return True


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """Context fields, then ``extra=`` fields (which win on a clash), shop and resource first."""
    merged: dict[str, Any] = dict(getattr(record, "_shopsync_context", {}))
    for key, value in vars(record).items():
        if key not in _RECORD_ATTRS and not key.startswith("_"):
            merged[key] = value
    ordered = {k: merged.pop(k) for k in _LEADING if k in merged}
    ordered.update(sorted(merged.items()))
    return ordered


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    parts = []
    if record.exc_info:
        parts.append(formatter.formatException(record.exc_info))
    elif record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(formatter.formatStack(record.stack_info))
    return "\n".join(parts) or None


def _safe_message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a bad %-format must not lose the line
        return f"{record.msg!r} % {record.args!r}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, shop, resource, extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _safe_message(record),
        }
        for key, value in _fields(record).items():
            doc.setdefault(key, value)
        exc = _exception_text(self, record)
        if exc:
            doc["exc"] = exc
        line = orjson.dumps(doc, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()
        return redact(line)


class TextFormatter(logging.Formatter):
    """``2026-11-25T23:18:05.123Z INFO  shopsync.engine [shop=a resource=orders] msg key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        ctx = " ".join(f"{k}={fields.pop(k)}" for k in _LEADING if k in fields)
        parts = [_timestamp(record), f"{record.levelname:<5}", record.name]
        if ctx:
            parts.append(f"[{ctx}]")
        parts.append(_safe_message(record))
        parts.extend(
            f"{k}={v!r}" if isinstance(v, str) and " " in v else f"{k}={v}" for k, v in fields.items()
        )
        line = " ".join(parts)
        exc = _exception_text(self, record)
        if exc:
            line += "\n" + exc
        return redact(line)


class _ShopsyncHandler(logging.StreamHandler):
    """Marks the handler :func:`setup_logging` owns, so calling it again replaces it."""


def setup_logging(
    format: LogFormat = "auto", level: str | int = "info", stream: LogStream | None = None
) -> logging.Handler:
    """Send all logging to ``stream`` (default stderr) as JSON lines or text; returns the handler.

    ``format="auto"`` picks text when the stream is a terminal and JSON otherwise. ``level`` is a
    name (``debug``, ``info``, ``warning``, ``error``) or a number. Replaces a handler installed by
    an earlier call, leaves other handlers alone.
    """
    stream = stream if stream is not None else sys.stderr
    if isinstance(level, str):
        resolved = logging.getLevelName(level.strip().upper())
        if not isinstance(resolved, int):
            raise ConfigError(
                f"[daemon] log_level: unknown level {level!r} (use debug, info, warning or error)"
            )
        level = resolved
    if format == "auto":
        isatty = getattr(stream, "isatty", None)
        format = "text" if isatty is not None and isatty() else "json"
    if format not in ("json", "text"):
        raise ConfigError(f"[daemon] log_format: unknown format {format!r} (use auto, json or text)")
    handler = _ShopsyncHandler(stream)
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _ShopsyncHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # warnings.warn(...) goes through logging too, so it is redacted and formatted alike.
    logging.captureWarnings(True)
    return handler
