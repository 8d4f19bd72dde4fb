"""Ranking the models of a route by cost per unit of accuracy, among those above the bar.

A candidate needs a known cost and at least one case: treating a missing cost as 0 would
hand that model every route. Candidates at or above ``min_accuracy`` come first, cheapest
``avg_cost / accuracy`` first (ties to higher accuracy); the rest follow by accuracy, so a
route where nobody clears the bar still has an ordered fallback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from autoray.results import ModelKey
from autoray.summaries import RouteSummary
from autoray.taxonomy import ROUTES, validate_route

_RATIO_DIGITS = 12
_CANDIDATE_FIELDS = (
    "model_id",
    "variant",
    "accuracy",
    "avg_cost_usd",
    "cases",
    "meets_threshold",
    "p50_latency_ms",
    "context_length",
)
_DERIVED_FIELDS = ("cost_per_accuracy",)


@dataclass(frozen=True, slots=True)
class Candidate:
    model_id: str
    variant: str | None
    accuracy: float
    avg_cost_usd: float
    cases: int
    meets_threshold: bool
    p50_latency_ms: float | None = None
    context_length: int | None = None

    @property
    def key(self) -> ModelKey:
        return ModelKey(self.model_id, self.variant)

    @property
    def cost_per_accuracy(self) -> float | None:
        """``avg_cost / accuracy``; None at accuracy 0, where no amount of money buys a pass."""
        return self.avg_cost_usd / self.accuracy if self.accuracy > 0 else None

    def as_dict(self) -> dict[str, Any]:
        """Field by field: ``dataclasses.asdict`` deep-copies, and this runs on every decision."""
        fields = {name: getattr(self, name) for name in _CANDIDATE_FIELDS}
        return {**fields, "cost_per_accuracy": self.cost_per_accuracy}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Candidate:
        """Inverse of :meth:`as_dict`; the derived ``cost_per_accuracy`` is recomputed."""
        unknown = sorted(set(data) - set(_CANDIDATE_FIELDS) - set(_DERIVED_FIELDS))
        if unknown:
            raise ValueError(
                f"unknown candidate fields {unknown!r}; "
                f"valid fields: {', '.join(_CANDIDATE_FIELDS)}"
            )
        try:
            return cls(**{name: data[name] for name in _CANDIDATE_FIELDS if name in data})
        except TypeError as exc:
            raise ValueError(f"candidate {dict(data)!r} is incomplete ({exc})") from None


def rank_candidates(
    summaries: Iterable[RouteSummary],
    *,
    min_accuracy: float,
    context_lengths: Mapping[ModelKey, int | None] | None = None,
) -> list[Candidate]:
    """Rank the summaries of ONE route; ineligible models (no cost, no cases) are left out."""
    _check_min_accuracy(min_accuracy)
    rows = list(summaries)
    _check_single_route(rows)
    _check_unique_models(rows)
    lengths = context_lengths or {}
    candidates = [
        _candidate(row, min_accuracy, lengths.get(ModelKey(row.model_id, row.variant)))
        for row in rows
        if row.avg_cost_usd is not None and row.cases >= 1
    ]
    above = sorted((c for c in candidates if c.meets_threshold), key=_value_order)
    below = sorted((c for c in candidates if not c.meets_threshold), key=_accuracy_order)
    return above + below


def rank_routes(
    summaries: Iterable[RouteSummary],
    *,
    min_accuracy: float,
    context_lengths: Mapping[ModelKey, int | None] | None = None,
) -> dict[str, list[Candidate]]:
    """Rank every one of the 18 routes, in canonical order; a route with no data gets []."""
    by_route: dict[str, list[RouteSummary]] = {route: [] for route in ROUTES}
    for row in summaries:
        by_route[validate_route(row.route)].append(row)
    return {
        route: rank_candidates(rows, min_accuracy=min_accuracy, context_lengths=context_lengths)
        for route, rows in by_route.items()
    }


def _candidate(row: RouteSummary, min_accuracy: float, context_length: int | None) -> Candidate:
    assert row.avg_cost_usd is not None
    return Candidate(
        model_id=row.model_id,
        variant=row.variant,
        accuracy=row.accuracy,
        avg_cost_usd=row.avg_cost_usd,
        cases=row.cases,
        meets_threshold=row.accuracy >= min_accuracy,
        p50_latency_ms=row.p50_latency_ms,
        context_length=context_length,
    )


def _identity_order(c: Candidate) -> tuple[str, bool, str]:
    return (c.model_id, c.variant is not None, c.variant or "")


def _value_order(c: Candidate) -> tuple[Any, ...]:
    """Ratios are rounded so that float noise (0.8/0.8 vs 0.9/0.9) does not break a real tie."""
    ratio = c.cost_per_accuracy
    rounded = float(f"{ratio:.{_RATIO_DIGITS}g}") if ratio is not None else float("inf")
    return (rounded, -c.accuracy, *_identity_order(c))


def _accuracy_order(c: Candidate) -> tuple[Any, ...]:
    return (-c.accuracy, c.avg_cost_usd, *_identity_order(c))


def _check_min_accuracy(min_accuracy: float) -> None:
    if not 0.0 <= min_accuracy <= 1.0:
        raise ValueError(f"min_accuracy must be within [0, 1], got {min_accuracy!r}")


def _check_single_route(rows: list[RouteSummary]) -> None:
    routes = sorted({row.route for row in rows})
    if len(routes) > 1:
        raise ValueError(
            f"rank_candidates ranks one route but got {routes!r}; use rank_routes for several"
        )


def _check_unique_models(rows: list[RouteSummary]) -> None:
    """Two summaries of one model on a route (e.g. from two runs) would list it twice."""
    seen: set[ModelKey] = set()
    for row in rows:
        key = ModelKey(row.model_id, row.variant)
        if key in seen:
            raise ValueError(
                f"model {key.label()!r} has more than one summary on route {row.route!r}; "
                "rank the summaries of one run at a time"
            )
        seen.add(key)
