"""Alembic environment for autoray: migrations run on the async engine via ``run_sync``.

:mod:`autoray.store.migrate` hands over an open connection in ``config.attributes``
(``"connection"``); without one, this file opens its own async engine on
``config.attributes["database_url"]`` (or ``sqlalchemy.url``), so a plain ``alembic`` command
pointed at this directory works too.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from autoray.errors import StoreError
from autoray.store.engine import make_engine, parse_database_url
from autoray.store.models import Base

config = context.config
target_metadata = Base.metadata


def _database_url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise StoreError(
            "no database URL for the migrations; pass --database-url or set AUTORAY_DATABASE_URL"
        )
    return str(url)


def _run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_on_own_engine(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run_migrations)
    finally:
        await engine.dispose()


def _run_offline() -> None:
    context.configure(
        url=parse_database_url(_database_url()),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_migrations(connection)
    else:
        asyncio.run(_run_on_own_engine(_database_url()))


if context.is_offline_mode():
    _run_offline()
else:
    _run_online()
