"""The benchmark engine's decisions, without Ray: the run controller and what it drives.

* :mod:`~autoray.engine.states` -- lane and run state machines (the allowed moves);
* :mod:`~autoray.engine.policy` -- the failure policy (retry, give up);
* :mod:`~autoray.engine.run` -- the live run and its lanes, what a lane actor is given;
* :mod:`~autoray.engine.progress` -- run progress as users see it;
* :mod:`~autoray.engine.controller` -- the steppable run controller (events in, actions out);
* :mod:`~autoray.engine.finalize` and :mod:`~autoray.engine.stored` -- the database side of
  finalizing and of stored runs (they import the store, so they are not re-exported here and
  importing the controller pulls in no SQLAlchemy).

The coordinator actor (``actors/coordinator.py``) is the shell that carries the actions out.
"""

from autoray.engine.controller import (
    EngineAction,
    FinalizeOutcome,
    RunController,
    resume_error,
)
from autoray.engine.policy import Action, Decision, FailureKind, FailurePolicy, failure_kind
from autoray.engine.progress import RunProgress, format_duration, render_progress
from autoray.engine.run import (
    EntryKey,
    Lane,
    LaneReport,
    LaneWork,
    RunState,
    build_run,
    entry_label,
    new_run_id,
    outcome_label,
)
from autoray.engine.states import (
    InvalidTransitionError,
    LaneEvent,
    LaneState,
    RunStatus,
    lane_transition,
    run_transition,
)

__all__ = [
    "Action",
    "Decision",
    "EngineAction",
    "EntryKey",
    "FailureKind",
    "FailurePolicy",
    "FinalizeOutcome",
    "InvalidTransitionError",
    "Lane",
    "LaneEvent",
    "LaneReport",
    "LaneState",
    "LaneWork",
    "RunController",
    "RunProgress",
    "RunState",
    "RunStatus",
    "build_run",
    "entry_label",
    "failure_kind",
    "format_duration",
    "lane_transition",
    "new_run_id",
    "outcome_label",
    "render_progress",
    "resume_error",
    "run_transition",
]
