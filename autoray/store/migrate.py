"""Schema migrations, run programmatically with the migrations shipped inside the package.

The async functions share one connection of an async engine with Alembic (``run_sync``), so a
caller already inside an event loop (the coordinator actor, a test) awaits them; the plain
functions are for synchronous callers such as the CLI.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from autoray.errors import StoreError
from autoray.store.engine import make_engine, open_store, redact_url, scrub

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

T = TypeVar("T")


def alembic_config(database_url: str | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations (no ``alembic.ini`` needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.attributes["database_url"] = database_url
    return config


def head_revision() -> str:
    """The newest revision this version of autoray ships."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the packaged migrations directory has no revisions"
    return head


async def upgrade_async(url: str, revision: str = "head") -> str:
    """Migrate the database at ``url`` up to ``revision``; returns the revision it is now at."""
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade_on, revision)
            current = await connection.run_sync(_current_on)
    except (SQLAlchemyError, OSError) as exc:
        raise _database_error("upgrade", url, exc) from None
    finally:
        await engine.dispose()
    return current or "base"


async def in_migrated_store(url: str, work: Callable[[Any], Awaitable[T]]) -> T:
    """Migrate the database at ``url``, then run ``work(session)`` in one transaction on it.

    For one-off reads and writes outside the coordinator (the CLI, the driver): a fresh
    database answers "nothing yet" rather than "no such table".
    """
    await upgrade_async(url)
    store = open_store(url)
    try:
        async with store.session() as session:
            return await work(session)
    finally:
        await store.close()


async def current_revision_async(url: str) -> str | None:
    """The revision the database is at; ``None`` for an empty (never migrated) database."""
    engine = make_engine(url)
    try:
        return await schema_revision(engine)
    except (SQLAlchemyError, OSError) as exc:
        raise _database_error("read the schema revision of", url, exc) from None
    finally:
        await engine.dispose()


def upgrade(url: str, revision: str = "head") -> str:
    """Synchronous :func:`upgrade_async` (must not be called from a running event loop)."""
    _require_no_running_loop("upgrade", "upgrade_async")
    return asyncio.run(upgrade_async(url, revision))


def current_revision(url: str) -> str | None:
    """Synchronous :func:`current_revision_async`."""
    _require_no_running_loop("current_revision", "current_revision_async")
    return asyncio.run(current_revision_async(url))


async def schema_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(_current_on)


async def check_schema(engine: AsyncEngine) -> str:
    """Fail with the fix unless the database is at :func:`head_revision`, before any query
    meets a missing table."""
    current, head = await schema_revision(engine), head_revision()
    if current == head:
        return current
    url = redact_url(engine.url)
    if current is None or _is_known(current):
        raise StoreError(
            f"database {url!r} is at schema revision {current or 'none (empty)'!r}, "
            f"autoray needs {head!r}; run `autoray db upgrade --database-url {url}`"
        )
    raise StoreError(
        f"database {url!r} is at schema revision {current!r}, unknown to this autoray "
        f"(newest known: {head!r}); it was migrated by a newer autoray, so upgrade autoray"
    )


def _upgrade_on(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    try:
        command.upgrade(config, revision)
    except CommandError as exc:
        raise StoreError(
            f"cannot upgrade to schema revision {revision!r}: {exc}; "
            f"use 'head' or one of: {', '.join(_known_revisions())}"
        ) from None


def _current_on(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _known_revisions() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return sorted(rev.revision for rev in script.walk_revisions())


def _is_known(revision: str) -> bool:
    return revision in _known_revisions()


def _database_error(action: str, url: str, exc: Exception) -> StoreError:
    detail = scrub(str(getattr(exc, "orig", None) or exc), url)
    return StoreError(
        f"cannot {action} the database {redact_url(url)!r}: {detail}; "
        "check that the database is reachable and the URL is right"
    )


def _require_no_running_loop(name: str, async_name: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise StoreError(f"{name}() was called inside a running event loop; await {async_name}()")
