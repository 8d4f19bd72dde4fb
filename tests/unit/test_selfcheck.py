"""Self-check of golden cases: verdicts, pending program checks, and the replay of a run."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from autoray.cases import GoldenCase
from autoray.checks import ProgramCheck, ProgramVerdict, program_files
from autoray.selfcheck import (
    PENDING_DETAIL,
    STAGING_DIR,
    CaseCheck,
    RouteTally,
    check_case,
    replay_check,
    tally_by_route,
)


class SubprocessRunner:
    """A fresh temporary directory per program check, like a clean sandbox."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.workdirs: list[Path] = []

    def run_program(self, check: ProgramCheck, answer: str) -> ProgramVerdict:
        workdir = self.root / f"run-{len(self.workdirs)}"
        self.workdirs.append(workdir)
        workdir.mkdir()
        for path, content in program_files(check, answer).items():
            (workdir / path).parent.mkdir(parents=True, exist_ok=True)
            (workdir / path).write_text(content, encoding="utf-8")
        done = subprocess.run(
            ["bash", "-c", check.command], cwd=workdir, capture_output=True, text=True, timeout=10
        )
        return ProgramVerdict(done.returncode == 0, done.stdout + done.stderr)


def make_case(**changes: Any) -> GoldenCase:
    data: dict[str, Any] = {
        "id": "agentic_execution-tool_usage-sample",
        "route": "agentic_execution/tool_usage",
        "language": "shell",
        "difficulty": "easy",
        "prompt": "Do the thing.",
        "check": {"kind": "exact", "expected": "done"},
        "reference": {"answer": "done"},
        "wrong_answer": "not done",
    }
    data.update(changes)
    return GoldenCase.model_validate(data)


def program_case(command: str, *, steps: list[dict[str, Any]], **check: Any) -> GoldenCase:
    return make_case(
        check={"kind": "program", "command": command, **check},
        reference={"answer": "done", "steps": steps},
    )


def test_text_case_passes_without_a_runner() -> None:
    assert check_case(make_case()) == CaseCheck(
        "agentic_execution-tool_usage-sample", "agentic_execution/tool_usage", "passed"
    )


def test_text_case_failures_say_which_side_is_wrong() -> None:
    broken = make_case(check={"kind": "exact", "expected": "nope"})
    assert check_case(broken).detail == "reference answer fails its check"
    lenient = make_case(check={"kind": "contains_all", "items": ["done"]})
    result = check_case(lenient)
    assert result.status == "failed" and result.detail == "wrong answer passes its check"


def test_text_case_with_files_is_graded_without_a_sandbox() -> None:
    assert check_case(make_case(files={"log.txt": "x"})).status == "passed"


def test_program_case_without_runner_is_pending() -> None:
    case = program_case("true", steps=[])
    assert check_case(case) == CaseCheck(case.id, case.route, "pending", PENDING_DETAIL)


def test_tally_by_route_counts_in_canonical_order() -> None:
    checks = [
        CaseCheck("b", "debugging/bug_fixing", "failed", "x"),
        CaseCheck("a", "implementation/code_generation", "passed"),
        CaseCheck("c", "debugging/bug_fixing", "pending"),
        CaseCheck("d", "debugging/bug_fixing", "passed"),
    ]
    assert tally_by_route(checks) == [
        RouteTally("implementation/code_generation", 1, 1, 0, 0),
        RouteTally("debugging/bug_fixing", 3, 1, 1, 1),
    ]
    assert tally_by_route([]) == []


def test_reference_steps_are_replayed_for_the_reference_only(tmp_path: Path) -> None:
    steps = [
        {"tool": "bash", "command": "mkdir -p out && echo hello > out/greeting.txt"},
        {"tool": "write_file", "path": "notes/todo.txt", "content": "ship it\n"},
        {"tool": "read_file", "path": "notes/todo.txt"},
    ]
    command = "grep -qx hello out/greeting.txt && grep -qx 'ship it' notes/todo.txt"
    runner = SubprocessRunner(tmp_path)
    assert check_case(program_case(command, steps=steps), program_runner=runner).status == "passed"
    assert len(runner.workdirs) == 2


def test_a_check_that_ignores_the_steps_fails_the_case(tmp_path: Path) -> None:
    result = check_case(program_case("true", steps=[]), program_runner=SubprocessRunner(tmp_path))
    assert result.status == "failed" and "wrong answer passes" in result.detail


def test_replay_order_files_then_steps_then_answer_and_grader(tmp_path: Path) -> None:
    steps = [
        {"tool": "bash", "command": "ls -A > listing.txt; cat input.txt > seen.txt"},
        {"tool": "write_file", "path": "solution.py", "content": "from the model's tool call"},
        {"tool": "bash", "command": "cd out 2>/dev/null; false"},
        {"tool": "bash", "command": "pwd > pwd.txt"},
    ]
    grader = (
        "import os\n"
        "listing = open('listing.txt').read().split()\n"
        "assert '.grader' not in listing and 'solution.py' not in listing, listing\n"
        "assert open('seen.txt').read() == 'case file\\n'\n"
        "assert open('solution.py').read() == 'ANSWER = 1\\n'\n"
        "assert open('pwd.txt').read().strip() == os.getcwd()\n"
        f"assert not os.path.exists('{STAGING_DIR}')\n"
    )
    case = make_case(
        files={"input.txt": "case file\n"},
        check={
            "kind": "program",
            "command": "python3 .grader/check.py",
            "files": {".grader/check.py": grader},
            "answer_file": "solution.py",
        },
        reference={"answer": "```python\nANSWER = 1\n```", "steps": steps},
        wrong_answer="```python\nANSWER = 2\n```",
    )
    runner = SubprocessRunner(tmp_path)
    check = replay_check(case, case.reference.steps)
    verdict = runner.run_program(check, case.reference.answer)
    assert verdict.passed, verdict.detail


def test_replay_keeps_the_grader_hidden_and_the_timeout_bounded() -> None:
    case = program_case(
        "sh check.sh", steps=[{"tool": "bash", "command": "true"}], files={"check.sh": "exit 0"}
    )
    check = replay_check(case, case.reference.steps)
    assert "check.sh" not in check.files
    assert f"{STAGING_DIR}/grader/check.sh" in check.files
    assert check.answer_file is None
    assert check.timeout_s == 40.0


def test_replay_refuses_text_checks() -> None:
    with pytest.raises(ValueError, match="replay needs 'program'"):
        replay_check(make_case(), ())
