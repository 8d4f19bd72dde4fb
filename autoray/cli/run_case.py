"""``autoray run-case``: run one golden case against one model entry, outside any benchmark.

The quickest way to see what a model does with a case (its answer prefix, score, cost,
latency) and to debug a case or a provider setting. It uses the config's sandbox backend,
preflighted first, and the simulated farm when the model is simulated (``AUTORAY_SIM_URL``,
else a farm started for the command).
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from autoray.cases import GoldenCase, load_dataset
from autoray.cli._common import fail, print_json
from autoray.config import BenchConfig, ModelEntry, load_config
from autoray.errors import AutorayError, ConfigError
from autoray.providers import create_provider
from autoray.results import CaseOutcome
from autoray.runner import run_case
from autoray.sandbox import create_sandbox, preflight_sandbox
from autoray.settings import Settings


def register(app: typer.Typer) -> None:
    app.command("run-case")(run_case_command)


def run_case_command(
    case_id: Annotated[str, typer.Argument(help="Golden case id (see `autoray cases list`).")],
    config: Annotated[Path, typer.Argument(help="Benchmark config (YAML) with the model.")],
    model: Annotated[str, typer.Option("--model", help="Model id from the config.")],
    variant: Annotated[
        str | None, typer.Option("--variant", help="Variant of the model entry, if any.")
    ] = None,
    rep: Annotated[int, typer.Option("--rep", min=0, help="Repetition index (0-based).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the row as JSON.")] = False,
) -> None:
    """Run one case against one model entry and print its row (score, latency, cost, ...)."""
    try:
        cfg = load_config(config)
        entry = find_model(cfg, model, variant)
        case = load_dataset(cfg.dataset).by_id(case_id)
        preflight_sandbox(cfg.sandbox)
        outcome = _run(cfg, entry, case, rep)
    except AutorayError as exc:
        fail(str(exc))
    row = case_row(entry, case, rep, outcome)
    if as_json:
        print_json(row)
    else:
        typer.echo(render_row(row))


def _run(cfg: BenchConfig, entry: ModelEntry, case: GoldenCase, rep: int) -> CaseOutcome:
    from autoray.providers.simfarm import farm_url_for  # FastAPI and uvicorn load only here

    with ExitStack() as stack:
        simulated = entry.provider == "simulated"
        sim_url = farm_url_for(cfg, Settings.from_env(), stack) if simulated else None
        provider = create_provider(entry, sim_url=sim_url)
        stack.callback(provider.close)
        sandbox = create_sandbox(cfg.sandbox)
        stack.callback(sandbox.destroy)
        sandbox.start(f"run-case:{entry.key.label()}:{case.id}")
        return run_case(
            case,
            provider=provider,
            sandbox=sandbox,
            config=cfg.runner,
            metadata={"rep": str(rep)},
        )


def find_model(cfg: BenchConfig, model_id: str, variant: str | None) -> ModelEntry:
    """The entry for ``--model``/``--variant``; without ``--variant``, the entry that has none,
    or the only entry with that id."""
    same_id = [entry for entry in cfg.models if entry.id == model_id]
    if not same_id:
        known = ", ".join(entry.key.label() for entry in cfg.models)
        raise ConfigError(f"--model {model_id!r} is not in the config; its models: {known}")
    chosen = [entry for entry in same_id if entry.variant == (variant or None)]
    if not chosen and variant is None and len(same_id) == 1:
        chosen = same_id
    if not chosen:
        variants = ", ".join(repr(entry.variant or "(none)") for entry in same_id)
        raise ConfigError(
            f"--variant {variant!r} does not match model {model_id!r}; its variants: {variants}"
            "; pass one with --variant"
        )
    return chosen[0]


def case_row(entry: ModelEntry, case: GoldenCase, rep: int, outcome: CaseOutcome) -> dict[str, Any]:
    return {
        "case_id": case.id,
        "route": case.route,
        "model_id": entry.id,
        "variant": entry.variant,
        "provider": entry.provider,
        "simulated": entry.provider == "simulated",
        "rep": rep,
        **asdict(outcome),
    }


def render_row(row: dict[str, Any]) -> str:
    width = max(len(key) for key in row)
    lines = [f"{key.ljust(width)}  {_show(value)}" for key, value in row.items()]
    if row["simulated"]:
        lines.append("(SIMULATED model: answers come from the simulated farm, not a real model)")
    return "\n".join(lines)


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value).replace("\n", "\\n")
