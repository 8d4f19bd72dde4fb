"""``autoray db upgrade`` / ``db current`` through typer's CliRunner, on real SQLite files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from autoray.cli import db


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    db.register(app)
    return app


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows}


def test_upgrade_with_the_flag_migrates_and_prints_the_revision(
    cli: typer.Typer, tmp_path: Path
) -> None:
    path = tmp_path / "flag" / "autoray.db"
    url = f"sqlite+aiosqlite:///{path}"
    result = CliRunner().invoke(cli, ["db", "upgrade", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "at revision 0001" in result.stdout
    assert {"runs", "case_results", "routing_tables"} <= _tables(path)
    again = CliRunner().invoke(cli, ["db", "upgrade", "--database-url", url])
    assert again.exit_code == 0 and "at revision 0001" in again.stdout


def test_upgrade_uses_the_environment_when_no_flag_is_given(
    cli: typer.Typer, tmp_path: Path
) -> None:
    path = tmp_path / "env.db"
    env = {"AUTORAY_DATABASE_URL": f"sqlite+aiosqlite:///{path}"}
    result = CliRunner().invoke(cli, ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    assert str(path) in result.stdout
    assert "runs" in _tables(path)


def test_the_flag_wins_over_the_environment(cli: typer.Typer, tmp_path: Path) -> None:
    env = {"AUTORAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'env.db'}"}
    url = f"sqlite+aiosqlite:///{tmp_path / 'flag.db'}"
    result = CliRunner().invoke(cli, ["db", "upgrade", "--database-url", url], env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "flag.db").exists()
    assert not (tmp_path / "env.db").exists()


def test_upgrade_defaults_to_autoray_db_in_the_working_directory(
    cli: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUTORAY_DATABASE_URL", raising=False)
    result = CliRunner().invoke(cli, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "runs" in _tables(tmp_path / "autoray.db")


def test_unsupported_scheme_exits_2_naming_it_without_the_password(
    cli: typer.Typer,
) -> None:
    url = "mysql+aiomysql://admin:s3cret-pw@db.internal/autoray"
    result = CliRunner().invoke(cli, ["db", "upgrade", "--database-url", url])
    assert result.exit_code == 2
    assert "unsupported database URL scheme 'mysql+aiomysql'" in result.stderr
    assert "postgresql+asyncpg://" in result.stderr
    assert "s3cret-pw" not in result.output
    assert "Traceback" not in result.output


def test_malformed_or_empty_url_exits_2(cli: typer.Typer) -> None:
    bad = CliRunner().invoke(cli, ["db", "upgrade", "--database-url", "not a url"])
    empty = CliRunner().invoke(cli, ["db", "upgrade", "--database-url", " "])
    assert bad.exit_code == 2 and "is not a valid URL" in bad.stderr
    assert empty.exit_code == 2 and "--database-url is empty" in empty.stderr


def test_unwritable_sqlite_location_exits_2_with_the_path(cli: typer.Typer, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    url = f"sqlite+aiosqlite:///{blocker / 'sub' / 'autoray.db'}"
    result = CliRunner().invoke(cli, ["db", "upgrade", "--database-url", url])
    assert result.exit_code == 2
    assert "cannot create the directory" in result.stderr
    assert "Traceback" not in result.output


def test_current_reports_none_then_up_to_date(cli: typer.Typer, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
    before = CliRunner().invoke(cli, ["db", "current", "--database-url", url])
    CliRunner().invoke(cli, ["db", "upgrade", "--database-url", url])
    after = CliRunner().invoke(cli, ["db", "current", "--database-url", url])
    assert before.exit_code == 0 and "revision none" in before.stdout
    assert "autoray db upgrade" in before.stdout
    assert after.exit_code == 0 and "revision 0001 (up to date)" in after.stdout
