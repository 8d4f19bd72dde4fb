"""Mechanical checks that turn a model's final answer into a score of 1 or 0.

Five kinds: ``exact``, ``contains_all``, ``regex`` and ``json_equal`` are graded here, on text
alone; ``program`` runs a grader script in the sandbox, so it is graded through a
:class:`ProgramRunner` that the case runner supplies. Anything that changes how an answer is
graded must bump :data:`CHECKS_VERSION`, because it is part of the engine identity and resumed
runs only reuse rows graded the same way.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

CHECKS_VERSION = "checks-1"
DEFAULT_PROGRAM_TIMEOUT_S = 30.0

_FENCE_LINE = re.compile(r"^[ \t]*(`{3,}|~{3,})[^`\n]*$")


def validate_relative_path(path: str) -> str:
    """Reject paths that could escape a case's working directory inside the sandbox."""
    if not path or not path.strip():
        raise ValueError("path is empty; give a path relative to the case working directory")
    posix = PurePosixPath(path.replace("\\", "/"))
    if posix.is_absolute() or "\\" in path:
        raise ValueError(f"path {path!r} must be relative with '/' separators, e.g. 'src/app.py'")
    if ".." in posix.parts:
        raise ValueError(f"path {path!r} must not contain '..'; keep it inside the working dir")
    return path


class _CheckModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExactCheck(_CheckModel):
    """The normalised answer, or its last non-empty line, equals ``expected``."""

    kind: Literal["exact"]
    expected: str


class ContainsAllCheck(_CheckModel):
    """Every item occurs in the answer (case-insensitive unless ``case_sensitive``)."""

    kind: Literal["contains_all"]
    items: list[str] = Field(min_length=1)
    case_sensitive: bool = False

    @field_validator("items")
    @classmethod
    def _no_empty_item(cls, items: list[str]) -> list[str]:
        if any(not item for item in items):
            raise ValueError("items contains an empty string, which every answer contains")
        return items


class RegexCheck(_CheckModel):
    """``re.search`` over the whole answer with MULTILINE (and IGNORECASE by default)."""

    kind: Literal["regex"]
    pattern: str = Field(min_length=1)
    ignore_case: bool = True

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(
                f"pattern {pattern!r} is not a valid Python regular expression ({exc}); "
                "fix the pattern (YAML single quotes keep backslashes literal)"
            ) from exc
        return pattern


class JsonEqualCheck(_CheckModel):
    """The first JSON object or array in the answer equals ``expected``."""

    kind: Literal["json_equal"]
    expected: JsonValue


class ProgramCheck(_CheckModel):
    """A grader command run in the sandbox after the model finished; exit 0 passes.

    ``files`` (the grader) are written first and never shown to the model; when
    ``answer_file`` is set, the answer's last fenced code block is written there.
    """

    kind: Literal["program"]
    command: str = Field(min_length=1)
    files: dict[str, str] = Field(default_factory=dict)
    answer_file: str | None = None
    timeout_s: float = Field(default=DEFAULT_PROGRAM_TIMEOUT_S, gt=0, le=600)

    @field_validator("files")
    @classmethod
    def _relative_files(cls, files: dict[str, str]) -> dict[str, str]:
        for path in files:
            validate_relative_path(path)
        return files

    @field_validator("answer_file")
    @classmethod
    def _relative_answer_file(cls, path: str | None) -> str | None:
        return None if path is None else validate_relative_path(path)


TextCheck = ExactCheck | ContainsAllCheck | RegexCheck | JsonEqualCheck
Check = Annotated[
    ExactCheck | ContainsAllCheck | RegexCheck | JsonEqualCheck | ProgramCheck,
    Field(discriminator="kind"),
]


@dataclass(frozen=True, slots=True)
class ProgramVerdict:
    """What running a program check produced; ``detail`` is for humans (exit code, output)."""

    passed: bool
    detail: str = ""


class ProgramRunner(Protocol):
    """Runs a program check against an answer in a sandbox working directory.

    The case runner implements this against the case's sandbox. An infrastructure failure
    raises an ``InfrastructureError`` instead of returning a failed verdict: a sandbox that is
    gone (``SandboxUnavailableError``), a grader file that cannot be written or a grader that
    cannot be spawned (``GraderUnavailableError``), which once became a silent score 0.
    """

    def run_program(self, check: ProgramCheck, answer: str) -> ProgramVerdict: ...


def strip_fences(text: str) -> str:
    """Drop markdown fence lines (```lang / ~~~), keeping the code between them."""
    return "\n".join(line for line in text.splitlines() if not _FENCE_LINE.match(line))


def normalise(text: str) -> str:
    """The form ``exact`` compares: fences stripped, trimmed, lower-cased."""
    return strip_fences(text).strip().lower()


def last_code_block(text: str) -> str:
    """Body of the last fenced code block, else the whole text.

    An unclosed final fence counts as a block running to the end: a truncated answer still
    gets its code written to ``answer_file``.
    """
    blocks = _fenced_blocks(text)
    return blocks[-1] if blocks else text


def _fenced_blocks(text: str) -> list[str]:
    blocks: list[str] = []
    fence: str | None = None
    body: list[str] = []
    for line in text.splitlines():
        match = _FENCE_LINE.match(line)
        if fence is None and match:
            fence, body = match.group(1), []
        elif fence is not None and _closes(line, fence):
            blocks.append(_join_lines(body))
            fence = None
        elif fence is not None:
            body.append(line)
    if fence is not None:
        blocks.append(_join_lines(body))
    return blocks


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= len(fence) and set(stripped) == {fence[0]}


def _join_lines(lines: list[str]) -> str:
    return "\n".join(lines) + "\n" if lines else ""


def find_first_json(text: str) -> Any:
    """Parse the first balanced JSON object or array in ``text``.

    Models wrap JSON in prose and fences, and prose can contain brackets that are not JSON
    (``{placeholder}``), so a balanced span that fails to parse is skipped and the scan goes on
    after it. Raises ``ValueError`` when no span parses.
    """
    body = strip_fences(text)
    start = _next_opening(body, 0)
    while start != -1:
        end = _balanced_end(body, start)
        if end == -1:
            start = _next_opening(body, start + 1)
            continue
        try:
            return json.loads(body[start : end + 1])
        except ValueError:
            start = _next_opening(body, end + 1)
    raise ValueError("no JSON object or array found in the answer")


def _next_opening(text: str, start: int) -> int:
    positions = [p for p in (text.find("{", start), text.find("[", start)) if p != -1]
    return min(positions, default=-1)


def _balanced_end(text: str, start: int) -> int:
    """Index of the bracket closing the one at ``start``, ignoring brackets inside strings."""
    depth, in_string, escaped = 0, False, False
    for index in range(start, len(text)):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return index
    return -1


def json_values_equal(left: Any, right: Any) -> bool:
    """JSON equality: ``true`` is not ``1``, ``1`` equals ``1.0``, key order is irrelevant."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(
            json_values_equal(left[key], right[key]) for key in left
        )
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_values_equal, left, right))
    return type(left) is type(right) and left == right


def grade_text(check: TextCheck, answer: str) -> bool:
    """Grade one of the four text kinds; a program check is refused with a clear error."""
    if isinstance(check, ExactCheck):
        return _grade_exact(check, answer)
    if isinstance(check, ContainsAllCheck):
        return _grade_contains_all(check, answer)
    if isinstance(check, RegexCheck):
        flags = re.MULTILINE | (re.IGNORECASE if check.ignore_case else 0)
        return re.search(check.pattern, answer, flags) is not None
    if isinstance(check, JsonEqualCheck):
        return _grade_json_equal(check, answer)
    raise ValueError(_needs_runner_message(check))


def _grade_exact(check: ExactCheck, answer: str) -> bool:
    expected = normalise(check.expected)
    whole = normalise(answer)
    lines = [line.strip() for line in whole.splitlines() if line.strip()]
    return whole == expected or (bool(lines) and lines[-1] == expected)


def _grade_contains_all(check: ContainsAllCheck, answer: str) -> bool:
    if check.case_sensitive:
        return all(item in answer for item in check.items)
    folded = answer.casefold()
    return all(item.casefold() in folded for item in check.items)


def _grade_json_equal(check: JsonEqualCheck, answer: str) -> bool:
    try:
        found = find_first_json(answer)
    except ValueError:
        return False
    return json_values_equal(found, check.expected)


def program_needs_sandbox(check: Check) -> bool:
    """Whether grading ``check`` needs a sandbox (a :class:`ProgramRunner`)."""
    return isinstance(check, ProgramCheck)


def program_files(check: ProgramCheck, answer: str) -> dict[str, str]:
    """Files a runner writes before running ``check.command``: grader files, then the answer.

    Shared by every :class:`ProgramRunner` so that they all place the answer the same way.
    """
    files = dict(check.files)
    if check.answer_file is not None:
        files[check.answer_file] = last_code_block(answer)
    return files


def grade(check: Check, answer: str, *, program_runner: ProgramRunner | None = None) -> bool:
    """Grade ``answer``; program checks go to ``program_runner``, which they require."""
    if isinstance(check, ProgramCheck):
        if program_runner is None:
            raise ValueError(_needs_runner_message(check))
        return program_runner.run_program(check, answer).passed
    return grade_text(check, answer)


def _needs_runner_message(check: object) -> str:
    command = getattr(check, "command", "?")
    return (
        f"program check {command!r} runs in a sandbox and cannot be graded on text alone; "
        "pass program_runner= (a ProgramRunner bound to the case's sandbox)"
    )
