"""Admin API versions: the shipped schemas, a newer one from a file, and what differs for a document.

Shopify releases a version each quarter (``YYYY-01``, ``-04``, ``-07``, ``-10``, on the first of
the month) and supports it for twelve months (shopify-api-facts §10: "each version stays
accessible at least 12 months"). :func:`support_ends` and :func:`support_warning` do that
arithmetic (pure: "today" is passed in).

:func:`document_changes` compares a document that is valid against the pinned schema with another
version's schema: the fields it selects that the other version does not have, those it marks
deprecated, and the replacement each deprecation reason names ("Use `valueV2` instead.").
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import cast

import orjson
from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    IntrospectionQuery,
    build_client_schema,
    get_named_type,
    parse,
    validate,
)
from graphql.language import Visitor, visit
from graphql.utilities import TypeInfo, TypeInfoVisitor

from shopsync import API_VERSION
from shopsync.errors import ConfigError
from shopsync.shopify.schema import introspection, load_schema, schema_path

#: The versions whose published schemas ship with shopsync (``admin_<version>.json.gz``).
SHIPPED_VERSIONS = ("2026-01", "2026-04", "2026-07", "2026-10")
#: Months a version is supported after its release.
SUPPORT_MONTHS = 12
#: Days before the end of support from which the daemon warns.
SUPPORT_WARNING_DAYS = 90

_VERSION_RE = re.compile(r"^(\d{4})-(01|04|07|10)$")


def release_date(version: str) -> date | None:
    """The first day of a quarterly version (``2026-07`` → 2026-07-01); None for another name."""
    m = _VERSION_RE.match(version)
    return date(int(m.group(1)), int(m.group(2)), 1) if m else None


def support_ends(version: str) -> date | None:
    """The day support ends: twelve months after the release (``2026-07`` → 2027-07-01)."""
    released = release_date(version)
    if released is None:
        return None
    months = released.month - 1 + SUPPORT_MONTHS
    return date(released.year + months // 12, months % 12 + 1, 1)


@dataclass(frozen=True)
class SupportWindow:
    """Where ``version`` stands on ``today``: days left (negative once ended) and whether to warn."""

    version: str
    ends: date
    days_left: int
    warn: bool

    def message(self) -> str:
        if self.days_left <= 0:
            return (
                f"API version {self.version} reached the end of its support on {self.ends.isoformat()}: "
                "Shopify serves a newer version instead; upgrade shopsync and api_version"
            )
        return (
            f"API version {self.version} is supported until {self.ends.isoformat()} ({self.days_left} days "
            f"left): upgrade api_version before then (see `shopsync check --api-version`)"
        )


def support_warning(
    version: str, today: date, within_days: int = SUPPORT_WARNING_DAYS
) -> SupportWindow | None:
    """The support window of ``version`` on ``today`` (None for a name that is not ``YYYY-MM``)."""
    ends = support_ends(version)
    if ends is None:
        return None
    days_left = (ends - today).days
    return SupportWindow(version=version, ends=ends, days_left=days_left, warn=days_left <= within_days)


# ------------------------------------------------------------------------------------------------
# schemas of other versions


@dataclass(frozen=True)
class FieldInfo:
    deprecated: bool
    reason: str | None


@dataclass(frozen=True, eq=False)
class VersionSchema:
    """One version's schema: its name, graphql-core schema and every (type, field)'s deprecation."""

    name: str
    schema: GraphQLSchema
    fields: dict[tuple[str, str], FieldInfo] = field(repr=False)
    source: str


def _fields_of(intro: dict) -> dict[tuple[str, str], FieldInfo]:
    out: dict[tuple[str, str], FieldInfo] = {}
    for t in intro["__schema"]["types"]:
        for f in t.get("fields") or ():
            out[(t["name"], f["name"])] = FieldInfo(bool(f.get("isDeprecated")), f.get("deprecationReason"))
    return out


@cache
def shipped_schema(version: str) -> VersionSchema:
    """A shipped version's schema. Raises :class:`ConfigError` for a version not shipped."""
    if version not in SHIPPED_VERSIONS:
        raise ConfigError(
            f"--api-version {version}: no schema shipped for it (shipped: {', '.join(SHIPPED_VERSIONS)}); "
            "pass Shopify's published schema for it with --schema FILE"
        )
    intro = introspection(version)
    return VersionSchema(
        name=version,
        schema=load_schema(version),
        fields=_fields_of(intro),
        source=str(schema_path(version)),
    )


def schema_from_file(path: Path, name: str | None = None) -> VersionSchema:
    """A schema from an introspection file (``.json`` or ``.json.gz``; with or without ``data``).

    ``name`` defaults to the version in a file name like ``admin_2027-01.json.gz``. Raises
    :class:`ConfigError` naming the file for anything unreadable.
    """
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        doc = orjson.loads(raw)
        intro = doc.get("data", doc) if isinstance(doc, dict) else None
        if not isinstance(intro, dict) or "__schema" not in intro:
            raise ValueError("not a GraphQL introspection result (no __schema)")
        schema = build_client_schema(cast(IntrospectionQuery, intro), assume_valid=True)
        fields = _fields_of(intro)
    except (OSError, EOFError, ValueError, TypeError, KeyError, gzip.BadGzipFile) as exc:
        raise ConfigError(f"--schema {path}: cannot read a schema from it: {exc}") from exc
    if name is None:
        m = re.search(r"(\d{4}-\d{2}|unstable)", path.name)
        name = m.group(1) if m else path.name
    return VersionSchema(name=name, schema=schema, fields=fields, source=str(path))


# ------------------------------------------------------------------------------------------------
# one document against another version

_BACKTICKED = re.compile(r"`([A-Za-z_][A-Za-z0-9_.]*)`")
_LINK = re.compile(r"\[`?([A-Za-z_][A-Za-z0-9_.]*)`?\]\(")
_USE_INSTEAD = re.compile(r"\bUse (.+?) instead\b", re.IGNORECASE)


def replacement_in(reason: str | None) -> str | None:
    """The replacement a deprecation reason names: its backticked names, else "Use X instead"'s X."""
    if not reason:
        return None
    names = list(dict.fromkeys(_LINK.findall(reason) + _BACKTICKED.findall(reason)))
    if names:
        return ", ".join(names)
    m = _USE_INSTEAD.search(reason)
    return m.group(1).strip() if m else None


@dataclass(frozen=True)
class FieldChange:
    """A field a document selects that is absent or deprecated in the target version."""

    type_name: str
    field_name: str
    kind: str  # "absent" | "deprecated"
    reason: str | None
    replacement: str | None

    @property
    def name(self) -> str:
        return f"{self.type_name}.{self.field_name}"


@dataclass(frozen=True)
class DocumentChanges:
    fields: tuple[FieldChange, ...]
    errors: tuple[str, ...]  # validation errors against the target other than absent fields


def selected_fields(text: str, schema: GraphQLSchema) -> list[tuple[str, str]]:
    """Every (parent type, field) ``text`` selects, resolved against ``schema``, in document order."""
    document = parse(text)
    info = TypeInfo(schema)
    seen: dict[tuple[str, str], None] = {}

    class _Collect(Visitor):
        def enter_field(self, node: FieldNode, *_: object) -> None:
            parent = info.get_parent_type()
            if parent is not None and not node.name.value.startswith("__"):
                seen[(get_named_type(parent).name, node.name.value)] = None

    visit(document, TypeInfoVisitor(info, _Collect()))
    return list(seen)


def _predecessors(target: VersionSchema, type_name: str, field_name: str, subfields: list[str]) -> list[str]:
    """Fields of ``type_name`` in ``target`` whose deprecation reason points to ``field_name`` —
    to the selected ``subfields`` of it (```field.sub```) when any reason names one of those."""
    wanted = [rf"`{re.escape(field_name)}\.{re.escape(s)}`" for s in subfields] or [
        rf"`{re.escape(field_name)}[`.]"
    ]
    wanted_any = rf"`{re.escape(field_name)}[`.]"
    own = [(f, fi) for (t, f), fi in target.fields.items() if t == type_name and fi.deprecated and fi.reason]
    hits = [f for f, fi in own if any(re.search(w, str(fi.reason)) for w in wanted)]
    if not hits:
        hits = [f for f, fi in own if re.search(wanted_any, str(fi.reason))]
    return sorted(hits)


def document_changes(text: str, target: VersionSchema, pinned_version: str = API_VERSION) -> DocumentChanges:
    """What differs for ``text`` (valid against the pinned schema) in ``target``.

    A field absent from ``target`` gets as replacement the one the pinned schema's deprecation
    reason names (a field deprecated, then removed), else — for an older target — the target's
    deprecated fields of that type whose reason points to it (what to use there instead).
    """
    pinned = shipped_schema(pinned_version)
    changes: list[FieldChange] = []
    selected = selected_fields(text, pinned.schema)
    for type_name, field_name in selected:
        if target.schema.get_type(type_name) is None:
            continue  # a type the target lacks: the field returning it is the finding
        here = target.fields.get((type_name, field_name))
        if here is None:
            before = pinned.fields.get((type_name, field_name))
            replacement = replacement_in(before.reason) if before and before.deprecated else None
            reason = before.reason if before and before.deprecated else None
            if replacement is None:
                returns = _return_type(pinned.schema, type_name, field_name)
                subfields = [f for t, f in selected if t == returns]
                older = _predecessors(target, type_name, field_name, subfields)
                if older:
                    replacement = ", ".join(older)
                    reason = (
                        f"{target.name} has {replacement} instead (deprecated there: "
                        + "; ".join(str(target.fields[(type_name, f)].reason) for f in older)
                        + ")"
                    )
            changes.append(FieldChange(type_name, field_name, "absent", reason, replacement))
        elif here.deprecated:
            changes.append(
                FieldChange(type_name, field_name, "deprecated", here.reason, replacement_in(here.reason))
            )
    absent = {(c.type_name, c.field_name) for c in changes if c.kind == "absent"}
    errors = []
    for err in validate(target.schema, parse(text)):
        if not _about_absent_field(err, absent):
            errors.append(err.message)
    return DocumentChanges(tuple(changes), tuple(dict.fromkeys(errors)))


def _return_type(schema: GraphQLSchema, type_name: str, field_name: str) -> str | None:
    parent = schema.get_type(type_name)
    fields = getattr(parent, "fields", None) or {}
    f = fields.get(field_name)
    return get_named_type(f.type).name if f is not None else None


def _about_absent_field(err: GraphQLError, absent: set[tuple[str, str]]) -> bool:
    m = re.match(r"Cannot query field '([^']+)' on type '([^']+)'", err.message)
    if m and (m.group(2), m.group(1)) in absent:
        return True
    m = re.match(r"Unknown type '([^']+)'", err.message)
    return bool(m and any(t == m.group(1) for t, _ in absent))


__all__ = [
    "SHIPPED_VERSIONS",
    "SUPPORT_MONTHS",
    "SUPPORT_WARNING_DAYS",
    "DocumentChanges",
    "FieldChange",
    "SupportWindow",
    "VersionSchema",
    "document_changes",
    "release_date",
    "replacement_in",
    "schema_from_file",
    "selected_fields",
    "shipped_schema",
    "support_ends",
    "support_warning",
]
