"""Shopify search syntax (the ``query:`` argument), as far as the simulator supports it — pure.

Grammar (shopify.dev/docs/api/usage/search-syntax): terms separated by whitespace (implicit
``AND``) or by an explicit ``AND``; each term is ``name<comparator>value`` with comparator one of
``:``, ``:>``, ``:>=``, ``:<``, ``:<=``; a value is a bare word or a single- or double-quoted string.

Supported fields (each connection allows a subset, see :data:`CONNECTION_FIELDS`):

* ``updated_at``, ``created_at`` (and ``processed_at`` for orders, which the simulator keeps equal
  to ``created_at``): a **quoted** ISO-8601 timestamp (``'2026-09-01T00:00:00Z'``, an offset, or a
  date ``'2026-09-01'`` meaning midnight UTC). An unquoted date is rejected, as the facts file
  says (shopify-api-facts §4: "``created_at:>=2026-09-01`` without quotes is invalid").
* ``id``: a numeric id or a GID, quoted or not.
* ``action``, ``subject_type`` (events): equality only, case-insensitive, ``a,b`` lists allowed.

Inclusive bounds on dates — a deliberate choice. Shopify's docs call ``>`` "greater than", but an
integrator reported (PostHog PR #39687, 2025-10, Shopify source) that on date values ``>`` and
``<`` behave exactly like ``>=`` and ``<=``: timestamps have second precision and Shopify compares
at that granularity inclusively. The facts file says nothing either way, so the simulator follows
the only observation: **on dates, ``>`` is treated as ``>=`` and ``<`` as ``<=``**. A client that
relies on strict bounds to avoid duplicates only sees harmless duplicates (it must upsert anyway);
a client that relies on inclusive bounds keeps working. On ``id`` the comparators are ordinary
(strict ``>``/``<`` stay strict). Equality ``:`` on a timestamp matches that second; on a date
(no time part) it matches the whole UTC day.

Not supported (rejected with :class:`SearchSyntaxError`, never silently ignored): ``OR``, ``NOT``
/ ``-`` modifiers, parentheses, free-text terms, unknown fields, unquoted dates.

Output: a :class:`SearchQuery` — the terms plus, per range field, one inclusive integer interval
(seconds since the epoch for dates, numeric ids for ``id``) that the store turns into key ranges
for bisecting its indices.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = [
    "CONNECTION_FIELDS",
    "RANGE_FIELDS",
    "SearchQuery",
    "SearchSyntaxError",
    "Term",
    "parse_search",
]

#: Fields whose values are integers compared by range (dates as epoch seconds, ids as numbers).
RANGE_FIELDS = frozenset({"updated_at", "created_at", "processed_at", "id"})
DATE_FIELDS = frozenset({"updated_at", "created_at", "processed_at"})
#: Fields compared by (case-insensitive) equality against a string attribute of the record.
EQUALITY_FIELDS = frozenset({"action", "subject_type"})

#: Search fields each connection accepts in the simulator.
CONNECTION_FIELDS: dict[str, frozenset[str]] = {
    "orders": frozenset({"updated_at", "created_at", "processed_at", "id"}),
    "products": frozenset({"updated_at", "created_at", "id"}),
    "customers": frozenset({"updated_at", "created_at", "id"}),
    "inventoryItems": frozenset({"updated_at", "created_at", "id"}),
    "collections": frozenset({"updated_at", "id"}),
    "locations": frozenset({"id"}),
    "events": frozenset({"created_at", "id", "action", "subject_type"}),
    "inventoryLevels": frozenset({"updated_at", "created_at"}),
    "giftCards": frozenset({"created_at", "id"}),
    "balanceTransactions": frozenset({"id"}),
    "payouts": frozenset({"id"}),
    "disputes": frozenset({"id"}),
    "draftOrders": frozenset({"updated_at", "created_at", "id"}),
    "abandonedCheckouts": frozenset({"updated_at", "created_at", "id"}),
    "fulfillmentOrders": frozenset({"updated_at", "id"}),
    "markets": frozenset({"id"}),
    "discountNodes": frozenset({"updated_at", "created_at", "id"}),
    "productVariants": frozenset({"updated_at", "created_at", "id"}),
}

COMPARATORS = (":>=", ":<=", ":>", ":<", ":")
#: Strict comparators that behave inclusively on dates (see the module docstring). Shopify's own
#: docs call them strict; the one observation found says both are inclusive. Change it here.
INCLUSIVE_DATE_COMPARATORS = frozenset({">", "<"})


class SearchSyntaxError(ValueError):
    """The search string uses something Shopify rejects or the simulator does not model.

    ``str()`` names the offending term; the executor turns it into a GraphQL error.
    """

    def __init__(self, message: str, *, term: str | None = None) -> None:
        super().__init__(message)
        self.term = term


@dataclass(frozen=True, slots=True)
class Term:
    """One ``name<op>value`` term. ``op`` is one of ``=``, ``>``, ``>=``, ``<``, ``<=``.

    ``value`` is an ``int`` for range fields and a ``frozenset`` of upper-cased strings for
    equality fields. ``text`` is the term as written (for error messages).
    """

    field: str
    op: str
    value: int | frozenset[str]
    text: str
    day: bool = False  # a date without a time part (equality then spans the whole day)


@dataclass(frozen=True)
class SearchQuery:
    """A parsed search: the AND of its terms.

    ``ranges`` maps each range field used to one inclusive ``(lo, hi)`` interval (``None`` for an
    open end); an empty interval (lo > hi) means nothing can match. ``equals`` maps equality fields
    to the set of accepted (upper-cased) values.
    """

    text: str
    terms: tuple[Term, ...]
    ranges: Mapping[str, tuple[int | None, int | None]] = field(default_factory=dict)
    equals: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.terms

    def matches(self, values: Mapping[str, object]) -> bool:
        """Whether a record with these field values (ints for range fields, strings for the
        equality fields) satisfies every term."""
        for name, (lo, hi) in self.ranges.items():
            v = values.get(name)
            if not isinstance(v, int):
                return False
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                return False
        for name, accepted in self.equals.items():
            v = values.get(name)
            if v is None or str(v).upper() not in accepted:
                return False
        return True


# name, comparator, then a quoted value or a bare word (bare words stop at whitespace).
_TERM_RE = re.compile(
    r"""\s*(?P<name>[A-Za-z_][A-Za-z0-9_.]*)(?P<cmp>:>=|:<=|:>|:<|:)
        (?:'(?P<sq>[^']*)'|"(?P<dq>[^"]*)"|(?P<bare>[^\s'"()]+))""",
    re.VERBOSE,
)
_DATE_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_GID_RE = re.compile(r"^gid://shopify/[A-Za-z]+/(\d+)(?:\?.*)?$")


def _parse_date(raw: str, text: str) -> tuple[int, bool]:
    value = raw.strip()
    day = len(value) == 10
    try:
        if day:
            dt = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
        else:
            v = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
            dt = datetime.fromisoformat(v)
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
    except ValueError as exc:
        raise SearchSyntaxError(f"invalid date {raw!r} in search term {text!r}", term=text) from exc
    # Second precision, like Shopify's timestamps: a fractional part is dropped.
    return int(dt.timestamp() // 1), day


def _parse_id(raw: str, text: str) -> int:
    m = _GID_RE.match(raw)
    digits = m.group(1) if m else raw
    if not digits.isdigit():
        raise SearchSyntaxError(f"invalid id {raw!r} in search term {text!r}", term=text)
    return int(digits)


def parse_search(text: str | None, *, allowed: frozenset[str] | None = None, connection: str = "") -> SearchQuery:
    """Parse ``text``; ``allowed`` restricts the field names (default: every supported field).

    Raises :class:`SearchSyntaxError` naming the offending term for anything unsupported.
    ``connection`` only improves the error messages ("… for orders").
    """
    text = text or ""
    where = f" for {connection}" if connection else ""
    fields_ok = allowed if allowed is not None else RANGE_FIELDS | EQUALITY_FIELDS
    terms: list[Term] = []
    pos = 0
    expect_term = True
    n = len(text)
    while pos < n:
        while pos < n and text[pos].isspace():
            pos += 1
        if pos >= n:
            break
        word_end = pos
        while word_end < n and not text[word_end].isspace():
            word_end += 1
        word = text[pos:word_end]
        if word == "AND":
            if expect_term:
                raise SearchSyntaxError(f"misplaced AND in search query {text!r}{where}", term=word)
            expect_term = True
            pos = word_end
            continue
        if word in ("OR", "NOT") or word.startswith(("-", "(")) or word.endswith(")"):
            raise SearchSyntaxError(
                f"search operator {word!r} is not modelled by the shopsync simulator (only AND of field terms)"
                f" in {text!r}{where}",
                term=word,
            )
        m = _TERM_RE.match(text, pos)
        if not m:
            raise SearchSyntaxError(f"cannot parse search term {word!r} in {text!r}{where}", term=word)
        term_text = m.group(0).strip()
        name = m.group("name").lower()
        cmp = m.group("cmp")
        quoted = m.group("sq") if m.group("sq") is not None else m.group("dq")
        raw = quoted if quoted is not None else m.group("bare")
        pos = m.end()
        if pos < n and not text[pos].isspace():
            raise SearchSyntaxError(f"cannot parse search term starting at {term_text!r} in {text!r}{where}", term=term_text)
        if name not in fields_ok:
            raise SearchSyntaxError(
                f"search field {name!r} (term {term_text!r}) is not supported{where} by the shopsync simulator;"
                f" supported: {', '.join(sorted(fields_ok))}",
                term=term_text,
            )
        op = {":": "=", ":>": ">", ":>=": ">=", ":<": "<", ":<=": "<="}[cmp]
        if name in DATE_FIELDS:
            if quoted is None:
                hint = f" (write {name}{cmp}'{raw}')" if _DATE_LIKE.match(raw) else ""
                raise SearchSyntaxError(
                    f"date values must be quoted: search term {term_text!r}{where}{hint}", term=term_text
                )
            value, day = _parse_date(raw, term_text)
            terms.append(Term(name, op, value, term_text, day))
        elif name == "id":
            terms.append(Term(name, op, _parse_id(raw, term_text), term_text))
        else:
            if op != "=":
                raise SearchSyntaxError(f"field {name!r} only supports ':' (term {term_text!r}){where}", term=term_text)
            values = frozenset(v.strip().upper() for v in raw.split(",") if v.strip())
            terms.append(Term(name, op, values, term_text))
        expect_term = False
    if terms and expect_term:
        raise SearchSyntaxError(f"search query {text!r} ends with AND{where}", term="AND")
    return _build(text, terms)


def _build(text: str, terms: list[Term]) -> SearchQuery:
    ranges: dict[str, tuple[int | None, int | None]] = {}
    equals: dict[str, frozenset[str]] = {}
    for t in terms:
        if t.field in EQUALITY_FIELDS:
            assert isinstance(t.value, frozenset)
            equals[t.field] = equals[t.field] & t.value if t.field in equals else t.value
            continue
        assert isinstance(t.value, int)
        v = t.value
        is_date = t.field in DATE_FIELDS
        lo: int | None = None
        hi: int | None = None
        if t.op == "=":
            lo, hi = (v, v + 86_399) if t.day else (v, v)
        elif t.op == ">=":
            lo = v
        elif t.op == ">":
            # Dates: Shopify treats '>' as '>=' (see the module docstring). Ids: strict.
            lo = v if is_date and ">" in INCLUSIVE_DATE_COMPARATORS else v + 1
        elif t.op == "<=":
            hi = v
        else:  # "<"
            hi = v if is_date and "<" in INCLUSIVE_DATE_COMPARATORS else v - 1
        field_name = "created_at" if t.field == "processed_at" else t.field
        old_lo, old_hi = ranges.get(field_name, (None, None))
        if old_lo is not None and (lo is None or old_lo > lo):
            lo = old_lo
        if old_hi is not None and (hi is None or old_hi < hi):
            hi = old_hi
        ranges[field_name] = (lo, hi)
    return SearchQuery(text=text, terms=tuple(terms), ranges=ranges, equals=equals)
