"""Keeping the analyst views (:mod:`shopsync.state.views`) current next to the resource tables.

The table sinks call :func:`sqlite_views` / :func:`postgres_views` right after creating (or, on
the first write of a process, finding) a resource's table, inside the same transaction. A view is
dropped and created again only when its definition changed (SQLite keeps the statement's text,
marker comment included; PostgreSQL keeps the marker as the view's ``COMMENT``), and shopsync's
views the fragment no longer produces are dropped. An object of the same name that shopsync did
not make is left alone (with a warning), and a view that cannot be replaced (a user's view depends
on it) is logged and skipped: views never stop a sync.

Which resources: the sink's ``view_resources`` (the settings' registry, packaged files overridden
by ``queries_dir``), else the packaged ones. A table whose name is no known resource gets no views.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from functools import cache

import asyncpg

from shopsync.errors import QueryDocumentError
from shopsync.queries import Resource
from shopsync.queries.loader import load_resources
from shopsync.state.views import ViewSql, is_own_view, marker_of, stale_views, view_ddl

log = logging.getLogger(__name__)


@cache
def _packaged() -> Mapping[str, Resource]:
    return load_resources()


def resource_for(name: str, resources: Mapping[str, Resource] | None) -> Resource | None:
    """The resource whose table is ``name`` (from ``resources``, default the packaged registry)."""
    return (resources if resources is not None else _packaged()).get(name)


def _ddl(resource: Resource, dialect: str, table: str | None = None) -> list[ViewSql] | None:
    try:
        return view_ddl(resource, "sqlite" if dialect == "sqlite" else "postgresql", table=table)
    except QueryDocumentError as exc:
        log.warning("no analyst views for %s: %s", resource.name, exc)
        return None


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sqlite_views(conn: sqlite3.Connection, name: str, resources: Mapping[str, Resource] | None) -> None:
    """Bring the views of table ``name`` up to date with ``conn`` (inside the caller's transaction)."""
    resource = resource_for(name, resources)
    wanted = _ddl(resource, "sqlite") if resource else None
    if resource is None or wanted is None:
        return
    objects = {row[0]: (row[1], row[2]) for row in conn.execute("SELECT name, type, sql FROM sqlite_master")}
    own = [n for n, (kind, sql) in objects.items() if kind == "view" and is_own_view(sql)]
    conn.execute("SAVEPOINT shopsync_views")
    try:
        for stale in stale_views(name, [v.name for v in wanted], own):
            conn.execute(f"DROP VIEW {_q(stale)}")
        for view in wanted:
            kind, sql = objects.get(view.name, (None, None))
            if sql == view.create:
                continue
            if kind is not None and not (kind == "view" and is_own_view(sql)):
                log.warning("not creating view %s: a %s of that name exists that shopsync did not make", view.name, kind)
                continue
            conn.execute(f"DROP VIEW IF EXISTS {_q(view.name)}")
            conn.execute(view.create)
    except sqlite3.Error as exc:
        conn.execute("ROLLBACK TO shopsync_views")
        log.warning("could not update the views of %s: %s", name, exc)
    finally:
        conn.execute("RELEASE shopsync_views")


async def postgres_views(
    conn: asyncpg.Connection, schema: str, name: str, resources: Mapping[str, Resource] | None
) -> None:
    """Bring the views of table ``"schema"."name"`` up to date (inside the caller's transaction)."""
    resource = resource_for(name, resources)
    wanted = _ddl(resource, "postgresql", f"{_q(schema)}.{_q(name)}") if resource else None
    if resource is None or wanted is None:
        return
    rows = await conn.fetch(
        "SELECT c.relname, c.relkind::text AS relkind, obj_description(c.oid, 'pg_class') AS comment FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1",
        schema,
    )
    objects = {r["relname"]: (r["relkind"], r["comment"]) for r in rows}
    own = [n for n, (kind, comment) in objects.items() if kind == "v" and is_own_view(comment)]
    try:
        async with conn.transaction():  # a savepoint: a failure here leaves the table's transaction intact
            for stale in stale_views(name, [v.name for v in wanted], own):
                await conn.execute(f"DROP VIEW {_q(schema)}.{_q(stale)}")
            for view in wanted:
                kind, comment = objects.get(view.name, (None, None))
                marker = marker_of(view.create)
                if kind == "v" and comment == marker:
                    continue
                if kind is not None and not (kind == "v" and is_own_view(comment)):
                    log.warning("not creating view %s.%s: an object of that name exists that shopsync did not make", schema, view.name)
                    continue
                qualified = f"{_q(schema)}.{_q(view.name)}"
                await conn.execute(f"DROP VIEW IF EXISTS {qualified}")
                await conn.execute(view.create)
                await conn.execute(f"COMMENT ON VIEW {qualified} IS '{marker}'")
    except asyncpg.PostgresError as exc:
        log.warning("could not update the views of %s.%s: %s", schema, name, exc)


__all__ = ["postgres_views", "resource_for", "sqlite_views"]
