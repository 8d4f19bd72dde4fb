"""The case runner: one golden case against one model, start to grade.

It phrases the case to the model, runs the tool loop (``bash``, ``write_file``, ``read_file``
executed in the sandbox, relative to the case's own working directory), retries once on an
empty final answer, grades the answer and returns a :class:`CaseOutcome`. Whatever the model
does wrong is a score-0 outcome (with an ``error`` when no answer could be graded: a
:class:`ProviderError` such as its own timeout or a malformed tool call, the case deadline, the
step limit, empty answers, a crash of the code it wrote). Anything outside the model's control
is an :class:`InfrastructureError` and propagates out of :func:`run_case`, so the lane's policy
retries it and it is never recorded as a score: a sandbox that fails
(:class:`SandboxUnavailableError`), a provider that cannot be used
(:class:`ProviderUnavailableError`: no key, unreachable, 401/403, 404, 429 or 5xx after its
retries) and a grader that cannot be staged or spawned (:class:`GraderUnavailableError`).
"""

from __future__ import annotations

import errno
import json
import posixpath
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from autoray.cases import system_prompt_for
from autoray.checks import (
    ProgramCheck,
    ProgramVerdict,
    grade,
    program_files,
    validate_relative_path,
)
from autoray.errors import (
    GraderUnavailableError,
    ModelTimeoutError,
    ProviderError,
    SandboxUnavailableError,
)
from autoray.results import ERROR_MAX_CHARS, OUTPUT_PREFIX_MAX_CHARS, CaseOutcome
from autoray.sandbox import create_sandbox, preflight_sandbox
from autoray.simulation import step_call

if TYPE_CHECKING:
    from autoray.cases import GoldenCase
    from autoray.config import RunnerConfig, SandboxConfig
    from autoray.providers.base import ChatResponse, Provider, ToolCall
    from autoray.sandbox import ExecResult, Sandbox

Clock = Callable[[], float]

TOOL_RESULT_MAX_CHARS = 20_000
REFERENCE_STEP_TIMEOUT_S = 60.0
# What a model with tools can do to its working directory that then blocks a grader file: put a
# directory, a symlink or a read-only directory where the file goes. Any other OSError (a full
# disk, no processes left, a sandbox that is gone) is the infrastructure's.
_MODEL_MADE_ERRNOS = frozenset(
    {errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.EACCES, errno.EPERM, errno.ENOENT}
)
_SECRET_PATTERNS = (
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer ***"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{6,}"), "sk-***"),
    (re.compile(r"(?i)\b(api[_-]?key|token|secret|password)(\s*[=:]\s*)\S+"), r"\1\2***"),
)

TOOL_SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "bash",
            "description": "Run a shell command in the case's working directory; returns the exit "
            "code, stdout and stderr.",
            "parameters": {
                "type": "object",
                "properties": {"command": {"type": "string"}},
                "required": ["command"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "write_file",
            "description": "Write a text file, path relative to the working directory.",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
                "required": ["path", "content"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a text file, path relative to the working directory.",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
                "additionalProperties": False,
            },
        },
    },
]


class ToolError(Exception):
    """A tool call the model got wrong; its message is the tool result the model sees."""


class SandboxProgramRunner:
    """Runs a program check in the case's working directory (the ``ProgramRunner`` protocol).

    A grader that cannot be staged or spawned raises :class:`GraderUnavailableError`: once
    such an ``OSError`` became a failed verdict, a silent score 0 (issue 9, finding 8b). Only
    when the model had tools (``model_had_tools``) can a path error be its own doing, and then
    it stays a failed verdict.
    """

    def __init__(self, sandbox: Sandbox, workdir: str, *, model_had_tools: bool = False) -> None:
        self._sandbox = sandbox
        self._workdir = workdir
        self._model_had_tools = model_had_tools

    def run_program(self, check: ProgramCheck, answer: str) -> ProgramVerdict:
        try:
            result = self._run(check, answer)
        except ToolError as exc:
            return ProgramVerdict(False, str(exc))
        return ProgramVerdict(result.exit_code == 0 and not result.timed_out, _exec_detail(result))

    def _run(self, check: ProgramCheck, answer: str) -> ExecResult:
        sandbox = self._sandbox
        for path, content in program_files(check, answer).items():
            write = partial(sandbox.write_file, _join(self._workdir, path), content)
            self._grader_op(write, f"stage {path!r}")
        spawn = partial(sandbox.exec, check.command, timeout_s=check.timeout_s, cwd=self._workdir)
        return self._grader_op(spawn, f"spawn {check.command!r}")

    def _grader_op(self, op: Callable[[], Any], what: str) -> Any:
        try:
            return op()
        except SandboxUnavailableError:
            raise
        except ValueError as exc:
            raise ToolError(f"program check: {what}: {exc}") from None
        except OSError as exc:
            if self._model_had_tools and exc.errno in _MODEL_MADE_ERRNOS:
                raise ToolError(f"program check: {what}: {exc}") from None
            raise GraderUnavailableError(
                f"the grader could not {what} in the sandbox ({exc}); free the sandbox's disk "
                "or raise its process limits; the case runs again"
            ) from exc


class FreshWorkdirProgramRunner:
    """A ``ProgramRunner`` that grades every call in a new, empty working directory.

    The golden-set self-check (``autoray cases check``) replays a whole run per call, so each
    needs a clean directory; reusing one name lets the sandbox wipe the previous one.
    """

    def __init__(self, sandbox: Sandbox, *, name: str = "selfcheck") -> None:
        self._sandbox = sandbox
        self._name = name

    def run_program(self, check: ProgramCheck, answer: str) -> ProgramVerdict:
        workdir = self._sandbox.new_workdir(self._name)
        return SandboxProgramRunner(self._sandbox, workdir).run_program(check, answer)


@contextmanager
def sandbox_program_runner(
    config: SandboxConfig, *, identity: str = "cases-check"
) -> Iterator[FreshWorkdirProgramRunner]:
    """A preflighted, started sandbox wrapped as a program runner; destroyed on exit."""
    preflight_sandbox(config)
    sandbox = create_sandbox(config)
    try:
        sandbox.start(identity)
        yield FreshWorkdirProgramRunner(sandbox)
    finally:
        sandbox.destroy()


class ToolBox:
    """Executes the model's tool calls in one working directory of a sandbox.

    Mistakes (unknown tool, bad arguments, missing file, a path escaping the working directory)
    come back as the tool result so the model can recover; only infrastructure errors raise.
    """

    def __init__(self, sandbox: Sandbox | None, workdir: str | None) -> None:
        self._sandbox = sandbox
        self._workdir = workdir or "."

    @property
    def has_sandbox(self) -> bool:
        return self._sandbox is not None

    def run(self, name: str, arguments: Mapping[str, Any], *, timeout_s: float) -> str:
        try:
            return _truncate(self._dispatch(name, arguments, timeout_s))
        except ToolError as exc:
            return f"error: {exc}"

    def _dispatch(self, name: str, arguments: Mapping[str, Any], timeout_s: float) -> str:
        sandbox = self._sandbox
        if sandbox is None:
            raise ToolError(f"tool {name!r} is not available for this case; answer directly")
        if name == "bash":
            command = _argument(arguments, "command")
            result = _guarded(
                lambda: sandbox.exec(command, timeout_s=timeout_s, cwd=self._workdir), "bash"
            )
            return _exec_detail(result)
        if name == "write_file":
            path, content = _argument(arguments, "path"), _argument(arguments, "content")
            _guarded(lambda: sandbox.write_file(self._inside(path), content), repr(path))
            return f"wrote {len(content.encode('utf-8'))} bytes to {path}"
        if name == "read_file":
            path = _argument(arguments, "path")
            return str(_guarded(lambda: sandbox.read_file(self._inside(path)), repr(path)))
        raise ToolError(f"unknown tool {name!r}; available tools: bash, write_file, read_file")

    def _inside(self, path: str) -> str:
        """``path`` joined to the working directory, refusing anything that would leave it."""
        try:
            validate_relative_path(path)
        except ValueError as exc:
            raise ToolError(str(exc)) from None
        return _join(self._workdir, path)


def _guarded(op: Callable[[], Any], what: str) -> Any:
    """Run a sandbox operation, turning the model's mistakes (a missing file, a path outside
    the working directory, a working directory it deleted) into a :class:`ToolError`."""
    try:
        return op()
    except SandboxUnavailableError:
        raise
    except (OSError, ValueError) as exc:
        raise ToolError(f"{what}: {exc}") from None


@dataclass
class _Transcript:
    """What the conversation produced so far; usage accumulates across every call."""

    answer: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    tool_calls: int = 0
    retried: bool = False
    timed_out: bool = False
    error: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)

    def add_usage(self, response: ChatResponse) -> None:
        self.input_tokens += response.input_tokens
        self.output_tokens += response.output_tokens
        if response.cost_usd is not None:
            self.cost_usd = (self.cost_usd or 0.0) + response.cost_usd


@dataclass(frozen=True, slots=True)
class _Deadline:
    clock: Clock
    end: float

    def remaining(self) -> float:
        return self.end - self.clock()

    def expired(self) -> bool:
        return self.remaining() <= 0


def run_case(
    case: GoldenCase,
    *,
    provider: Provider,
    sandbox: Sandbox | None,
    config: RunnerConfig,
    metadata: Mapping[str, str] | None = None,
    clock: Clock = time.monotonic,
) -> CaseOutcome:
    """Run ``case`` against ``provider``; the sandbox is used only when the case needs one
    (files, tool steps or a program check), and tools are offered only when the case has files
    or tool steps, as its system prompt says."""
    started = clock()
    workdir = prepare_workdir(case, sandbox) if case.needs_sandbox else None
    toolbox = ToolBox(sandbox if workdir and case.offers_tools else None, workdir)
    deadline = _Deadline(clock, started + config.case_timeout_s)
    transcript = _Conversation(case, provider, toolbox, config, metadata, deadline).run()
    latency_ms = (clock() - started) * 1000
    score, grade_error = 0.0, None
    if transcript.error is None:
        score, grade_error = _grade(case, transcript.answer, toolbox, sandbox, workdir)
    return _outcome(transcript, score, grade_error, latency_ms)


def prepare_workdir(case: GoldenCase, sandbox: Sandbox | None) -> str:
    """A fresh working directory for the case, holding its files."""
    if sandbox is None:
        raise SandboxUnavailableError(
            f"case {case.id!r} needs a sandbox (files, a program check or tool steps) but none "
            "was given; configure `sandbox: {backend: process}` or `docker`"
        )
    try:
        workdir = sandbox.new_workdir(case.id)
        for path, content in case.files.items():
            sandbox.write_file(_join(workdir, path), content)
    except SandboxUnavailableError:
        raise
    except OSError as exc:
        raise SandboxUnavailableError(
            f"case {case.id!r}: its files could not be written to the sandbox ({exc}); "
            "check the sandbox's disk; the case runs again"
        ) from exc
    return workdir


def apply_reference_steps(case: GoldenCase, sandbox: Sandbox, workdir: str) -> list[str]:
    """Execute the reference's tool steps in ``workdir`` as the runner would execute a model's
    calls; returns each step's tool result (for checking and debugging references)."""
    toolbox = ToolBox(sandbox, workdir)
    results = []
    for step in case.reference.steps:
        name, arguments = step_call(step)
        results.append(toolbox.run(name, arguments, timeout_s=REFERENCE_STEP_TIMEOUT_S))
    return results


class _Conversation:
    """The tool loop for one case: model calls, tool calls, limits and the empty-answer retry."""

    def __init__(
        self,
        case: GoldenCase,
        provider: Provider,
        toolbox: ToolBox,
        config: RunnerConfig,
        metadata: Mapping[str, str] | None,
        deadline: _Deadline,
    ) -> None:
        self._provider = provider
        self._toolbox = toolbox
        self._config = config
        self._metadata = dict(metadata) if metadata else None
        self._deadline = deadline
        self._tools = TOOL_SCHEMAS if toolbox.has_sandbox else None
        self.transcript = _Transcript(messages=_initial_messages(case))

    def run(self) -> _Transcript:
        try:
            while not self._turn():
                pass
        except ProviderError as exc:
            self.transcript.error = str(exc)
            self.transcript.timed_out = isinstance(exc, ModelTimeoutError)
        return self.transcript

    def _turn(self) -> bool:
        """One model call and what follows from it; True when the conversation is over."""
        if self._timed_out():
            return True
        response = self._provider.chat(
            self.transcript.messages, tools=self._tools, metadata=self._metadata
        )
        self.transcript.add_usage(response)
        if self._timed_out():
            return True
        if response.tool_calls:
            return self._run_tools(response)
        return self._final(response.content)

    def _run_tools(self, response: ChatResponse) -> bool:
        transcript = self.transcript
        transcript.messages.append(_assistant_message(response))
        for call in response.tool_calls:
            if transcript.tool_calls >= self._config.max_steps:
                transcript.error = (
                    f"step limit reached: the model asked for more than "
                    f"max_steps={self._config.max_steps} tool calls"
                )
                return True
            transcript.tool_calls += 1
            timeout_s = min(self._config.step_timeout_s, self._deadline.remaining())
            if timeout_s <= 0:
                return self._timed_out()
            result = self._toolbox.run(call.name, call.arguments, timeout_s=timeout_s)
            transcript.messages.append(_tool_message(call, result))
        return self._timed_out()

    def _final(self, content: str | None) -> bool:
        if content and content.strip():
            self.transcript.answer = content
            return True
        if self.transcript.retried:
            self.transcript.error = "the model's final answer was empty twice (retried once)"
            return True
        self.transcript.retried = True
        return False

    def _timed_out(self) -> bool:
        if not self._deadline.expired():
            return False
        self.transcript.timed_out = True
        self.transcript.error = f"the case ran past case_timeout_s={self._config.case_timeout_s:g}"
        return True


def _initial_messages(case: GoldenCase) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": system_prompt_for(case)},
        {"role": "user", "content": case.prompt},
    ]


def _assistant_message(response: ChatResponse) -> dict[str, Any]:
    calls = [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
        }
        for call in response.tool_calls
    ]
    return {"role": "assistant", "content": response.content, "tool_calls": calls}


def _tool_message(call: ToolCall, result: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call.id, "content": result}


def _grade(
    case: GoldenCase, answer: str, toolbox: ToolBox, sandbox: Sandbox | None, workdir: str | None
) -> tuple[float, str | None]:
    """Score 1 or 0; a check that cannot be evaluated is a score 0 with the reason."""
    runner = None
    if sandbox and workdir:
        runner = SandboxProgramRunner(sandbox, workdir, model_had_tools=toolbox.has_sandbox)
    try:
        passed = grade(case.check, answer, program_runner=runner)
    except ValueError as exc:
        return 0.0, f"grading failed: {exc}"
    return (1.0 if passed else 0.0), None


def _outcome(
    transcript: _Transcript, score: float, grade_error: str | None, latency_ms: float
) -> CaseOutcome:
    error = transcript.error or grade_error
    return CaseOutcome(
        score=0.0 if error else score,
        latency_ms=latency_ms,
        cost_usd=transcript.cost_usd,
        error=redact_secrets(error)[:ERROR_MAX_CHARS] if error else None,
        timed_out=transcript.timed_out,
        retried=transcript.retried,
        output_prefix=redact_secrets(transcript.answer)[:OUTPUT_PREFIX_MAX_CHARS],
        input_tokens=transcript.input_tokens,
        output_tokens=transcript.output_tokens,
    )


def redact_secrets(text: str) -> str:
    """Mask anything shaped like a bearer token or an API key before it is stored or shown."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _argument(arguments: Mapping[str, Any], name: str) -> str:
    value = arguments.get(name)
    if not isinstance(value, str):
        raise ToolError(
            f"argument {name!r} is missing or not a string (got {value!r}); pass it as a string"
        )
    return value


def _join(workdir: str, path: str) -> str:
    return posixpath.normpath(posixpath.join(workdir, path))


def _exec_detail(result: ExecResult) -> str:
    status = "timed out" if result.timed_out else f"exit code {result.exit_code}"
    note = "\n[output truncated]" if result.truncated else ""
    return f"{status}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}{note}"


def _truncate(text: str) -> str:
    if len(text) <= TOOL_RESULT_MAX_CHARS:
        return text
    return text[:TOOL_RESULT_MAX_CHARS] + f"\n[truncated to {TOOL_RESULT_MAX_CHARS} characters]"
