"""``shopsync schema``: the analyst views of every resource (README, "Views for analysts").

``shopsync schema`` lists each view and its columns; ``--sql`` prints the DDL the sinks run
(``DROP VIEW IF EXISTS`` + ``CREATE VIEW`` per view, so it can be run again), for ``--dialect``
``sqlite`` or ``postgresql``. With ``--config`` the configured resource files are used (packaged
ones overridden by ``queries_dir``) and, by default, the dialect and PostgreSQL schema of the
configured sink; without it, the packaged resources. Offline: nothing is sent anywhere.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

from shopsync.errors import ConfigError
from shopsync.queries import Resource, load_resources
from shopsync.settings import load_settings
from shopsync.settings.urls import url_scheme
from shopsync.state.postgres import split_schema
from shopsync.state.views import DIALECTS, Dialect, plan_views, view_sql


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sql", action="store_true", help="print the views' DDL instead of their columns")
    parser.add_argument("--dialect", choices=DIALECTS, default=None,
                        help="SQL dialect (default: the configured sink's, else sqlite)")
    parser.add_argument("--config", type=Path, default=None,
                        help="configuration file whose resource files and sink to use (default: the packaged resources)")


def render(resources: Mapping[str, Resource], dialect: Dialect, *, schema: str | None = None, sql: bool) -> str:
    """The text ``shopsync schema`` prints for ``resources`` (pure)."""
    lines: list[str] = []
    for name in sorted(resources):
        plan = plan_views(resources[name])
        table = f'"{schema}"."{name}"' if schema else None
        statements = view_sql(plan, dialect, table=table)
        if sql:
            lines.append(f"-- {name}")
            for view in statements:
                qualified = f'"{schema}"."{view.name}"' if schema else f'"{view.name}"'
                lines.append(f"DROP VIEW IF EXISTS {qualified};")
                lines.append(f"{view.create};")
            lines.append("")
            continue
        lines.append(f"{plan.resource}_v: shop, {', '.join(c.name for c in plan.columns)}")
        for lv in plan.lists:
            lines.append(f"{lv.name}: {', '.join(c.name for c in lv.columns)} (with shop, owner ids, position)")
    return "\n".join(lines).rstrip("\n") + "\n"


def run(args: argparse.Namespace) -> int:
    dialect: Dialect | None = args.dialect
    schema = None
    if args.config is not None:
        settings = load_settings(args.config)
        resources: Mapping[str, Resource] = settings.resources
        sink_url = settings.sink_url or settings.database
        scheme = url_scheme(sink_url)
        if scheme not in ("sqlite", "postgresql"):
            if dialect is None:
                raise ConfigError(f"the sink ({scheme}:) has no tables; pass --dialect to print the views anyway")
        elif dialect is None:
            dialect = "postgresql" if scheme == "postgresql" else "sqlite"
        if scheme == "postgresql" and dialect == "postgresql":
            schema = split_schema(sink_url)[1]
    else:
        resources = load_resources()
    print(render(resources, dialect or "sqlite", schema=schema, sql=args.sql), end="")
    return 0
