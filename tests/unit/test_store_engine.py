"""Database URLs: normalisation to the async driver, refusal of others, password redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoray.errors import StoreError
from autoray.store.engine import make_engine, parse_database_url, redact_url, scrub


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("sqlite:///x.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite"),
        ("postgresql://u:p@h/db", "postgresql+asyncpg"),
        ("postgres://u:p@h/db", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u:p@h/db", "postgresql+asyncpg"),
    ],
)
def test_urls_get_the_async_driver(given: str, driver: str) -> None:
    assert parse_database_url(given).drivername == driver


def test_unsupported_scheme_is_named_and_the_password_hidden() -> None:
    with pytest.raises(StoreError) as caught:
        parse_database_url("postgresql+psycopg2://alice:hunter22@db/autoray")
    message = str(caught.value)
    assert "'postgresql+psycopg2'" in message
    assert "alice:***@db" in message
    assert "hunter22" not in message


def test_malformed_url_is_refused_without_echoing_the_password() -> None:
    with pytest.raises(StoreError, match="is not a valid URL") as caught:
        parse_database_url("::alice:hunter22@")
    assert "hunter22" not in str(caught.value)


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        (
            "postgresql+asyncpg://bob:pa:ss@host:5432/db",
            "postgresql+asyncpg://bob:***@host:5432/db",
        ),
        ("sqlite+aiosqlite:///./autoray.db", "sqlite+aiosqlite:///./autoray.db"),
        ("postgresql://bob@host/db", "postgresql://bob@host/db"),
    ],
)
def test_redact_url_masks_only_the_password(given: str, shown: str) -> None:
    assert redact_url(given) == shown
    assert redact_url(parse_database_url(given)).endswith(shown.split("://", 1)[1])


def test_scrub_removes_the_password_wherever_a_driver_echoed_it() -> None:
    url = "postgresql+asyncpg://bob:topsecret@host/db"
    message = 'connect failed for password "topsecret" at postgresql://bob:topsecret@host/db'
    cleaned = scrub(message, url)
    assert "topsecret" not in cleaned
    assert "bob:***@host" in cleaned


async def test_make_engine_creates_the_sqlite_parent_directory(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "autoray.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        assert path.parent.is_dir()
        assert engine.url.drivername == "sqlite+aiosqlite"
    finally:
        await engine.dispose()


async def test_make_engine_leaves_in_memory_sqlite_alone(tmp_path: Path) -> None:
    engine = make_engine("sqlite+aiosqlite://")
    try:
        assert engine.url.database is None
    finally:
        await engine.dispose()
