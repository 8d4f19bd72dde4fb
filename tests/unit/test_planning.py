"""Planning: chunks, shard lanes and the live-container budget (REFERENCE.md examples)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from autoray.errors import BudgetExceededError, ConfigError
from autoray.planning import (
    LaneSpec,
    check_budget,
    chunk_ranges,
    lane_identity,
    plan_run,
    shard_count,
)
from autoray.results import ModelKey


def _models(n: int) -> list[ModelKey]:
    return [ModelKey(f"m{i}", None) for i in range(n)]


def _plan(entries: int, reps: int, budget: int, case_count: int = 180, chunk_size: int = 5):
    return plan_run(
        run_id="r1",
        models=_models(entries),
        repetitions=reps,
        case_count=case_count,
        chunk_size=chunk_size,
        budget=budget,
    )


def test_chunk_ranges_cover_every_case_once() -> None:
    chunks = chunk_ranges(180, 5)
    assert len(chunks) == 36
    assert chunks[0] == range(0, 5) and chunks[-1] == range(175, 180)
    assert [i for chunk in chunks for i in chunk] == list(range(180))


def test_chunk_ranges_last_chunk_is_short() -> None:
    assert chunk_ranges(12, 5) == [range(0, 5), range(5, 10), range(10, 12)]
    assert chunk_ranges(3, 5) == [range(0, 3)]
    assert chunk_ranges(0, 5) == []


def test_chunk_ranges_rejects_bad_sizes() -> None:
    with pytest.raises(ConfigError, match="chunk_size must be at least 1, got 0"):
        chunk_ranges(10, 0)
    with pytest.raises(ConfigError, match="case_count must be at least 0, got -1"):
        chunk_ranges(-1, 5)


def test_ten_models_three_reps_budget_100() -> None:
    plan = _plan(10, 3, 100)
    assert (plan.chunk_count, plan.shard_count, plan.live_containers) == (36, 3, 90)
    assert plan.chunks_per_lane_min == plan.chunks_per_lane_max == 12
    first = plan.lanes[0]
    assert first.chunks == tuple(range(0, 36, 3)) and first.chunks[-1] == 33
    assert plan.lanes[1].chunks == tuple(range(1, 36, 3))


def test_twenty_five_models_one_rep_budget_100() -> None:
    plan = _plan(25, 1, 100)
    assert plan.shard_count == 4 and plan.live_containers == 100
    assert plan.chunks_per_lane_min == plan.chunks_per_lane_max == 9


@pytest.mark.parametrize(("entries", "reps"), [(101, 1), (21, 5)])
def test_over_budget_runs_are_rejected(entries: int, reps: int) -> None:
    with pytest.raises(BudgetExceededError):
        _plan(entries, reps, 100)


def test_budget_message_says_what_and_how_to_fix() -> None:
    with pytest.raises(BudgetExceededError) as info:
        check_budget(21, 5, 100)
    assert str(info.value) == (
        "this run needs 105 lanes (21 model entries x 5 repetitions) but max_live_containers "
        "is 100; reduce the model entries or repetitions, or raise max_live_containers to at "
        "least 105"
    )


def test_budget_message_uses_singular_for_one() -> None:
    with pytest.raises(
        BudgetExceededError, match=r"needs 2 lanes \(2 model entries x 1 repetition\)"
    ):
        check_budget(2, 1, 1)
    with pytest.raises(BudgetExceededError, match=r"\(1 model entry x 3 repetitions\)"):
        check_budget(1, 3, 2)


def test_budget_exactly_enough_is_accepted() -> None:
    check_budget(20, 5, 100)
    plan = _plan(20, 5, 100)
    assert plan.shard_count == 1 and plan.live_containers == 100
    assert plan.chunks_per_lane_min == 36


def test_budget_smaller_than_chunks_spreads_chunks_over_fewer_lanes() -> None:
    plan = _plan(1, 1, 4)
    assert plan.chunk_count == 36 and plan.shard_count == 4 and plan.live_containers == 4
    assert [len(lane.chunks) for lane in plan.lanes] == [9, 9, 9, 9]
    assert sorted(c for lane in plan.lanes for c in lane.chunks) == list(range(36))


def test_shards_never_exceed_chunks() -> None:
    plan = _plan(1, 1, 100, case_count=12, chunk_size=5)
    assert plan.chunk_count == 3 and plan.shard_count == 3 and plan.live_containers == 3
    assert [lane.chunks for lane in plan.lanes] == [(0,), (1,), (2,)]


def test_uneven_division_gives_min_and_max() -> None:
    plan = _plan(1, 1, 5)
    assert plan.shard_count == 5
    assert (plan.chunks_per_lane_min, plan.chunks_per_lane_max) == (7, 8)


def test_shard_count_formula() -> None:
    assert shard_count(chunk_count=36, budget=100, entries=10, repetitions=3) == 3
    assert shard_count(chunk_count=36, budget=1000, entries=1, repetitions=1) == 36
    with pytest.raises(BudgetExceededError):
        shard_count(chunk_count=36, budget=2, entries=3, repetitions=1)
    with pytest.raises(ConfigError, match="chunk_count must be at least 1"):
        shard_count(chunk_count=0, budget=2, entries=1, repetitions=1)


def test_lanes_ordered_by_model_then_rep_then_shard() -> None:
    models = [ModelKey("b", None), ModelKey("a", "v")]
    plan = plan_run(run_id="r", models=models, repetitions=2, case_count=20, chunk_size=5, budget=8)
    order = [(lane.model_id, lane.variant, lane.rep, lane.shard) for lane in plan.lanes]
    expected = [(m.model_id, m.variant, r, s) for m in models for r in range(2) for s in range(2)]
    assert order == expected


def test_every_chunk_is_worked_once_per_model_and_rep() -> None:
    plan = _plan(3, 2, 20)
    for model in _models(3):
        for rep in range(2):
            lanes = [lane for lane in plan.lanes if lane.model == model and lane.rep == rep]
            assert sorted(c for lane in lanes for c in lane.chunks) == list(range(36))


def test_lane_identity_and_actor_name() -> None:
    assert lane_identity("run", "sim/a", None, 0, 2) == "run:sim/a::0:2"
    assert lane_identity("run", "sim/a", "fast", 1, 0) == "run:sim/a:fast:1:0"
    lane = LaneSpec("run", "sim/a", "fast", 1, 0, (0, 3))
    assert lane.identity == "run:sim/a:fast:1:0"
    assert lane.actor_name == "lane:run:sim/a:fast:1:0"
    assert lane.model == ModelKey("sim/a", "fast")


def test_lane_identities_are_unique() -> None:
    plan = _plan(10, 3, 100)
    assert len({lane.identity for lane in plan.lanes}) == len(plan.lanes)


def test_case_range_of_a_chunk() -> None:
    plan = _plan(1, 1, 1, case_count=12, chunk_size=5)
    assert plan.case_range(0) == range(0, 5) and plan.case_range(2) == range(10, 12)
    with pytest.raises(ValueError, match="outside 0..2"):
        plan.case_range(3)


def test_as_dict_is_json_with_the_summary_numbers() -> None:
    data = _plan(10, 3, 100).as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["chunk_count"] == 36 and data["shard_count"] == 3 and data["lanes"] == 90
    assert data["chunks_per_lane_min"] == data["chunks_per_lane_max"] == 12
    assert (data["case_count"], data["chunk_size"], data["entries"]) == (180, 5, 10)
    assert (data["repetitions"], data["budget"]) == (3, 100)
    assert len(data["lane_list"]) == 90
    assert data["lane_list"][0] == {"identity": "r1:m0::0:0", "chunks": list(range(0, 36, 3))}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"case_count": 0}, "case_count must be at least 1, got 0"),
        ({"chunk_size": 0}, "chunk_size must be at least 1, got 0"),
        ({"budget": 0}, "budget must be at least 1, got 0"),
        ({"repetitions": 0}, "repetitions must be at least 1, got 0"),
        ({"models": []}, "entries must be at least 1, got 0; add at least one model entry"),
        ({"run_id": ""}, "run_id is empty"),
    ],
)
def test_plan_run_validates_inputs(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "run_id": "r",
        "models": _models(1),
        "repetitions": 1,
        "case_count": 10,
        "chunk_size": 5,
        "budget": 4,
    }
    args.update(kwargs)
    with pytest.raises(ConfigError, match=message):
        plan_run(**args)


def test_plan_run_rejects_duplicate_models() -> None:
    models = [ModelKey("a", None), ModelKey("a", "v"), ModelKey("a", None)]
    with pytest.raises(ConfigError, match=r"\['a'\] appear more than once"):
        plan_run(run_id="r", models=models, repetitions=1, case_count=10, chunk_size=5, budget=9)


def test_plan_and_lanes_are_frozen() -> None:
    plan = _plan(1, 1, 1)
    with pytest.raises(AttributeError):
        plan.budget = 5
    with pytest.raises(AttributeError):
        plan.lanes[0].shard = 5
