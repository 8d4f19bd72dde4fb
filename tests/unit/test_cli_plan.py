"""``autoray plan``: the summary, the JSON, and clean failures (exit 2, no traceback)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from autoray.cli import plan as plan_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    """An app with only ``plan``; the callback keeps ``plan`` a sub-command, as in the real CLI."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        pass

    plan_cli.register(app)
    return app


def _invoke(app: typer.Typer, *args: str):
    return CliRunner().invoke(app, ["plan", *args])


def test_required_example_json(app: typer.Typer) -> None:
    result = _invoke(app, "--models", "10", "--repetitions", "3", "--budget", "100", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["chunk_count"], data["shard_count"], data["lanes"]) == (36, 3, 90)
    assert data["chunks_per_lane_min"] == data["chunks_per_lane_max"] == 12
    assert data["lane_list"][0]["chunks"] == list(range(0, 36, 3))


def test_readable_summary(app: typer.Typer) -> None:
    result = _invoke(app, "--models", "10", "--repetitions", "3", "--budget", "100")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "10 model entries x 3 repetitions" in out
    assert "180 in 36 chunks of 5" in out
    assert "shards:           3 lanes per (model, variant, rep)" in out
    assert "live containers:  90 of 100" in out
    assert "min 12, max 12" in out
    assert "first 5 of 90 lanes:" in out
    assert "plan:model-01::0:0  chunks 0, 3, 6, 9, ..., 33 (12)" in out
    assert "plan:model-01::1:1  chunks 1, 4, 7, 10, ..., 34 (12)" in out
    assert "model-02" not in out


def test_over_budget_exits_2_with_the_fix(app: typer.Typer) -> None:
    result = _invoke(app, "--models", "21", "--repetitions", "5", "--budget", "100")
    assert result.exit_code == 2
    assert "needs 105 lanes (21 model entries x 5 repetitions)" in result.stderr
    assert "max_live_containers is 100" in result.stderr
    assert "reduce the model entries or repetitions" in result.stderr
    assert result.stdout == "" and "Traceback" not in result.output


def test_defaults_cases_and_chunk_size(app: typer.Typer) -> None:
    result = _invoke(
        app, "--models", "1", "--budget", "4", "--cases", "20", "--chunk-size", "2", "--json"
    )
    data = json.loads(result.stdout)
    assert (data["case_count"], data["chunk_size"], data["chunk_count"]) == (20, 2, 10)
    assert (data["repetitions"], data["shard_count"]) == (1, 4)
    assert (data["chunks_per_lane_min"], data["chunks_per_lane_max"]) == (2, 3)


def test_default_budget_is_100(app: typer.Typer) -> None:
    data = json.loads(_invoke(app, "--models", "25", "--json").stdout)
    assert data["budget"] == 100 and data["shard_count"] == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "--models is required without a CONFIG file"),
        (("--models", "0"), "--models must be at least 1, got 0"),
        (("--models", "2", "--repetitions", "0"), "--repetitions must be at least 1, got 0"),
        (("--models", "2", "--budget", "-3"), "--budget must be at least 1, got -3"),
        (("--models", "2", "--cases", "0"), "--cases must be at least 1, got 0"),
        (("--models", "2", "--chunk-size", "0"), "--chunk-size must be at least 1, got 0"),
    ],
)
def test_bad_numbers_exit_2(app: typer.Typer, args: tuple[str, ...], message: str) -> None:
    result = _invoke(app, *args)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output


def test_plan_from_config(app: typer.Typer) -> None:
    result = _invoke(app, str(EXAMPLES / "small.yaml"), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["entries"], data["repetitions"], data["budget"]) == (2, 1, 8)
    assert data["chunk_count"] == -(-data["case_count"] // 5)
    assert data["shard_count"] == min(4, data["chunk_count"])
    assert data["lanes"] == 2 * data["shard_count"]
    assert data["lane_list"][0]["identity"] == "plan:sim/cheap-debugger::0:0"


def test_flags_override_config(app: typer.Typer) -> None:
    result = _invoke(app, str(EXAMPLES / "demo.yaml"), "--budget", "8", "--cases", "180", "--json")
    data = json.loads(result.stdout)
    assert (data["entries"], data["repetitions"], data["budget"], data["shard_count"]) == (
        4,
        2,
        8,
        1,
    )


def test_config_over_budget_exits_2(app: typer.Typer) -> None:
    result = _invoke(app, str(EXAMPLES / "demo.yaml"), "--budget", "7")
    assert result.exit_code == 2
    assert "needs 8 lanes (4 model entries x 2 repetitions)" in result.stderr


def test_models_flag_with_config_exits_2(app: typer.Typer) -> None:
    result = _invoke(app, str(EXAMPLES / "small.yaml"), "--models", "3")
    assert result.exit_code == 2 and "--models cannot be used with a CONFIG file" in result.stderr


def test_bad_config_exits_2_naming_file_and_field(app: typer.Typer, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nrepetitions: 9\nmodels: []\n")
    result = _invoke(app, str(path))
    assert result.exit_code == 2
    assert str(path) in result.stderr and "repetitions:" in result.stderr
    assert "models:" in result.stderr and "Traceback" not in result.output


def test_missing_config_exits_2(app: typer.Typer, tmp_path: Path) -> None:
    result = _invoke(app, str(tmp_path / "none.yaml"))
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_real_process_entry_point() -> None:
    """``python -m autoray.cli`` wires ``plan`` into the real root app."""
    command = [sys.executable, "-m", "autoray.cli", "plan", "--models", "10", "--repetitions", "3"]
    ok = subprocess.run(
        [*command, "--budget", "100", "--json"], capture_output=True, text=True, timeout=120
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["lanes"] == 90
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "autoray.cli",
            "plan",
            "--models",
            "21",
            "--repetitions",
            "5",
            "--budget",
            "100",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert "105 lanes" in bad.stderr and "Traceback" not in bad.stderr and bad.stdout == ""


def test_unloadable_dataset_exits_2(app: typer.Typer, tmp_path: Path) -> None:
    pytest.importorskip("autoray.cases")
    text = (EXAMPLES / "small.yaml").read_text().replace("builtin:decider", "no-such-cases")
    path = tmp_path / "bench.yaml"
    path.write_text(text)
    result = _invoke(app, str(path))
    assert result.exit_code == 2
    assert str(tmp_path / "no-such-cases") in result.stderr and "Traceback" not in result.output
