"""The decide path shared by ``/v1/decide`` and ``autoray/auto``: classify, look up the session,
decide, remember the session's model, count it.

One code path for both endpoints, so a chat through ``autoray/auto`` gets exactly the decision
``/v1/decide`` would show for the same request and session.

The classifier reads a bounded prefix of the last user message; that prefix (with whether it
was cut) keys this replica's classification cache, so a retried or repeated request is not
classified twice, and a 5 MB paste costs what its first few thousand characters cost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from autoray.cache import TTLCache
from autoray.classify import Classification, Classifier, bounded_prefix, request_text
from autoray.decision import (
    Constraints,
    DecisionOutcome,
    DeniedModels,
    Mode,
    decide,
    estimate_prompt_tokens,
)
from autoray.table import RoutingTable
from serve.sessions import StickyModel


class NoUserTextError(ValueError):
    """The request has no user text to classify; ``field`` is what the client should fix."""

    def __init__(self, field: str) -> None:
        hint = (
            'add a message {"role": "user", "content": "..."}: the route is read from the last '
            "user message"
            if field == "messages"
            else "send the request's text"
        )
        super().__init__(f"{field}: no user text to classify; {hint}")
        self.field = field


@dataclass(frozen=True, slots=True)
class DecisionInput:
    """One request as the decision sees it (already validated)."""

    messages: Sequence[dict[str, Any]]
    session_id: str | None = None
    denied: DeniedModels = DeniedModels()
    mode: Mode = Mode.COST_PER_ACCURACY
    constraints: Constraints = Constraints()
    text_field: str = "messages"


@dataclass(frozen=True, slots=True)
class DecisionResult:
    classification: Classification
    cached: bool
    outcome: DecisionOutcome
    table_version: str | None

    @property
    def route(self) -> str:
        return self.classification.route

    def as_dict(self) -> dict[str, Any]:
        """The ``/v1/decide`` response body."""
        classification = {**self.classification.as_dict(), "cached": self.cached}
        return {**self.outcome.as_dict(), "classification": classification}


class SessionLookup(Protocol):
    ttl_s: float

    async def get(self, session_id: str) -> StickyModel | None: ...

    async def put(self, session_id: str, sticky: StickyModel) -> None: ...


class DecisionRecorder(Protocol):
    def record_decision(
        self, *, endpoint: str, route: str, model: str | None, reason: str | None, seconds: float
    ) -> None: ...

    def record_fallback(self, kind: str) -> None: ...


@dataclass
class DecisionService:
    """Everything the decide path needs; ``table`` returns the replica's current table.

    ``blocking_classifier``: the classifier does network I/O (the LLM one), so it runs in a
    thread instead of on the event loop that serves every other request.
    """

    classifier: Classifier
    cache: TTLCache[tuple[str, bool], Classification]
    sessions: SessionLookup
    table: Callable[[], RoutingTable | None]
    recorder: DecisionRecorder
    label: Callable[[Any], str]
    blocking_classifier: bool = False

    async def decide(self, request: DecisionInput, *, endpoint: str) -> DecisionResult:
        started = time.perf_counter()
        classification, cached = await self.classify(_user_text(request))
        incumbent = await self._incumbent(request.session_id)
        table = self.table()
        outcome = decide(
            table,
            classification.route,
            mode=request.mode,
            incumbent=None if incumbent is None else incumbent.key,
            denied=request.denied,
            prompt_tokens=estimate_prompt_tokens(request.messages),
            constraints=request.constraints,
        )
        await self._remember(request.session_id, incumbent, outcome)
        self._record(endpoint, classification, outcome, time.perf_counter() - started)
        version = outcome.decision.table_version if outcome.decision else _version(table)
        return DecisionResult(classification, cached, outcome, version)

    async def classify(self, text: str) -> tuple[Classification, bool]:
        """The classification of ``text``'s bounded prefix, from the cache when seen before."""
        prefix, truncated = bounded_prefix(text)
        key = (prefix, truncated)
        found = self.cache.get(key)
        if found is not None:
            return found, True
        clean = prefix.encode("utf-8", "replace").decode("utf-8")  # lone surrogates → '?'
        if self.blocking_classifier:
            result = await asyncio.to_thread(self.classifier.classify, clean)
        else:
            result = self.classifier.classify(clean)
        if truncated:
            result = replace(result, truncated=True)
        self.cache.put(key, result)
        return result, False

    async def _incumbent(self, session_id: str | None) -> StickyModel | None:
        return None if session_id is None else await self.sessions.get(session_id)

    async def _remember(
        self, session_id: str | None, incumbent: StickyModel | None, outcome: DecisionOutcome
    ) -> None:
        """Store the session's model when it is new or changed (one more call, rarely)."""
        decision = outcome.decision
        if session_id is None or decision is None:
            return
        now = time.time()
        sticky = StickyModel(
            decision.model_id, decision.variant, decision.route, decision.table_version, now, now
        )
        if incumbent is None or not incumbent.same_choice(sticky):
            await self.sessions.put(session_id, sticky)

    def _record(
        self, endpoint: str, classification: Classification, outcome: DecisionOutcome, s: float
    ) -> None:
        decision = outcome.decision
        self.recorder.record_decision(
            endpoint=endpoint,
            route=classification.route,
            model=None if decision is None else self.label(decision.key),
            reason=None if outcome.reason is None else outcome.reason.value,
            seconds=s,
        )
        if classification.fallback:
            self.recorder.record_fallback("classifier")


def _user_text(request: DecisionInput) -> str:
    text = request_text(request.messages)
    if not text.strip():
        raise NoUserTextError(request.text_field)
    return text


def _version(table: RoutingTable | None) -> str | None:
    return None if table is None else table.version
