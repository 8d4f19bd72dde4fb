"""Finalizing a run against a real SQLite database: whole entries only, and no stale activation.

Finding 2: summaries were built from every row, so a model whose lane died was ranked on the
part of each route its lane got through. Finding 3: a run that finished after a newer one had
been activated put its older table back in service.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from autoray.cases import Dataset, load_dataset
from autoray.config import parse_config
from autoray.engine.finalize import activation_block, final_table, finalize_run
from autoray.engine.run import RunState, build_run
from autoray.engine.states import LaneState
from autoray.results import CaseOutcome, CaseResult, ModelKey
from autoray.store import open_store, repo, upgrade
from autoray.store.repo import ActiveTableInfo

A, B = ModelKey("sim/a", None), ModelKey("sim/b", None)


@pytest.fixture(scope="module")
def mini() -> Dataset:
    full = load_dataset("builtin:decider")
    return Dataset("mini", tuple(full.by_route(r)[0] for r in full.routes()), "mini-identity")


def _run(dataset: Dataset, run_id: str = "r") -> RunState:
    config = parse_config(
        {
            "name": "t",
            "dataset": "builtin:decider",
            "repetitions": 2,
            "chunk_size": 6,
            "max_live_containers": 4,
            "models": [
                {
                    "id": key.model_id,
                    "provider": "simulated",
                    "price": {"input_per_mtok": 1, "output_per_mtok": 2},
                    "skill": {"default": 1.0},
                }
                for key in (A, B)
            ],
        },
        source="test",
    )
    return build_run(run_id=run_id, config=config, dataset=dataset, engine_identity="e")


def _rows(run: RunState, *, b_rep1_score: float, cost: float = 0.001) -> list[CaseResult]:
    """Every row of the run: A always right; B right on rep 0, ``b_rep1_score`` on rep 1."""
    rows = []
    for model, rep, case_id in run.lane_of_case:
        score = b_rep1_score if (model, rep) == (B, 1) else 1.0
        rows.append(
            CaseResult(
                run_id=run.run_id,
                model_id=model.model_id,
                variant=None,
                case_id=case_id,
                rep=rep,
                route=run.dataset.by_id(case_id).route,
                outcome=CaseOutcome(
                    score=score, latency_ms=10, cost_usd=cost * (2 if model == A else 1)
                ),
            )
        )
    return rows


def _kill_entry(run: RunState, model: ModelKey, rep: int) -> None:
    for lane in run.lanes.values():
        if lane.entry == (model, rep):
            lane.state = LaneState.DEAD


def test_rows_of_an_entry_with_a_dead_lane_stay_out_of_the_summaries(mini: Dataset) -> None:
    run = _run(mini)
    _kill_entry(run, B, 1)
    final = final_table(run, _rows(run, b_rep1_score=0.0), generated_at="t")
    b = [s for s in final.summaries if s.model_id == "sim/b"]
    assert b and all(s.cases == 1 and s.accuracy == 1.0 for s in b)  # rep 0 alone
    a = [s for s in final.summaries if s.model_id == "sim/a"]
    assert all(s.cases == 2 for s in a)  # untouched
    assert final.left_out == ("sim/b rep 1",)


def test_a_dead_lane_whose_rows_all_arrived_late_leaves_its_entry_whole(mini: Dataset) -> None:
    run = _run(mini)
    _kill_entry(run, B, 1)
    for lane in run.lanes.values():
        if lane.entry == (B, 1):
            lane.missing.clear()  # its last rows landed after it was given up
    final = final_table(run, _rows(run, b_rep1_score=0.0), generated_at="t")
    assert final.left_out == ()
    assert all(s.cases == 2 for s in final.summaries if s.model_id == "sim/b")


def test_a_partial_entry_would_have_changed_the_table(mini: Dataset) -> None:
    """The same rows with the dead entry kept rank B below the bar: the filter is what keeps a
    faulted run's table equal to a clean one's."""
    run = _run(mini)
    clean = final_table(run, _rows(run, b_rep1_score=1.0), generated_at="t")
    _kill_entry(run, B, 1)
    partial_rows = _rows(run, b_rep1_score=0.0)
    faulted = final_table(run, partial_rows, generated_at="t")
    assert faulted.table.version == clean.table.version
    for lane in run.lanes.values():  # the same rows without the filter
        lane.state = LaneState.FINISHED
    unfiltered = final_table(run, partial_rows, generated_at="t")
    assert unfiltered.table.version != clean.table.version


def _active(version: str, at: datetime) -> ActiveTableInfo:
    return ActiveTableInfo(version, at)


def test_activation_is_blocked_only_by_a_table_activated_after_the_run_started() -> None:
    start = datetime(2026, 1, 1, 12, tzinfo=UTC)
    later, earlier = start + timedelta(minutes=5), start - timedelta(minutes=5)
    kwargs: dict[str, Any] = {"version": "new", "run_started": start, "own_previous": None}
    assert activation_block(active=None, **kwargs) is None
    assert activation_block(active=_active("old", earlier), **kwargs) is None
    assert activation_block(active=_active("new", later), **kwargs) is None
    blocked = activation_block(active=_active("other", later), **kwargs)
    assert blocked is not None
    assert "saved but not activated" in blocked and "other" in blocked
    assert "autoray table activate new" in blocked
    mine = {**kwargs, "own_previous": "mine"}
    assert activation_block(active=_active("mine", later), **mine) is None  # a re-finalization


def _store_run(url: str, run: RunState, rows: list[CaseResult]) -> None:
    async def go() -> None:
        store = open_store(url)
        try:
            async with store.session() as s:
                record = await repo.create_run(
                    s,
                    run_id=run.run_id,
                    name="t",
                    config={},
                    engine_identity="e",
                    dataset_identity=run.dataset.identity,
                    models=[A, B],
                )
                run.started_at = record.created_at
                await repo.upsert_case_results(s, results=rows)
        finally:
            await store.close()

    asyncio.run(go())


def _finalize(url: str, run: RunState) -> Any:
    async def go() -> Any:
        store = open_store(url)
        try:
            outcome = await finalize_run(store.session, run)
            async with store.session() as s:
                return outcome, await repo.active_version(s)
        finally:
            await store.close()

    return asyncio.run(go())


def test_an_older_run_finishing_late_does_not_reactivate_its_table(
    mini: Dataset, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'autoray.db'}"
    upgrade(url)
    older, newer = _run(mini, "older"), _run(mini, "newer")
    _store_run(url, older, _rows(older, b_rep1_score=1.0, cost=0.001))
    _store_run(url, newer, _rows(newer, b_rep1_score=1.0, cost=0.003))
    outcome, active = _finalize(url, newer)
    assert outcome.activated and active == outcome.table_version
    late, still_active = _finalize(url, older)
    assert late.table_version is not None and late.table_version != outcome.table_version
    assert not late.activated and still_active == outcome.table_version
    assert "saved but not activated" in (late.reason or "")


def test_finalize_names_the_entries_it_left_out(mini: Dataset, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'autoray.db'}"
    upgrade(url)
    run = _run(mini)
    _kill_entry(run, B, 1)
    rows = [
        r for r in _rows(run, b_rep1_score=1.0) if (r.model, r.rep) != (B, 1) or r.case_id < "m"
    ]
    _store_run(url, run, rows)
    outcome, active = _finalize(url, run)
    assert outcome.activated and active == outcome.table_version
    assert "1 lane(s) dead" in (outcome.reason or "")
    assert "sim/b rep 1" in (outcome.reason or "") and "bench resume" in (outcome.reason or "")
