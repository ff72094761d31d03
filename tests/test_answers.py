"""shopsync.shopify.answers: classifying Shopify's HTTP statuses and GraphQL answers (pure, no network)."""

from __future__ import annotations

from shopsync.errors import (
    MalformedAnswerError,
    QueryError,
    QueryTooCostlyError,
    ResourceUnavailableError,
    ShopUnavailableError,
    TransientError,
)
from shopsync.shopify.answers import classify_answer, classify_http_status
from tests.support import cost_extension as cost


def test_classify_http_status_table():
    cases = {
        401: ("unauthorized", "cancel", ShopUnavailableError),
        402: ("payment_required", "cancel", ShopUnavailableError),
        403: ("forbidden", "cancel", ResourceUnavailableError),
        404: ("not_found", "cancel", ShopUnavailableError),
        423: ("locked", "cancel", ShopUnavailableError),
        429: ("http_429", "cancel", TransientError),
        500: ("http_5xx", "abandon", TransientError),
        502: ("http_5xx", "cancel", TransientError),
        503: ("http_5xx", "cancel", TransientError),
        504: ("http_5xx", "abandon", TransientError),
        400: ("http_4xx", "cancel", QueryError),
        430: ("http_4xx", "abandon", TransientError),
    }
    for status, (outcome, budget, kind) in cases.items():
        v = classify_http_status(status, b"", {}, shop="acme")
        assert (v.outcome, v.budget, type(v.error)) == (outcome, budget, kind), status
    v = classify_http_status(503, b"", {"Retry-After": "2"}, shop="acme")
    assert isinstance(v.error, TransientError) and v.error.retry_after == 2.0


def test_classify_answer_reads_cost_even_without_data():
    verdict, info = classify_answer(
        [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
        None,
        cost(requested=752, actual=None, available=666.0),
        shop="acme",
    )
    assert verdict.outcome == "throttled" and verdict.budget == "throttled"
    assert info.requested == 752 and info.actual is None
    assert info.throttle_status["currentlyAvailable"] == 666.0
    # MAX_COST_EXCEEDED with only the message to go on
    verdict, _ = classify_answer(
        [
            {
                "message": "Query cost is 1066, which exceeds the single query max cost limit (1000).",
                "extensions": {"code": "MAX_COST_EXCEEDED"},
            }
        ],
        None,
        None,
        shop="acme",
    )
    assert isinstance(verdict.error, QueryTooCostlyError)
    assert (verdict.error.cost, verdict.error.max_cost) == (1066, 1000)


def test_an_answer_without_data_or_errors_is_malformed_and_retried():
    for data, what in ((None, "no data and no errors"), ([1], "data is a list, not an object"), ("x", "data is a string ('x'), not an object")):
        verdict, _ = classify_answer(None, data, cost(), shop="acme", operation="resource orders")
        # It says what it cost: it ran, and the budget settles it like any answer.
        assert (verdict.outcome, verdict.budget) == ("bad_body", "settle")
        assert isinstance(verdict.error, MalformedAnswerError) and verdict.error.reason == "bad_body"
        assert str(verdict.error) == f"shop acme: resource orders: malformed answer: {what}"
        # Without cost figures it may or may not have been charged: assume the worst.
        verdict, _ = classify_answer(None, data, None, shop="acme", operation="resource orders")
        assert (verdict.outcome, verdict.budget) == ("bad_body", "abandon")
    # Any object is data here: what it must hold depends on the document (shopsync.shopify.shape).
    verdict, _ = classify_answer(None, {}, cost(), shop="acme")
    assert verdict.outcome == "ok" and verdict.error is None
