"""The simulator's Shopify search-syntax parser (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shopsync.simulator.search import CONNECTION_FIELDS, SearchSyntaxError, parse_search

T0 = int(datetime(2026, 9, 1, tzinfo=UTC).timestamp())


def rng(text: str, field: str = "updated_at"):
    return parse_search(text).ranges[field]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("updated_at:>='2026-09-01T00:00:00Z'", (T0, None)),
        ("updated_at:<='2026-09-01T00:00:00Z'", (None, T0)),
        # Dates: '>' and '<' are inclusive, as Shopify treats them (module docstring).
        ("updated_at:>'2026-09-01T00:00:00Z'", (T0, None)),
        ("updated_at:<'2026-09-01T00:00:00Z'", (None, T0)),
        ("updated_at:'2026-09-01T00:00:00Z'", (T0, T0)),
        ('updated_at:>="2026-09-01T00:00:00Z"', (T0, None)),  # double quotes
        ("updated_at:>='2026-09-01T02:00:00+02:00'", (T0, None)),  # an offset
        ("updated_at:>='2026-09-01T00:00:00.750Z'", (T0, None)),  # fractions dropped
        ("updated_at:'2026-09-01'", (T0, T0 + 86_399)),  # a date: the whole UTC day
        ("updated_at:>='2026-09-01'", (T0, None)),
    ],
)
def test_date_comparators(text: str, expected: tuple) -> None:
    assert rng(text) == expected


@pytest.mark.parametrize("field", ["created_at", "updated_at"])
def test_each_date_field(field: str) -> None:
    q = parse_search(f"{field}:>='2026-09-01T00:00:00Z' {field}:<'2026-09-02T00:00:00Z'")
    assert q.ranges[field] == (T0, T0 + 86_400)


def test_processed_at_is_created_at() -> None:
    assert parse_search("processed_at:>='2026-09-01T00:00:00Z'").ranges == {"created_at": (T0, None)}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("id:>100", (101, None)),  # ids keep strict comparators
        ("id:>=100", (100, None)),
        ("id:<100", (None, 99)),
        ("id:<=100", (None, 100)),
        ("id:100", (100, 100)),
        ("id:'gid://shopify/Order/100'", (100, 100)),
        ("id:>gid://shopify/Order/100", (101, None)),
    ],
)
def test_id_comparators(text: str, expected: tuple) -> None:
    assert rng(text, "id") == expected


def test_and_explicit_and_implicit_intersect() -> None:
    explicit = parse_search("updated_at:>='2026-09-01T00:00:00Z' AND updated_at:<='2026-09-03T00:00:00Z' AND id:>5")
    implicit = parse_search("updated_at:>='2026-09-01T00:00:00Z'   updated_at:<='2026-09-03T00:00:00Z' id:>5")
    assert explicit.ranges == implicit.ranges == {"updated_at": (T0, T0 + 2 * 86_400), "id": (6, None)}
    narrowed = parse_search("updated_at:>='2026-09-01T00:00:00Z' updated_at:>='2026-09-02T00:00:00Z'")
    assert narrowed.ranges["updated_at"] == (T0 + 86_400, None)


def test_matches_applies_every_term() -> None:
    q = parse_search("updated_at:>='2026-09-01T00:00:00Z' AND id:<=10 AND action:destroy")
    assert q.matches({"updated_at": T0, "id": 10, "action": "destroy"})
    assert not q.matches({"updated_at": T0 - 1, "id": 10, "action": "destroy"})
    assert not q.matches({"updated_at": T0, "id": 11, "action": "destroy"})
    assert not q.matches({"updated_at": T0, "id": 10, "action": "create"})


def test_event_fields_are_case_insensitive_lists() -> None:
    q = parse_search("action:destroy subject_type:order,Product")
    assert q.equals == {"action": frozenset({"DESTROY"}), "subject_type": frozenset({"ORDER", "PRODUCT"})}
    assert q.matches({"action": "destroy", "subject_type": "PRODUCT"})
    assert not q.matches({"action": "destroy", "subject_type": "COLLECTION"})


def test_empty_query() -> None:
    assert parse_search("").empty and parse_search("   ").empty and parse_search(None).empty


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("updated_at:>=2026-09-01", "updated_at:>=2026-09-01"),  # unquoted date
        ("created_at:>2026-09-01T00:00:00Z", "created_at:>2026-09-01T00:00:00Z"),
        ("updated_at:>='yesterday'", "updated_at:>='yesterday'"),
        ("title:shirt", "title:shirt"),  # unknown field
        ("id:abc", "id:abc"),
        ("updated_at:>='2026-09-01' OR id:5", "OR"),
        ("-id:5", "-id:5"),
        ("(id:5)", "(id:5)"),
        ("shirt", "shirt"),  # free text
        ("id:5 AND", "AND"),
        ("action:>destroy", "action:>destroy"),
    ],
)
def test_rejections_name_the_term(text: str, term: str) -> None:
    with pytest.raises(SearchSyntaxError) as info:
        parse_search(text)
    assert term in str(info.value)
    assert info.value.term == term


def test_unquoted_date_error_suggests_quotes() -> None:
    with pytest.raises(SearchSyntaxError, match=r"must be quoted.*updated_at:>='2026-09-01'"):
        parse_search("updated_at:>=2026-09-01")


def test_connection_restricts_fields() -> None:
    with pytest.raises(SearchSyntaxError, match="for locations"):
        parse_search("updated_at:>='2026-09-01'", allowed=CONNECTION_FIELDS["locations"], connection="locations")
    assert parse_search("id:>1", allowed=CONNECTION_FIELDS["locations"]).ranges == {"id": (2, None)}


def test_contradictory_range_is_empty() -> None:
    lo, hi = rng("updated_at:>='2026-09-02' updated_at:<='2026-09-01'")
    assert lo is not None and hi is not None and lo > hi
