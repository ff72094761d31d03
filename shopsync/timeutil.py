"""Timestamps as Shopify writes them: ISO 8601, UTC, second precision, ``Z`` suffix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def parse_ts(value: str) -> datetime:
    """Parse an ISO 8601 timestamp (``Z`` or an offset) into an aware UTC datetime."""
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def format_ts(dt: datetime) -> str:
    """Format as Shopify does: ``2026-11-25T23:18:05Z`` (sub-second part dropped)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def epoch_to_ts(seconds: float) -> str:
    """Epoch seconds as a Shopify timestamp string: ``format_ts(from_epoch(seconds))``."""
    return format_ts(from_epoch(seconds))


def parse_optional_ts(value: str | None) -> datetime | None:
    """:func:`parse_ts`, with ``None`` (or an empty string) for no timestamp."""
    return parse_ts(value) if value else None


def to_epoch(dt: datetime) -> float:
    return dt.timestamp()


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_duration(value: str | int | float) -> timedelta:
    """Human durations: ``90`` (seconds), ``"45s"``, ``"5m"``, ``"2h"``, ``"1d"``, ``"1h30m"``."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"duration must not be negative: {value!r}")
        return timedelta(seconds=value)
    text = value.strip().lower()
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    total = 0.0
    number = ""
    i = 0
    if not text:
        raise ValueError("empty duration")
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = text[i : i + 2] if text[i : i + 2] == "ms" else ch
        if unit not in units or not number:
            raise ValueError(f"not a duration: {value!r} (use e.g. 45s, 5m, 2h, 1d)")
        total += float(number) * units[unit]
        number = ""
        i += len(unit)
    if number:  # a bare trailing number means seconds
        total += float(number)
    return timedelta(seconds=total)
