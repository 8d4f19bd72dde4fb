"""``autoray sim serve``: run the SIMULATED model farm in the foreground.

It serves the config's simulated model entries on an OpenAI-compatible endpoint so that other
processes (a Ray cluster, ``ray job submit``, a second shell) can point ``AUTORAY_SIM_URL`` at
one shared farm instead of each starting their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autoray.cases import load_dataset
from autoray.cli._common import fail
from autoray.config import load_config
from autoray.errors import AutorayError

SIM_HELP = (
    "SIMULATOR of model endpoints, for running autoray without real models: an "
    "OpenAI-compatible server whose models are NOT real; they replay golden-case answers "
    "with a configured skill, price and latency."
)


def register(app: typer.Typer) -> None:
    group = typer.Typer(help=SIM_HELP, no_args_is_help=True)
    group.command("serve")(serve_command)
    app.add_typer(group, name="sim")


def serve_command(
    config: Annotated[Path, typer.Argument(help="Benchmark config (YAML) listing the models.")],
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="TCP port to listen on.")
    ] = 8900,
) -> None:
    """Serve the config's simulated models (a SIMULATOR, not real models) until Ctrl-C."""
    from autoray.providers.simfarm import run_farm  # FastAPI and uvicorn load only here

    try:
        cfg = load_config(config)
        models = [entry for entry in cfg.models if entry.provider == "simulated"]
        if not models:
            fail(
                f"config {str(config)!r} has no simulated models; add one with "
                "provider: simulated and a skill mapping, or point at another config"
            )
        dataset = load_dataset(cfg.dataset)
        url = f"http://{host}:{port}/v1"
        typer.echo(
            f"SIMULATED model farm (not real models): {len(models)} model(s), "
            f"{len(dataset)} golden cases, seed {cfg.seed}",
            err=True,
        )
        typer.echo(f"serving at {url}; export AUTORAY_SIM_URL={url} to use it", err=True)
        run_farm(models, dataset, seed=cfg.seed, host=host, port=port)
    except AutorayError as exc:
        fail(str(exc))
