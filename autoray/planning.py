"""Planning a run: chunks of cases, shard lanes, and the live-container budget.

A run has ``entries x repetitions`` lane groups; each group is split into ``shard_count``
lanes, and lane ``s`` works chunks ``s, s+S, s+2S, ...`` in one container for its whole life.
Every lane holds one live container, so a run that cannot give each lane group at least one
lane within the budget is rejected here, before anything starts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from autoray.errors import BudgetExceededError, ConfigError
from autoray.results import ModelKey


def chunk_ranges(case_count: int, chunk_size: int) -> list[range]:
    """Case indices of each chunk: ``chunk_size`` consecutive cases, the last may be shorter."""
    _require_at_least("chunk_size", chunk_size, 1)
    _require_at_least("case_count", case_count, 0)
    return [
        range(start, min(start + chunk_size, case_count))
        for start in range(0, case_count, chunk_size)
    ]


def check_budget(entries: int, repetitions: int, budget: int) -> None:
    """Reject a run that needs more lanes (one live container each) than the budget allows."""
    _require_at_least("entries", entries, 1, "add at least one model entry")
    _require_at_least("repetitions", repetitions, 1)
    _require_at_least("budget", budget, 1)
    needed = entries * repetitions
    if needed > budget:
        raise BudgetExceededError(
            f"this run needs {needed} lanes ({_plural(entries, 'model entry', 'model entries')} "
            f"x {_plural(repetitions, 'repetition', 'repetitions')}) but max_live_containers "
            f"is {budget}; reduce the model entries or repetitions, or raise "
            f"max_live_containers to at least {needed}"
        )


def shard_count(*, chunk_count: int, budget: int, entries: int, repetitions: int) -> int:
    """Lanes per (model, variant, rep): as many as the budget allows, never more than chunks."""
    _require_at_least("chunk_count", chunk_count, 1)
    check_budget(entries, repetitions, budget)
    return min(chunk_count, budget // (entries * repetitions))


def lane_identity(run_id: str, model_id: str, variant: str | None, rep: int, shard: int) -> str:
    """The lane's container name; the chunk is not part of it, so a lane keeps its container."""
    return f"{run_id}:{model_id}:{variant or ''}:{rep}:{shard}"


@dataclass(frozen=True, slots=True)
class LaneSpec:
    run_id: str
    model_id: str
    variant: str | None
    rep: int
    shard: int
    chunks: tuple[int, ...]

    @property
    def identity(self) -> str:
        return lane_identity(self.run_id, self.model_id, self.variant, self.rep, self.shard)

    @property
    def actor_name(self) -> str:
        return "lane:" + self.identity

    @property
    def model(self) -> ModelKey:
        return ModelKey(self.model_id, self.variant)


@dataclass(frozen=True, slots=True)
class Plan:
    case_count: int
    chunk_size: int
    chunk_count: int
    entries: int
    repetitions: int
    budget: int
    shard_count: int
    lanes: tuple[LaneSpec, ...]
    case_ids: tuple[str, ...] = ()

    @property
    def live_containers(self) -> int:
        return len(self.lanes)

    @property
    def chunks_per_lane_min(self) -> int:
        return min((len(lane.chunks) for lane in self.lanes), default=0)

    @property
    def chunks_per_lane_max(self) -> int:
        return max((len(lane.chunks) for lane in self.lanes), default=0)

    def case_range(self, chunk: int) -> range:
        """Case indices (into the dataset's case list) of one chunk."""
        if not 0 <= chunk < self.chunk_count:
            raise ValueError(f"chunk {chunk!r} is outside 0..{self.chunk_count - 1}")
        start = chunk * self.chunk_size
        return range(start, min(start + self.chunk_size, self.case_count))

    def chunk_cases(self, chunk: int) -> tuple[str, ...]:
        """Case ids of one chunk, in dataset order: the one place the chunk -> case layout
        is derived, so a lane and its coordinator can never disagree on it."""
        if len(self.case_ids) != self.case_count:
            raise ValueError("this plan was made without case ids; pass case_ids to plan_run")
        return tuple(self.case_ids[i] for i in self.case_range(chunk))

    def lane_cases(self, lane: LaneSpec) -> dict[int, tuple[str, ...]]:
        """Each chunk of ``lane`` with its case ids."""
        return {chunk: self.chunk_cases(chunk) for chunk in lane.chunks}

    def as_dict(self) -> dict[str, Any]:
        return {
            "case_count": self.case_count,
            "chunk_size": self.chunk_size,
            "chunk_count": self.chunk_count,
            "entries": self.entries,
            "repetitions": self.repetitions,
            "budget": self.budget,
            "shard_count": self.shard_count,
            "lanes": self.live_containers,
            "chunks_per_lane_min": self.chunks_per_lane_min,
            "chunks_per_lane_max": self.chunks_per_lane_max,
            "lane_list": [
                {"identity": lane.identity, "chunks": list(lane.chunks)} for lane in self.lanes
            ],
        }


def plan_run(
    *,
    run_id: str,
    models: Sequence[ModelKey],
    repetitions: int,
    case_count: int,
    chunk_size: int,
    budget: int,
    case_ids: Sequence[str] = (),
) -> Plan:
    """Lay out every lane of a run, ordered by model (as given), then rep, then shard.

    ``case_ids`` (the dataset's cases in order) lets the plan answer which cases a chunk holds.
    """
    _check_plan_inputs(run_id, models, case_count)
    if case_ids and len(case_ids) != case_count:
        raise ConfigError(
            f"case_ids has {len(case_ids)} ids but case_count is {case_count}; pass one id a case"
        )
    chunk_count = len(chunk_ranges(case_count, chunk_size))
    shards = shard_count(
        chunk_count=chunk_count, budget=budget, entries=len(models), repetitions=repetitions
    )
    lanes = tuple(
        LaneSpec(
            run_id, key.model_id, key.variant, rep, shard, tuple(range(shard, chunk_count, shards))
        )
        for key in models
        for rep in range(repetitions)
        for shard in range(shards)
    )
    return Plan(
        case_count,
        chunk_size,
        chunk_count,
        len(models),
        repetitions,
        budget,
        shards,
        lanes,
        tuple(case_ids),
    )


def _check_plan_inputs(run_id: str, models: Sequence[ModelKey], case_count: int) -> None:
    if not run_id:
        raise ConfigError("run_id is empty; give the run an id")
    _require_at_least("case_count", case_count, 1, "the dataset has no cases; check it")
    counts = Counter(ModelKey(*key) for key in models)
    duplicates = sorted(key.label() for key, count in counts.items() if count > 1)
    if duplicates:
        raise ConfigError(
            f"model entries {duplicates!r} appear more than once; each (id, variant) pair may "
            "appear only once in a run"
        )


def _require_at_least(name: str, value: int, minimum: int, fix: str | None = None) -> None:
    if value < minimum:
        raise ConfigError(
            f"{name} must be at least {minimum}, got {value!r}; {fix or f'raise {name}'}"
        )


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"
