"""The routing table: every route's ranked candidates, under a deterministic version.

The version hashes what produced the table (run, model entries, dataset identity and the two
routing knobs), not when it was built, so publishing the same run twice is a no-op. A table
that misses a route is never published: the decision endpoint would have nothing to say
for requests on that route, and the previous table stays active instead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from autoray.ranking import Candidate, rank_routes
from autoray.results import ModelKey
from autoray.summaries import RouteSummary
from autoray.taxonomy import ROUTES, validate_route

VERSION_PREFIX = "rt-"
_VERSION_HEX_CHARS = 16
_TABLE_FIELDS = (
    "version",
    "generated_at",
    "min_accuracy",
    "switch_cost_factor",
    "best_accuracy_gap",
    "run_id",
    "dataset_identity",
    "routes",
)
_COMPARE_DIGITS = 12


@dataclass(frozen=True)
class RoutingTable:
    version: str
    generated_at: str
    min_accuracy: float
    switch_cost_factor: float
    routes: Mapping[str, tuple[Candidate, ...]]
    run_id: str | None
    dataset_identity: str | None
    best_accuracy_gap: float = 0.05

    def missing_routes(self) -> list[str]:
        """Routes, in canonical order, that are absent or have no candidate."""
        return [route for route in ROUTES if not self.routes.get(route)]

    @property
    def is_publishable(self) -> bool:
        return not self.missing_routes()

    def candidates(self, route: str) -> tuple[Candidate, ...]:
        return tuple(self.routes.get(validate_route(route), ()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "generated_at": self.generated_at,
            "min_accuracy": self.min_accuracy,
            "switch_cost_factor": self.switch_cost_factor,
            "best_accuracy_gap": self.best_accuracy_gap,
            "run_id": self.run_id,
            "dataset_identity": self.dataset_identity,
            "routes": {
                route: [candidate.as_dict() for candidate in candidates]
                for route, candidates in self.routes.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RoutingTable:
        """Inverse of :meth:`as_dict`; route names are validated, unknown keys rejected."""
        _check_table_keys(data)
        routes = {
            validate_route(route): tuple(Candidate.from_dict(item) for item in items)
            for route, items in data["routes"].items()
        }
        return cls(
            version=data["version"],
            generated_at=data["generated_at"],
            min_accuracy=data["min_accuracy"],
            switch_cost_factor=data["switch_cost_factor"],
            routes=routes,
            run_id=data.get("run_id"),
            dataset_identity=data.get("dataset_identity"),
            best_accuracy_gap=data.get("best_accuracy_gap", 0.05),
        )


def table_version(
    *,
    run_id: str | None,
    models: Iterable[ModelKey],
    dataset_identity: str | None,
    min_accuracy: float,
    switch_cost_factor: float,
) -> str:
    """``rt-`` + 16 hex of a sha256 over canonical JSON; model order does not matter."""
    payload = {
        "run_id": run_id,
        "models": [list(key) for key in sorted(set(map(_as_key, models)), key=_key_order)],
        "dataset_identity": dataset_identity,
        "min_accuracy": float(min_accuracy),
        "switch_cost_factor": float(switch_cost_factor),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return VERSION_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:_VERSION_HEX_CHARS]


def build_table(
    *,
    summaries: Iterable[RouteSummary],
    run_id: str | None,
    models: Iterable[ModelKey],
    dataset_identity: str | None,
    min_accuracy: float,
    switch_cost_factor: float,
    generated_at: str,
    best_accuracy_gap: float = 0.05,
    context_lengths: Mapping[ModelKey, int | None] | None = None,
) -> RoutingTable:
    """Rank every route from the summaries of ``run_id`` for ``models`` only.

    Summaries of other runs or other models are ignored, so the table holds exactly what its
    version says produced it.
    """
    keys = [_as_key(key) for key in models]
    wanted = set(keys)
    rows = [
        row
        for row in summaries
        if ModelKey(row.model_id, row.variant) in wanted
        and (run_id is None or row.run_id == run_id)
    ]
    ranked = rank_routes(rows, min_accuracy=min_accuracy, context_lengths=context_lengths)
    version = table_version(
        run_id=run_id,
        models=keys,
        dataset_identity=dataset_identity,
        min_accuracy=min_accuracy,
        switch_cost_factor=switch_cost_factor,
    )
    return RoutingTable(
        version=version,
        generated_at=generated_at,
        min_accuracy=min_accuracy,
        switch_cost_factor=switch_cost_factor,
        best_accuracy_gap=best_accuracy_gap,
        routes={route: tuple(candidates) for route, candidates in ranked.items()},
        run_id=run_id,
        dataset_identity=dataset_identity,
    )


def routes_equal(a: RoutingTable, b: RoutingTable) -> bool:
    """Same ranked candidates on every route, ignoring version, time and measured latency.

    Used to check that a run that survived faults ranks exactly like a clean run: latencies
    are wall-clock measurements and differ between any two runs, so they are not compared.
    """
    return all(_route_signature(a, route) == _route_signature(b, route) for route in ROUTES)


def _route_signature(table: RoutingTable, route: str) -> list[tuple[Any, ...]]:
    return [
        (
            c.key,
            c.accuracy,
            float(f"{c.avg_cost_usd:.{_COMPARE_DIGITS}g}"),
            c.cases,
            c.meets_threshold,
        )
        for c in table.routes.get(route, ())
    ]


def _as_key(key: Any) -> ModelKey:
    return ModelKey(*key)


def _key_order(key: ModelKey) -> tuple[str, bool, str]:
    return (key.model_id, key.variant is not None, key.variant or "")


def _check_table_keys(data: Mapping[str, Any]) -> None:
    unknown = sorted(set(data) - set(_TABLE_FIELDS))
    required = ("version", "generated_at", "min_accuracy", "switch_cost_factor", "routes")
    missing = [name for name in required if name not in data]
    if unknown or missing:
        raise ValueError(
            f"not a routing table: unknown keys {unknown!r}, missing keys {missing!r}; "
            f"a routing table has exactly {', '.join(_TABLE_FIELDS)}"
        )
