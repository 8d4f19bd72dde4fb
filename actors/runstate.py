"""What the coordinator holds in memory about a run and its lanes.

The database is the truth that outlives a cluster; this is the live view built from it (a run's
config, dataset and plan, and each lane's state machine, attempts and last sign of life), plus
the handles that only make sense while the cluster runs (placement group, actors, tasks).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ray.util.placement_group import PlacementGroup

from actors.lane import LaneWork, SandboxFactory
from autoray.cases import Dataset
from autoray.config import BenchConfig
from autoray.lanes import LaneState, RunStatus
from autoray.planning import LaneSpec, Plan, chunk_ranges
from autoray.policy import FailurePolicy
from autoray.progress import RunProgress
from autoray.results import CaseResult


@dataclass
class LaneTrack:
    spec: LaneSpec
    bundle: int
    state: LaneState = LaneState.PENDING
    attempts: int = 0
    actor: Any = None
    last_heard: float = field(default_factory=time.monotonic)
    chunks_run: list[int] = field(default_factory=list)
    reason: str | None = None

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
            "reason": self.reason,
        }


@dataclass
class RunState:
    run_id: str
    config: BenchConfig
    dataset: Dataset
    plan: Plan
    engine_identity: str
    lanes: dict[str, LaneTrack]
    cases_done: int = 0
    errors: int = 0
    started_wall: float = field(default_factory=time.time)
    status: RunStatus = RunStatus.RUNNING
    reason: str | None = None
    table_version: str | None = None
    sim_url: str | None = None
    sandbox_factory: SandboxFactory | None = None
    dataset_ref: Any = None
    pg: PlacementGroup | None = None
    farm: Any = None
    task: asyncio.Task[None] | None = None
    cancel_requested: bool = False
    resumed_rows: int | None = None
    deliveries: Counter[str] = field(default_factory=Counter)

    @property
    def cases_total(self) -> int:
        return self.plan.case_count * self.plan.entries * self.plan.repetitions

    @property
    def policy(self) -> FailurePolicy:
        engine = self.config.engine
        return FailurePolicy(engine.max_attempts, engine.backoff_base_s, engine.backoff_max_s)

    def lane_counts(self) -> dict[str, int]:
        return dict(Counter(lane.state.value for lane in self.lanes.values()))

    def progress(self) -> RunProgress:
        return RunProgress(
            run_id=self.run_id,
            status=self.status.value,
            cases_done=self.cases_done,
            cases_total=self.cases_total,
            errors=self.errors,
            lanes_total=len(self.lanes),
            lanes=self.lane_counts(),
            elapsed_s=time.time() - self.started_wall,
            table_version=self.table_version,
            reason=self.reason,
        )

    def chunk_cases(self, chunks: tuple[int, ...]) -> dict[int, tuple[str, ...]]:
        """Case ids of each chunk, in dataset order (the order planning chunks index)."""
        ranges = chunk_ranges(len(self.dataset.cases), self.config.chunk_size)
        return {c: tuple(self.dataset.cases[i].id for i in ranges[c]) for c in chunks}

    def lane_case_ids(self, spec: LaneSpec) -> set[str]:
        return {case_id for ids in self.chunk_cases(spec.chunks).values() for case_id in ids}

    def lane_work(self, spec: LaneSpec) -> LaneWork:
        return LaneWork(
            model=next(m for m in self.config.models if m.key == spec.model),
            sandbox=self.config.sandbox,
            runner=self.config.runner,
            chunk_cases=self.chunk_cases(spec.chunks),
            sim_url=self.sim_url,
            sandbox_factory=self.sandbox_factory,
        )


def now() -> datetime:
    return datetime.now(UTC)


def new_run_id(name: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)[:24] or "run"
    return f"{safe}-{now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def outcome_label(result: CaseResult) -> str:
    if result.outcome.error is not None:
        return "error"
    return "pass" if result.outcome.score >= 1 else "fail"
