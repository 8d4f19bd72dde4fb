"""The decide path without Ray: bounded classification with its cache, the session's incumbent
kept and written only on change, user text required, metrics told. Ports (classifier, session
store, recorder) are small in-memory stand-ins; the decision itself is the real one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from autoray.cache import TTLCache
from autoray.classify import MAX_CLASSIFY_CHARS, Classification, RouteScore
from autoray.decision import Mode, parse_denied
from autoray.ranking import Candidate
from autoray.table import RoutingTable
from autoray.taxonomy import ROUTES
from serve.decisions import DecisionInput, DecisionService, NoUserTextError
from serve.metrics import key_label, reason_label, route_label
from serve.sessions import StickyModel

ROUTE = "debugging/bug_fixing"


def _candidate(model_id: str, accuracy: float, cost: float, variant: str | None = None) -> Any:
    return Candidate(model_id, variant, accuracy, cost, 10, accuracy >= 0.7)


CHEAP = _candidate("cheap", 0.85, 0.002)
MID = _candidate("mid", 0.8, 0.005, "medium")
TABLE = RoutingTable(
    version="rt-test",
    generated_at="2026-01-01T00:00:00+00:00",
    min_accuracy=0.7,
    switch_cost_factor=3.0,
    routes={route: (CHEAP, MID) for route in ROUTES},
    run_id="run-1",
    dataset_identity="ds",
)


class Classifier:
    name = "fixed"

    def __init__(self) -> None:
        self.texts: list[str] = []

    def classify(self, text: str) -> Classification:
        self.texts.append(text)
        return Classification(ROUTE, 0.9, (RouteScore(ROUTE, 0.9),), self.name, len(text))


class Sessions:
    ttl_s = 1800.0

    def __init__(self) -> None:
        self.store: dict[str, StickyModel] = {}
        self.puts = 0

    async def get(self, session_id: str) -> StickyModel | None:
        return self.store.get(session_id)

    async def put(self, session_id: str, sticky: StickyModel) -> None:
        self.puts += 1
        self.store[session_id] = sticky


class Recorder:
    def __init__(self) -> None:
        self.decisions: list[dict[str, Any]] = []
        self.fallbacks: list[str] = []

    def record_decision(self, **fields: Any) -> None:
        self.decisions.append(fields)

    def record_fallback(self, kind: str) -> None:
        self.fallbacks.append(kind)


def _service(table: RoutingTable | None = TABLE) -> tuple[DecisionService, Classifier, Sessions]:
    classifier, sessions = Classifier(), Sessions()
    service = DecisionService(
        classifier=classifier,
        cache=TTLCache(100, 60),
        sessions=sessions,
        table=lambda: table,
        recorder=Recorder(),
        label=lambda key: key.model_id,
    )
    return service, classifier, sessions


def _input(text: str = "fix the bug", **fields: Any) -> DecisionInput:
    return DecisionInput(messages=[{"role": "user", "content": text}], **fields)


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_decides_the_routes_first_model_and_says_which_table() -> None:
    service, _, _ = _service()
    result = _run(service.decide(_input(), endpoint="decide"))
    assert result.outcome.decision is not None
    assert result.outcome.decision.model_id == "cheap" and result.table_version == "rt-test"
    body = result.as_dict()
    assert body["classification"]["cached"] is False and body["reason"] is None


def test_a_repeated_text_is_classified_once() -> None:
    service, classifier, _ = _service()
    first = _run(service.decide(_input(), endpoint="decide"))
    second = _run(service.decide(_input(), endpoint="decide"))
    assert (first.cached, second.cached) == (False, True) and len(classifier.texts) == 1


def test_a_long_text_is_classified_on_its_prefix_and_marked_truncated() -> None:
    service, classifier, _ = _service()
    result = _run(service.decide(_input("x" * 5_000_000), endpoint="decide"))
    assert len(classifier.texts[0]) == MAX_CLASSIFY_CHARS
    assert result.classification.truncated is True


def test_a_session_keeps_its_model_and_is_written_only_when_it_changes() -> None:
    service, _, sessions = _service()
    denied = parse_denied(["cheap"])
    first = _run(service.decide(_input(session_id="s", denied=denied), endpoint="decide"))
    assert first.outcome.decision is not None and first.outcome.decision.model_id == "mid"
    for _ in range(3):
        later = _run(service.decide(_input(session_id="s"), endpoint="decide"))
        assert later.outcome.decision is not None
        assert (later.outcome.decision.model_id, later.outcome.decision.sticky) == ("mid", True)
    assert sessions.puts == 1


def test_no_table_is_a_null_decision_not_an_error() -> None:
    service, _, sessions = _service(table=None)
    result = _run(service.decide(_input(session_id="s"), endpoint="decide"))
    assert result.outcome.decision is None and result.as_dict()["reason"] == "no_table"
    assert result.table_version is None and sessions.puts == 0


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "system", "content": "be brief"}],
        [{"role": "user", "content": "   "}],
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
    ],
)
def test_no_user_text_names_the_field(messages: list[dict[str, Any]]) -> None:
    service, _, _ = _service()
    with pytest.raises(NoUserTextError) as caught:
        _run(service.decide(DecisionInput(messages=messages), endpoint="decide"))
    assert caught.value.field == "messages" and "role" in str(caught.value)


def test_decisions_are_recorded_with_mode_applied() -> None:
    service, _, _ = _service()
    recorder = service.recorder
    assert isinstance(recorder, Recorder)
    _run(service.decide(_input(mode=Mode.BEST_ACCURACY), endpoint="chat"))
    assert recorder.decisions[0]["model"] == "cheap"  # most accurate here too
    assert recorder.decisions[0]["endpoint"] == "chat" and recorder.decisions[0]["seconds"] >= 0


def test_metric_labels_stay_bounded() -> None:
    assert route_label(ROUTE) == ROUTE and route_label("made/up") == "none"
    assert reason_label("all_denied") == "all_denied" and reason_label("whatever") == "other"
    assert key_label("key-2") == "key-2" and key_label("sk-secret") == "anonymous"
