"""Root of the ``autoray`` CLI: registers each command group from its own module."""

from __future__ import annotations

import functools

import typer

app = typer.Typer(
    name="autoray",
    help="autoray: benchmark-driven LLM router (benchmarks on Ray, decisions on Ray Serve).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@functools.cache
def _register() -> None:
    """Attach every command group once (tests and ``main`` may both ask).

    The command modules are imported here, not at the top, so that importing this module builds
    nothing and stays cheap.
    """
    from autoray.cli import bench, cases, classify, db, plan, run_case, serve, sim, table

    for group in (plan, cases, run_case, bench, table, serve, classify, sim, db):
        group.register(app)


def main() -> None:
    _register()
    app()
