"""Helpers shared by the CLI command modules: one way to fail, one way to print JSON."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from autoray.errors import AutorayError
from autoray.settings import Settings, resolve_database_url

T = TypeVar("T")

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL; else $AUTORAY_DATABASE_URL, else the config's database_url, "
        "else sqlite+aiosqlite:///./autoray.db",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def database_url(flag: str | None) -> str:
    """The URL a command without a config uses: the flag, else the environment, else default."""
    if flag is not None and not flag.strip():
        fail("--database-url is empty; pass a URL such as sqlite+aiosqlite:///./autoray.db")
    return resolve_database_url(flag, Settings.from_env())


USAGE_ERROR_EXIT = 2


def fail(message: str) -> NoReturn:
    """Report bad input on stderr and exit 2, without a traceback (the message says the fix)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=USAGE_ERROR_EXIT)


def print_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON on stdout, for scripts and ``jq``."""
    typer.echo(json.dumps(obj, indent=2, default=str))


def in_store(url: str, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(session)`` in one transaction on the database at ``url``, migrated first.

    Every CLI command that reads or writes the database goes through here, so a fresh database
    answers "nothing yet" rather than "no such table", and a store error is a clean exit 2.
    """
    from autoray.store import in_migrated_store

    try:
        return asyncio.run(in_migrated_store(url, work))
    except AutorayError as err:
        fail(str(err))
