"""The run controller: every decision the engine makes about a run, as a steppable machine.

The coordinator actor feeds it events (a lane started, sent a heartbeat or a row, ended or
failed; the clock ticked; a user cancelled; finalization finished or failed) and carries out
the actions it returns (spawn or kill a lane, retry it after a delay, record it dead, remove
sandboxes, finalize, persist a status). The controller holds no handle and does no I/O: the
outside world is behind those actions and one port, the clock, so a unit test drives a whole
run, faults included, without Ray, a database or a sleep.

Rules it enforces (issue 9):

* a lost, failed or silent lane is a failure for the policy, retried and only then dead; the
  retry budget counts failures since the lane's last row;
* events from an attempt that is no longer current (a killed actor's late answer) change
  nothing;
* rows are accepted only while the run is ``running``: after finalization has read them, a
  late row would make the stored rows disagree with the published table;
* a run finalizes when every lane is finished or dead, stays ``finalizing`` until its table is
  saved, and retries finalization on the next tick after a failure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from autoray.engine.policy import Action as PolicyAction
from autoray.engine.policy import Decision, FailureKind
from autoray.engine.run import Lane, LaneReport, RunState
from autoray.engine.states import LaneEvent, LaneState, RunStatus, lane_transition, run_transition
from autoray.errors import AutorayError
from autoray.results import CaseResult

Clock = Callable[[], float]
"""Monotonic seconds: the controller's only port to the outside world it reads from."""


@dataclass(frozen=True, slots=True)
class SpawnLane:
    lane: str
    attempt: int


@dataclass(frozen=True, slots=True)
class KillLane:
    lane: str


@dataclass(frozen=True, slots=True)
class StopLanes:
    """Ask lanes to stop after their case in flight and wait a grace period (cancel)."""

    lanes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RetryLater:
    """Call :meth:`RunController.retry_due` for ``lane`` after ``delay_s`` seconds."""

    lane: str
    delay_s: float


@dataclass(frozen=True, slots=True)
class RemoveSandboxes:
    """Remove the sandboxes of one lane, or of the whole run when ``lane`` is None."""

    lane: str | None = None


@dataclass(frozen=True, slots=True)
class RecordDead:
    lane: str
    reason: str
    attempts: int


@dataclass(frozen=True, slots=True)
class ForgetDead:
    """Clear the run's dead-lane records: ``bench resume`` revived those lanes."""


@dataclass(frozen=True, slots=True)
class Finalize:
    """Read the rows, save the table, then call ``finalized`` or ``finalize_failed``."""


@dataclass(frozen=True, slots=True)
class SetStatus:
    status: RunStatus
    reason: str | None
    table_version: str | None = None

    def as_log(self, run_id: str) -> dict[str, Any]:
        """The structured log record of the change."""
        return {
            "event": "run_status",
            "run": run_id,
            "status": self.status.value,
            "reason": self.reason,
            "table_version": self.table_version,
        }


@dataclass(frozen=True, slots=True)
class LaneMoved:
    """A lane transition, for the structured log line and the lane metrics."""

    lane: str
    old: LaneState
    new: LaneState
    event: LaneEvent
    attempt: int
    reason: str | None = None
    decision: Decision | None = None

    def as_log(self, run_id: str) -> dict[str, Any]:
        """The structured log record of the transition, with the policy values behind it."""
        decision = self.decision
        policy = None
        if decision is not None:
            policy = {
                "action": decision.action.value,
                "delay_s": decision.delay_s,
                "failures_since_row": decision.attempt,
                "max_attempts": decision.max_attempts,
            }
        return {
            "event": "lane_transition",
            "run": run_id,
            "lane": self.lane,
            "from": self.old.value,
            "to": self.new.value,
            "on": self.event.value,
            "attempt": self.attempt,
            "reason": self.reason,
            "policy": policy,
        }


EngineAction = (
    SpawnLane
    | KillLane
    | StopLanes
    | RetryLater
    | RemoveSandboxes
    | RecordDead
    | ForgetDead
    | Finalize
    | SetStatus
    | LaneMoved
)


@dataclass(frozen=True, slots=True)
class FinalizeOutcome:
    """What finalization did: the table version it produced (None when nothing was
    publishable) and the run's reason (entries left out, a table saved but not activated)."""

    table_version: str | None
    reason: str | None
    activated: bool = False


@dataclass
class RunController:
    run: RunState
    clock: Clock
    finalize_retry_s: float = 5.0
    _finalizing: bool = field(default=False, init=False)
    _finalize_due: float = field(default=0.0, init=False)

    # ------------------------------------------------------------------ queries
    @property
    def accepts_rows(self) -> bool:
        return self.run.status is RunStatus.RUNNING

    @property
    def needs_lanes(self) -> bool:
        """Whether carrying on needs lane actors (and so a placement group)."""
        return self.run.status is RunStatus.RUNNING and any(
            not lane.state.terminal for lane in self.run.lanes.values()
        )

    # ------------------------------------------------------------------ restoring
    def restore(self, dead: Mapping[str, str]) -> None:
        """Lane states after a restart: complete lanes finished, recorded deaths dead."""
        for lane in self.run.lanes.values():
            if not lane.missing:
                lane.state = LaneState.FINISHED
            elif lane.identity in dead:
                lane.state, lane.reason = LaneState.DEAD, dead[lane.identity]
        self.run.resumed_rows = self.run.cases_done

    def reopen(self) -> list[EngineAction]:
        """``bench resume`` of a finished run with dead lanes: revive them, run again."""
        run = self.run
        dead = [lane for lane in run.lanes.values() if lane.state is LaneState.DEAD]
        if run.status is not RunStatus.COMPLETED or not dead:
            raise AutorayError(
                f"run {run.run_id!r} is {run.status.value} without dead lanes; nothing to revive"
            )
        actions: list[EngineAction] = [ForgetDead()]
        for lane in dead:
            lane.failures = 0
            actions.append(self._move(lane, LaneEvent.REVIVE, reason="revived by bench resume"))
        run.status = run_transition(run.status, RunStatus.RUNNING)
        run.reason = f"reopened by bench resume: {len(dead)} dead lane(s) revived"
        actions.append(SetStatus(RunStatus.RUNNING, run.reason))
        return actions

    # ------------------------------------------------------------------ run-level events
    def begin(self) -> list[EngineAction]:
        """Lanes can be placed now: spawn every lane not done, or finalize if none is left."""
        run = self.run
        run.waiting = None
        if run.status is RunStatus.FINALIZING:
            return self._finalize_now()
        pending = [lane for lane in run.lanes.values() if lane.state is LaneState.PENDING]
        actions: list[EngineAction] = []
        if pending and run.resumed_rows is not None:
            # The lanes of the coordinator before ours died with it, leaving their sandboxes.
            actions.append(RemoveSandboxes(None))
        for lane in pending:
            actions += self._spawn(lane, LaneEvent.START)
        return actions + self._maybe_finalize()

    def waiting(self, message: str) -> None:
        """The run waits for something outside it (containers held by other runs)."""
        self.run.waiting = message

    def fail(self, reason: str) -> list[EngineAction]:
        """The run cannot go on (placement, engine identity, a setup error): mark it failed."""
        run = self.run
        if run.status.terminal:
            return []
        actions: list[EngineAction] = [
            KillLane(lane.identity) for lane in run.lanes.values() if lane.state.active
        ]
        run.status = run_transition(run.status, RunStatus.FAILED)
        run.reason = reason
        return [*actions, RemoveSandboxes(None), SetStatus(RunStatus.FAILED, reason)]

    def cancel(self) -> list[EngineAction]:
        run = self.run
        if run.status is not RunStatus.RUNNING:
            return []
        run.cancel_requested = True
        live = tuple(lane.identity for lane in run.lanes.values() if lane.state.active)
        actions: list[EngineAction] = [StopLanes(live)] if live else []
        for lane in run.lanes.values():
            if not lane.state.terminal:
                actions += [KillLane(lane.identity), self._move(lane, LaneEvent.CANCEL)]
        run.status = run_transition(run.status, RunStatus.CANCELLED)
        run.reason = "cancelled by request"
        return [*actions, RemoveSandboxes(None), SetStatus(RunStatus.CANCELLED, run.reason)]

    def tick(self) -> list[EngineAction]:
        """Sweep silent lanes; retry a finalization that failed."""
        run = self.run
        if run.status is RunStatus.FINALIZING:
            due = not self._finalizing and self.clock() >= self._finalize_due
            return self._finalize_now() if due else []
        if run.status is not RunStatus.RUNNING:
            return []
        limit = run.config.engine.sweep_after_s
        now = self.clock()
        actions: list[EngineAction] = []
        for lane in run.lanes.values():
            silent = now - lane.last_heard
            if lane.state.active and silent > limit:
                detail = f"no heartbeat for {silent:.0f} s (sweep_after_s={limit:g})"
                actions += self._fail(lane, FailureKind.LANE_SILENT, detail)
        return actions

    def finalized(self, outcome: FinalizeOutcome) -> list[EngineAction]:
        run = self.run
        self._finalizing = False
        run.status = run_transition(run.status, RunStatus.COMPLETED)
        run.table_version, run.reason = outcome.table_version, outcome.reason
        return [SetStatus(RunStatus.COMPLETED, run.reason, run.table_version)]

    def finalize_failed(self, error: str) -> list[EngineAction]:
        """The table could not be saved: stay ``finalizing`` and try again after a pause."""
        self._finalizing = False
        self._finalize_due = self.clock() + self.finalize_retry_s
        self.run.reason = f"finalization failed ({error}); retrying in {self.finalize_retry_s:g} s"
        return []

    # ------------------------------------------------------------------ lane events
    def lane_started(self, identity: str, attempt: int) -> list[EngineAction]:
        lane = self._current(identity, attempt)
        if lane is None or lane.state is not LaneState.STARTING:
            return []
        lane.last_heard = self.clock()
        return [self._move(lane, LaneEvent.STARTED)]

    def heartbeat(self, identity: str, attempt: int) -> None:
        lane = self._current(identity, attempt)
        if lane is not None:
            lane.last_heard = self.clock()

    def row_recorded(self, result: CaseResult, *, inserted: bool) -> None:
        """A row was offered and persisted (``inserted``) or already there."""
        run = self.run
        run.deliveries["inserted" if inserted else "duplicate"] += 1
        lane = run.lane_for(result)
        if not inserted or lane is None:
            return
        run.cases_done += 1
        run.errors += result.outcome.error is not None
        lane.missing.discard(result.case_id)
        lane.failures = 0  # progress: the retry budget starts again
        if lane.state.active:
            lane.last_heard = self.clock()

    def lane_ended(self, identity: str, attempt: int, report: LaneReport) -> list[EngineAction]:
        """The lane's ``run`` returned: finished if its rows are all there, else a failure."""
        lane = self._current(identity, attempt)
        if lane is None:
            return []
        lane.chunks_run.extend(report.chunks_run)
        if not lane.missing:
            return self._finish(lane)
        detail = f"lane ended with {len(lane.missing)} case(s) still without a row"
        return self._fail(lane, FailureKind.LANE_ERROR, detail)

    def lane_failed(
        self, identity: str, attempt: int, kind: FailureKind, detail: str
    ) -> list[EngineAction]:
        lane = self._current(identity, attempt)
        if lane is None:
            return []
        if not lane.missing:  # rows win over deaths
            return self._finish(lane)
        return self._fail(lane, kind, detail)

    def retry_due(self, identity: str) -> list[EngineAction]:
        lane = self.run.lanes[identity]
        if lane.state is not LaneState.RETRYING or self.run.status is not RunStatus.RUNNING:
            return []
        return [RemoveSandboxes(identity), *self._spawn(lane, LaneEvent.RETRY_DUE)]

    # ------------------------------------------------------------------ internals
    def _current(self, identity: str, attempt: int) -> Lane | None:
        """The lane, if ``attempt`` is its attempt in flight; None for a stale event."""
        lane = self.run.lanes.get(identity)
        if lane is None or not lane.state.active or lane.attempts != attempt:
            return None
        return lane

    def _spawn(self, lane: Lane, event: LaneEvent) -> list[EngineAction]:
        lane.attempts += 1
        lane.last_heard = self.clock()
        return [self._move(lane, event), SpawnLane(lane.identity, lane.attempts)]

    def _finish(self, lane: Lane) -> list[EngineAction]:
        moved = self._move(lane, LaneEvent.ROWS_COMPLETE)
        return [moved, KillLane(lane.identity), *self._maybe_finalize()]

    def _fail(self, lane: Lane, kind: FailureKind, detail: str) -> list[EngineAction]:
        lane.failures += 1
        decision = self.run.policy.decide(attempt=lane.failures, kind=kind, detail=detail)
        lane.reason = decision.reason
        actions: list[EngineAction] = [KillLane(lane.identity)]
        if decision.action is PolicyAction.RETRY:
            moved = self._move(lane, LaneEvent.FAILED_RETRY, decision=decision)
            return [*actions, moved, RetryLater(lane.identity, decision.delay_s)]
        moved = self._move(lane, LaneEvent.FAILED_GIVE_UP, decision=decision)
        dead = RecordDead(lane.identity, decision.reason, lane.attempts)
        return [*actions, moved, dead, RemoveSandboxes(lane.identity), *self._maybe_finalize()]

    def _maybe_finalize(self) -> list[EngineAction]:
        run = self.run
        if run.status is not RunStatus.RUNNING or run.cancel_requested:
            return []
        if not all(lane.state.terminal for lane in run.lanes.values()):
            return []
        run.status = run_transition(run.status, RunStatus.FINALIZING)
        run.reason = None
        return [SetStatus(RunStatus.FINALIZING, None), RemoveSandboxes(None), *self._finalize_now()]

    def _finalize_now(self) -> list[EngineAction]:
        self._finalizing = True
        return [Finalize()]

    def _move(
        self,
        lane: Lane,
        event: LaneEvent,
        *,
        decision: Decision | None = None,
        reason: str | None = None,
    ) -> LaneMoved:
        old = lane.state
        lane.state = lane_transition(old, event)
        if reason is not None:
            lane.reason = reason
        why = lane.reason if decision is not None or reason is not None else None
        return LaneMoved(lane.identity, old, lane.state, event, lane.attempts, why, decision)


def resume_error(run_id: str, status: RunStatus, dead_lanes: int) -> str | None:
    """Why a stored run cannot be resumed, or None when it can."""
    if status in (RunStatus.RUNNING, RunStatus.FINALIZING):
        return None
    if status is RunStatus.COMPLETED and dead_lanes:
        return None
    if status is RunStatus.COMPLETED:
        return (
            f"run {run_id!r} is completed with every entry whole; nothing to resume "
            "(start a new one with `autoray bench run CONFIG`)"
        )
    return (
        f"run {run_id!r} is {status.value}; only a running, finalizing, or completed run with "
        "dead lanes can be resumed (start a new one with `autoray bench run CONFIG`)"
    )
