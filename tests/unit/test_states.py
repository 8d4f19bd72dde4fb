from __future__ import annotations

import pytest

from autoray.engine.states import (
    InvalidTransitionError,
    LaneEvent,
    LaneState,
    RunStatus,
    all_lanes_terminal,
    lane_transition,
    run_transition,
)


def _drive(*events: LaneEvent) -> LaneState:
    state = LaneState.PENDING
    for event in events:
        state = lane_transition(state, event)
    return state


def test_clean_lane_life() -> None:
    assert _drive(LaneEvent.START, LaneEvent.STARTED, LaneEvent.COMPLETED) is LaneState.FINISHED


def test_retry_then_finish() -> None:
    state = _drive(
        LaneEvent.START,
        LaneEvent.STARTED,
        LaneEvent.FAILED_RETRY,
        LaneEvent.RETRY_DUE,
        LaneEvent.STARTED,
        LaneEvent.COMPLETED,
    )
    assert state is LaneState.FINISHED


def test_start_failure_then_give_up_is_dead() -> None:
    assert _drive(LaneEvent.START, LaneEvent.FAILED_GIVE_UP) is LaneState.DEAD


def test_rows_win_over_death() -> None:
    dead = _drive(LaneEvent.START, LaneEvent.FAILED_GIVE_UP)
    assert lane_transition(dead, LaneEvent.ROWS_COMPLETE) is LaneState.FINISHED


def test_cancel_from_any_live_state_but_not_after_the_end() -> None:
    for events in [(), (LaneEvent.START,), (LaneEvent.START, LaneEvent.STARTED)]:
        assert lane_transition(_drive(*events), LaneEvent.CANCEL) is LaneState.CANCELLED
    with pytest.raises(InvalidTransitionError):
        lane_transition(LaneState.FINISHED, LaneEvent.CANCEL)


def test_silence_has_no_direct_path_to_dead() -> None:
    """A swept lane is a failure for the policy (retry, then dead), never an instant death."""
    assert "swept" not in {event.value for event in LaneEvent}
    assert _drive(LaneEvent.START, LaneEvent.STARTED, LaneEvent.FAILED_RETRY) is LaneState.RETRYING


def test_a_dead_lane_is_revived_by_resume_and_starts_again() -> None:
    dead = _drive(LaneEvent.START, LaneEvent.FAILED_GIVE_UP)
    assert lane_transition(dead, LaneEvent.REVIVE) is LaneState.PENDING
    with pytest.raises(InvalidTransitionError):
        lane_transition(LaneState.FINISHED, LaneEvent.REVIVE)


def test_invalid_lane_transition_names_state_and_event() -> None:
    with pytest.raises(InvalidTransitionError, match="'pending'.*'completed'"):
        lane_transition(LaneState.PENDING, LaneEvent.COMPLETED)


def test_run_transitions() -> None:
    status = run_transition(RunStatus.RUNNING, RunStatus.FINALIZING)
    assert run_transition(status, RunStatus.COMPLETED) is RunStatus.COMPLETED
    assert run_transition(RunStatus.RUNNING, RunStatus.CANCELLED).terminal
    assert run_transition(RunStatus.COMPLETED, RunStatus.RUNNING) is RunStatus.RUNNING  # reopen
    with pytest.raises(InvalidTransitionError):
        run_transition(RunStatus.FAILED, RunStatus.RUNNING)
    with pytest.raises(InvalidTransitionError):
        run_transition(RunStatus.CANCELLED, RunStatus.RUNNING)
    with pytest.raises(InvalidTransitionError):
        run_transition(RunStatus.FINALIZING, RunStatus.CANCELLED)


def test_all_lanes_terminal() -> None:
    assert all_lanes_terminal({"a": LaneState.FINISHED, "b": LaneState.DEAD})
    assert not all_lanes_terminal({"a": LaneState.FINISHED, "b": LaneState.RETRYING})
