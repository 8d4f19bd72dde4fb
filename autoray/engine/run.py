"""What the run controller holds about a run and its lanes, and what a lane actor is given.

The database is the truth that outlives a cluster; this is the live view built from it: a
run's config, dataset and plan, each lane's state machine, attempts, last sign of life and the
cases it still lacks. Nothing here touches Ray: the handles that only make sense while a
cluster runs (placement group, actors, tasks) stay in the coordinator.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from autoray.cases import Dataset
from autoray.config import BenchConfig, ModelEntry, RunnerConfig, SandboxConfig
from autoray.engine.policy import FailurePolicy
from autoray.engine.progress import RunProgress
from autoray.engine.states import LaneState, RunStatus
from autoray.planning import LaneSpec, Plan, plan_run
from autoray.results import CaseResult, ModelKey

EntryKey = tuple[ModelKey, int]
"""A (model entry, repetition): the unit that enters the published table whole or not at all."""


def entry_label(entry: EntryKey) -> str:
    return f"{entry[0].label()} rep {entry[1]}"


@dataclass(frozen=True)
class LaneWork:
    """Everything a lane actor needs besides its spec and the dataset."""

    model: ModelEntry
    sandbox: SandboxConfig
    runner: RunnerConfig
    chunk_cases: Mapping[int, tuple[str, ...]]
    attempt: int = 1
    heartbeat_s: float = 5.0
    sim_url: str | None = None


@dataclass
class LaneReport:
    """What a lane actor says when its ``run`` returns."""

    identity: str
    chunks_run: list[int] = field(default_factory=list)
    cases_run: int = 0
    stopped: bool = False
    destroy_failed: bool = False


@dataclass
class Lane:
    """One lane's live state: its state machine and the cases it still lacks."""

    spec: LaneSpec
    bundle: int
    missing: set[str]
    state: LaneState = LaneState.PENDING
    attempts: int = 0
    failures: int = 0
    last_heard: float = 0.0
    chunks_run: list[int] = field(default_factory=list)
    reason: str | None = None

    @property
    def identity(self) -> str:
        return self.spec.identity

    @property
    def entry(self) -> EntryKey:
        return (self.spec.model, self.spec.rep)

    def as_dict(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "identity": spec.identity,
            "actor_name": spec.actor_name,
            "model_id": spec.model_id,
            "variant": spec.variant,
            "rep": spec.rep,
            "shard": spec.shard,
            "chunks": list(spec.chunks),
            "chunks_run": list(self.chunks_run),
            "state": self.state.value,
            "attempts": self.attempts,
            "failures_since_row": self.failures,
            "missing": len(self.missing),
            "reason": self.reason,
        }


@dataclass
class RunState:
    run_id: str
    config: BenchConfig
    dataset: Dataset
    plan: Plan
    engine_identity: str
    lanes: dict[str, Lane]
    started_at: datetime = field(default_factory=lambda: now())
    cases_done: int = 0
    errors: int = 0
    status: RunStatus = RunStatus.RUNNING
    reason: str | None = None
    waiting: str | None = None
    table_version: str | None = None
    cancel_requested: bool = False
    resumed_rows: int | None = None
    deliveries: Counter[str] = field(default_factory=Counter)
    lane_of_case: dict[tuple[ModelKey, int, str], str] = field(default_factory=dict)

    @property
    def cases_total(self) -> int:
        return self.plan.case_count * self.plan.entries * self.plan.repetitions

    @property
    def policy(self) -> FailurePolicy:
        engine = self.config.engine
        return FailurePolicy(engine.max_attempts, engine.backoff_base_s, engine.backoff_max_s)

    def lane_counts(self) -> dict[str, int]:
        return dict(Counter(lane.state.value for lane in self.lanes.values()))

    def dead_entries(self) -> list[EntryKey]:
        """Entries with a dead lane that still lacks rows, in plan order: they stay out of the
        published table. A lane given up whose last rows arrived after its death (a late
        delivery from the killed process) left its entry whole, so it is kept."""
        dead = [
            lane.entry
            for lane in self.lanes.values()
            if lane.state is LaneState.DEAD and lane.missing
        ]
        return list(dict.fromkeys(dead))

    def progress(self, *, elapsed_s: float) -> RunProgress:
        return RunProgress(
            run_id=self.run_id,
            status=self.status.value,
            cases_done=self.cases_done,
            cases_total=self.cases_total,
            errors=self.errors,
            lanes_total=len(self.lanes),
            lanes=self.lane_counts(),
            elapsed_s=elapsed_s,
            table_version=self.table_version,
            reason=self.waiting or self.reason,
        )

    def lane_work(self, lane: Lane, *, sim_url: str | None) -> LaneWork:
        return LaneWork(
            model=next(m for m in self.config.models if m.key == lane.spec.model),
            sandbox=self.config.sandbox,
            runner=self.config.runner,
            chunk_cases=self.plan.lane_cases(lane.spec),
            attempt=lane.attempts,
            heartbeat_s=self.config.engine.heartbeat_s,
            sim_url=sim_url,
        )

    def lane_for(self, result: CaseResult) -> Lane | None:
        identity = self.lane_of_case.get((result.model, result.rep, result.case_id))
        return None if identity is None else self.lanes[identity]


def build_run(
    *,
    run_id: str,
    config: BenchConfig,
    dataset: Dataset,
    engine_identity: str,
    present: Collection[tuple[ModelKey, int, str]] = (),
) -> RunState:
    """The live view of a run from its config, dataset and the rows already stored
    (``present``: the (model, rep, case id) keys that have a row)."""
    plan = plan_run(
        run_id=run_id,
        models=config.model_keys,
        repetitions=config.repetitions,
        case_count=len(dataset.cases),
        chunk_size=config.chunk_size,
        budget=config.max_live_containers,
        case_ids=[case.id for case in dataset.cases],
    )
    run = RunState(run_id, config, dataset, plan, engine_identity, lanes={})
    for bundle, spec in enumerate(plan.lanes):
        cases = {case_id for ids in plan.lane_cases(spec).values() for case_id in ids}
        for case_id in cases:
            run.lane_of_case[(spec.model, spec.rep, case_id)] = spec.identity
        missing = {c for c in cases if (spec.model, spec.rep, c) not in present}
        run.lanes[spec.identity] = Lane(spec, bundle, missing)
    run.cases_done = len(set(present) & run.lane_of_case.keys())
    return run


def now() -> datetime:
    return datetime.now(UTC)


def new_run_id(name: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)[:24] or "run"
    return f"{safe}-{now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def outcome_label(result: CaseResult) -> str:
    if result.outcome.error is not None:
        return "error"
    return "pass" if result.outcome.score >= 1 else "fail"
