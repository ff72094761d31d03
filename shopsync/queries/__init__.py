"""The resource registry: one ``<name>.graphql`` fragment per resource, with a header.

A resource file (docs/ARCHITECTURE.md, "Resource files") is a header of ``# key: value`` comment
lines after ``# shopsync:resource`` and exactly one fragment on the records' node type. The header
names the root connection, its extra arguments, the sort key, whether the resource is read in
``updated_at`` windows, the count field and the deletion subject; nested connections inside the
fragment carry their paginated page size as ``first: N``.

:func:`load_resources` reads the packaged files and the user's ``queries_dir`` (a user file with the
same name replaces the packaged one), checks the header against the pinned schema, builds every
document the engine will send for the resource (:mod:`shopsync.queries.builder`) and validates
each. Every error is a :class:`~shopsync.errors.QueryDocumentError` naming the file, the line in
that file and the field, so a bad user query stops ``shopsync check`` and the daemon at start.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources as _pkg_resources
from pathlib import Path
from types import MappingProxyType

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    SelectionSetNode,
    Source,
    get_named_type,
    is_abstract_type,
    is_enum_type,
    is_leaf_type,
    parse,
)

from shopsync.cost import is_connection_type
from shopsync.errors import QueryDocumentError, QueryTooCostlyError
from shopsync.schema import format_graphql_error, load_schema, required_access

HEADER_MARKER = "# shopsync:resource"
HEADER_KEYS = ("root", "root_args", "sort", "filter", "count", "deletions")
FILTERS = ("updated_at", "none")
#: Shopify's hard ceiling for ``first`` on any connection.
MAX_PAGE_SIZE = 250
#: Bulk query limits (shopify-api-facts §3): connections in total, and levels of nesting below the root.
BULK_MAX_CONNECTIONS = 5
BULK_MAX_NESTING = 2
#: Arguments the builder sets itself; a resource file must not set them in ``root_args``.
RESERVED_ARGS = ("first", "last", "after", "before", "query", "sortKey", "reverse")
#: Orders older than 60 days are invisible without this scope (shopify-api-facts §4).
READ_ALL_ORDERS = "read_all_orders"

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_HEADER_LINE_RE = re.compile(r"^#\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.*?)\s*$")


@dataclass(frozen=True, kw_only=True)
class NestedConnection:
    """A connection selected inside the fragment (``lineItems(first: 25) { … }``).

    ``path`` is the chain of field names from the record root (``("lineItems",)``; depth 2:
    ``("lineItems", "discountAllocations")``). ``parent_type`` is the type whose field it is (the
    ``... on <ParentType>`` of a drain query); ``node_type`` the connection's node type and
    ``node_types`` its concrete object types (used to tell bulk child lines apart by GID type).
    ``page_size`` is the fragment's ``first``.
    """

    field: str
    path: tuple[str, ...]
    parent_type: str
    node_type: str
    node_types: tuple[str, ...]
    page_size: int
    depth: int
    children: tuple[NestedConnection, ...] = ()
    line: int = field(default=0, compare=False)


@dataclass(frozen=True, kw_only=True)
class Resource:
    """One syncable resource, parsed and validated from its ``.graphql`` file.

    For a ``parent.child`` root (``locations.inventoryLevels``) ``root_field`` is the child
    connection (``inventoryLevels``), ``parent_field`` the QueryRoot connection listing the parents
    (``locations``) and ``parent_node_type`` their type (``Location``); ``root_args`` then apply to
    the parent connection. ``fragment_source`` is the whole file text (line numbers in errors refer
    to it). ``required_scopes`` is a smallest set of access scopes satisfying every ``requiredAccess``
    of the types and fields the documents touch (``read_all_orders`` added for orders);
    ``access_requirements`` keeps each requirement's alternatives.
    """

    name: str
    path: Path
    root_field: str
    parent_field: str | None
    parent_node_type: str | None
    root_args: str
    sort_key: str | None
    incremental: bool
    count_field: str | None
    deletion_subject: str | None
    node_type: str
    fragment_name: str
    fragment_source: str
    nested: tuple[NestedConnection, ...]
    required_scopes: tuple[str, ...]
    access_requirements: tuple[tuple[str, ...], ...] = ()
    fragment_ast: FragmentDefinitionNode | None = field(default=None, repr=False, compare=False)
    header_lines: Mapping[str, int] = field(default_factory=dict, repr=False, compare=False)

    @property
    def has_nested(self) -> bool:
        return bool(self.nested)

    def all_nested(self) -> Iterator[NestedConnection]:
        """Every nested connection, depth first (a parent before its children)."""
        stack = list(reversed(self.nested))
        while stack:
            nc = stack.pop()
            yield nc
            stack.extend(reversed(nc.children))

    def nested_at(self, path: tuple[str, ...]) -> NestedConnection:
        for nc in self.all_nested():
            if nc.path == path:
                return nc
        raise KeyError(f"{self.name} has no nested connection at {'.'.join(path)}")

    @property
    def origin(self) -> str:
        return str(self.path)


# --------------------------------------------------------------------------------------------
# loading


def packaged_dir() -> Path:
    """The folder of the resource files shipped with shopsync."""
    return Path(str(_pkg_resources.files(__package__) / "resources"))


#: (path, file content) -> Resource: each file content is validated at most once per process.
_CACHE: dict[tuple[str, str], Resource] = {}


def load_resources(extra_dir: Path | None = None) -> dict[str, Resource]:
    """All resources: the packaged files, then ``extra_dir``'s (same name replaces packaged).

    Each resource's header is checked and every document built from it is validated against the
    pinned schema; the first problem raises :class:`QueryDocumentError` naming the file and line.
    """
    files: dict[str, Path] = {p.stem: p for p in sorted(packaged_dir().glob("*.graphql"))}
    if extra_dir is not None:
        extra_dir = Path(extra_dir)
        if not extra_dir.is_dir():
            raise QueryDocumentError(f"{extra_dir}: queries_dir is not a readable directory")
        for p in sorted(extra_dir.glob("*.graphql")):
            files[p.stem] = p
    out: dict[str, Resource] = {}
    for name, path in files.items():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise QueryDocumentError(f"{path}: cannot read: {exc}") from exc
        out[name] = load_resource_text(name, path, text)
    return out


def load_resource_text(name: str, path: Path, text: str) -> Resource:
    """Parse and validate one resource file's ``text`` (cached by path and content)."""
    key = (str(path), text)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    resource = _ResourceParser(name, Path(path), text, load_schema()).parse()
    _validate_documents(resource)
    _CACHE[key] = resource
    return resource


def minimal_scopes(requirements: tuple[tuple[str, ...], ...] | list[tuple[str, ...]]) -> tuple[str, ...]:
    """A small set of scopes satisfying every requirement (each a tuple of alternatives).

    Greedy set cover: repeatedly take the scope that satisfies the most unsatisfied requirements,
    preferring the one Shopify lists first (``read_orders`` before ``read_marketplace_orders``).
    """
    pending = [r for r in dict.fromkeys(requirements) if r]
    chosen: list[str] = []
    while pending:
        order: dict[str, tuple[int, int]] = {}
        for req in pending:
            for pos, scope in enumerate(req):
                hits, best_pos = order.get(scope, (0, pos))
                order[scope] = (hits + 1, min(best_pos, pos))
        scope = max(order, key=lambda s: (order[s][0], -order[s][1]))
        chosen.append(scope)
        pending = [r for r in pending if scope not in r]
    return tuple(sorted(chosen))


# --------------------------------------------------------------------------------------------
# parsing one file


class _ResourceParser:
    def __init__(self, name: str, path: Path, text: str, schema: GraphQLSchema) -> None:
        self.name = name
        self.path = path
        self.text = text
        self.schema = schema
        self.header: dict[str, tuple[str, int]] = {}
        self.access: list[tuple[str, ...]] = []

    def fail(self, message: str, line: int | None = None) -> QueryDocumentError:
        where = f":{line}" if line else ""
        return QueryDocumentError(f"{self.path}{where}: {message}")

    # -- header --------------------------------------------------------------------------
    def parse_header(self) -> None:
        lines = self.text.splitlines()
        i = 0
        while i < len(lines) and not lines[i].strip():
            i += 1
        if i >= len(lines) or lines[i].strip() != HEADER_MARKER:
            raise self.fail(f"the file must start with a '{HEADER_MARKER}' line", i + 1 if i < len(lines) else None)
        i += 1
        while i < len(lines):
            m = _HEADER_LINE_RE.match(lines[i].strip())
            if not m:
                break  # a bare '#', prose or the fragment ends the header
            key, value = m.group(1), m.group(2)
            if key not in HEADER_KEYS:
                raise self.fail(
                    f"unknown header key {key!r} (known: {', '.join(HEADER_KEYS)}); "
                    "end the header with a bare '#' line before any prose",
                    i + 1,
                )
            if key in self.header:
                raise self.fail(f"header key {key!r} given twice (first on line {self.header[key][1]})", i + 1)
            self.header[key] = (value, i + 1)
            i += 1
        for key in ("root", "filter"):
            if key not in self.header:
                raise self.fail(f"header key {key!r} is missing")

    def value(self, key: str) -> str | None:
        item = self.header.get(key)
        return item[0] if item and item[0] != "" else None

    def line(self, key: str) -> int | None:
        item = self.header.get(key)
        return item[1] if item else None

    # -- schema helpers --------------------------------------------------------------------
    def connection_node_type(self, conn: GraphQLObjectType) -> GraphQLObjectType | GraphQLInterfaceType:
        if "nodes" in conn.fields:
            return get_named_type(conn.fields["nodes"].type)  # type: ignore[return-value]
        edge = get_named_type(conn.fields["edges"].type)
        return get_named_type(edge.fields["node"].type)  # type: ignore[union-attr,return-value]

    def concrete_names(self, t) -> tuple[str, ...]:
        if is_abstract_type(t):
            return tuple(sorted(p.name for p in self.schema.get_possible_types(t)))
        return (t.name,)

    def note_access(self, type_name: str, field_name: str | None = None) -> None:
        info = required_access(type_name, field_name)
        if info is not None and info.scopes:
            self.access.append(info.scopes)

    # -- the whole file ---------------------------------------------------------------------
    def parse(self) -> Resource:
        if not _NAME_RE.match(self.name):
            raise self.fail(f"resource name {self.name!r} (the file name) must be lower_snake_case")
        self.parse_header()
        query_root = self.schema.query_type
        assert query_root is not None

        # root / parent.child
        root_text = self.value("root") or ""
        root_line = self.line("root")
        parent_field: str | None = None
        parent_node_type: str | None = None
        if "." in root_text:
            parent_field, _, root_field = root_text.partition(".")
            if not parent_field or not root_field or "." in root_field:
                raise self.fail(f"root: {root_text!r} must be 'field' or 'parent.child'", root_line)
            parent_def = query_root.fields.get(parent_field)
            if parent_def is None or not is_connection_type(get_named_type(parent_def.type)):
                raise self.fail(f"root: {parent_field!r} is not a connection field of QueryRoot", root_line)
            parent_conn = get_named_type(parent_def.type)
            parent_type = self.connection_node_type(parent_conn)  # type: ignore[arg-type]
            if is_abstract_type(parent_type):
                raise self.fail(f"root: {parent_field!r} returns {parent_type.name}, an abstract type", root_line)
            parent_node_type = parent_type.name
            conn_def = parent_type.fields.get(root_field)
            if conn_def is None or not is_connection_type(get_named_type(conn_def.type)):
                raise self.fail(f"root: {parent_type.name}.{root_field} is not a connection field", root_line)
            if "Node" not in {i.name for i in parent_type.interfaces}:
                raise self.fail(f"root: {parent_type.name} does not implement Node (needed to page under it)", root_line)
            args_owner_def = parent_def
            self.note_access("QueryRoot", parent_field)
            self.note_access(parent_type.name)
            self.note_access(parent_type.name, root_field)
        else:
            root_field = root_text
            conn_def = query_root.fields.get(root_field)
            if conn_def is None or not is_connection_type(get_named_type(conn_def.type)):
                raise self.fail(f"root: {root_field!r} is not a connection field of QueryRoot", root_line)
            args_owner_def = conn_def
            self.note_access("QueryRoot", root_field)
        conn_type: GraphQLObjectType = get_named_type(conn_def.type)  # type: ignore[assignment]
        node_type = self.connection_node_type(conn_type)
        if "id" not in node_type.fields:
            raise self.fail(f"root: {node_type.name} has no id field", root_line)

        # filter
        filt = self.value("filter")
        if filt not in FILTERS:
            raise self.fail(f"filter: {filt!r} must be one of {', '.join(FILTERS)}", self.line("filter"))
        incremental = filt == "updated_at"
        if incremental and "query" not in conn_def.args:
            raise self.fail(f"filter: updated_at needs a query argument, which {root_field} does not take", self.line("filter"))

        # sort
        sort_key = self.value("sort")
        if sort_key is not None:
            arg = conn_def.args.get("sortKey")
            if arg is None:
                raise self.fail(f"sort: {root_field} takes no sortKey argument", self.line("sort"))
            enum = get_named_type(arg.type)
            if not is_enum_type(enum) or sort_key not in enum.values:  # type: ignore[union-attr]
                known = ", ".join(enum.values) if is_enum_type(enum) else ""  # type: ignore[union-attr]
                raise self.fail(f"sort: {sort_key!r} is not a value of {enum.name} ({known})", self.line("sort"))

        # root_args
        root_args = self.value("root_args") or ""
        if root_args:
            self.check_root_args(root_args, args_owner_def, parent_field or root_field)

        # count
        count_field = self.value("count")
        if count_field is not None:
            count_def = query_root.fields.get(count_field)
            if count_def is None or get_named_type(count_def.type).name != "Count":
                raise self.fail(f"count: {count_field!r} is not a Count field of QueryRoot", self.line("count"))
            self.note_access("QueryRoot", count_field)

        # deletions
        deletion_subject = self.value("deletions")
        if deletion_subject is not None:
            subjects = self.schema.get_type("EventSubjectType")
            if deletion_subject not in subjects.values:  # type: ignore[union-attr]
                raise self.fail(
                    f"deletions: {deletion_subject!r} is not an EventSubjectType ({', '.join(subjects.values)})",  # type: ignore[union-attr]
                    self.line("deletions"),
                )

        # the fragment
        fragment = self.parse_fragment()
        frag_line = fragment.loc.source.get_location(fragment.loc.start).line if fragment.loc else None
        cond = fragment.type_condition.name.value
        if cond != node_type.name:
            raise self.fail(
                f"fragment {fragment.name.value} is on {cond}, but {root_text} returns {node_type.name} nodes",
                frag_line,
            )
        top = self.top_level_fields(fragment.selection_set)
        if "id" not in top:
            raise self.fail(f"fragment {fragment.name.value} must select id", frag_line)
        if incremental and "updatedAt" not in top:
            raise self.fail(f"fragment {fragment.name.value} must select updatedAt (filter: updated_at)", frag_line)
        self.note_access(node_type.name)
        nested = self.find_connections(node_type, fragment.selection_set, path=(), depth=1, in_object=False)
        self.check_nesting(nested, parent_field is not None, node_type.name, parent_node_type, frag_line)

        scopes = list(minimal_scopes(self.access))
        if node_type.name == "Order":
            scopes.append(READ_ALL_ORDERS)
        return Resource(
            name=self.name,
            path=self.path,
            root_field=root_field,
            parent_field=parent_field,
            parent_node_type=parent_node_type,
            root_args=root_args,
            sort_key=sort_key,
            incremental=incremental,
            count_field=count_field,
            deletion_subject=deletion_subject,
            node_type=node_type.name,
            fragment_name=fragment.name.value,
            fragment_source=self.text,
            nested=nested,
            required_scopes=tuple(sorted(set(scopes))),
            access_requirements=tuple(dict.fromkeys(self.access)),
            fragment_ast=fragment,
            header_lines=MappingProxyType({k: v[1] for k, v in self.header.items()}),
        )

    def check_root_args(self, root_args: str, owner_def, owner_name: str) -> None:
        line = self.line("root_args") or 1
        # Pad with newlines so graphql-core's line numbers are the header line's.
        source = Source("\n" * (line - 1) + "{ f(" + root_args + ") }", str(self.path))
        try:
            doc = parse(source)
        except GraphQLError as exc:
            raise QueryDocumentError(format_graphql_error(exc, str(self.path)) + " (in root_args)") from exc
        field_node = doc.definitions[0].selection_set.selections[0]  # type: ignore[attr-defined]
        for arg in field_node.arguments or ():
            name = arg.name.value
            if name in RESERVED_ARGS:
                raise self.fail(f"root_args: {name} is set by shopsync and must not be given here", line)
            if name not in owner_def.args:
                raise self.fail(f"root_args: {owner_name} takes no argument {name!r}", line)

    def parse_fragment(self) -> FragmentDefinitionNode:
        try:
            doc = parse(Source(self.text, str(self.path)))
        except GraphQLError as exc:
            raise QueryDocumentError(format_graphql_error(exc, str(self.path))) from exc
        defs = doc.definitions
        if len(defs) != 1 or not isinstance(defs[0], FragmentDefinitionNode):
            raise self.fail("the file must hold exactly one fragment definition (and nothing else)")
        return defs[0]

    def top_level_fields(self, selection_set: SelectionSetNode) -> set[str]:
        names: set[str] = set()
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode) and sel.alias is None:
                names.add(sel.name.value)
            elif isinstance(sel, InlineFragmentNode) and sel.type_condition is None:
                names |= self.top_level_fields(sel.selection_set)
        return names

    def node_line(self, node) -> int | None:
        return node.loc.source.get_location(node.loc.start).line if node.loc else None

    def find_connections(
        self,
        parent,
        selection_set: SelectionSetNode | None,
        *,
        path: tuple[str, ...],
        depth: int,
        in_object: bool,
    ) -> tuple[NestedConnection, ...]:
        """The connections selected on ``parent`` nodes (recursing into their node selections).

        Field errors (unknown fields) are left to document validation, which reports them with
        their line; this walk only needs the shape.
        """
        found: list[NestedConnection] = []
        if selection_set is None:
            return ()
        for sel in selection_set.selections:
            if isinstance(sel, FragmentSpreadNode):
                raise self.fail(
                    f"fragment spread ...{sel.name.value}: a resource file holds one fragment; inline the fields",
                    self.node_line(sel),
                )
            if isinstance(sel, InlineFragmentNode):
                target = parent
                if sel.type_condition is not None:
                    target = self.schema.get_type(sel.type_condition.name.value) or parent
                found.extend(
                    self.find_connections(target, sel.selection_set, path=path, depth=depth, in_object=in_object)
                )
                continue
            assert isinstance(sel, FieldNode)
            fields = getattr(parent, "fields", {})
            field_def = fields.get(sel.name.value)
            if field_def is None:
                continue
            named = get_named_type(field_def.type)
            self.note_access(parent.name, sel.name.value)
            if is_leaf_type(named):
                continue
            self.note_access(named.name)
            if not is_connection_type(named):
                # A plain object: connections inside it could not be drained (no node id to page
                # under), so they are refused below.
                self.find_connections(named, sel.selection_set, path=path, depth=depth, in_object=True)
                continue
            found.append(self.nested_connection(parent, sel, named, path=path, depth=depth, in_object=in_object))
        return tuple(found)

    def nested_connection(self, parent, sel: FieldNode, conn, *, path, depth, in_object) -> NestedConnection:
        line = self.node_line(sel)
        name = sel.name.value
        if in_object:
            raise self.fail(
                f"{parent.name}.{name}: a connection must be selected directly on a record or on a "
                "nested connection's node (it cannot be paged under a plain object)",
                line,
            )
        if sel.alias is not None:
            raise self.fail(f"{name}: aliases are not supported on connection fields", line)
        if depth > 2:
            raise self.fail(f"{name}: connections may nest at most 2 levels below the record", line)
        first = None
        for arg in sel.arguments or ():
            if arg.name.value in ("last", "after", "before"):
                raise self.fail(f"{name}: {arg.name.value} is set by shopsync; give only first: N", line)
            if arg.name.value == "first":
                if not isinstance(arg.value, IntValueNode):
                    raise self.fail(f"{name}: first must be an integer literal (the page size)", line)
                first = int(arg.value.value)
        if first is None:
            raise self.fail(f"{name}: a nested connection needs first: N (its page size)", line)
        if not 1 <= first <= MAX_PAGE_SIZE:
            raise self.fail(f"{name}: first: {first} must be between 1 and {MAX_PAGE_SIZE}", line)
        node_type = self.connection_node_type(conn)
        node_sel = self.connection_node_selection(sel, name, line)
        if node_sel is None:
            raise self.fail(f"{name}: select the nodes with edges {{ node {{ … }} }} or nodes {{ … }}", line)
        if "id" not in self.top_level_fields(node_sel):
            raise self.fail(f"{name}: the nested nodes must select id (bulk results join children by id)", line)
        if "Node" not in {i.name for i in getattr(node_type, "interfaces", ())} and not is_abstract_type(node_type):
            raise self.fail(f"{name}: {node_type.name} does not implement Node, so it cannot be drained", line)
        self.note_access(node_type.name)
        children = self.find_connections(node_type, node_sel, path=path + (name,), depth=depth + 1, in_object=False)
        return NestedConnection(
            field=name,
            path=path + (name,),
            parent_type=parent.name,
            node_type=node_type.name,
            node_types=self.concrete_names(node_type),
            page_size=first,
            depth=depth,
            children=children,
            line=line or 0,
        )

    def connection_node_selection(self, sel: FieldNode, name: str, line) -> SelectionSetNode | None:
        edges_node = nodes = None
        for sub in sel.selection_set.selections if sel.selection_set else ():
            if not isinstance(sub, FieldNode):
                raise self.fail(f"{name}: use plain fields (edges, nodes) inside a connection", line)
            if sub.name.value == "edges":
                for inner in sub.selection_set.selections if sub.selection_set else ():
                    if isinstance(inner, FieldNode) and inner.name.value == "node":
                        edges_node = inner.selection_set
                    elif not (isinstance(inner, FieldNode) and inner.name.value == "cursor"):
                        raise self.fail(f"{name}: only node and cursor may be selected on edges", line)
            elif sub.name.value == "nodes":
                nodes = sub.selection_set
            elif sub.name.value != "pageInfo":
                raise self.fail(f"{name}: {sub.name.value} cannot be kept in a record (select edges or nodes)", line)
        if edges_node is not None and nodes is not None:
            raise self.fail(f"{name}: select either edges {{ node }} or nodes, not both", line)
        return edges_node if edges_node is not None else nodes

    def check_nesting(self, nested, is_parent_child: bool, node_type: str, parent_type: str | None, line) -> None:
        flat: list[NestedConnection] = []
        stack = list(reversed(nested))
        while stack:  # depth first, in file order (so messages name the later duplicate)
            nc = stack.pop()
            flat.append(nc)
            stack.extend(reversed(nc.children))
        connections = 1 + (1 if is_parent_child else 0) + len(flat)
        if connections > BULK_MAX_CONNECTIONS:
            raise self.fail(
                f"the bulk query would hold {connections} connections; Shopify allows at most {BULK_MAX_CONNECTIONS}",
                line,
            )
        deepest = max((nc.depth for nc in flat), default=0) + (1 if is_parent_child else 0)
        if deepest > BULK_MAX_NESTING:
            raise self.fail(
                f"the bulk query would nest connections {deepest} levels deep; Shopify allows at most {BULK_MAX_NESTING}",
                line,
            )
        # Bulk child lines are matched to their nested connection by GID type, so the types must
        # be unambiguous.
        owner: dict[str, NestedConnection] = {}
        reserved = {node_type} if is_parent_child else set()
        if parent_type:
            reserved.add(parent_type)
        for nc in flat:
            for t in nc.node_types:
                if t in reserved:
                    raise self.fail(f"{nc.field}: its node type {t} is also the record or parent type", nc.line)
                if t in owner:
                    raise self.fail(
                        f"{nc.field} and {owner[t].field} both hold {t} nodes; bulk results could not be "
                        "told apart (select only one of them)",
                        nc.line,
                    )
                owner[t] = nc


def _validate_documents(resource: Resource) -> None:
    """Build every document the engine can send for ``resource``; each builder validates."""
    from shopsync.queries import builder  # the builder imports this module

    builder.page_query(resource)
    if resource.parent_field:
        builder.parent_ids_query(resource)
    for nc in resource.all_nested():
        builder.drain_query(resource, nc)
    builder.bulk_query(resource, None)
    if resource.incremental:
        builder.bulk_query(resource, "updated_at:>='2000-01-01T00:00:00Z'")
    builder.count_query(resource)
    # A fragment so heavy that one record (or one drained node) per page exceeds Shopify's cap
    # could never be read page by page.
    try:
        builder.plan_page_size(resource, child_counts=None)
        for nc in resource.all_nested():
            builder.drain_page_size(resource, nc)
    except QueryTooCostlyError as exc:
        raise QueryDocumentError(f"{exc} (Shopify's limit for one query)") from exc


__all__ = [
    "HEADER_KEYS",
    "NestedConnection",
    "READ_ALL_ORDERS",
    "Resource",
    "load_resource_text",
    "load_resources",
    "minimal_scopes",
    "packaged_dir",
]
