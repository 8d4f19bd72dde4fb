"""Summaries per (run, model, variant, route), with REFERENCE.md's examples."""

from __future__ import annotations

import random

import pytest

from autoray.errors import InvalidRouteError
from autoray.results import CaseOutcome, CaseResult
from autoray.summaries import (
    RouteSummary,
    accuracy_of,
    average_cost,
    percentile_p50,
    percentile_p95,
    summarize,
)
from autoray.taxonomy import ROUTES

BUG = "debugging/bug_fixing"
FEATURE = "implementation/feature_development"


def _row(
    case_id: str = "c1",
    *,
    score: float = 1.0,
    rep: int = 0,
    route: str = BUG,
    model: str = "m",
    variant: str | None = None,
    run: str = "r",
    latency: float = 100.0,
    cost: float | None = 0.001,
    error: str | None = None,
    timed_out: bool = False,
) -> CaseResult:
    outcome = CaseOutcome(
        score=score, latency_ms=latency, cost_usd=cost, error=error, timed_out=timed_out
    )
    return CaseResult(run, model, variant, case_id, rep, route, outcome)


def test_accuracy_is_the_mean_score() -> None:
    assert accuracy_of([1, 0.5, 0]) == 0.5
    assert accuracy_of([]) == 0.0
    assert accuracy_of([1, 1, 0]) == 0.6667


def test_two_cases_two_reps() -> None:
    rows = [_row("c1", rep=0), _row("c1", rep=1, score=0), _row("c2", rep=0), _row("c2", rep=1)]
    (summary,) = summarize(rows)
    assert summary.cases == 4 and summary.accuracy == 0.75


def test_average_cost_skips_nulls() -> None:
    assert average_cost([0.002, None, 0.004]) == pytest.approx(0.003)
    assert average_cost([None, None]) is None
    assert average_cost([]) is None
    assert average_cost([0.0]) == 0.0


def test_summary_cost_from_rows() -> None:
    rows = [_row("a", cost=0.002), _row("b", cost=None), _row("c", cost=0.004)]
    assert summarize(rows)[0].avg_cost_usd == pytest.approx(0.003)
    (no_cost,) = summarize([_row("a", cost=None), _row("b", cost=None)])
    assert no_cost.avg_cost_usd is None


def test_percentiles() -> None:
    assert percentile_p50([100, 300, 200]) == 200
    twenty = [100.0 * i for i in range(1, 21)]
    assert percentile_p95(twenty) == 1900
    assert percentile_p50(twenty) == 1100
    assert percentile_p50([]) is None and percentile_p95([]) is None
    assert percentile_p50([7]) == 7 and percentile_p95([7]) == 7
    assert percentile_p50([1, 2]) == 2
    assert percentile_p95([float(i) for i in range(1, 101)]) == 95


def test_summary_latencies() -> None:
    rows = [_row(f"c{i}", latency=lat) for i, lat in enumerate([100, 300, 200])]
    (summary,) = summarize(rows)
    assert summary.p50_latency_ms == 200 and summary.p95_latency_ms == 300


def test_errors_and_timeouts_are_counted() -> None:
    rows = [
        _row("a", score=0, error="boom"),
        _row("b", score=0, error="slow", timed_out=True),
        _row("c", score=0, timed_out=True),
        _row("d"),
    ]
    (summary,) = summarize(rows)
    assert (summary.errors, summary.timeouts, summary.cases) == (2, 2, 4)
    assert summary.accuracy == 0.25


def test_grouped_per_run_model_variant_route_and_sorted() -> None:
    rows = [
        _row("x", model="b", route=FEATURE),
        _row("x", model="a", variant="v", route=BUG),
        _row("x", model="a", route=BUG),
        _row("y", model="a", route=FEATURE),
        _row("x", model="a", route=BUG, run="r0"),
    ]
    keys = [(s.run_id, s.model_id, s.variant, s.route) for s in summarize(rows)]
    assert keys == [
        ("r", "a", None, FEATURE),
        ("r", "a", None, BUG),
        ("r", "a", "v", BUG),
        ("r", "b", None, FEATURE),
        ("r0", "a", None, BUG),
    ]


def test_routes_sorted_in_canonical_order() -> None:
    rows = [_row("c", route=route) for route in reversed(ROUTES)]
    assert [s.route for s in summarize(rows)] == list(ROUTES)


def test_row_order_does_not_change_the_summary() -> None:
    rows = [_row(f"c{i}", rep=i % 2, cost=0.1 * (i + 1) / 7, score=i % 2) for i in range(30)]
    shuffled = rows[:]
    random.Random(4).shuffle(shuffled)
    assert summarize(rows) == summarize(shuffled)


def test_no_rows_no_summaries() -> None:
    assert summarize([]) == []


def test_invalid_route_in_a_row_is_an_error() -> None:
    with pytest.raises(InvalidRouteError):
        summarize([_row(route="debugging/nope")])


def test_summary_fields() -> None:
    (summary,) = summarize([_row(model="m", variant="v", run="r")])
    assert summary == RouteSummary(
        run_id="r",
        model_id="m",
        variant="v",
        route=BUG,
        accuracy=1.0,
        avg_cost_usd=0.001,
        p50_latency_ms=100.0,
        p95_latency_ms=100.0,
        cases=1,
        errors=0,
        timeouts=0,
    )
