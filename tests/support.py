"""Comparing a SQLite sink with a simulated shop: shared by the end-to-end and the daemon tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson

from shopsync.simulator.server import SimulatedShop

ALL_RESOURCES = ("orders", "products", "customers", "inventory_items", "inventory_levels", "locations", "collections")


def sink_rows(db: Path, resource: str, shop: str, *, deleted: bool | None = False) -> dict[str, dict | None]:
    """The SQLite sink's rows of one shop and resource keyed by id: live rows (``deleted=False``),
    rows marked deleted (``True``) or all (``None``). Read-only, so it works beside a writer."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute(f'SELECT id, data, deleted_at FROM "{resource}" WHERE shop = ?', (shop,)).fetchall()
    except sqlite3.OperationalError:
        return {}
    finally:
        con.close()
    return {
        i: (orjson.loads(d) if d is not None else None)
        for i, d, gone in rows
        if deleted is None or (gone is not None) == deleted
    }


def diff_records(expected: dict[str, dict], actual: dict[str, Any]) -> str:
    """A short description of how two id→record maps differ ('' when equal)."""
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = sorted(i for i in set(expected) & set(actual) if expected[i] != actual[i])
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
    if extra:
        parts.append(f"{len(extra)} unexpected (e.g. {extra[:3]})")
    if changed:
        i = changed[0]
        keys = sorted(k for k in set(expected[i]) | set(actual[i] or {}) if expected[i].get(k) != (actual[i] or {}).get(k))
        parts.append(f"{len(changed)} differ (e.g. {i} in {keys[:5]})")
    return "; ".join(parts)


def assert_matches_truth(shop: SimulatedShop, db: Path, resources=ALL_RESOURCES) -> None:
    """Live sink rows equal the shop's truth, record for record (deleted ones are marked, so absent here)."""
    problems = []
    for resource in resources:
        d = diff_records(shop.truth(resource), sink_rows(db, resource, shop.name))
        if d:
            problems.append(f"{shop.name}/{resource}: {d}")
    assert not problems, "\n".join(problems)
