"""Helpers shared by the CLI command modules: one way to fail, one way to print JSON."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import typer

from autoray.errors import AutorayError

T = TypeVar("T")

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
    from autoray.store import open_store, upgrade_async

    async def _go() -> T:
        await upgrade_async(url)
        store = open_store(url)
        try:
            async with store.session() as session:
                return await work(session)
        finally:
            await store.close()

    try:
        return asyncio.run(_go())
    except AutorayError as err:
        fail(str(err))
