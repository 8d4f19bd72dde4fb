"""Engines and sessions, built by factories and never at import.

Two databases are supported: SQLite through ``aiosqlite`` (the embedded default) and
PostgreSQL through ``asyncpg``. ``sqlite://`` and ``postgresql://`` URLs without a driver are
given the async driver, because the store is async throughout.

Nothing here prints a URL as given: :func:`redact_url` masks the password first.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from autoray.errors import StoreError

SQLITE_BUSY_TIMEOUT_MS = 30_000

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}
_SUPPORTED_HINT = (
    "use sqlite+aiosqlite:///path/to/autoray.db or postgresql+asyncpg://user:password@host/db"
)
_USERINFO = re.compile(r"(?P<scheme>[^:/?#]+://)(?P<user>[^:@/]*):[^@/]*@")


def redact_url(url: str | URL) -> str:
    """The URL with any password replaced by ``***``; safe for messages and logs."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    return _USERINFO.sub(r"\g<scheme>\g<user>:***@", url)


def scrub(message: str, url: str) -> str:
    """Remove the URL's password from a message a driver produced (drivers may echo it)."""
    password = _password_of(url)
    message = redact_url(message)
    return message.replace(password, "***") if password else message


def parse_database_url(url: str) -> URL:
    """Parse and normalise a database URL to its async driver, or raise :class:`StoreError`."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise StoreError(
            f"database URL {_redact_unparseable(url)!r} is not a valid URL; {_SUPPORTED_HINT}"
        ) from None
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    if driver is None:
        raise StoreError(
            f"unsupported database URL scheme {parsed.drivername!r} in {redact_url(parsed)!r}; "
            f"{_SUPPORTED_HINT}"
        )
    return parsed.set(drivername=driver)


def make_engine(url: str) -> AsyncEngine:
    """An async engine for ``url``; for a SQLite file, its directory is created if missing."""
    parsed = parse_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _make_sqlite_engine(parsed)
    try:
        return create_async_engine(parsed, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise StoreError(
            f"the database URL {redact_url(parsed)!r} needs the Python package {exc.name!r}; "
            f"install it with `pip install {exc.name}`"
        ) from None


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit (results outlive their transaction)."""
    return async_sessionmaker(engine, expire_on_commit=False)


class Store:
    """An engine and its session factory: the one handle a process keeps on its database.

    ``async with store.session() as s`` opens a transaction that commits when the block ends
    and rolls back if it raises; the repository functions in :mod:`autoray.store.repo` never
    commit by themselves.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._factory = session_factory(engine)

    @property
    def url(self) -> str:
        """The database URL with its password masked."""
        return redact_url(self.engine.url)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._factory() as session, session.begin():
            yield session

    async def close(self) -> None:
        await self.engine.dispose()


def open_store(url: str) -> Store:
    """A :class:`Store` on ``url``; connects lazily, so it does not check the schema."""
    return Store(make_engine(url))


def _make_sqlite_engine(url: URL) -> AsyncEngine:
    _ensure_parent_dir(url)
    engine = create_async_engine(url)
    event.listen(engine.sync_engine, "connect", _configure_sqlite)
    return engine


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers work while the coordinator writes; SQLite enforces FKs only on request."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def _ensure_parent_dir(url: URL) -> None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create the directory for the SQLite database {database!r}: {exc.strerror}; "
            "choose a writable path in the database URL"
        ) from None


def _redact_unparseable(url: str) -> str:
    """Without a parse, anything before the last ``@`` may hold a password: mask all of it."""
    return "***@" + url.rsplit("@", 1)[1] if "@" in url else url


def _password_of(url: str) -> str | None:
    try:
        return make_url(url).password
    except (ArgumentError, ValueError):
        return None
