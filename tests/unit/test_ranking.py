"""Per-route ranking by cost per unit of accuracy (REFERENCE.md's ranking table)."""

from __future__ import annotations

import pytest

from autoray.errors import InvalidRouteError
from autoray.ranking import Candidate, rank_candidates, rank_routes
from autoray.results import ModelKey
from autoray.summaries import RouteSummary
from autoray.taxonomy import ROUTES

BUG = "debugging/bug_fixing"


def _summary(
    model: str,
    accuracy: float,
    cost: float | None,
    *,
    cases: int = 10,
    variant: str | None = None,
    route: str = BUG,
    p50: float | None = 50.0,
) -> RouteSummary:
    return RouteSummary("r", model, variant, route, accuracy, cost, p50, p50, cases, 0, 0)


def _order(candidates: list[Candidate]) -> list[str]:
    return [c.key.label() for c in candidates]


def test_reference_value_cheap_weak() -> None:
    rows = [
        _summary("weak", 0.5, 0.001),
        _summary("cheap", 0.7, 0.007),
        _summary("value", 0.9, 0.008),
    ]
    ranked = rank_candidates(rows, min_accuracy=0.7)
    assert _order(ranked) == ["value", "cheap", "weak"]
    assert [c.meets_threshold for c in ranked] == [True, True, False]
    assert ranked[0].cost_per_accuracy == pytest.approx(0.00889, abs=1e-5)
    assert ranked[1].cost_per_accuracy == pytest.approx(0.01)


def test_equal_cost_prefers_higher_accuracy() -> None:
    ranked = rank_candidates([_summary("a", 0.8, 1.0), _summary("b", 0.9, 1.0)], min_accuracy=0.7)
    assert _order(ranked) == ["b", "a"]


def test_equal_ratio_prefers_higher_accuracy_despite_float_noise() -> None:
    # 0.0049 / 0.7 == 0.007 but 0.00574 / 0.82 == 0.007000000000000001: a real tie.
    assert 0.0049 / 0.7 < 0.00574 / 0.82
    rows = [_summary("low", 0.7, 0.0049), _summary("high", 0.82, 0.00574)]
    assert _order(rank_candidates(rows, min_accuracy=0.7)) == ["high", "low"]


def test_full_tie_is_broken_by_model_then_variant() -> None:
    rows = [
        _summary("b", 0.8, 1.0),
        _summary("a", 0.8, 1.0, variant="z"),
        _summary("a", 0.8, 1.0),
    ]
    assert _order(rank_candidates(rows, min_accuracy=0.7)) == ["a", "a[z]", "b"]
    assert _order(rank_candidates(list(reversed(rows)), min_accuracy=0.7)) == ["a", "a[z]", "b"]


def test_below_the_bar_by_accuracy_then_lower_cost() -> None:
    rows = [
        _summary("low-cheap", 0.3, 0.001),
        _summary("mid-pricey", 0.6, 0.05),
        _summary("mid-cheap", 0.6, 0.01),
        _summary("good", 0.7, 0.5),
    ]
    ranked = rank_candidates(rows, min_accuracy=0.7)
    assert _order(ranked) == ["good", "mid-cheap", "mid-pricey", "low-cheap"]


def test_threshold_is_inclusive() -> None:
    (c,) = rank_candidates([_summary("a", 0.7, 1.0)], min_accuracy=0.7)
    assert c.meets_threshold


def test_missing_cost_or_no_cases_is_not_a_candidate() -> None:
    rows = [
        _summary("free", 1.0, None),
        _summary("empty", 1.0, 0.001, cases=0),
        _summary("real", 0.8, 0.01),
    ]
    assert _order(rank_candidates(rows, min_accuracy=0.7)) == ["real"]


def test_zero_cost_is_a_real_cost() -> None:
    rows = [_summary("zero", 0.8, 0.0), _summary("paid", 0.9, 0.01)]
    assert _order(rank_candidates(rows, min_accuracy=0.7)) == ["zero", "paid"]


def test_accuracy_zero_never_divides_by_zero() -> None:
    rows = [_summary("zero", 0.0, 0.001), _summary("one", 1.0, 0.5)]
    ranked = rank_candidates(rows, min_accuracy=0.7)
    assert _order(ranked) == ["one", "zero"]
    assert ranked[1].cost_per_accuracy is None


def test_accuracy_zero_with_bar_zero_ranks_last_among_passing() -> None:
    rows = [_summary("zero", 0.0, 0.0), _summary("half", 0.5, 10.0)]
    ranked = rank_candidates(rows, min_accuracy=0.0)
    assert _order(ranked) == ["half", "zero"] and all(c.meets_threshold for c in ranked)


def test_no_candidates() -> None:
    assert rank_candidates([], min_accuracy=0.7) == []
    assert rank_candidates([_summary("a", 1.0, None)], min_accuracy=0.7) == []


def test_candidate_carries_latency_and_context_length() -> None:
    lengths = {ModelKey("a", None): 32000}
    (c,) = rank_candidates(
        [_summary("a", 0.9, 0.1, p50=12.5)], min_accuracy=0.7, context_lengths=lengths
    )
    assert c.p50_latency_ms == 12.5 and c.context_length == 32000 and c.cases == 10
    (d,) = rank_candidates([_summary("b", 0.9, 0.1)], min_accuracy=0.7, context_lengths=lengths)
    assert d.context_length is None


def test_rank_candidates_rejects_mixed_routes_and_duplicates() -> None:
    other = "debugging/test_repair"
    with pytest.raises(ValueError, match="ranks one route"):
        rank_candidates([_summary("a", 1, 1), _summary("b", 1, 1, route=other)], min_accuracy=0.7)
    with pytest.raises(ValueError, match="'a' has more than one summary"):
        rank_candidates([_summary("a", 1, 1), _summary("a", 0.5, 1)], min_accuracy=0.7)


@pytest.mark.parametrize("bar", [-0.1, 1.1, float("nan")])
def test_min_accuracy_must_be_a_probability(bar: float) -> None:
    with pytest.raises(ValueError, match="min_accuracy must be within"):
        rank_candidates([], min_accuracy=bar)


def test_rank_routes_covers_all_routes_in_order() -> None:
    rows = [
        _summary("a", 0.9, 0.01, route="agentic_execution/tool_usage"),
        _summary("b", 0.8, 0.001, route="agentic_execution/tool_usage"),
        _summary("a", 0.9, 0.01, route=BUG),
    ]
    ranked = rank_routes(rows, min_accuracy=0.7)
    assert list(ranked) == list(ROUTES)
    assert _order(ranked["agentic_execution/tool_usage"]) == ["b", "a"]
    assert _order(ranked[BUG]) == ["a"]
    assert ranked["implementation/feature_development"] == []


def test_rank_routes_rejects_unknown_route() -> None:
    with pytest.raises(InvalidRouteError):
        rank_routes([_summary("a", 1, 1, route="debugging/feature_development")], min_accuracy=0.7)


def test_candidate_dict_round_trip() -> None:
    c = Candidate("a", "v", 0.9, 0.009, 10, True, 12.0, 4096)
    data = c.as_dict()
    assert data["cost_per_accuracy"] == pytest.approx(0.01)
    assert Candidate.from_dict(data) == c
    with pytest.raises(ValueError, match="unknown candidate fields \\['extra'\\]"):
        Candidate.from_dict({**data, "extra": 1})
    with pytest.raises(ValueError, match="incomplete"):
        Candidate.from_dict({"model_id": "a"})
