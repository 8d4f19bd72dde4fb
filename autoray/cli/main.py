"""Root of the ``autoray`` CLI: registers each command group from its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="autoray",
    help="autoray: benchmark-driven LLM router (benchmarks on Ray, decisions on Ray Serve).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    # Imported here so that building the app never happens at import of a command module.
    from autoray.cli import cases, plan

    plan.register(app)
    cases.register(app)
    from autoray.cli import db

    db.register(app)
    from autoray.cli import bench, table

    bench.register(app)
    table.register(app)
    from autoray.cli import run_case, sim

    run_case.register(app)
    sim.register(app)


def main() -> None:
    _register()
    app()
