"""``autoray plan``: show how a run would be laid out in lanes, before anything starts.

Either from numbers (``--models N --repetitions R --budget B``) or from a config file, whose
model list, repetitions, chunk size and ``max_live_containers`` are used; flags given next to
a config override its values, to try a different budget without editing the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from autoray.cli._common import fail, print_json
from autoray.config import load_config, resolve_dataset_spec
from autoray.errors import AutorayError
from autoray.planning import LaneSpec, Plan, plan_run
from autoray.results import ModelKey

DEFAULT_CASE_COUNT = 180
"""Size of the built-in decider set (18 routes x 10 cases); used until a loader is present."""
DEFAULT_CHUNK_SIZE = 5
DEFAULT_REPETITIONS = 1
DEFAULT_BUDGET = 100
PREVIEW_RUN_ID = "plan"
LANES_SHOWN = 5
_CHUNKS_SHOWN = 6


@dataclass(frozen=True, slots=True)
class _PlanInputs:
    models: list[ModelKey]
    repetitions: int
    budget: int
    case_count: int
    chunk_size: int


@dataclass(frozen=True, slots=True)
class _Overrides:
    models: int | None
    repetitions: int | None
    budget: int | None
    cases: int | None
    chunk_size: int | None


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_command)


def plan_command(
    config: Annotated[
        Path | None, typer.Argument(help="Benchmark config (YAML); omit to plan from numbers.")
    ] = None,
    models: Annotated[
        int | None, typer.Option("--models", help="Number of model entries (without CONFIG).")
    ] = None,
    repetitions: Annotated[
        int | None, typer.Option("--repetitions", help="Repetitions per model entry [1].")
    ] = None,
    budget: Annotated[
        int | None,
        typer.Option("--budget", help="Live containers allowed (max_live_containers) [100]."),
    ] = None,
    cases: Annotated[int | None, typer.Option("--cases", help="Number of cases [180].")] = None,
    chunk_size: Annotated[
        int | None, typer.Option("--chunk-size", help="Cases per chunk [5].")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """Show the lanes, chunks and live containers a run would use; reject impossible runs."""
    overrides = _Overrides(models, repetitions, budget, cases, chunk_size)
    try:
        inputs = _from_config(config, overrides) if config else _from_flags(overrides)
        plan = plan_run(
            run_id=PREVIEW_RUN_ID,
            models=inputs.models,
            repetitions=inputs.repetitions,
            case_count=inputs.case_count,
            chunk_size=inputs.chunk_size,
            budget=inputs.budget,
        )
    except AutorayError as exc:
        fail(str(exc))
    if as_json:
        print_json(plan.as_dict())
    else:
        typer.echo(render_plan(plan))


def render_plan(plan: Plan) -> str:
    """A short human summary: the numbers, then the first few lanes."""
    lines = [
        f"plan: {plan.entries} model entries x {plan.repetitions} repetitions, "
        f"budget {plan.budget} live containers",
        f"  cases:            {plan.case_count} in {plan.chunk_count} chunks of {plan.chunk_size}",
        f"  shards:           {plan.shard_count} lanes per (model, variant, rep)",
        f"  live containers:  {plan.live_containers} of {plan.budget}",
        f"  chunks per lane:  min {plan.chunks_per_lane_min}, max {plan.chunks_per_lane_max}",
        f"first {min(LANES_SHOWN, len(plan.lanes))} of {len(plan.lanes)} lanes:",
    ]
    lines += [f"  {_render_lane(lane)}" for lane in plan.lanes[:LANES_SHOWN]]
    return "\n".join(lines)


def _render_lane(lane: LaneSpec) -> str:
    chunks = [str(chunk) for chunk in lane.chunks]
    if len(chunks) > _CHUNKS_SHOWN:
        chunks = chunks[: _CHUNKS_SHOWN - 2] + ["...", chunks[-1]]
    return f"{lane.identity}  chunks {', '.join(chunks)} ({len(lane.chunks)})"


def _from_flags(flags: _Overrides) -> _PlanInputs:
    if flags.models is None:
        fail("--models is required without a CONFIG file; pass --models N or a config path")
    _require_positive("models", flags.models)
    width = len(str(flags.models))
    return _PlanInputs(
        models=[ModelKey(f"model-{i:0{width}d}", None) for i in range(1, flags.models + 1)],
        repetitions=_pick(flags.repetitions, DEFAULT_REPETITIONS, "repetitions"),
        budget=_pick(flags.budget, DEFAULT_BUDGET, "budget"),
        case_count=_pick(flags.cases, DEFAULT_CASE_COUNT, "cases"),
        chunk_size=_pick(flags.chunk_size, DEFAULT_CHUNK_SIZE, "chunk-size"),
    )


def _from_config(path: Path, flags: _Overrides) -> _PlanInputs:
    if flags.models is not None:
        fail(
            "--models cannot be used with a CONFIG file: the entries are the config's "
            "'models' list; drop --models or drop the config"
        )
    cfg = load_config(path)
    dataset = resolve_dataset_spec(cfg.dataset, path)
    cases = flags.cases if flags.cases is not None else _dataset_case_count(dataset)
    return _PlanInputs(
        models=cfg.model_keys,
        repetitions=_pick(flags.repetitions, cfg.repetitions, "repetitions"),
        budget=_pick(flags.budget, cfg.max_live_containers, "budget"),
        case_count=_pick(cases, DEFAULT_CASE_COUNT, "cases"),
        chunk_size=_pick(flags.chunk_size, cfg.chunk_size, "chunk-size"),
    )


def _dataset_case_count(spec: str) -> int:
    """Cases in the config's dataset; the built-in size until ``autoray.cases`` is present."""
    try:
        from autoray.cases import load_dataset  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return DEFAULT_CASE_COUNT
    return len(load_dataset(spec).cases)


def _pick(value: int | None, default: int, flag: str) -> int:
    chosen = default if value is None else value
    _require_positive(flag, chosen)
    return chosen


def _require_positive(flag: str, value: int) -> None:
    if value < 1:
        fail(f"--{flag} must be at least 1, got {value!r}; pass a positive number")
