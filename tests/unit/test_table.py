"""The routing table: version, publishability, JSON round trip, comparison."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from autoray.errors import InvalidRouteError
from autoray.ranking import Candidate
from autoray.results import ModelKey
from autoray.summaries import RouteSummary
from autoray.table import RoutingTable, build_table, routes_equal, table_version
from autoray.taxonomy import ROUTES

A = ModelKey("a", None)
B = ModelKey("b", "fast")
NOW = "2025-01-01T00:00:00+00:00"


def _summary(
    model: ModelKey,
    route: str,
    accuracy: float = 0.9,
    cost: float | None = 0.01,
    *,
    run: str = "r1",
    p50: float = 10.0,
) -> RouteSummary:
    return RouteSummary(
        run, model.model_id, model.variant, route, accuracy, cost, p50, p50, 10, 0, 0
    )


def _full(run: str = "r1", p50: float = 10.0) -> list[RouteSummary]:
    rows = [_summary(A, route, 0.9, 0.01, run=run, p50=p50) for route in ROUTES]
    return rows + [_summary(B, route, 0.8, 0.001, run=run, p50=p50) for route in ROUTES]


def _build(summaries: list[RouteSummary], **overrides: Any) -> RoutingTable:
    args: dict[str, Any] = {
        "summaries": summaries,
        "run_id": "r1",
        "models": [A, B],
        "dataset_identity": "ds-1",
        "min_accuracy": 0.7,
        "switch_cost_factor": 3.0,
        "generated_at": NOW,
    }
    args.update(overrides)
    return build_table(**args)


def _version(**overrides: Any) -> str:
    args: dict[str, Any] = {
        "run_id": "r1",
        "models": [A, B],
        "dataset_identity": "ds-1",
        "min_accuracy": 0.7,
        "switch_cost_factor": 3.0,
    }
    args.update(overrides)
    return table_version(**args)


def test_version_shape_and_determinism() -> None:
    version = _version()
    assert re.fullmatch(r"rt-[0-9a-f]{16}", version)
    assert _version() == version


def test_version_ignores_model_order_and_repeats() -> None:
    assert _version(models=[B, A]) == _version(models=[A, B]) == _version(models=[A, B, A])


@pytest.mark.parametrize(
    "change",
    [
        {"run_id": "r2"},
        {"run_id": None},
        {"models": [A]},
        {"models": [A, ModelKey("b", None)]},
        {"models": [A, ModelKey("b", "slow")]},
        {"dataset_identity": "ds-2"},
        {"min_accuracy": 0.8},
        {"switch_cost_factor": 2.0},
    ],
)
def test_version_changes_with_what_produced_the_table(change: dict[str, Any]) -> None:
    assert _version(**change) != _version()


def test_build_table_ranks_every_route() -> None:
    table = _build(_full())
    assert list(table.routes) == list(ROUTES)
    assert all(
        [c.key for c in table.routes[route]] == [B, A] for route in ROUTES
    )  # B: 0.001/0.8 beats A: 0.01/0.9
    assert table.is_publishable and table.missing_routes() == []
    assert table.version == _version()
    assert (table.run_id, table.dataset_identity, table.generated_at) == ("r1", "ds-1", NOW)


def test_generated_at_does_not_change_the_version() -> None:
    assert _build(_full(), generated_at="later").version == _build(_full()).version


def test_table_missing_a_route_is_not_publishable() -> None:
    rows = [row for row in _full() if row.route != "investigation/external_research"]
    table = _build(rows)
    assert not table.is_publishable
    assert table.missing_routes() == ["investigation/external_research"]
    assert table.routes["investigation/external_research"] == ()


def test_route_with_only_costless_models_is_missing() -> None:
    route = ROUTES[0]
    rows = [row for row in _full() if row.route != route] + [_summary(A, route, 1.0, None)]
    assert _build(rows).missing_routes() == [route]


def test_table_with_absent_route_key_is_not_publishable() -> None:
    full = _build(_full())
    partial = RoutingTable(
        version="v",
        generated_at=NOW,
        min_accuracy=0.7,
        switch_cost_factor=3.0,
        routes={route: full.routes[route] for route in ROUTES[1:]},
        run_id=None,
        dataset_identity=None,
    )
    assert partial.missing_routes() == [ROUTES[0]] and not partial.is_publishable


def test_empty_table_misses_every_route() -> None:
    table = _build([])
    assert table.missing_routes() == list(ROUTES) and not table.is_publishable


def test_build_table_keeps_only_its_run_and_models() -> None:
    stranger = ModelKey("c", None)
    rows = _full() + [_summary(stranger, ROUTES[0], 1.0, 0.0)] + _full(run="other")
    table = _build(rows)
    assert all(stranger not in [c.key for c in cands] for cands in table.routes.values())
    assert all(len(cands) == 2 for cands in table.routes.values())


def test_build_table_fills_context_lengths() -> None:
    table = _build(_full(), context_lengths={A: 8000})
    by_key = {c.key: c for c in table.routes[ROUTES[0]]}
    assert by_key[A].context_length == 8000 and by_key[B].context_length is None


def test_json_round_trip() -> None:
    table = _build(_full(), context_lengths={A: 8000})
    data = json.loads(json.dumps(table.as_dict()))
    assert data["version"] == table.version
    assert data["routes"][ROUTES[0]][0]["cost_per_accuracy"] == pytest.approx(0.001 / 0.8)
    assert RoutingTable.from_dict(data) == table


def test_from_dict_rejects_unknown_keys_and_bad_routes() -> None:
    data = _build(_full()).as_dict()
    with pytest.raises(ValueError, match=r"unknown keys \['colour'\]"):
        RoutingTable.from_dict({**data, "colour": "red"})
    without = {k: v for k, v in data.items() if k != "routes"}
    with pytest.raises(ValueError, match=r"missing keys \['routes'\]"):
        RoutingTable.from_dict(without)
    with pytest.raises(InvalidRouteError):
        RoutingTable.from_dict({**data, "routes": {"debugging/nope": []}})


def test_candidates_lookup_validates_route() -> None:
    table = _build(_full())
    assert table.candidates(ROUTES[0]) == table.routes[ROUTES[0]]
    with pytest.raises(InvalidRouteError):
        table.candidates("nope")


def test_routes_equal_ignores_version_time_and_latency() -> None:
    clean = _build(_full(), generated_at=NOW)
    faulted = _build(_full(run="r2", p50=99.0), run_id="r2", generated_at="later")
    assert clean.version != faulted.version
    assert routes_equal(clean, faulted)


def test_routes_equal_sees_ranking_differences() -> None:
    clean = _build(_full())
    worse = [
        _summary(A, r.route, 0.5, r.avg_cost_usd)
        if r.model_id == "a" and r.route == ROUTES[3]
        else r
        for r in _full()
    ]
    assert not routes_equal(clean, _build(worse))
    missing = [r for r in _full() if not (r.model_id == "a" and r.route == ROUTES[5])]
    assert not routes_equal(clean, _build(missing))
    assert routes_equal(clean, clean)


def test_table_is_frozen() -> None:
    table = _build(_full())
    with pytest.raises(AttributeError):
        table.version = "x"  # type: ignore[misc]
    assert isinstance(table.routes[ROUTES[0]][0], Candidate)
