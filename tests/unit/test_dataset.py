"""The built-in decider set: its shape, and that every case grades what it claims.

Each reference answer must pass its check and each wrong answer must fail it. Program checks
run here as subprocesses in a temporary directory (a stand-in for the sandbox, enough for
graders that use only python3's standard library and shell tools), replayed through
:func:`autoray.selfcheck.replay_check` so case files and reference steps are in place.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import pytest

from autoray.cases import GoldenCase, load_dataset
from autoray.checks import ProgramCheck, ProgramVerdict, program_files
from autoray.selfcheck import check_case
from autoray.taxonomy import ROUTES, TASK_TYPES

DATASET = load_dataset("builtin:decider")
LOCAL_TIMEOUT_S = 10.0


class LocalProgramRunner:
    """Runs a program check in a fresh temporary directory with a subprocess."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runs = 0

    def run_program(self, check: ProgramCheck, answer: str) -> ProgramVerdict:
        self.runs += 1
        workdir = self.root / f"run-{self.runs}"
        for path, content in program_files(check, answer).items():
            target = workdir / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        workdir.mkdir(exist_ok=True)
        try:
            done = subprocess.run(
                ["bash", "-c", check.command],
                cwd=workdir,
                capture_output=True,
                text=True,
                timeout=LOCAL_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            return ProgramVerdict(False, f"timed out after {LOCAL_TIMEOUT_S}s")
        return ProgramVerdict(done.returncode == 0, (done.stdout + done.stderr)[-800:])


def test_exactly_ten_cases_per_route_and_180_in_all() -> None:
    counts = Counter(case.route for case in DATASET.cases)
    assert {route: counts.get(route, 0) for route in ROUTES} == dict.fromkeys(ROUTES, 10)
    assert len(DATASET.cases) == 180


def test_every_task_type_has_its_file() -> None:
    assert {case.task_type for case in DATASET.cases} == set(TASK_TYPES)


def test_ids_and_prompts_are_unique() -> None:
    ids = [case.id for case in DATASET.cases]
    prompts = [case.prompt.strip() for case in DATASET.cases]
    assert len(set(ids)) == len(ids)
    assert len(set(prompts)) == len(prompts)


@pytest.mark.parametrize("case", DATASET.cases, ids=lambda case: case.id)
def test_reference_passes_and_wrong_answer_fails(case: GoldenCase, tmp_path: Path) -> None:
    result = check_case(case, program_runner=LocalProgramRunner(tmp_path))
    assert result.status == "passed", result.detail


IMPLEMENTATION = [case for case in DATASET.cases if case.task_type == "implementation"]


def test_implementation_has_ten_cases_per_subtask() -> None:
    counts = Counter(case.subtask_type for case in IMPLEMENTATION)
    assert counts == dict.fromkeys(TASK_TYPES["implementation"], 10)


@pytest.mark.parametrize("subtask", TASK_TYPES["implementation"])
def test_implementation_mixes_difficulties_and_languages(subtask: str) -> None:
    cases = [case for case in IMPLEMENTATION if case.subtask_type == subtask]
    assert {case.difficulty for case in cases} == {"easy", "medium", "hard"}
    assert len({case.language for case in cases}) >= 4
    assert sum(isinstance(case.check, ProgramCheck) for case in cases) >= 5


def test_implementation_program_graders_write_the_answer_somewhere() -> None:
    for case in IMPLEMENTATION:
        if isinstance(case.check, ProgramCheck):
            assert case.check.answer_file, f"{case.id}: the grader never sees the answer"
