"""The ``llm`` classifier: ask a configured model for the route, fall back when it fails.

The model gets the taxonomy (each route with a one-line meaning) and the bounded prefix of the
request, and must answer one JSON object ``{"route": "...", "confidence": 0..1}``. Anything
else (no JSON, an unknown route, a confidence outside [0, 1], an HTTP error, a missing API key)
or no answer within the deadline (2 s by default) is a failure: the request is classified by the
fallback classifier (the embedded one) and the result says so in ``fallback``, so a decision is
never blocked on a model and a caller can count how often the model did not answer.

The deadline covers the whole call: the provider is built without retries and with its HTTP
timeout at the deadline, and the call runs on a worker thread that the caller stops waiting for
when the deadline passes (the thread ends when the HTTP timeout does). Keys are read by the
provider at call time and never appear in a reason.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from autoray.classify.base import Classification, Classifier, RouteScore, bounded_prefix
from autoray.errors import AutorayError
from autoray.taxonomy import ROUTES, validate_route

if TYPE_CHECKING:
    from autoray.config import ModelEntry
    from autoray.providers.base import Provider

DEFAULT_TIMEOUT_S = 2.0
_WORKERS = 4
_REASON_CHARS = 160

ROUTE_MEANINGS: dict[str, str] = {
    "implementation/feature_development": "add a feature or behaviour to an existing product",
    "implementation/code_generation": "write a self-contained function, script, query or snippet",
    "implementation/test_creation": "write new tests for code that works",
    "debugging/bug_fixing": "make broken code behave correctly (the symptom is known)",
    "debugging/test_repair": "make a failing or flaky test pass again, or fix the test itself",
    "debugging/root_cause_analysis": "explain why something fails before any fix",
    "refactoring/code_cleanup": "tidy code locally without changing behaviour",
    "refactoring/architecture_improvement": "restructure modules, layers or dependencies",
    "refactoring/migration": "move code to another framework, library, version or platform",
    "planning_design/architecture_design": "choose the structure of a new system or component",
    "planning_design/technical_planning": "plan the steps, order, risks and estimates of work",
    "planning_design/system_design": "design a service for scale, load, storage and failure",
    "investigation/repo_exploration": "find where things are in a repository",
    "investigation/codebase_understanding": "explain how existing code works",
    "investigation/external_research": "compare or look up libraries, tools, docs outside the repo",
    "agentic_execution/tool_usage": "use one tool or API to get something done",
    "agentic_execution/terminal_operations": "run shell commands and work with their output",
    "agentic_execution/multi_step_execution": "carry out a multi-step task end to end",
}


def system_prompt() -> str:
    """The instructions: the routes, their meanings, and the one answer shape accepted."""
    lines = [f"- {route}: {ROUTE_MEANINGS[route]}" for route in ROUTES]
    return (
        "You classify a request sent to a coding assistant into exactly one route.\n"
        "Routes (taskType/subtaskType):\n" + "\n".join(lines) + "\n"
        'Answer with one JSON object and nothing else: {"route": "<one route above>", '
        '"confidence": <number from 0 to 1>}'
    )


class LLMAnswer(BaseModel):
    """What the model must answer; anything else is a failure that triggers the fallback."""

    model_config = ConfigDict(extra="ignore")

    route: str
    confidence: float = Field(ge=0.0, le=1.0)

    @field_validator("route")
    @classmethod
    def _known_route(cls, route: str) -> str:
        return validate_route(route)


class LLMFailure(Exception):
    """The model gave no usable answer; ``reason`` is short and safe to return to callers."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_answer(content: str | None) -> LLMAnswer:
    """The first JSON object in the model's reply, validated; :class:`LLMFailure` otherwise."""
    if not content or not content.strip():
        raise LLMFailure("llm answer empty")
    raw = _first_json_object(content)
    if raw is None:
        raise LLMFailure(f"llm answer is not JSON: {_excerpt(content)}")
    try:
        return LLMAnswer.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in exc.errors()
        )
        raise LLMFailure(f"llm answer invalid: {_excerpt(problems)}") from None


_OBJECT_START = re.compile(r"\{")


def _first_json_object(content: str) -> dict[str, Any] | None:
    decoder = json.JSONDecoder()
    for match in _OBJECT_START.finditer(content):
        try:
            value, _ = decoder.raw_decode(content, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _REASON_CHARS else flat[: _REASON_CHARS - 3] + "..."


class LLMClassifier:
    """Classifies with a model through the providers; any failure answers with ``fallback``."""

    def __init__(
        self,
        provider: Provider,
        *,
        model_label: str,
        fallback: Classifier,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.name = f"llm:{model_label}"
        self._provider = provider
        self._fallback = fallback
        self._timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="autoray-llm")
        self._closed = threading.Event()

    def __repr__(self) -> str:
        return f"LLMClassifier(name={self.name!r}, timeout_s={self._timeout_s})"

    def classify(self, text: str) -> Classification:
        prefix, truncated = bounded_prefix(text)
        try:
            answer = parse_answer(self._ask(prefix))
        except LLMFailure as failure:
            fallen = self._fallback.classify(text)
            return dataclasses.replace(fallen, fallback=failure.reason)
        score = RouteScore(answer.route, answer.confidence)
        return Classification(
            route=answer.route,
            confidence=answer.confidence,
            top=(score,),
            classifier=self.name,
            chars_read=len(prefix),
            truncated=truncated,
        )

    def _ask(self, prefix: str) -> str | None:
        messages = [
            {"role": "system", "content": system_prompt()},
            {"role": "user", "content": prefix},
        ]
        future = self._pool.submit(self._provider.chat, messages)
        try:
            return future.result(timeout=self._timeout_s).content
        except FutureTimeout:
            future.cancel()
            raise LLMFailure(f"llm timeout after {self._timeout_s:.1f}s") from None
        except AutorayError as exc:
            raise LLMFailure(f"llm error: {_excerpt(str(exc))}") from None
        except Exception as exc:  # a provider bug must not take the decision down with it
            raise LLMFailure(f"llm error: {type(exc).__name__}: {_excerpt(str(exc))}") from None

    def close(self) -> None:
        """Stop the worker threads (without waiting for a call past its deadline) and the client."""
        if not self._closed.is_set():
            self._closed.set()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._provider.close()


def llm_classifier(
    entry: ModelEntry,
    *,
    fallback: Classifier,
    sim_url: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> LLMClassifier:
    """An :class:`LLMClassifier` for a configured model entry, through the provider factory.

    The entry is copied with no retries and its HTTP timeout at the deadline, so a call never
    outlives the deadline by much even when the caller has stopped waiting for it.
    """
    from autoray.providers.base import create_provider

    bounded = entry.model_copy(update={"timeout_s": timeout_s, "max_retries": 0})
    provider = create_provider(bounded, sim_url=sim_url)
    return LLMClassifier(
        provider, model_label=entry.key.label(), fallback=fallback, timeout_s=timeout_s
    )
