"""The run and table commands as users call them: `autoray bench …` and `autoray table …`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autoray.cli.main import _register, app
from autoray.ranking import Candidate
from autoray.results import ModelKey
from autoray.store import open_store, repo, upgrade_async
from autoray.table import RoutingTable
from autoray.taxonomy import ROUTES

REPO = Path(__file__).resolve().parents[2]


def _table(version: str, first: str) -> RoutingTable:
    other = "sim/b" if first == "sim/a" else "sim/a"
    routes = {
        route: (
            Candidate(first, None, 0.9, 0.001, 10, True),
            Candidate(other, None, 0.5, 0.0001, 10, False),
        )
        for route in ROUTES
    }
    return RoutingTable(version, "2026-11-28T00:00:00+00:00", 0.7, 3.0, routes, "run-1", "d:1")


async def _seed(url: str) -> None:
    await upgrade_async(url)
    store = open_store(url)
    try:
        async with store.session() as s:
            await repo.create_run(
                s,
                run_id="run-1",
                name="seeded",
                config={"name": "seeded"},
                engine_identity="e",
                dataset_identity="d:1",
                models=[ModelKey("sim/a", None), ModelKey("sim/b", None)],
            )
            await repo.set_run_status(s, run_id="run-1", status="completed", table_version="rt-new")
            for table in (_table("rt-old", "sim/b"), _table("rt-new", "sim/a")):
                await repo.save_table(s, table=table)
            await repo.activate_table(s, version="rt-old")
            await repo.activate_table(s, version="rt-new")
    finally:
        await store.close()


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    asyncio.run(_seed(url))
    return url


def invoke(*args: str):
    _register()
    return CliRunner().invoke(app, list(args))


def test_table_show_prints_the_active_table(db: str) -> None:
    result = invoke("table", "show", "--database-url", db)
    assert result.exit_code == 0, result.output
    assert "routing table rt-new" in result.stdout
    assert "1. sim/a" in result.stdout and "meets" in result.stdout and "below" in result.stdout
    as_json = json.loads(invoke("table", "show", "--database-url", db, "--json").stdout)
    assert as_json["version"] == "rt-new"
    assert set(as_json["routes"]) == set(ROUTES)
    first = as_json["routes"]["debugging/bug_fixing"][0]
    assert {"model_id", "variant", "accuracy", "avg_cost_usd", "meets_threshold"} <= set(first)


def test_table_list_and_rollback(db: str) -> None:
    listed = json.loads(invoke("table", "list", "--database-url", db, "--json").stdout)
    assert [(t["version"], t["active"]) for t in listed] == [("rt-new", True), ("rt-old", False)]
    result = invoke("table", "activate", "rt-old", "--database-url", db)
    assert result.exit_code == 0, result.output
    assert "active routing table: rt-old (was rt-new)" in result.stdout
    shown = json.loads(invoke("table", "show", "--database-url", db, "--json").stdout)
    assert shown["version"] == "rt-old"


def test_table_activate_unknown_version_says_how_to_find_one(db: str) -> None:
    result = invoke("table", "activate", "rt-missing", "--database-url", db)
    assert result.exit_code == 2
    assert "rt-missing" in result.stderr and "autoray table list" in result.stderr
    assert "Traceback" not in result.output


def test_table_show_without_any_table(tmp_path: Path) -> None:
    result = invoke("table", "show", "--database-url", f"sqlite+aiosqlite:///{tmp_path}/x.db")
    assert result.exit_code == 2
    assert "no active table" in result.stderr and "autoray bench run" in result.stderr


def test_bench_list_and_status_read_the_database(db: str) -> None:
    runs = json.loads(invoke("bench", "list", "--database-url", db, "--json").stdout)
    assert [(r["run_id"], r["status"], r["table_version"]) for r in runs] == [
        ("run-1", "completed", "rt-new")
    ]
    status = invoke("bench", "status", "run-1", "--database-url", db, "--json")
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["status"] == "completed"
    missing = invoke("bench", "status", "nope", "--database-url", db)
    assert missing.exit_code == 2 and "autoray bench list" in missing.stderr


@pytest.mark.ray
def test_bench_run_then_table_show_as_real_processes(tmp_path: Path) -> None:
    """`autoray bench run` on its own local Ray, then `autoray table show`, as a user runs them."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'autoray.db'}"
    autoray = [sys.executable, "-m", "autoray.cli"]
    run = subprocess.run(
        [
            *autoray,
            "bench",
            "run",
            str(REPO / "examples/small.yaml"),
            "--json",
            "--database-url",
            url,
            "--address",
            "local",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout)
    assert summary["status"] == "completed"
    assert summary["cases"] == 360 and summary["dead_lanes"] == 0
    assert "360/360 cases" in run.stderr  # the progress bar's last line
    shown = subprocess.run(
        [*autoray, "table", "show", "--json", "--database-url", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    table = json.loads(shown.stdout)
    assert table["version"] == summary["table_version"]
    for route, candidates in table["routes"].items():
        expected = "sim/cheap-debugger" if route.startswith("debugging/") else "sim/generalist"
        assert candidates[0]["model_id"] == expected, route


def test_bench_run_rejects_an_impossible_budget_before_starting_ray(tmp_path: Path) -> None:
    config = tmp_path / "big.yaml"
    models = "\n".join(
        f"  - {{id: m{i}, provider: simulated, price: {{input_per_mtok: 1, output_per_mtok: 1}},"
        f" skill: {{default: 1.0}}}}"
        for i in range(3)
    )
    config.write_text(f"name: big\nrepetitions: 2\nmax_live_containers: 5\nmodels:\n{models}\n")
    result = invoke(
        "bench", "run", str(config), "--database-url", f"sqlite+aiosqlite:///{tmp_path}/x.db"
    )
    assert result.exit_code == 2
    assert "6 lanes" in result.stderr and "max_live_containers is 5" in result.stderr
    assert "Traceback" not in result.output
