from __future__ import annotations

from pathlib import Path

import pytest

from actors.driver import absolute_sqlite_url


@pytest.mark.parametrize("scheme", ["sqlite", "sqlite+aiosqlite"])
def test_relative_sqlite_path_is_pinned_to_the_callers_directory(
    scheme: str, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert absolute_sqlite_url(f"{scheme}:///./runs/a.db") == f"{scheme}:///{tmp_path}/runs/a.db"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite+aiosqlite:////var/lib/autoray/a.db",
        "sqlite+aiosqlite:///:memory:",
        "postgresql+asyncpg://autoray@127.0.0.1:5432/autoray",
    ],
)
def test_absolute_memory_and_server_urls_are_left_alone(url: str) -> None:
    assert absolute_sqlite_url(url) == url
