"""``autoray cases list|check``: output, JSON shape, exit statuses and clean input errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner, Result

from autoray.cli import cases as cases_cli
from autoray.taxonomy import ROUTES


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    cases_cli.register(app)
    return app


def invoke(app: typer.Typer, *args: str) -> Result:
    return CliRunner().invoke(app, ["cases", *args])


def case_data(topic: str, route: str = "debugging/bug_fixing", **extra: Any) -> dict[str, Any]:
    task, subtask = route.split("/")
    data: dict[str, Any] = {
        "id": f"{task}-{subtask}-{topic}",
        "route": route,
        "language": "go",
        "difficulty": "medium",
        "prompt": f"Question about {topic}?",
        "check": {"kind": "exact", "expected": "yes"},
        "reference": {"answer": "yes"},
        "wrong_answer": "no",
    }
    data.update(extra)
    return data


@pytest.fixture
def small_set(tmp_path: Path) -> Path:
    cases = [
        case_data("alpha"),
        case_data("beta", route="debugging/test_repair"),
        case_data("gamma", check={"kind": "program", "command": "true"}),
    ]
    body = {"task_type": "debugging", "cases": cases}
    (tmp_path / "debugging.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    return tmp_path


def test_list_json_fields(app: typer.Typer, small_set: Path) -> None:
    result = invoke(app, "list", "--dataset", str(small_set), "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["id"] for row in rows] == [
        "debugging-bug_fixing-alpha",
        "debugging-bug_fixing-gamma",
        "debugging-test_repair-beta",
    ]
    assert rows[0] == {
        "id": "debugging-bug_fixing-alpha",
        "route": "debugging/bug_fixing",
        "task_type": "debugging",
        "subtask_type": "bug_fixing",
        "language": "go",
        "difficulty": "medium",
        "check": "exact",
    }
    assert rows[1]["check"] == "program"


def test_list_filters_by_route(app: typer.Typer, small_set: Path) -> None:
    result = invoke(app, "list", "--dataset", str(small_set), "--route", "debugging/test_repair")
    assert result.exit_code == 0, result.output
    assert "debugging-test_repair-beta" in result.stdout
    assert "alpha" not in result.stdout
    assert result.stdout.rstrip().endswith("1 cases")


def test_list_table_has_a_header(app: typer.Typer, small_set: Path) -> None:
    result = invoke(app, "list", "--dataset", str(small_set))
    first = result.stdout.splitlines()[0].split()
    assert first == ["id", "route", "language", "difficulty", "check"]


def test_list_bad_route_exits_2_with_choices(app: typer.Typer) -> None:
    result = invoke(app, "list", "--route", "debugging/migration")
    assert result.exit_code == 2
    assert "--route 'debugging/migration' is not a route" in result.stderr
    assert all(route in result.stderr for route in ROUTES)
    assert "Traceback" not in result.output


def test_bad_dataset_exits_2_naming_the_option(app: typer.Typer, tmp_path: Path) -> None:
    for command in ("list", "check"):
        result = invoke(app, command, "--dataset", str(tmp_path / "missing"))
        assert result.exit_code == 2
        assert result.stderr.startswith("error: --dataset:")
        assert "Traceback" not in result.output


def test_invalid_case_file_exits_2_naming_file_and_case(app: typer.Typer, tmp_path: Path) -> None:
    body = {"task_type": "debugging", "cases": [case_data("alpha", extra_field=1)]}
    (tmp_path / "debugging.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    result = invoke(app, "check", "--dataset", str(tmp_path))
    assert result.exit_code == 2
    assert "debugging.yaml" in result.stderr and "'debugging-bug_fixing-alpha'" in result.stderr
    assert "unknown field 'extra_field'" in result.stderr


def test_check_counts_pending_without_failing(app: typer.Typer, small_set: Path) -> None:
    result = invoke(app, "check", "--dataset", str(small_set), "--sandbox", "none")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["route", "cases", "passed", "failed", "pending"]
    assert lines[1].split() == ["debugging/bug_fixing", "2", "1", "0", "1"]
    assert lines[2].split() == ["debugging/test_repair", "1", "1", "0", "0"]
    assert lines[3].split() == ["total", "3", "2", "0", "1"]
    assert "1 cases need a sandbox (pending)" in result.stdout


def test_check_fails_with_exit_1_and_names_the_case(app: typer.Typer, tmp_path: Path) -> None:
    lenient = case_data(
        "loose", check={"kind": "contains_all", "items": ["o"]}, reference={"answer": "of course"}
    )
    body = {"task_type": "debugging", "cases": [case_data("alpha"), lenient]}
    (tmp_path / "debugging.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    result = invoke(app, "check", "--dataset", str(tmp_path))
    assert result.exit_code == 1
    assert "FAILED debugging-bug_fixing-loose: wrong answer passes its check" in result.stdout


def test_check_json(app: typer.Typer, small_set: Path) -> None:
    result = invoke(app, "check", "--dataset", str(small_set), "--sandbox", "none", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["dataset"].startswith(f"{small_set.name}:")
    assert report["total"] == {
        "route": "total",
        "cases": 3,
        "passed": 2,
        "failed": 0,
        "pending": 1,
    }
    statuses = {case["id"]: case["status"] for case in report["cases"]}
    assert statuses["debugging-bug_fixing-gamma"] == "pending"
    assert [route["route"] for route in report["routes"]] == [
        "debugging/bug_fixing",
        "debugging/test_repair",
    ]


def test_builtin_check_has_no_failures(app: typer.Typer) -> None:
    result = invoke(app, "check", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # The default process sandbox replays program checks and agentic cases: nothing is pending.
    assert report["total"]["failed"] == 0
    assert report["total"]["pending"] == 0
    assert report["total"]["passed"] == report["total"]["cases"]
    assert report["dataset"].startswith("decider:")


def test_registered_in_the_real_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "autoray.cli", "cases", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "list" in done.stdout and "check" in done.stdout


def test_check_with_the_process_sandbox_runs_program_checks(
    app: typer.Typer, tmp_path: Path
) -> None:
    grader = {
        "kind": "program",
        "command": 'test "$(cat answer.txt)" = yes',
        "answer_file": "answer.txt",
    }
    cases = [
        case_data("graded", check=grader),
        case_data("lenient", check={**grader, "command": "true"}, reference={"answer": "ok"}),
    ]
    body = {"task_type": "debugging", "cases": cases}
    (tmp_path / "debugging.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    result = invoke(app, "check", "--dataset", str(tmp_path), "--sandbox", "process", "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    statuses = {case["id"]: case["status"] for case in report["cases"]}
    assert statuses == {
        "debugging-bug_fixing-graded": "passed",
        "debugging-bug_fixing-lenient": "failed",
    }
    assert report["total"]["pending"] == 0


def test_check_rejects_an_unknown_sandbox(app: typer.Typer, small_set: Path) -> None:
    result = invoke(app, "check", "--dataset", str(small_set), "--sandbox", "vm")
    assert result.exit_code == 2
    assert "--sandbox 'vm' is not a backend; choose one of none, process, docker" in result.stderr
