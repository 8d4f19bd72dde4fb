"""``autoray classify``: one request, a file of requests, the evaluation, and clean failures
(exit 2 with the file, line and field named, no traceback)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from autoray.classify import default_classifier
from autoray.cli import classify as classify_cli
from autoray.labelled import load_requests
from autoray.taxonomy import ROUTES, TASK_TYPES

REQUESTS = load_requests()


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    """An app with only ``classify``; the callback keeps it a sub-command, as in the real CLI."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        pass

    classify_cli.register(app)
    return app


def _invoke(app: typer.Typer, *args: str) -> Any:
    return CliRunner().invoke(app, ["classify", *args])


def _write_lines(path: Path, lines: list[Any]) -> Path:
    rendered = [line if isinstance(line, str) else json.dumps(line) for line in lines]
    path.write_text("\n".join(rendered) + "\n", encoding="utf-8")
    return path


def test_one_request_prints_route_task_subtask_confidence_and_classifier(
    app: typer.Typer,
) -> None:
    text = "the login form throws a 500 when the email has a plus sign, please fix"
    result = _invoke(app, text)
    assert result.exit_code == 0, result.output
    fields = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    expected = default_classifier().classify(text)
    assert fields["route"] == expected.route
    assert fields["task_type"] == expected.task_type
    assert fields["subtask_type"] == expected.subtask_type
    assert float(fields["confidence"]) == pytest.approx(expected.confidence, abs=0.005)
    assert fields["classifier"] == default_classifier().name


def test_one_request_as_json(app: typer.Typer) -> None:
    result = _invoke(app, "write a regex that matches ISO dates", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["route"] in ROUTES
    assert data["task_type"] in TASK_TYPES and data["route"].startswith(data["task_type"] + "/")
    assert 0 < data["confidence"] <= 1
    assert data["classifier"].startswith("embedded:tfidf-lr")
    assert data["truncated"] is False and data["fallback"] is None
    assert [score["route"] for score in data["top"]][0] == data["route"]


def test_a_long_request_says_it_was_cut(app: typer.Typer) -> None:
    result = _invoke(app, "fix this crash " * 1000)
    assert result.exit_code == 0, result.output
    assert "read: the first 4000 characters (the request was longer)" in result.stdout


def test_file_prints_one_json_object_per_line_in_order(app: typer.Typer, tmp_path: Path) -> None:
    texts = [request.text for request in REQUESTS[::97]]
    lines: list[Any] = [{"text": text} for text in texts]
    lines.insert(2, "")  # blank lines are skipped
    path = _write_lines(tmp_path / "requests.jsonl", lines)
    result = _invoke(app, "--file", str(path), "--json")
    assert result.exit_code == 0, result.output
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    classifier = default_classifier()
    assert [a["route"] for a in answers] == [classifier.classify(t).route for t in texts]
    assert {a["classifier"] for a in answers} == {classifier.name}


def test_file_without_json_prints_a_line_per_request(app: typer.Typer, tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "r.jsonl", [{"text": "add dark mode"}, {"text": "ls -la"}])
    result = _invoke(app, "--file", str(path))
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert len(rows) == 2 and all(row[0] in ROUTES for row in rows)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: invalid JSON"),
        ('["a list"]', 'line 2: expected a JSON object {"text": "..."}, got list'),
        ({"id": 1}, "line 2: missing required field 'text'"),
        ({"text": 42}, "line 2: field 'text' must be a string, got int"),
    ],
)
def test_a_bad_line_names_file_line_and_field(
    app: typer.Typer, tmp_path: Path, line: Any, message: str
) -> None:
    path = _write_lines(tmp_path / "bad.jsonl", [{"text": "fine"}, line])
    result = _invoke(app, "--file", str(path), "--json")
    assert result.exit_code == 2
    assert f"error: {path} {message}" in result.stderr
    assert result.stdout == ""  # nothing printed before the whole file was checked
    assert "Traceback" not in result.output


def test_missing_and_empty_files_are_errors(app: typer.Typer, tmp_path: Path) -> None:
    result = _invoke(app, "--file", str(tmp_path / "nope.jsonl"))
    assert result.exit_code == 2 and "cannot read --file" in result.stderr
    empty = _write_lines(tmp_path / "empty.jsonl", ["", " "])
    result = _invoke(app, "--file", str(empty))
    assert result.exit_code == 2 and "holds no requests" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "nothing to classify; give TEXT, --file REQUESTS.jsonl or --evaluate"),
        (("  ",), "TEXT is empty"),
        (("fix it", "--evaluate"), "give one of TEXT, --file, --evaluate, not TEXT and --evaluate"),
        (("fix it", "--classifier", "bert"), "--classifier 'bert' is not a classifier; valid"),
        (("fix it", "--classifier", "llm"), "--classifier llm needs --config CONFIG.yaml"),
    ],
)
def test_bad_input_exits_2_with_the_fix(app: typer.Typer, args: tuple[str, ...], message: str):
    result = _invoke(app, *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_llm_with_a_model_missing_from_the_config(app: typer.Typer, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "name: c\nmodels:\n  - id: sim/a\n    provider: simulated\n"
        "    price: {input_per_mtok: 1, output_per_mtok: 1}\n    skill: {default: 1}\n",
        encoding="utf-8",
    )
    args = ("fix it", "--classifier", "llm", "--config", str(config), "--model", "sim/b")
    result = _invoke(app, *args)
    assert result.exit_code == 2
    assert "--model 'sim/b' is not in the config" in result.stderr
    result = _invoke(app, *args[:-1], "sim/a", "--timeout", "0")
    assert result.exit_code == 2 and "--timeout 0 must be above 0 seconds" in result.stderr


def _small_set(folder: Path) -> Path:
    """Three routes of the builtin set, written as a labelled set of its own (fast to train)."""
    keep = set(ROUTES[:3])
    lines = [r.model_dump() for r in REQUESTS if r.route in keep]
    folder.mkdir()
    _write_lines(folder / "implementation.jsonl", lines)
    return folder


def test_evaluate_as_json(app: typer.Typer, tmp_path: Path) -> None:
    result = _invoke(app, "--evaluate", "--requests", str(_small_set(tmp_path / "set")), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    evaluated = sum(1 for r in REQUESTS if r.route in ROUTES[:3] and r.split == "eval")
    assert data["eval_requests"] == evaluated
    for name in ("embedded", "baseline"):
        report = data[name]
        low, high = report["interval_95"]
        assert low <= report["accuracy"] <= high
        assert report["correct"] == sum(r["correct"] for r in report["per_route"].values())
        assert sum(map(sum, report["confusion"])) == evaluated
    assert data["embedded"]["classifier"].startswith("embedded:")
    assert data["baseline"]["classifier"].startswith("baseline:")
    gap_low, gap_high = data["difference_interval_95"]
    assert gap_low <= data["difference"] <= gap_high


def test_evaluate_as_text(app: typer.Typer, tmp_path: Path) -> None:
    result = _invoke(app, "--evaluate", "--requests", str(_small_set(tmp_path / "set")))
    assert result.exit_code == 0, result.output
    for expected in (
        "| classifier | route accuracy | 95 % interval |",
        "confusion matrix",
        "routes still confused",
        "embedded - baseline:",
    ):
        assert expected in result.stdout


def test_evaluate_on_a_missing_set_exits_2(app: typer.Typer, tmp_path: Path) -> None:
    result = _invoke(app, "--evaluate", "--requests", str(tmp_path / "nope"))
    assert result.exit_code == 2 and "neither 'builtin' nor an existing" in result.stderr


def test_the_installed_command_classifies(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "autoray.cli", "classify", "add a CSV export button", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["route"] in ROUTES
