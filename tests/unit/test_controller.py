"""The run controller stepped without Ray: every path of a run, faults included.

Each test feeds events to a :class:`RunController` over a fake clock and checks the actions it
asks the coordinator to carry out. Issue 9's findings each have a test here that fails on the
engine as it was (instant sweep deaths, a retry budget per lane lifetime, rows accepted after
finalization, a finalization that could not be retried).
"""

from __future__ import annotations

from typing import Any

import pytest

from autoray.cases import Dataset, load_dataset
from autoray.config import parse_config
from autoray.engine.controller import (
    EngineAction,
    Finalize,
    FinalizeOutcome,
    ForgetDead,
    KillLane,
    LaneMoved,
    RecordDead,
    RemoveSandboxes,
    RetryLater,
    RunController,
    SetStatus,
    SpawnLane,
    StopLanes,
    resume_error,
)
from autoray.engine.policy import Action, FailureKind
from autoray.engine.run import LaneReport, RunState, build_run
from autoray.engine.states import LaneState, RunStatus
from autoray.errors import AutorayError, ConfigError
from autoray.results import CaseOutcome, CaseResult, ModelKey


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def mini() -> Dataset:
    """One case per route (18 cases) from the built-in set."""
    full = load_dataset("builtin:decider")
    cases = tuple(full.by_route(route)[0] for route in full.routes())
    return Dataset("mini", cases, "mini-identity")


def _config(models: int = 1, reps: int = 1, budget: int = 1, **engine: Any) -> Any:
    return parse_config(
        {
            "name": "t",
            "dataset": "builtin:decider",
            "repetitions": reps,
            "chunk_size": 3,
            "max_live_containers": budget,
            "engine": {"backoff_base_s": 1, "backoff_max_s": 8, **engine},
            "models": [
                {
                    "id": f"sim/{chr(ord('a') + i)}",
                    "provider": "simulated",
                    "price": {"input_per_mtok": 1, "output_per_mtok": 2},
                    "skill": {"default": 1.0},
                }
                for i in range(models)
            ],
        },
        source="test",
    )


def _controller(dataset: Dataset, clock: FakeClock, **config: Any) -> RunController:
    run = build_run(run_id="r", config=_config(**config), dataset=dataset, engine_identity="e")
    return RunController(run, clock)


def _row(run: RunState, lane_id: str, case_id: str, error: str | None = None) -> CaseResult:
    spec = run.lanes[lane_id].spec
    case = run.dataset.by_id(case_id)
    return CaseResult(
        run_id=run.run_id,
        model_id=spec.model_id,
        variant=spec.variant,
        case_id=case_id,
        rep=spec.rep,
        route=case.route,
        outcome=CaseOutcome(score=0.0 if error else 1.0, latency_ms=5, error=error),
    )


def _deliver(controller: RunController, lane_id: str, count: int | None = None) -> None:
    lane = controller.run.lanes[lane_id]
    for case_id in sorted(lane.missing)[:count]:
        controller.row_recorded(_row(controller.run, lane_id, case_id), inserted=True)


def _of(actions: list[EngineAction], kind: type) -> list[Any]:
    return [action for action in actions if isinstance(action, kind)]


def _start(controller: RunController) -> list[str]:
    """Begin the run and start every lane; returns the lane identities."""
    actions = controller.begin()
    for spawn in _of(actions, SpawnLane):
        controller.lane_started(spawn.lane, spawn.attempt)
    return [spawn.lane for spawn in _of(actions, SpawnLane)]


def _attempt(controller: RunController, lane_id: str) -> int:
    return controller.run.lanes[lane_id].attempts


# ---------------------------------------------------------------- a clean run
def test_a_clean_run_spawns_every_lane_and_finalizes_once_all_finish(mini: Dataset) -> None:
    clock = FakeClock()
    controller = _controller(mini, clock, models=2, budget=4)
    lanes = _start(controller)
    assert len(lanes) == 4 and all(_attempt(controller, lane) == 1 for lane in lanes)
    for lane in lanes[:-1]:
        _deliver(controller, lane)
        actions = controller.lane_ended(lane, 1, LaneReport(lane, chunks_run=[0]))
        assert not _of(actions, Finalize)
        assert controller.run.lanes[lane].state is LaneState.FINISHED
    _deliver(controller, lanes[-1])
    actions = controller.lane_ended(lanes[-1], 1, LaneReport(lanes[-1]))
    assert _of(actions, SetStatus) == [SetStatus(RunStatus.FINALIZING, None)]
    assert RemoveSandboxes(None) in actions and _of(actions, Finalize)
    assert controller.run.cases_done == 36
    done = controller.finalized(FinalizeOutcome("v1", None, activated=True))
    assert done == [SetStatus(RunStatus.COMPLETED, None, "v1")]
    assert controller.run.status is RunStatus.COMPLETED


def test_a_lane_that_ends_with_cases_missing_is_a_failure_not_finished(mini: Dataset) -> None:
    controller = _controller(mini, FakeClock())
    (lane,) = _start(controller)
    _deliver(controller, lane, count=5)
    actions = controller.lane_ended(lane, 1, LaneReport(lane))
    assert controller.run.lanes[lane].state is LaneState.RETRYING
    assert "13 case(s) still without a row" in (controller.run.lanes[lane].reason or "")
    assert _of(actions, RetryLater)


# ---------------------------------------------------------------- failures and the policy
def test_infrastructure_failure_is_retried_after_backoff_and_the_retry_cleans_first(
    mini: Dataset,
) -> None:
    controller = _controller(mini, FakeClock())
    (lane,) = _start(controller)
    actions = controller.lane_failed(lane, 1, FailureKind.INFRASTRUCTURE, "provider 503")
    assert actions[0] == KillLane(lane)
    assert _of(actions, RetryLater) == [RetryLater(lane, 1.0)]
    (moved,) = _of(actions, LaneMoved)
    assert moved.decision is not None and moved.decision.action is Action.RETRY
    assert moved.reason == "infrastructure: provider 503"
    retry = controller.retry_due(lane)
    # The predecessor's sandbox goes before the successor starts (no leaked sandbox).
    assert retry[0] == RemoveSandboxes(lane)
    assert _of(retry, SpawnLane) == [SpawnLane(lane, 2)]


def test_a_lane_whose_retries_run_out_is_dead_and_the_run_still_finalizes(
    mini: Dataset,
) -> None:
    controller = _controller(mini, FakeClock(), models=2, budget=2, max_attempts=2)
    healthy, doomed = _start(controller)
    _deliver(controller, healthy)
    controller.lane_ended(healthy, 1, LaneReport(healthy))
    controller.lane_failed(doomed, 1, FailureKind.SANDBOX_UNAVAILABLE, "no engine")
    controller.retry_due(doomed)
    controller.lane_started(doomed, 2)
    actions = controller.lane_failed(doomed, 2, FailureKind.SANDBOX_UNAVAILABLE, "no engine")
    assert _of(actions, RecordDead) == [RecordDead(doomed, "sandbox_unavailable: no engine", 2)]
    assert RemoveSandboxes(doomed) in actions
    assert _of(actions, Finalize)
    assert controller.run.dead_entries() == [(ModelKey("sim/b", None), 0)]


def test_retry_budget_counts_failures_since_the_last_row(mini: Dataset) -> None:
    """Finding 6: six failures spread over a lane that made progress between them used to kill
    it (the budget counted every attempt of the lane's life)."""
    controller = _controller(mini, FakeClock(), max_attempts=6)
    (lane,) = _start(controller)
    for attempt in range(1, 7):
        _deliver(controller, lane, count=2)  # progress before each failure
        actions = controller.lane_failed(lane, attempt, FailureKind.LANE_LOST, "killed")
        assert not _of(actions, RecordDead), f"dead after failure {attempt} despite progress"
        controller.retry_due(lane)
        controller.lane_started(lane, attempt + 1)
    assert controller.run.lanes[lane].attempts == 7
    _deliver(controller, lane)
    controller.lane_ended(lane, 7, LaneReport(lane))
    assert controller.run.lanes[lane].state is LaneState.FINISHED


def test_without_progress_the_budget_still_runs_out(mini: Dataset) -> None:
    controller = _controller(mini, FakeClock(), max_attempts=3)
    (lane,) = _start(controller)
    for attempt in (1, 2, 3):
        actions = controller.lane_failed(lane, attempt, FailureKind.LANE_LOST, "killed")
        if attempt < 3:
            controller.retry_due(lane)
            controller.lane_started(lane, attempt + 1)
    assert _of(actions, RecordDead) and controller.run.lanes[lane].state is LaneState.DEAD


def test_events_from_a_replaced_attempt_change_nothing(mini: Dataset) -> None:
    controller = _controller(mini, FakeClock())
    (lane,) = _start(controller)
    controller.lane_failed(lane, 1, FailureKind.LANE_SILENT, "quiet")
    controller.retry_due(lane)
    controller.lane_started(lane, 2)
    # The killed first attempt answers late: lost, then "ended".
    assert controller.lane_failed(lane, 1, FailureKind.LANE_LOST, "killed") == []
    assert controller.lane_ended(lane, 1, LaneReport(lane)) == []
    assert controller.run.lanes[lane].state is LaneState.RUNNING
    assert controller.run.lanes[lane].failures == 1


def test_rows_win_over_a_failure(mini: Dataset) -> None:
    controller = _controller(mini, FakeClock())
    (lane,) = _start(controller)
    _deliver(controller, lane)
    actions = controller.lane_failed(lane, 1, FailureKind.LANE_LOST, "killed after its last row")
    assert controller.run.lanes[lane].state is LaneState.FINISHED
    assert not _of(actions, RetryLater) and _of(actions, Finalize)


# ---------------------------------------------------------------- sweep and heartbeats
def test_a_silent_lane_is_a_failure_for_the_policy_never_an_instant_death(
    mini: Dataset,
) -> None:
    """Finding 4: silence went straight to DEAD without the policy."""
    clock = FakeClock()
    controller = _controller(mini, clock, heartbeat_s=5, sweep_after_s=60)
    (lane,) = _start(controller)
    clock.now += 59
    assert controller.tick() == []
    clock.now += 2
    actions = controller.tick()
    assert controller.run.lanes[lane].state is LaneState.RETRYING
    assert KillLane(lane) in actions and _of(actions, RetryLater)
    assert not _of(actions, RecordDead)
    reason = controller.run.lanes[lane].reason or ""
    assert reason.startswith("lane_silent: no heartbeat for 61 s") and "sweep_after_s=60" in reason


def test_heartbeats_keep_a_lane_with_a_long_case_alive(mini: Dataset) -> None:
    clock = FakeClock()
    controller = _controller(mini, clock, heartbeat_s=5, sweep_after_s=60)
    (lane,) = _start(controller)
    for _ in range(60):  # a 300 s case: no row, but a beat every 5 s
        clock.now += 5
        controller.heartbeat(lane, 1)
        assert controller.tick() == []
    assert controller.run.lanes[lane].state is LaneState.RUNNING
    controller.heartbeat(lane, 99)  # a beat from another attempt is not this lane's
    clock.now += 61
    assert _of(controller.tick(), RetryLater)


def test_sweep_limit_must_span_several_heartbeats() -> None:
    with pytest.raises(
        ConfigError, match=r"sweep_after_s \(10\.0\).*heartbeat_s=5\.0.*at least 15"
    ):
        _config(heartbeat_s=5, sweep_after_s=10)
    engine = _config().engine
    assert engine.sweep_after_s == 60 and engine.heartbeat_s == 5


# ---------------------------------------------------------------- rows and finalization
def test_rows_are_refused_once_finalization_has_begun(mini: Dataset) -> None:
    """Finding 8a: a killed lane's row could land after finalization read the rows."""
    controller = _controller(mini, FakeClock())
    (lane,) = _start(controller)
    assert controller.accepts_rows
    _deliver(controller, lane)
    controller.lane_ended(lane, 1, LaneReport(lane))
    assert controller.run.status is RunStatus.FINALIZING and not controller.accepts_rows
    controller.finalized(FinalizeOutcome("v", None))
    assert not controller.accepts_rows


def test_a_failed_finalization_stays_finalizing_and_is_retried_on_a_later_tick(
    mini: Dataset,
) -> None:
    """Finding 5: an exception while saving the table marked the run failed for good."""
    clock = FakeClock()
    controller = _controller(mini, clock)
    (lane,) = _start(controller)
    _deliver(controller, lane)
    controller.lane_ended(lane, 1, LaneReport(lane))
    assert controller.tick() == []  # finalization in flight: not started twice
    assert controller.finalize_failed("OperationalError: database is locked") == []
    assert controller.run.status is RunStatus.FINALIZING
    assert "database is locked" in (controller.run.reason or "")
    assert controller.tick() == []
    clock.now += controller.finalize_retry_s
    assert controller.tick() == [Finalize()]
    assert controller.finalized(FinalizeOutcome("v", None))[0].status is RunStatus.COMPLETED


def test_a_finalizing_run_resumes_by_finalizing_without_lanes(mini: Dataset) -> None:
    controller = _controller(mini, FakeClock())
    run = controller.run
    present = {
        (lane.spec.model, lane.spec.rep, c) for lane in run.lanes.values() for c in lane.missing
    }
    resumed = build_run(
        run_id="r", config=run.config, dataset=mini, engine_identity="e", present=present
    )
    resumed.status = RunStatus.FINALIZING
    again = RunController(resumed, FakeClock())
    again.restore({})
    assert not again.needs_lanes
    assert again.begin() == [Finalize()]


# ---------------------------------------------------------------- whole entries and reopening
def test_resume_reopens_a_completed_run_and_revives_its_dead_lanes(mini: Dataset) -> None:
    controller = _controller(mini, FakeClock(), models=2, budget=2)
    run = controller.run
    a, b = run.lanes
    present = {(run.lanes[a].spec.model, 0, c) for c in run.lanes[a].missing}
    resumed = build_run(
        run_id="r", config=run.config, dataset=mini, engine_identity="e", present=present
    )
    resumed.status = RunStatus.COMPLETED
    again = RunController(resumed, FakeClock())
    again.restore({b: "sandbox_unavailable: no engine"})
    assert resumed.lanes[a].state is LaneState.FINISHED
    assert resumed.lanes[b].state is LaneState.DEAD
    actions = again.reopen()
    assert actions[0] == ForgetDead()
    assert _of(actions, SetStatus)[0].status is RunStatus.RUNNING and again.accepts_rows
    begin = again.begin()
    assert begin[:2] == [RemoveSandboxes(None), _of(begin, LaneMoved)[0]]
    assert _of(begin, SpawnLane) == [SpawnLane(b, 1)]
    again.lane_started(b, 1)
    _deliver(again, b)
    assert _of(again.lane_ended(b, 1, LaneReport(b)), Finalize)
    assert resumed.dead_entries() == []


def test_reopening_needs_a_completed_run_with_dead_lanes(mini: Dataset) -> None:
    controller = _controller(mini, FakeClock())
    with pytest.raises(AutorayError, match="without dead lanes"):
        controller.reopen()


@pytest.mark.parametrize(
    ("status", "dead", "fragment"),
    [
        (RunStatus.RUNNING, 0, None),
        (RunStatus.FINALIZING, 0, None),
        (RunStatus.COMPLETED, 1, None),
        (RunStatus.COMPLETED, 0, "every entry whole"),
        (RunStatus.FAILED, 0, "is failed"),
        (RunStatus.CANCELLED, 2, "is cancelled"),
    ],
)
def test_which_stored_runs_can_resume(status: RunStatus, dead: int, fragment: str | None) -> None:
    error = resume_error("r", status, dead)
    assert (error is None) if fragment is None else (fragment in (error or ""))


# ---------------------------------------------------------------- cancel, fail, waiting
def test_cancel_stops_kills_cleans_and_refuses_what_comes_after(mini: Dataset) -> None:
    controller = _controller(mini, FakeClock(), models=1, budget=2)
    first, second = _start(controller)
    actions = controller.cancel()
    assert actions[0] == StopLanes((first, second))
    assert {KillLane(first), KillLane(second)} <= set(actions)
    assert actions[-2:] == [
        RemoveSandboxes(None),
        SetStatus(RunStatus.CANCELLED, "cancelled by request"),
    ]
    assert {lane.state for lane in controller.run.lanes.values()} == {LaneState.CANCELLED}
    assert not controller.accepts_rows
    assert controller.lane_ended(first, 1, LaneReport(first, stopped=True)) == []
    assert controller.tick() == [] and controller.cancel() == []


def test_a_setup_failure_marks_the_run_failed_and_cleans_up(mini: Dataset) -> None:
    controller = _controller(mini, FakeClock())
    (lane,) = _start(controller)
    actions = controller.fail("placement: not enough containers")
    assert actions == [
        KillLane(lane),
        RemoveSandboxes(None),
        SetStatus(RunStatus.FAILED, "placement: not enough containers"),
    ]
    assert controller.fail("again") == []


def test_a_waiting_run_says_why_in_its_progress(mini: Dataset) -> None:
    controller = _controller(mini, FakeClock())
    controller.waiting("waiting for 1 autoray_container: 0 of 4 free, held by other runs")
    assert "autoray_container" in (controller.run.progress(elapsed_s=1).reason or "")
    controller.begin()
    assert controller.run.progress(elapsed_s=1).reason is None


def test_the_plan_carries_the_chunk_to_case_layout_a_lane_is_given(mini: Dataset) -> None:
    controller = _controller(mini, FakeClock(), budget=2)
    run = controller.run
    ids = [case.id for case in mini.cases]
    for lane in run.lanes.values():
        work = run.lane_work(lane, sim_url=None)
        assert list(work.chunk_cases) == list(lane.spec.chunks)
        for chunk, cases in work.chunk_cases.items():
            assert list(cases) == ids[3 * chunk : 3 * chunk + 3]
        assert lane.missing == {c for cases in work.chunk_cases.values() for c in cases}
