"""The routing table: version, publishability, JSON round trip, comparison."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import jsonschema
import pytest

from autoray.errors import InvalidRouteError
from autoray.ranking import Candidate
from autoray.results import ModelKey
from autoray.summaries import RouteSummary
from autoray.table import (
    SCHEMA_VERSION,
    RoutingTable,
    build_table,
    content_version,
    routes_equal,
    routing_table_schema,
)
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
    table = _build(_full())
    args: dict[str, Any] = {
        "routes": table.routes,
        "min_accuracy": 0.7,
        "switch_cost_factor": 3.0,
        "best_accuracy_gap": 0.05,
    }
    args.update(overrides)
    return content_version(**args)


def _with_first(change: dict[str, Any], route: str = ROUTES[4]) -> dict[str, Any]:
    """The routes of the standard table with the first candidate of ``route`` changed."""
    routes = dict(_build(_full()).routes)
    first, *rest = routes[route]
    routes[route] = (replace(first, **change), *rest)
    return routes


def test_version_shape_and_determinism() -> None:
    version = _version()
    assert re.fullmatch(r"rt-[0-9a-f]{16}", version)
    assert _version() == version


def test_same_content_from_two_runs_has_the_same_version() -> None:
    first = _build(_full())
    second = _build(
        _full(run="r2", p50=250.0),
        run_id="r2",
        models=[B, A],
        dataset_identity="ds-2",
        generated_at="2026-06-01T00:00:00+00:00",
    )
    assert (second.run_id, second.dataset_identity, second.models) == ("r2", "ds-2", (B, A))
    assert first.version == second.version == _version()


@pytest.mark.parametrize(
    "change",
    [
        {"routes": _with_first({"accuracy": 0.95})},
        {"routes": _with_first({"avg_cost_usd": 0.002})},
        {"routes": _with_first({"context_length": 8000})},
        {"routes": _with_first({"meets_threshold": False})},
        {"routes": _with_first({"model_id": "c"})},
        {"routes": _with_first({"variant": "slow"})},
        {"min_accuracy": 0.8},
        {"switch_cost_factor": 2.0},
        {"best_accuracy_gap": 0.1},
    ],
    ids=lambda change: next(iter(change)) if "routes" not in change else "candidate",
)
def test_any_change_a_decision_can_see_makes_a_new_version(change: dict[str, Any]) -> None:
    assert _version(**change) != _version()


def test_candidate_order_and_route_membership_change_the_version() -> None:
    routes = dict(_build(_full()).routes)
    swapped = {**routes, ROUTES[2]: tuple(reversed(routes[ROUTES[2]]))}
    dropped = {**routes, ROUTES[2]: routes[ROUTES[2]][:1]}
    versions = {_version(), _version(routes=swapped), _version(routes=dropped)}
    assert len(versions) == 3


def test_latency_cases_and_provenance_do_not_change_the_version() -> None:
    assert _version(routes=_with_first({"p50_latency_ms": 999.0})) == _version()
    assert _version(routes=_with_first({"cases": 3})) == _version()
    assert _build(_full(), run_id="r1", dataset_identity="other", models=[A, B, A]).version == (
        _version()
    )


def test_float_noise_and_an_absent_route_hash_alike() -> None:
    noisy = _with_first({"accuracy": 0.1 + 0.2, "avg_cost_usd": 0.007000000000000001})
    clean = _with_first({"accuracy": 0.3, "avg_cost_usd": 0.007})
    assert _version(routes=noisy) == _version(routes=clean)
    assert _version(switch_cost_factor=3) == _version(switch_cost_factor=3.0000000000001)
    routes = dict(_build(_full()).routes)
    emptied = {**routes, ROUTES[0]: ()}
    absent = {route: cands for route, cands in routes.items() if route != ROUTES[0]}
    assert _version(routes=emptied) == _version(routes=absent) != _version()


def test_version_rejects_unknown_routes_and_non_finite_numbers() -> None:
    with pytest.raises(InvalidRouteError):
        _version(routes={"debugging/nope": ()})
    with pytest.raises(ValueError, match="every number must be finite"):
        _version(routes=_with_first({"accuracy": float("nan")}))


def test_build_table_ranks_every_route() -> None:
    table = _build(_full())
    assert list(table.routes) == list(ROUTES)
    assert all(
        [c.key for c in table.routes[route]] == [B, A] for route in ROUTES
    )  # B: 0.001/0.8 beats A: 0.01/0.9
    assert table.is_publishable and table.missing_routes() == []
    assert table.version == _version() == table.content_version()
    assert (table.run_id, table.dataset_identity, table.generated_at) == ("r1", "ds-1", NOW)
    assert table.models == (A, B) and table.best_accuracy_gap == 0.05


def test_build_table_carries_best_accuracy_gap_into_table_and_version() -> None:
    table = _build(_full(), best_accuracy_gap=0.2)
    assert table.best_accuracy_gap == 0.2
    assert table.version == _version(best_accuracy_gap=0.2) != _version()


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


def _json(table: RoutingTable) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(table.as_dict()))
    return data


def test_json_round_trip() -> None:
    table = _build(_full(), context_lengths={A: 8000}, best_accuracy_gap=0.1)
    data = _json(table)
    assert data["schema_version"] == SCHEMA_VERSION == 1
    assert data["version"] == table.version and data["best_accuracy_gap"] == 0.1
    assert data["routes"][ROUTES[0]][0]["cost_per_accuracy"] == pytest.approx(0.001 / 0.8)
    assert data["provenance"] == {
        "run_id": "r1",
        "dataset_identity": "ds-1",
        "models": [{"model_id": "a", "variant": None}, {"model_id": "b", "variant": "fast"}],
    }
    assert RoutingTable.from_dict(data) == table


def test_as_dict_validates_against_the_shipped_schema() -> None:
    schema = routing_table_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(_json(_build(_full(), context_lengths={A: 8000})), schema)
    jsonschema.validate(_json(_build([], run_id=None, dataset_identity=None)), schema)


def test_schema_rejects_what_readers_reject() -> None:
    data = _json(_build(_full()))
    schema = routing_table_schema()
    del data["routes"][ROUTES[0]][0]["accuracy"]
    with pytest.raises(jsonschema.ValidationError, match="'accuracy' is a required property"):
        jsonschema.validate(data, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**_json(_build(_full())), "min_accuracy": "high"}, schema)


def _with_extras(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as a newer writer might send it: fields this reader has never heard of."""
    routes = {
        route: [{**cand, "p99_latency_ms": 40.0, "region": "eu"} for cand in cands]
        for route, cands in data["routes"].items()
    }
    provenance = {**data["provenance"], "runs": ["r1", "r0"]}
    return {
        **data,
        "schema_version": 7,
        "colour": "red",
        "routes": routes,
        "provenance": provenance,
    }


def test_readers_and_schema_tolerate_unknown_fields_from_newer_writers() -> None:
    table = _build(_full())
    newer = _with_extras(_json(table))
    assert RoutingTable.from_dict(newer) == table
    jsonschema.validate(newer, routing_table_schema())


def test_from_dict_reads_a_schema_0_body() -> None:
    """Bodies stored before schema_version existed: no gap, provenance at the top level."""
    table = _build(_full(), context_lengths={A: 8000})
    v0 = {
        "version": "rt-0123456789abcdef",
        "generated_at": NOW,
        "min_accuracy": 0.7,
        "switch_cost_factor": 3.0,
        "run_id": "r1",
        "dataset_identity": "ds-1",
        "routes": _json(table)["routes"],
    }
    loaded = RoutingTable.from_dict(v0)
    assert loaded.version == "rt-0123456789abcdef" and loaded.best_accuracy_gap == 0.05
    assert (loaded.run_id, loaded.dataset_identity, loaded.models) == ("r1", "ds-1", ())
    assert loaded.routes == table.routes
    assert loaded.content_version() == table.version
    assert loaded.as_dict()["schema_version"] == SCHEMA_VERSION


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("routes"), "field routes: required field is missing; add 'routes'"),
        (lambda d: d.pop("version"), "field version: required field is missing"),
        (lambda d: d.update(min_accuracy="high"), "min_accuracy: must be a number, got 'high'"),
        (lambda d: d.update(min_accuracy=True), "min_accuracy: must be a number, got True"),
        (lambda d: d.update(schema_version="1"), "schema_version: must be an integer, got '1'"),
        (lambda d: d.update(best_accuracy_gap=None), "best_accuracy_gap: must be a number"),
        (lambda d: d.update(routes=[]), "field routes: must be an object, got []"),
        (lambda d: d.update(provenance=[]), "field provenance: must be an object"),
        (
            lambda d: d["provenance"]["models"][0].pop("model_id"),
            "field provenance.models[0].model_id: required field is missing",
        ),
        (
            lambda d: d["routes"][ROUTES[1]].append("a"),
            "field routes['implementation/code_generation'][2]: must be a JSON object",
        ),
        (
            lambda d: d["routes"][ROUTES[1]][0].update(accuracy="0.9"),
            "routes['implementation/code_generation'][0].accuracy: must be a number, got '0.9'",
        ),
        (
            lambda d: d["routes"][ROUTES[1]][1].pop("meets_threshold"),
            "routes['implementation/code_generation'][1].meets_threshold: required field is",
        ),
        (
            lambda d: d["routes"][ROUTES[1]][0].update(context_length=1.5),
            "[0].context_length: must be an integer or null, got 1.5",
        ),
    ],
)
def test_from_dict_names_the_missing_or_mistyped_field(mutate: Any, message: str) -> None:
    data = _json(_build(_full()))
    mutate(data)
    with pytest.raises(ValueError) as caught:
        RoutingTable.from_dict(data)
    assert message in str(caught.value)


def test_from_dict_rejects_bad_routes_and_non_objects() -> None:
    data = _json(_build(_full()))
    with pytest.raises(InvalidRouteError):
        RoutingTable.from_dict({**data, "routes": {"debugging/nope": []}})
    with pytest.raises(ValueError, match="a routing table must be a JSON object, got list"):
        RoutingTable.from_dict([data])


def test_nullable_candidate_fields_may_be_null_or_absent() -> None:
    data = _json(_build(_full(), context_lengths={A: 8000}))
    for cands in data["routes"].values():
        for cand in cands:
            cand["p50_latency_ms"] = None
            del cand["context_length"], cand["cost_per_accuracy"]
    loaded = RoutingTable.from_dict(data)
    first = loaded.routes[ROUTES[0]][0]
    assert (first.p50_latency_ms, first.context_length) == (None, None)


def test_candidates_lookup_validates_route() -> None:
    table = _build(_full())
    assert table.candidates(ROUTES[0]) == table.routes[ROUTES[0]]
    with pytest.raises(InvalidRouteError):
        table.candidates("nope")


def test_routes_equal_ignores_version_time_and_latency() -> None:
    clean = _build(_full(), generated_at=NOW)
    faulted = _build(_full(run="r2", p50=99.0), run_id="r2", generated_at="later")
    relabelled = replace(faulted, version="rt-other")
    assert routes_equal(clean, faulted) and routes_equal(clean, relabelled)


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
