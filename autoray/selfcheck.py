"""Self-check of a golden set: each reference answer passes its check, each wrong answer fails.

Text checks are graded here, completely: their verdict depends on the answer text alone, even
for cases that carry files or tool steps. Program checks need a sandbox; without a
:class:`~autoray.checks.ProgramRunner` they are reported as pending, never as failures. With one,
each side is replayed as a single program check (:func:`replay_check`) in a fresh, empty working
directory: the case files, then (for the reference only) the reference tool steps, then the
answer file and the grader, exactly the order a real run produces them in.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from autoray.cases import BashStep, Dataset, GoldenCase, ToolStep, WriteFileStep
from autoray.checks import ProgramCheck, ProgramRunner, grade_text
from autoray.taxonomy import ROUTES

CaseStatus = Literal["passed", "failed", "pending"]
PENDING_DETAIL = "needs sandbox (pending): program check, no program runner given"
STAGING_DIR = ".selfcheck"
_SECONDS_PER_STEP = 10.0
_MAX_TIMEOUT_S = 600.0


@dataclass(frozen=True, slots=True)
class CaseCheck:
    """The self-check verdict of one case; ``detail`` says what went wrong."""

    case_id: str
    route: str
    status: CaseStatus
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RouteTally:
    route: str
    cases: int = 0
    passed: int = 0
    failed: int = 0
    pending: int = 0


def check_case(case: GoldenCase, *, program_runner: ProgramRunner | None = None) -> CaseCheck:
    """Reference must pass and wrong answer must fail; program checks need ``program_runner``."""
    check = case.check
    if not isinstance(check, ProgramCheck):
        return _verdict(
            case, grade_text(check, case.reference.answer), grade_text(check, case.wrong_answer)
        )
    if program_runner is None:
        return CaseCheck(case.id, case.route, "pending", PENDING_DETAIL)
    reference = program_runner.run_program(
        replay_check(case, case.reference.steps), case.reference.answer
    )
    wrong = program_runner.run_program(replay_check(case, ()), case.wrong_answer)
    return _verdict(case, reference.passed, wrong.passed, reference.detail, wrong.detail)


def _verdict(case: GoldenCase, reference_ok: bool, wrong_ok: bool, *details: str) -> CaseCheck:
    problems = []
    if not reference_ok:
        problems.append("reference answer fails its check")
    if wrong_ok:
        problems.append("wrong answer passes its check")
    if not problems:
        return CaseCheck(case.id, case.route, "passed")
    extra = " | ".join(detail.strip() for detail in details if detail.strip())
    detail = "; ".join(problems) + (f" ({extra})" if extra else "")
    return CaseCheck(case.id, case.route, "failed", detail)


def check_dataset(
    dataset: Dataset, *, program_runner: ProgramRunner | None = None
) -> list[CaseCheck]:
    return [check_case(case, program_runner=program_runner) for case in dataset.cases]


def tally_by_route(checks: Iterable[CaseCheck]) -> list[RouteTally]:
    """Counts per route, in canonical route order, routes without cases left out."""
    counts: dict[str, dict[str, int]] = {}
    for item in checks:
        route = counts.setdefault(item.route, {"passed": 0, "failed": 0, "pending": 0})
        route[item.status] += 1
    return [
        RouteTally(route, sum(counts[route].values()), **counts[route])
        for route in ROUTES
        if route in counts
    ]


def replay_check(case: GoldenCase, steps: Sequence[ToolStep]) -> ProgramCheck:
    """One program check that rebuilds a finished run of ``case`` in an empty directory.

    Case files are written directly; write_file contents, the grader files and the answer are
    staged under ``.selfcheck/`` and moved into place by a script that first replays ``steps``
    (each bash step in its own shell, as the runner executes them), so the grader sees the
    same tree a real run leaves behind.
    """
    check = case.check
    if not isinstance(check, ProgramCheck):
        raise ValueError(f"case {case.id!r} has a {check.kind!r} check; replay needs 'program'")
    files = dict(case.files)
    files.update({_staged(f"step-{i}"): s.content for i, s in _writes(steps)})
    files.update({_staged(f"grader/{path}"): body for path, body in check.files.items()})
    files[_staged("replay.sh")] = _replay_script(check, steps)
    timeout = min(check.timeout_s + _SECONDS_PER_STEP * len(steps), _MAX_TIMEOUT_S)
    return ProgramCheck(
        kind="program",
        command=f"bash {_staged('replay.sh')}",
        files=files,
        answer_file=_staged("answer") if check.answer_file else None,
        timeout_s=timeout,
    )


def _replay_script(check: ProgramCheck, steps: Sequence[ToolStep]) -> str:
    lines = ['WORKDIR="$(pwd)"']
    for index, step in enumerate(steps):
        if isinstance(step, BashStep):
            lines.append(f'(cd "$WORKDIR" && bash -c {shlex.quote(step.command)}) || true')
        elif isinstance(step, WriteFileStep):
            lines.append(_move(_staged(f"step-{index}"), step.path))
    if check.answer_file:
        lines.append(_move(_staged("answer"), check.answer_file))
    lines.extend(_move(_staged(f"grader/{path}"), path) for path in check.files)
    lines.append(f'cd "$WORKDIR" && rm -rf {STAGING_DIR}')
    lines.append(check.command)
    return "\n".join(lines) + "\n"


def _writes(steps: Sequence[ToolStep]) -> Iterable[tuple[int, WriteFileStep]]:
    return ((i, step) for i, step in enumerate(steps) if isinstance(step, WriteFileStep))


def _move(source: str, target: str) -> str:
    quoted = shlex.quote(target)
    return f'mkdir -p "$(dirname {quoted})" && cp {shlex.quote(source)} {quoted}'


def _staged(name: str) -> str:
    return f"{STAGING_DIR}/{name}"
