"""The lane's side of the controller's contract, without Ray: the lane actor is a plain class,
run here with a recording stand-in for its coordinator client, the real process sandbox and
the simulated farm on 127.0.0.1.

* every infrastructure error leaves the lane with no row written (the policy retries it);
* heartbeats go out while a case runs, not only between cases;
* a stopped lane reports it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from autoray.cases import Dataset, load_dataset
from autoray.config import ModelEntry, RunnerConfig, SandboxConfig
from autoray.engine.run import LaneWork
from autoray.errors import InfrastructureError
from autoray.planning import LaneSpec, plan_run
from autoray.providers.simfarm import serve_farm
from autoray.results import CaseResult, ModelKey

RUN = "lane-run"


class RecordingCoordinator:
    """What a lane calls on its coordinator, recorded."""

    def __init__(self) -> None:
        self.rows: list[CaseResult] = []
        self.beats = 0
        self.beats_at_row: list[int] = []
        self._lock = threading.Lock()

    def remaining_cases(self, spec: LaneSpec, case_ids: Sequence[str]) -> list[str]:
        return list(case_ids)

    def record_result(self, result: CaseResult, lane: LaneSpec | None = None) -> bool:
        with self._lock:
            self.rows.append(result)
            self.beats_at_row.append(self.beats)
        return True

    def heartbeat(self, spec: LaneSpec, attempt: int) -> None:
        with self._lock:
            self.beats += 1


@pytest.fixture(scope="module")
def two_cases() -> Dataset:
    full = load_dataset("builtin:decider")
    text_routes = [r for r in full.routes() if not r.startswith("agentic_execution/")]
    cases = tuple(full.by_route(route)[0] for route in text_routes[:2])
    return Dataset("two", cases, "two-identity")


def _model(**fields: Any) -> ModelEntry:
    return ModelEntry.model_validate(
        {"price": {"input_per_mtok": 1, "output_per_mtok": 2}, "max_retries": 0, **fields}
    )


def _lane(dataset: Dataset, model: ModelEntry, tmp_path: Path, **work: Any) -> Any:
    from actors.lane import ShardLane

    plan = plan_run(
        run_id=RUN,
        models=[model.key],
        repetitions=1,
        case_count=len(dataset.cases),
        chunk_size=2,
        budget=1,
        case_ids=[case.id for case in dataset.cases],
    )
    (spec,) = plan.lanes
    lane_work = LaneWork(
        model=model,
        sandbox=SandboxConfig(backend="process", timeout_s=20, root=str(tmp_path / "sandboxes")),
        runner=RunnerConfig(),
        chunk_cases=plan.lane_cases(spec),
        **work,
    )
    coordinator = RecordingCoordinator()
    return ShardLane(spec, lane_work, dataset, coordinator), coordinator  # type: ignore[arg-type]


@pytest.fixture
def farm(two_cases: Dataset) -> Iterator[str]:
    slow = _model(id="sim/slow", provider="simulated", skill={"default": 1.0}, latency_ms=400)
    with serve_farm([slow], two_cases, seed=0) as url:
        yield url


def test_an_infrastructure_error_leaves_the_lane_with_no_row(
    two_cases: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model whose key variable is unset used to write score-0 rows (finding 1); now the
    provider raises an infrastructure error and the lane lets it out, writing nothing."""
    monkeypatch.delenv("AUTORAY_TEST_UNSET_KEY", raising=False)
    model = _model(
        id="real/model",
        provider="openai",
        base_url="http://127.0.0.1:9/v1",
        api_key_env="AUTORAY_TEST_UNSET_KEY",
    )
    lane, coordinator = _lane(two_cases, model, tmp_path)
    with pytest.raises(InfrastructureError, match="AUTORAY_TEST_UNSET_KEY"):
        lane.run()
    assert coordinator.rows == []


def test_heartbeats_go_out_while_a_case_runs(two_cases: Dataset, tmp_path: Path, farm: str) -> None:
    model = _model(id="sim/slow", provider="simulated", skill={"default": 1.0}, latency_ms=400)
    lane, coordinator = _lane(two_cases, model, tmp_path, heartbeat_s=0.05, sim_url=farm)
    report = lane.run()
    assert [row.case_id for row in coordinator.rows] == [c.id for c in two_cases.cases]
    assert report.cases_run == 2 and not report.stopped
    # Each 400 ms case saw several beats: they come from a thread, not between cases.
    first, second = coordinator.beats_at_row
    assert first >= 3 and second - first >= 3
    assert all(row.model == ModelKey("sim/slow", None) for row in coordinator.rows)


def test_a_stopped_lane_says_so_and_runs_nothing_more(
    two_cases: Dataset, tmp_path: Path, farm: str
) -> None:
    model = _model(id="sim/slow", provider="simulated", skill={"default": 1.0}, latency_ms=400)
    lane, coordinator = _lane(two_cases, model, tmp_path, sim_url=farm)
    lane.stop()
    report = lane.run()
    assert report.stopped and report.cases_run == 0 and coordinator.rows == []
