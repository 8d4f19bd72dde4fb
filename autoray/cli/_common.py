"""Helpers shared by the CLI command modules: one way to fail, one way to print JSON."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import typer

USAGE_ERROR_EXIT = 2


def fail(message: str) -> NoReturn:
    """Report bad input on stderr and exit 2, without a traceback (the message says the fix)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=USAGE_ERROR_EXIT)


def print_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON on stdout, for scripts and ``jq``."""
    typer.echo(json.dumps(obj, indent=2, default=str))
