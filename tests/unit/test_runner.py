"""The case runner with a scripted provider and the real process sandbox."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from autoray.cases import AGENTIC_SYSTEM_PROMPT, DEFAULT_SYSTEM_PROMPT, GoldenCase
from autoray.config import RunnerConfig, SandboxConfig
from autoray.errors import (
    GraderUnavailableError,
    ModelTimeoutError,
    ProviderError,
    ProviderUnavailableError,
    SandboxUnavailableError,
)
from autoray.providers.base import ChatResponse, ToolCall
from autoray.runner import (
    TOOL_SCHEMAS,
    FreshWorkdirProgramRunner,
    SandboxProgramRunner,
    apply_reference_steps,
    redact_secrets,
    run_case,
)
from autoray.sandbox.base import ExecResult
from autoray.sandbox.process import ProcessSandbox
from autoray.selfcheck import check_case

CONFIG = RunnerConfig()


def _case(**fields: Any) -> GoldenCase:
    base: dict[str, Any] = {
        "id": "debugging-bug_fixing-runner-sample",
        "route": "debugging/bug_fixing",
        "language": "python",
        "difficulty": "easy",
        "prompt": "What is 6 * 7?",
        "check": {"kind": "exact", "expected": "42"},
        "reference": {"answer": "42"},
        "wrong_answer": "41",
    }
    base.update(fields)
    return GoldenCase.model_validate(base)


TEXT = _case()
AGENTIC = _case(
    id="agentic_execution-tool_usage-runner-count",
    route="agentic_execution/tool_usage",
    language="shell",
    prompt="How many lines does data.txt have?",
    files={"data.txt": "a\nb\nc\n"},
    check={"kind": "exact", "expected": "3"},
    reference={"answer": "3", "steps": [{"tool": "bash", "command": "wc -l < data.txt"}]},
    wrong_answer="4",
)
GRADER = (
    "import sys\nsys.path.insert(0, '.')\nimport solution\n"
    "sys.exit(0 if solution.add(2, 3) == 5 else 1)\n"
)
PROGRAM = _case(
    id="implementation-code_generation-runner-add",
    route="implementation/code_generation",
    prompt="Write add(a, b) in Python.",
    check={
        "kind": "program",
        "command": "python3 .grader/check.py",
        "files": {".grader/check.py": GRADER},
        "answer_file": "solution.py",
    },
    reference={"answer": "```python\ndef add(a, b):\n    return a + b\n```"},
    wrong_answer="```python\ndef add(a, b):\n    return a - b\n```",
)
WRITER = _case(
    id="agentic_execution-multi_step_execution-runner-write",
    route="agentic_execution/multi_step_execution",
    prompt="Create greet.py whose greet() returns 'hi'.",
    check={
        "kind": "program",
        "command": "python3 -c 'import greet; assert greet.greet() == \"hi\"'",
    },
    reference={
        "answer": "done",
        "steps": [
            {
                "tool": "write_file",
                "path": "greet.py",
                "content": "def greet():\n    return 'hi'\n",
            },
            {"tool": "bash", "command": "python3 -c 'import greet; print(greet.greet())'"},
        ],
    },
    wrong_answer="I could not do it.",
)


def _reply(
    content: str | None = None,
    *calls: ToolCall,
    cost: float | None = 0.001,
    tokens: tuple[int, int] = (10, 5),
) -> ChatResponse:
    return ChatResponse(
        content=content,
        tool_calls=calls,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cost_usd=cost,
        model="scripted",
        system_fingerprint=None,
        finish_reason="stop",
    )


def _call(name: str, call_id: str = "c1", **arguments: Any) -> ToolCall:
    return ToolCall(id=call_id, name=name, arguments=arguments)


Step = ChatResponse | Exception | Callable[[], ChatResponse]


@dataclass
class ScriptedProvider:
    """Plays its script in order; records what each call was sent."""

    script: list[Step]
    calls: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False

    def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ChatResponse:
        self.calls.append(
            {"messages": json.loads(json.dumps(messages)), "tools": tools, "metadata": metadata}
        )
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, Exception):
            raise step
        return step() if callable(step) else step

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[ProcessSandbox]:
    box = ProcessSandbox(SandboxConfig(timeout_s=20), base_dir=str(tmp_path))
    box.start("test-runner")
    yield box
    box.destroy()


def test_text_case_without_sandbox_scores_and_reports_usage() -> None:
    provider = ScriptedProvider([_reply("The answer is:\n42", cost=0.002)])
    outcome = run_case(TEXT, provider=provider, sandbox=None, config=CONFIG, metadata={"rep": "2"})
    assert (outcome.score, outcome.error, outcome.retried, outcome.timed_out) == (
        1.0,
        None,
        False,
        False,
    )
    assert (outcome.cost_usd, outcome.input_tokens, outcome.output_tokens) == (0.002, 10, 5)
    assert outcome.output_prefix == "The answer is:\n42"
    sent = provider.calls[0]
    assert sent["tools"] is None and sent["metadata"] == {"rep": "2"}
    assert sent["messages"] == [
        {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
        {"role": "user", "content": TEXT.prompt},
    ]


def test_wrong_answer_scores_zero_without_error() -> None:
    outcome = run_case(TEXT, provider=ScriptedProvider([_reply("41")]), sandbox=None, config=CONFIG)
    assert (outcome.score, outcome.error, outcome.output_prefix) == (0.0, None, "41")


def test_output_prefix_is_capped() -> None:
    outcome = run_case(
        TEXT, provider=ScriptedProvider([_reply("x" * 1000 + "\n42")]), sandbox=None, config=CONFIG
    )
    assert outcome.score == 1.0 and outcome.output_prefix == "x" * 200


def test_no_usage_and_no_cost_means_unknown_cost() -> None:
    outcome = run_case(
        TEXT, provider=ScriptedProvider([_reply("42", cost=None)]), sandbox=None, config=CONFIG
    )
    assert outcome.cost_usd is None


def test_tool_loop_runs_in_the_case_workdir_and_feeds_results_back(
    sandbox: ProcessSandbox,
) -> None:
    provider = ScriptedProvider(
        [
            _reply(None, _call("bash", "c1", command="wc -l < data.txt")),
            _reply(
                None,
                _call("write_file", "c2", path="out/n.txt", content="3\n"),
                _call("read_file", "c3", path="out/n.txt"),
            ),
            _reply("3"),
        ]
    )
    outcome = run_case(AGENTIC, provider=provider, sandbox=sandbox, config=CONFIG)
    assert (outcome.score, outcome.error) == (1.0, None)
    assert (outcome.input_tokens, outcome.cost_usd) == (30, pytest.approx(0.003))
    assert provider.calls[0]["tools"] == TOOL_SCHEMAS
    assert provider.calls[0]["messages"][0]["content"] == AGENTIC_SYSTEM_PROMPT
    final = provider.calls[2]["messages"]
    assert final[2]["tool_calls"][0]["function"] == {
        "name": "bash",
        "arguments": json.dumps({"command": "wc -l < data.txt"}),
    }
    assert final[3]["role"] == "tool" and final[3]["tool_call_id"] == "c1"
    assert "exit code 0" in final[3]["content"] and "\n3\n" in final[3]["content"]
    assert [m.get("tool_call_id") for m in final[5:]] == ["c2", "c3"]
    assert final[5]["content"] == "wrote 2 bytes to out/n.txt" and final[6]["content"] == "3\n"


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (_call("read_file", path="missing.txt"), "no file"),
        (_call("read_file", path="../../outside.txt"), "must not contain '..'"),
        (_call("write_file", path="/etc/x", content="x"), "must be relative"),
        (_call("write_file", path="a.txt"), "argument 'content' is missing"),
        (_call("bash", command=7), "argument 'command' is missing or not a string"),
        (_call("python", code="1"), "unknown tool 'python'; available tools"),
    ],
)
def test_tool_mistakes_are_reported_to_the_model(
    sandbox: ProcessSandbox, call: ToolCall, expected: str
) -> None:
    provider = ScriptedProvider([_reply(None, call), _reply("3")])
    outcome = run_case(AGENTIC, provider=provider, sandbox=sandbox, config=CONFIG)
    result = provider.calls[1]["messages"][-1]
    assert result["role"] == "tool" and result["content"].startswith("error: ")
    assert expected in result["content"]
    assert (outcome.score, outcome.error) == (1.0, None)


def test_model_deleting_its_workdir_is_its_own_problem(sandbox: ProcessSandbox) -> None:
    provider = ScriptedProvider(
        [
            _reply(None, _call("bash", "c1", command="cd .. && rm -rf *")),
            _reply(None, _call("bash", "c2", command="ls")),
            _reply("3"),
        ]
    )
    outcome = run_case(AGENTIC, provider=provider, sandbox=sandbox, config=CONFIG)
    result = provider.calls[2]["messages"][-1]["content"]
    assert result.startswith(("error: bash:", "exit code 126")), result
    assert outcome.score == 1.0


def test_slow_command_hits_the_step_timeout_and_the_case_goes_on(
    sandbox: ProcessSandbox,
) -> None:
    provider = ScriptedProvider([_reply(None, _call("bash", command="sleep 10")), _reply("3")])
    config = RunnerConfig(step_timeout_s=0.5)
    outcome = run_case(AGENTIC, provider=provider, sandbox=sandbox, config=config)
    assert provider.calls[1]["messages"][-1]["content"].startswith("timed out")
    assert (outcome.score, outcome.timed_out) == (1.0, False)


def test_step_limit_stops_a_model_that_never_answers(sandbox: ProcessSandbox) -> None:
    provider = ScriptedProvider([_reply(None, _call("bash", command="true"))])
    outcome = run_case(
        AGENTIC, provider=provider, sandbox=sandbox, config=RunnerConfig(max_steps=3)
    )
    assert outcome.score == 0.0 and "max_steps=3" in (outcome.error or "")
    assert len(provider.calls) == 4 and outcome.input_tokens == 40


def test_empty_answer_is_retried_once_and_costs_are_summed() -> None:
    provider = ScriptedProvider([_reply("  \n", cost=0.001), _reply("42", cost=0.002)])
    outcome = run_case(TEXT, provider=provider, sandbox=None, config=CONFIG)
    assert (outcome.score, outcome.retried, outcome.error) == (1.0, True, None)
    assert outcome.cost_usd == pytest.approx(0.003)
    assert (outcome.input_tokens, outcome.output_tokens) == (20, 10)
    assert provider.calls[0]["messages"] == provider.calls[1]["messages"]


def test_empty_answer_twice_is_a_score_zero_with_error() -> None:
    provider = ScriptedProvider([_reply(None)])
    outcome = run_case(TEXT, provider=provider, sandbox=None, config=CONFIG)
    assert (outcome.score, outcome.retried) == (0.0, True)
    assert "empty" in (outcome.error or "") and len(provider.calls) == 2


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_deadline_marks_the_case_timed_out() -> None:
    clock = FakeClock()

    def slow() -> ChatResponse:
        clock.now += 301
        return _reply("42")

    outcome = run_case(
        TEXT, provider=ScriptedProvider([slow]), sandbox=None, config=CONFIG, clock=clock
    )
    assert (outcome.score, outcome.timed_out) == (0.0, True)
    assert "case_timeout_s=300" in (outcome.error or "")
    assert outcome.latency_ms == pytest.approx(301_000)
    assert outcome.cost_usd == 0.001


def test_deadline_during_the_tool_loop_stops_it(sandbox: ProcessSandbox) -> None:
    clock = FakeClock()

    def tool_then_late() -> ChatResponse:
        clock.now += 200
        return _reply(None, _call("bash", command="true"))

    provider = ScriptedProvider([tool_then_late])
    outcome = run_case(AGENTIC, provider=provider, sandbox=sandbox, config=CONFIG, clock=clock)
    assert (outcome.score, outcome.timed_out) == (0.0, True)
    assert len(provider.calls) == 2


def test_provider_error_is_a_score_zero_row_keeping_earlier_usage(
    sandbox: ProcessSandbox,
) -> None:
    provider = ScriptedProvider(
        [
            _reply(None, _call("bash", command="true")),
            ProviderError("model 'm': HTTP 500: boom (after 4 attempt(s))"),
        ]
    )
    outcome = run_case(AGENTIC, provider=provider, sandbox=sandbox, config=CONFIG)
    assert outcome.score == 0.0 and "HTTP 500" in (outcome.error or "")
    assert (outcome.cost_usd, outcome.input_tokens) == (0.001, 10)


def test_provider_unavailable_propagates_instead_of_becoming_a_row(
    sandbox: ProcessSandbox,
) -> None:
    """Issue 9, finding 1: an endpoint that cannot be used says nothing about the model."""
    down = ProviderUnavailableError("model 'm' at http://127.0.0.1:9: ConnectError (after 4)")
    text_provider = ScriptedProvider([down])
    with pytest.raises(ProviderUnavailableError, match="ConnectError"):
        run_case(TEXT, provider=text_provider, sandbox=None, config=CONFIG)
    mid_loop = ScriptedProvider([_reply(None, _call("bash", command="true")), down])
    with pytest.raises(ProviderUnavailableError):
        run_case(AGENTIC, provider=mid_loop, sandbox=sandbox, config=CONFIG)


def test_the_models_own_timeout_is_a_timed_out_row() -> None:
    slow = ModelTimeoutError("model 'm' at http://127.0.0.1:9: ReadTimeout (after 4 attempt(s))")
    outcome = run_case(TEXT, provider=ScriptedProvider([slow]), sandbox=None, config=CONFIG)
    assert (outcome.score, outcome.timed_out) == (0.0, True)
    assert "ReadTimeout" in (outcome.error or "")


def test_errors_are_redacted_and_capped() -> None:
    secret = "sk-proj-abcdefghijklmnop1234"
    error = ProviderError(
        f"HTTP 401: invalid key {secret} (Authorization: Bearer {secret})" + " padding" * 200
    )
    outcome = run_case(TEXT, provider=ScriptedProvider([error]), sandbox=None, config=CONFIG)
    assert outcome.error is not None and len(outcome.error) <= 500
    assert secret not in outcome.error and "abcdefghij" not in outcome.error
    assert "sk-***" in outcome.error and "Bearer ***" in outcome.error


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("key sk-abc123def456 leaked", "key sk-*** leaked"),
        ("authorization: Bearer eyJhbGciOi.x-y_z", "authorization: Bearer ***"),
        ("api_key=hunter2xyz and token: abc", "api_key=*** and token: ***"),
        ("nothing secret here", "nothing secret here"),
    ],
)
def test_redact_secrets(text: str, expected: str) -> None:
    assert redact_secrets(text) == expected


class BrokenSandbox(ProcessSandbox):
    """A sandbox whose engine vanished mid-case."""

    def exec(self, command: str, *, timeout_s: float, cwd: str | None = None) -> ExecResult:
        raise SandboxUnavailableError("container vanished; is the engine up?")


def test_sandbox_unavailable_propagates(tmp_path: Path) -> None:
    box = BrokenSandbox(SandboxConfig(), base_dir=str(tmp_path))
    box.start("broken")
    provider = ScriptedProvider([_reply(None, _call("bash", command="ls")), _reply("3")])
    with pytest.raises(SandboxUnavailableError, match="vanished"):
        run_case(AGENTIC, provider=provider, sandbox=box, config=CONFIG)
    with pytest.raises(SandboxUnavailableError, match="vanished"):
        run_case(
            PROGRAM,
            provider=ScriptedProvider([_reply(PROGRAM.reference.answer)]),
            sandbox=box,
            config=CONFIG,
        )
    box.destroy()


class FailingSandbox(ProcessSandbox):
    """Writes or spawns fail with an ``OSError`` of the host (``fail`` names which)."""

    def __init__(self, *args: Any, fail: str, code: int = errno.ENOSPC, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fail = fail
        self.code = code
        self.armed = False

    def write_file(self, path: str, content: str) -> None:
        if self.armed and self.fail == "write":
            raise OSError(self.code, os.strerror(self.code), path)
        super().write_file(path, content)

    def exec(self, command: str, *, timeout_s: float, cwd: str | None = None) -> ExecResult:
        if self.armed and self.fail == "spawn":
            raise OSError(self.code, os.strerror(self.code))
        return super().exec(command, timeout_s=timeout_s, cwd=cwd)


@pytest.fixture
def failing(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[FailingSandbox]:
    fail, code = request.param
    box = FailingSandbox(SandboxConfig(), base_dir=str(tmp_path), fail=fail, code=code)
    box.start("failing")
    yield box
    box.destroy()


class ArmingProvider(ScriptedProvider):
    """Answers with the reference, arming the sandbox's fault once the model has answered, so
    only the grader meets it."""

    def __init__(self, box: FailingSandbox, answer: str) -> None:
        super().__init__([_reply(answer)])
        self.box = box

    def chat(self, messages: list[dict[str, Any]], **kwargs: Any) -> ChatResponse:
        self.box.armed = True
        return super().chat(messages, **kwargs)


@pytest.mark.parametrize(
    ("failing", "what"),
    [(("write", errno.ENOSPC), "stage"), (("spawn", errno.EAGAIN), "spawn")],
    indirect=["failing"],
)
def test_grader_that_cannot_be_staged_or_spawned_is_infrastructure(
    failing: FailingSandbox, what: str
) -> None:
    """Issue 9, finding 8b: this was a failed verdict, a silent score 0."""
    provider = ArmingProvider(failing, PROGRAM.reference.answer)
    with pytest.raises(GraderUnavailableError, match=f"could not {what}") as info:
        run_case(PROGRAM, provider=provider, sandbox=failing, config=CONFIG)
    assert os.strerror(failing.code) in str(info.value)


@pytest.mark.parametrize("failing", [("write", errno.EISDIR)], indirect=True)
def test_grader_path_blocked_by_the_models_own_files_is_its_failure(
    failing: FailingSandbox,
) -> None:
    """With tools, a directory the model put where the grader's file goes is its doing."""
    case = _case(
        id="debugging-bug_fixing-runner-blocked",
        files={"app.py": "x = 1\n"},
        check={"kind": "program", "command": "true", "files": {"check.py": "pass\n"}},
        reference={"answer": "done"},
        wrong_answer="nope",
    )
    outcome = run_case(
        case, provider=ArmingProvider(failing, "done"), sandbox=failing, config=CONFIG
    )
    assert outcome.score == 0.0 and outcome.error is None


@pytest.mark.parametrize("failing", [("write", errno.ENOSPC)], indirect=True)
def test_case_files_that_cannot_be_written_are_infrastructure(failing: FailingSandbox) -> None:
    failing.armed = True
    provider = ScriptedProvider([_reply("3")])
    with pytest.raises(SandboxUnavailableError, match="could not be written"):
        run_case(AGENTIC, provider=provider, sandbox=failing, config=CONFIG)
    assert provider.calls == []


def test_case_needing_a_sandbox_without_one_is_infrastructure() -> None:
    with pytest.raises(SandboxUnavailableError, match="needs a sandbox"):
        run_case(AGENTIC, provider=ScriptedProvider([_reply("3")]), sandbox=None, config=CONFIG)


def test_program_check_grades_the_answer_code(sandbox: ProcessSandbox) -> None:
    good = run_case(
        PROGRAM,
        provider=ScriptedProvider([_reply(PROGRAM.reference.answer)]),
        sandbox=sandbox,
        config=CONFIG,
    )
    bad = run_case(
        PROGRAM,
        provider=ScriptedProvider([_reply(PROGRAM.wrong_answer)]),
        sandbox=sandbox,
        config=CONFIG,
    )
    crash = run_case(
        PROGRAM,
        provider=ScriptedProvider([_reply("```python\nraise SystemExit(")]),
        sandbox=sandbox,
        config=CONFIG,
    )
    assert (good.score, bad.score, crash.score) == (1.0, 0.0, 0.0)
    assert crash.error is None


def test_program_case_offers_no_tools_and_hides_the_grader(sandbox: ProcessSandbox) -> None:
    provider = ScriptedProvider([_reply(PROGRAM.reference.answer)])
    run_case(PROGRAM, provider=provider, sandbox=sandbox, config=CONFIG)
    assert provider.calls[0]["tools"] is None
    assert "check.py" not in json.dumps(provider.calls[0]["messages"])


def test_each_case_gets_a_clean_workdir(sandbox: ProcessSandbox) -> None:
    leave = ScriptedProvider(
        [_reply(None, _call("write_file", path="junk.txt", content="x")), _reply("3")]
    )
    run_case(AGENTIC, provider=leave, sandbox=sandbox, config=CONFIG)
    look = ScriptedProvider([_reply(None, _call("bash", command="ls")), _reply("3")])
    run_case(AGENTIC, provider=look, sandbox=sandbox, config=CONFIG)
    listing = look.calls[1]["messages"][-1]["content"]
    assert "data.txt" in listing and "junk.txt" not in listing


def test_program_runner_reports_exit_status(sandbox: ProcessSandbox) -> None:
    workdir = sandbox.new_workdir("direct")
    check = PROGRAM.check
    assert check.kind == "program"
    verdict = SandboxProgramRunner(sandbox, workdir).run_program(check, PROGRAM.wrong_answer)
    assert not verdict.passed and "exit code 1" in verdict.detail
    assert sandbox.read_file(f"{workdir}/solution.py").startswith("def add")


def test_reference_steps_make_the_reference_pass(sandbox: ProcessSandbox) -> None:
    workdir = sandbox.new_workdir(WRITER.id)
    results = apply_reference_steps(WRITER, sandbox, workdir)
    assert results[0] == "wrote 29 bytes to greet.py"
    assert "hi" in results[1]
    runner = SandboxProgramRunner(sandbox, workdir)
    assert runner.run_program(WRITER.check, WRITER.reference.answer).passed  # type: ignore[arg-type]


def test_fresh_workdir_runner_drives_the_self_check(sandbox: ProcessSandbox) -> None:
    runner = FreshWorkdirProgramRunner(sandbox)
    for case in (PROGRAM, WRITER):
        verdict = check_case(case, program_runner=runner)
        assert verdict.status == "passed", verdict.detail


def test_simulated_reference_passes_through_the_runner(sandbox: ProcessSandbox) -> None:
    """The reference steps as tool calls, then the reference answer: score 1."""
    script: list[Step] = [
        _reply(None, _call(step.tool, f"c{i}", **step.model_dump(exclude={"tool"})))
        for i, step in enumerate(WRITER.reference.steps)
    ]
    script.append(_reply(WRITER.reference.answer))
    outcome = run_case(WRITER, provider=ScriptedProvider(script), sandbox=sandbox, config=CONFIG)
    assert (outcome.score, outcome.error) == (1.0, None)
