"""``autoray db`` and ``autoray table show`` through typer's CliRunner, on real SQLite files."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer
from typer.testing import CliRunner

from autoray.cli import db, table
from autoray.results import ModelKey
from autoray.store import open_store, repo, upgrade_async
from autoray.summaries import RouteSummary
from autoray.table import RoutingTable, build_table, routing_table_schema
from autoray.taxonomy import ROUTES


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
    assert "at revision 0002" in result.stdout
    assert {"runs", "case_results", "routing_tables"} <= _tables(path)
    again = CliRunner().invoke(cli, ["db", "upgrade", "--database-url", url])
    assert again.exit_code == 0 and "at revision 0002" in again.stdout


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
    assert after.exit_code == 0 and "revision 0002 (up to date)" in after.stdout


# --- autoray table show --json: the documented format ----------------------------------


@pytest.fixture
def table_cli() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    table.register(app)
    return app


def _real_table(run_id: str) -> RoutingTable:
    """A table built by the ranking from summaries, as a run's finalisation builds one."""
    models = [ModelKey("sim/a", None), ModelKey("sim/b", "fast"), ModelKey("sim/c", None)]
    skill = {models[0]: (0.92, 0.004), models[1]: (0.74, 0.0005), models[2]: (0.3, 0.0001)}
    summaries = [
        RouteSummary(run_id, m.model_id, m.variant, route, acc, cost, 120.0, 900.0, 10, 0, 0)
        for route in ROUTES
        for m, (acc, cost) in skill.items()
    ]
    return build_table(
        summaries=summaries,
        run_id=run_id,
        models=models,
        dataset_identity="builtin:decider@abc",
        min_accuracy=0.7,
        switch_cost_factor=3.0,
        generated_at="2025-05-01T00:00:00+00:00",
        context_lengths={models[0]: 128000},
    )


async def _publish(url: str, built: RoutingTable) -> None:
    await upgrade_async(url)
    store = open_store(url)
    try:
        async with store.session() as s:
            await repo.save_table(s, table=built)
            await repo.activate_table(s, version=built.version)
    finally:
        await store.close()


def _show_json(app: typer.Typer, url: str) -> Any:
    result = CliRunner().invoke(app, ["table", "show", "--json", "--database-url", url])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_table_show_json_of_a_published_table_validates_against_the_schema(
    table_cli: typer.Typer, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'show.db'}"
    built = _real_table("run-1")
    asyncio.run(_publish(url, built))
    shown = _show_json(table_cli, url)
    jsonschema.validate(shown, routing_table_schema())
    assert shown["schema_version"] == 1 and shown["version"] == built.version
    assert shown["best_accuracy_gap"] == 0.05
    assert shown["provenance"]["run_id"] == "run-1"
    assert [c["model_id"] for c in shown["routes"][ROUTES[0]]] == ["sim/b", "sim/a", "sim/c"]
    assert RoutingTable.from_dict(shown) == built


def test_the_schema_file_ships_in_the_package_and_allows_newer_fields() -> None:
    schema = routing_table_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is True
    assert schema["properties"]["provenance"]["additionalProperties"] is True
    assert schema["$defs"]["candidate"]["additionalProperties"] is True
    newer = _real_table("run-2").as_dict()
    newer["served_by"] = "a newer writer"
    newer["routes"][ROUTES[0]][0]["p99_latency_ms"] = 1500.0
    jsonschema.validate(newer, schema)
    assert RoutingTable.from_dict(newer) == _real_table("run-2")


def test_table_show_prints_the_settings_and_provenance(
    table_cli: typer.Typer, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'text.db'}"
    asyncio.run(_publish(url, _real_table("run-9")))
    result = CliRunner().invoke(table_cli, ["table", "show", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "best_accuracy_gap 0.05" in result.stdout
    assert "run run-9" in result.stdout and "dataset builtin:decider@abc" in result.stdout
