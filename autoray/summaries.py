"""Per (run, model, variant, route) summaries of case rows: what ranking works from.

Rows are summed in a fixed order (case id, rep) so that the same rows give bit-identical
averages however the database happened to return them; a faulted run and a clean run must
produce equal tables.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from autoray.results import CaseResult
from autoray.taxonomy import route_index, validate_route

ACCURACY_DIGITS = 4

_GroupKey = tuple[str, str, str | None, str]


@dataclass(frozen=True, slots=True)
class RouteSummary:
    run_id: str
    model_id: str
    variant: str | None
    route: str
    accuracy: float
    avg_cost_usd: float | None
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    cases: int
    errors: int
    timeouts: int


def summarize(results: Iterable[CaseResult]) -> list[RouteSummary]:
    """One summary per (run, model, variant, route), sorted by run, model, then route order."""
    groups: dict[_GroupKey, list[CaseResult]] = defaultdict(list)
    for row in results:
        route = validate_route(row.route)
        groups[(row.run_id, row.model_id, row.variant, route)].append(row)
    return [_summarize_group(key, groups[key]) for key in sorted(groups, key=_group_order)]


def accuracy_of(scores: Sequence[float]) -> float:
    """Mean score, rounded so that equal outcomes compare equal; 0 for no scores."""
    if not scores:
        return 0.0
    return round(sum(scores) / len(scores), ACCURACY_DIGITS)


def average_cost(costs: Iterable[float | None]) -> float | None:
    """Mean of the known costs; None when no row has one (a missing cost is not a free one)."""
    known = [cost for cost in costs if cost is not None]
    return sum(known) / len(known) if known else None


def percentile_p50(values: Iterable[float]) -> float | None:
    """The upper median, ``sorted[n // 2]``: always an observed value."""
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else None


def percentile_p95(values: Iterable[float]) -> float | None:
    """Nearest-rank p95, ``sorted[ceil(0.95 n) - 1]``, in integer arithmetic to avoid rounding."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[(95 * len(ordered) + 99) // 100 - 1]


def _summarize_group(key: _GroupKey, rows: list[CaseResult]) -> RouteSummary:
    rows = sorted(rows, key=lambda row: (row.case_id, row.rep))
    outcomes = [row.outcome for row in rows]
    latencies = [outcome.latency_ms for outcome in outcomes]
    return RouteSummary(
        run_id=key[0],
        model_id=key[1],
        variant=key[2],
        route=key[3],
        accuracy=accuracy_of([outcome.score for outcome in outcomes]),
        avg_cost_usd=average_cost(outcome.cost_usd for outcome in outcomes),
        p50_latency_ms=percentile_p50(latencies),
        p95_latency_ms=percentile_p95(latencies),
        cases=len(rows),
        errors=sum(outcome.error is not None for outcome in outcomes),
        timeouts=sum(outcome.timed_out for outcome in outcomes),
    )


def _group_order(key: _GroupKey) -> tuple[str, str, bool, str, int]:
    run_id, model_id, variant, route = key
    return (run_id, model_id, variant is not None, variant or "", route_index(route))
