"""Every golden case end to end: simulated farm over HTTP, the openai provider, the case runner
and a real sandbox. A model of skill 1.0 must pass every case and one of skill 0.0 fail every
case; anything else means a reference, a wrong answer, a check or the runner is broken.

One sandbox serves all cases, as one lane's does, and latency is 0 to keep this fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from autoray.cases import Dataset, load_dataset
from autoray.config import ModelEntry, PriceConfig, RunnerConfig, SandboxConfig
from autoray.providers import create_provider
from autoray.providers.simfarm import serve_farm
from autoray.results import CaseOutcome
from autoray.runner import run_case
from autoray.sandbox import Sandbox, create_sandbox
from autoray.simulation import passes

PRICE = PriceConfig(input_per_mtok=1.0, output_per_mtok=2.0)
SEED = 11


def _sim(model_id: str, skill: float) -> ModelEntry:
    return ModelEntry(
        id=model_id, provider="simulated", price=PRICE, skill={"default": skill}, latency_ms=0
    )


ORACLE, DUNCE, COIN = _sim("sim/oracle", 1.0), _sim("sim/dunce", 0.0), _sim("sim/coin", 0.5)


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return load_dataset("builtin:decider")


@pytest.fixture(scope="module")
def farm_url(dataset: Dataset) -> Iterator[str]:
    with serve_farm([ORACLE, DUNCE, COIN], dataset, seed=SEED) as url:
        yield url


def _run_all(
    entry: ModelEntry, dataset: Dataset, farm_url: str, sandbox: Sandbox, rep: int = 0
) -> dict[str, CaseOutcome]:
    config = RunnerConfig(case_timeout_s=120, step_timeout_s=60)
    with closing(create_provider(entry, sim_url=farm_url)) as provider:
        return {
            case.id: run_case(
                case, provider=provider, sandbox=sandbox, config=config, metadata={"rep": str(rep)}
            )
            for case in dataset.cases
        }


def _failures(outcomes: dict[str, CaseOutcome], expected: float) -> dict[str, str]:
    return {
        case_id: f"score {o.score}, error {o.error!r}, answer {o.output_prefix[:80]!r}"
        for case_id, o in outcomes.items()
        if o.score != expected
    }


def _assert_all(entry: ModelEntry, dataset: Dataset, farm_url: str, sandbox: Sandbox) -> None:
    expected = 1.0 if entry is ORACLE else 0.0
    outcomes = _run_all(entry, dataset, farm_url, sandbox)
    assert len(outcomes) == len(dataset.cases) > 0
    assert _failures(outcomes, expected) == {}
    assert all(o.error is None and not o.timed_out and not o.retried for o in outcomes.values())
    assert all(o.cost_usd is not None and o.cost_usd > 0 for o in outcomes.values())


@pytest.fixture(scope="module")
def process_sandbox() -> Iterator[Sandbox]:
    sandbox = create_sandbox(SandboxConfig(backend="process", timeout_s=120))
    sandbox.start("test:runner-sim:process")
    yield sandbox
    sandbox.destroy()


@pytest.mark.parametrize("entry", [ORACLE, DUNCE], ids=["skill-1.0", "skill-0.0"])
def test_every_case_through_farm_and_process_sandbox(
    entry: ModelEntry, dataset: Dataset, farm_url: str, process_sandbox: Sandbox
) -> None:
    _assert_all(entry, dataset, farm_url, process_sandbox)


def test_partial_skill_scores_exactly_the_simulated_draws(
    dataset: Dataset, farm_url: str, process_sandbox: Sandbox
) -> None:
    """Skill 0.5 passes exactly the cases whose draw is below 0.5, and is repeatable."""
    cases = dataset.cases[::6]
    subset = Dataset(name="subset", cases=cases, identity="subset:0")
    first = _run_all(COIN, subset, farm_url, process_sandbox, rep=1)
    again = _run_all(COIN, subset, farm_url, process_sandbox, rep=1)
    expected = {case.id: float(passes(COIN.id, None, case.id, 1, SEED, 0.5)) for case in cases}
    assert {case_id: o.score for case_id, o in first.items()} == expected
    assert {case_id: o.score for case_id, o in again.items()} == expected
    assert 0 < sum(expected.values()) < len(cases)


@pytest.mark.docker
@pytest.mark.parametrize("entry", [ORACLE, DUNCE], ids=["skill-1.0", "skill-0.0"])
def test_every_case_through_farm_and_docker_sandbox(
    entry: ModelEntry, dataset: Dataset, farm_url: str, docker_sandbox_config: SandboxConfig
) -> None:
    sandbox = create_sandbox(docker_sandbox_config)
    try:
        sandbox.start(f"test:runner-sim:docker:{entry.id}")
        _assert_all(entry, dataset, farm_url, sandbox)
    finally:
        sandbox.destroy()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AUTORAY_SIM_URL"}
    return subprocess.run(
        [sys.executable, "-m", "autoray.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


@pytest.fixture(scope="module")
def cli_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("run-case") / "config.yaml"
    path.write_text(
        "name: run-case-test\nsandbox: {backend: process}\nmodels:\n"
        "  - {id: sim/oracle, variant: v1, provider: simulated, skill: {default: 1.0},\n"
        "     price: {input_per_mtok: 1.0, output_per_mtok: 2.0}}\n"
    )
    return path


def test_run_case_cli_prints_the_row_as_json(dataset: Dataset, cli_config: Path) -> None:
    case = next(case for case in dataset.cases if case.offers_tools)
    result = _cli(
        "run-case", case.id, str(cli_config), "--model", "sim/oracle", "--rep", "2", "--json"
    )
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert (row["case_id"], row["route"], row["rep"]) == (case.id, case.route, 2)
    assert (row["model_id"], row["variant"], row["simulated"]) == ("sim/oracle", "v1", True)
    assert (row["score"], row["error"], row["timed_out"]) == (1.0, None, False)
    assert row["cost_usd"] > 0 and row["input_tokens"] > 0


def test_run_case_cli_table_labels_the_simulated_model(dataset: Dataset, cli_config: Path) -> None:
    result = _cli("run-case", dataset.cases[0].id, str(cli_config), "--model", "sim/oracle")
    assert result.returncode == 0, result.stderr
    assert "score" in result.stdout and "SIMULATED model" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("no-such-case", "--model", "sim/oracle"), "no case 'no-such-case'"),
        (("CASE", "--model", "sim/nobody"), "--model 'sim/nobody' is not in the config"),
        (("CASE", "--model", "sim/oracle", "--variant", "v9"), "its variants: 'v1'"),
    ],
)
def test_run_case_cli_bad_input_exits_2_without_traceback(
    dataset: Dataset, cli_config: Path, args: tuple[str, ...], message: str
) -> None:
    args = tuple(dataset.cases[0].id if arg == "CASE" else arg for arg in args)
    result = _cli("run-case", args[0], str(cli_config), *args[1:])
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_run_case_cli_unavailable_docker_says_what_to_do(
    dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "docker.yaml"
    config.write_text(
        "name: d\nsandbox: {backend: docker}\nmodels:\n"
        "  - {id: sim/oracle, provider: simulated, skill: {default: 1.0},\n"
        "     price: {input_per_mtok: 1.0, output_per_mtok: 2.0}}\n"
    )
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    result = _cli("run-case", dataset.cases[0].id, str(config), "--model", "sim/oracle")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "process" in result.stderr
