"""How a simulated model behaves: pure and deterministic, so the farm needs no state.

A simulated model passes a golden case when a uniform draw, hashed from (model, variant, case,
rep, seed), falls below its skill for the case's route. A passing model replays the case's
reference (its tool steps, then its answer); a failing one gives the case's ``wrong_answer``.
The same inputs always give the same conversation, so a benchmark over the farm is repeatable
and a skill of 1.0 (or 0.0) passes (or fails) every case.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from autoray.errors import ConfigError
from autoray.taxonomy import task_type_of

if TYPE_CHECKING:
    from autoray.cases import GoldenCase

SIMULATED_FINGERPRINT = "autoray-simulated-farm"
_DRAW_BITS = 64


def skill_for(route: str, skill: Mapping[str, float]) -> float:
    """Most specific wins: the full route, then ``"taskType/*"``, then ``default``."""
    for key in (route, f"{task_type_of(route)}/*", "default"):
        if key in skill:
            return float(skill[key])
    raise ConfigError(
        f"skill {dict(skill)!r} has no entry for route {route!r}; "
        f"add a 'default' key or one for {route!r}"
    )


def uniform_draw(model_id: str, variant: str | None, case_id: str, rep: int, seed: int) -> float:
    """A number in [0, 1) fixed by its inputs (sha256), the same on every machine."""
    text = "\x1f".join((model_id, variant or "", case_id, str(rep), str(seed)))
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[: _DRAW_BITS // 8], "big") / 2**_DRAW_BITS


def passes(
    model_id: str, variant: str | None, case_id: str, rep: int, seed: int, skill: float
) -> bool:
    """True iff the draw falls below ``skill`` (so 1.0 always passes, 0.0 always fails)."""
    return uniform_draw(model_id, variant, case_id, rep, seed) < skill


def count_tokens(text: str) -> int:
    """Simulated token count: one token per 4 UTF-8 bytes, rounded up (empty text is 0).

    Real tokenizers average about 4 bytes per token on English and code; the farm needs only a
    deterministic, plausible number to price its answers.
    """
    return math.ceil(len(text.encode("utf-8")) / 4)


@dataclass(frozen=True, slots=True)
class SimTurn:
    """The simulated assistant's next message: a final answer or one tool call."""

    content: str | None
    tool_name: str | None = None
    tool_arguments: dict[str, Any] = field(default_factory=dict)
    tool_call_id: str | None = None

    @property
    def is_tool_call(self) -> bool:
        return self.tool_name is not None


def next_turn(
    case: GoldenCase,
    *,
    passing: bool,
    messages: Sequence[Mapping[str, Any]],
    tools_offered: bool = True,
) -> SimTurn:
    """The reply after ``messages``: reference step k while passing and steps remain, else the
    final answer (the reference answer when passing, the wrong answer when failing)."""
    steps = list(case.reference.steps or ()) if tools_offered else []
    done = tool_calls_made(messages)
    if passing and done < len(steps):
        name, arguments = step_call(steps[done])
        return SimTurn(None, name, arguments, f"call_{done}")
    return SimTurn(case.reference.answer if passing else case.wrong_answer)


def tool_calls_made(messages: Sequence[Mapping[str, Any]]) -> int:
    """How many tool calls the assistant has made so far in the conversation."""
    return sum(
        len(message.get("tool_calls") or ())
        for message in messages
        if message.get("role") == "assistant"
    )


def step_call(step: Any) -> tuple[str, dict[str, Any]]:
    """A reference step (``{tool: name, **arguments}``) as a tool name and its arguments."""
    data = step.model_dump(exclude_none=True) if hasattr(step, "model_dump") else dict(step)
    name = str(data.pop("tool"))
    return name, data


def generic_reply(prompt: str) -> str:
    """The answer to a prompt that matches no golden case: deterministic, clearly simulated."""
    digest = hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:12]
    return (
        "[simulated model farm] This prompt matches no golden case, so there is no reference "
        f"answer to replay (prompt digest {digest})."
    )


TOOL_RESULT_TOKENS = 64
"""What a simulated model is charged for reading one tool result, whatever the result says.

Tool results come from the lane's sandbox, and what a command such as ``ls -la`` prints (link
counts, block totals, dates) depends on the sandbox's history and the clock. Charged by length,
they moved a case's cost by a token or two between runs, so two clean runs of one config
published two table versions (found by the chaos soak, ``docs/chaos-findings.md``).
"""


def conversation_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """Simulated prompt tokens: the text of every message, tool calls included, and a fixed
    :data:`TOOL_RESULT_TOKENS` per tool result, so the price of a conversation is fixed by
    the case, the model and the rep alone."""
    return sum(_message_tokens(message) for message in messages)


def _message_tokens(message: Mapping[str, Any]) -> int:
    if message.get("role") == "tool":
        return TOOL_RESULT_TOKENS
    return count_tokens(_message_text(message))


def _message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    text = content if isinstance(content, str) else json.dumps(content or "")
    calls = message.get("tool_calls")
    return text + (json.dumps(calls, sort_keys=True) if calls else "")
