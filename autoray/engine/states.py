"""Lane and run state machines: the one place that says which moves are allowed.

A lane is one shard of one (model, variant, repetition). Its life is an explicit state machine
so that the run controller can be driven step by step in tests:

    PENDING -> STARTING -> RUNNING -> FINISHED
       ^          ^   \\       |
       |          |    \\      v  (infrastructure failure or silence, policy says retry)
       |       RETRYING <-----+
       |                      |  (policy says give up: retries since the last row ran out)
       |                      v
       +------- REVIVE ----- DEAD

``CANCELLED`` is reachable from every non-terminal state. "Rows win over deaths": a lane whose
rows are all present is FINISHED from any state but CANCELLED (``ROWS_COMPLETE``), even DEAD.
A silent lane is a failure like any other (there is no direct path from silence to DEAD):
the sweep of a long-running lane used to kill it outright, although one retry would do.
``REVIVE`` brings a dead lane back when ``autoray bench resume`` reopens a completed run.

A run goes ``running -> finalizing -> completed | failed`` or ``running -> cancelled``.
``finalizing`` is persisted: a run stays there until its table is saved, so a coordinator that
dies or fails mid-way finalizes it again. ``completed -> running`` is the reopening by
``autoray bench resume`` of a run with dead lanes.
"""

from __future__ import annotations

import enum

from autoray.errors import AutorayError


class InvalidTransitionError(AutorayError, RuntimeError):
    """A state machine was asked for a transition it does not allow (a controller bug)."""


class LaneState(enum.StrEnum):
    PENDING = "pending"
    STARTING = "starting"
    RUNNING = "running"
    RETRYING = "retrying"
    FINISHED = "finished"
    DEAD = "dead"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (LaneState.FINISHED, LaneState.DEAD, LaneState.CANCELLED)

    @property
    def active(self) -> bool:
        """A lane with a process that should be heard from (it is swept when silent)."""
        return self in (LaneState.STARTING, LaneState.RUNNING)


class LaneEvent(enum.StrEnum):
    START = "start"
    STARTED = "started"
    COMPLETED = "completed"
    FAILED_RETRY = "failed_retry"
    FAILED_GIVE_UP = "failed_give_up"
    RETRY_DUE = "retry_due"
    REVIVE = "revive"
    CANCEL = "cancel"
    ROWS_COMPLETE = "rows_complete"


_S, _E = LaneState, LaneEvent
_LANE_TRANSITIONS: dict[tuple[LaneState, LaneEvent], LaneState] = {
    (_S.PENDING, _E.START): _S.STARTING,
    (_S.STARTING, _E.STARTED): _S.RUNNING,
    (_S.STARTING, _E.FAILED_RETRY): _S.RETRYING,
    (_S.STARTING, _E.FAILED_GIVE_UP): _S.DEAD,
    (_S.RUNNING, _E.COMPLETED): _S.FINISHED,
    (_S.RUNNING, _E.FAILED_RETRY): _S.RETRYING,
    (_S.RUNNING, _E.FAILED_GIVE_UP): _S.DEAD,
    (_S.RETRYING, _E.RETRY_DUE): _S.STARTING,
    (_S.DEAD, _E.REVIVE): _S.PENDING,
}


def lane_transition(state: LaneState, event: LaneEvent) -> LaneState:
    """The one function that moves a lane between states."""
    if event is LaneEvent.ROWS_COMPLETE and state is not LaneState.CANCELLED:
        return LaneState.FINISHED
    if event is LaneEvent.CANCEL and not state.terminal:
        return LaneState.CANCELLED
    try:
        return _LANE_TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransitionError(
            f"lane cannot go from {state.value!r} on event {event.value!r}"
        ) from None


class RunStatus(enum.StrEnum):
    """Run statuses, all persisted."""

    RUNNING = "running"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


_RUN_TRANSITIONS: frozenset[tuple[RunStatus, RunStatus]] = frozenset(
    {
        (RunStatus.RUNNING, RunStatus.FINALIZING),
        (RunStatus.RUNNING, RunStatus.FAILED),
        (RunStatus.RUNNING, RunStatus.CANCELLED),
        (RunStatus.FINALIZING, RunStatus.COMPLETED),
        (RunStatus.FINALIZING, RunStatus.FAILED),
        (RunStatus.FINALIZING, RunStatus.RUNNING),
        (RunStatus.COMPLETED, RunStatus.RUNNING),
    }
)


def run_transition(current: RunStatus, target: RunStatus) -> RunStatus:
    if (current, target) not in _RUN_TRANSITIONS:
        raise InvalidTransitionError(f"run cannot go from {current.value!r} to {target.value!r}")
    return target


def all_lanes_terminal(states: dict[str, LaneState]) -> bool:
    return all(state.terminal for state in states.values())
