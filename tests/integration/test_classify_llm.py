"""The ``llm`` classifier over real HTTP on 127.0.0.1: a valid answer, and every way of not
answering (prose from the simulated farm, an unknown route, an HTTP error, a timeout), each of
which falls back to the embedded classifier and says why."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from autoray.cases import Dataset
from autoray.classify import MAX_CLASSIFY_CHARS, build_classifier, default_classifier
from autoray.classify.llm import LLMClassifier
from autoray.config import ModelEntry, PriceConfig
from autoray.errors import ConfigError
from autoray.providers.simfarm import serve_farm
from autoray.taxonomy import ROUTES

PRICE = PriceConfig(input_per_mtok=1.0, output_per_mtok=2.0)
KEY_ENV = "AUTORAY_TEST_CLASSIFIER_KEY"
SECRET = "sk-test-classifier-secret-0123456789"
TEXT = "the checkout page throws a 500 since this morning's deploy, please fix"


def _completion(content: str) -> dict[str, Any]:
    return {
        "id": "cmpl-1",
        "object": "chat.completion",
        "model": "router-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5},
    }


class Recorder:
    """What the test server received, per mode."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.auth: list[str | None] = []


def _app(recorder: Recorder) -> FastAPI:
    app = FastAPI()

    @app.post("/{mode}/v1/chat/completions")
    async def chat(mode: str, request: Request) -> Any:
        body = await request.json()
        recorder.bodies.append(body)
        recorder.auth.append(request.headers.get("authorization"))
        if mode == "ok":
            return _completion('{"route": "debugging/bug_fixing", "confidence": 0.87}')
        if mode == "fenced":
            return _completion(
                '```json\n{"route": "planning_design/system_design", "confidence": 0.6}\n```'
            )
        if mode == "unknown-route":
            return _completion('{"route": "debugging/bugfix", "confidence": 0.9}')
        if mode == "slow":
            import asyncio

            await asyncio.sleep(3.0)
            return _completion('{"route": "debugging/bug_fixing", "confidence": 0.9}')
        return JSONResponse({"error": {"message": f"bad key {SECRET}"}}, status_code=401)

    return app


@contextmanager
def _server(recorder: Recorder) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(_app(recorder), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "test server did not start"
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def server_url(recorder: Recorder) -> Iterator[str]:
    default_classifier()  # train before any deadline starts counting
    with _server(recorder) as url:
        yield url


def _entry(base_url: str, **extra: Any) -> ModelEntry:
    return ModelEntry(
        id="router-model",
        provider="openai",
        price=PRICE,
        base_url=base_url,
        api_key_env=KEY_ENV,
        **extra,
    )


@pytest.fixture
def classifier_for(server_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv(KEY_ENV, SECRET)
    made: list[LLMClassifier] = []

    def make(mode: str, timeout_s: float = 2.0) -> LLMClassifier:
        chosen = build_classifier(
            "llm", llm_model=_entry(f"{server_url}/{mode}/v1"), timeout_s=timeout_s
        )
        assert isinstance(chosen, LLMClassifier)
        made.append(chosen)
        return chosen

    yield make
    for each in made:
        each.close()


def test_a_valid_answer_is_the_classification(classifier_for: Any, recorder: Recorder) -> None:
    classifier = classifier_for("ok")
    result = classifier.classify(TEXT)
    assert result.route == "debugging/bug_fixing"
    assert (result.task_type, result.subtask_type) == ("debugging", "bug_fixing")
    assert result.confidence == 0.87 and result.top[0].route == result.route
    assert result.classifier == "llm:router-model" and result.fallback is None
    body = recorder.bodies[-1]
    system, user = body["messages"]
    assert system["role"] == "system" and all(route in system["content"] for route in ROUTES)
    assert user == {"role": "user", "content": TEXT}
    assert recorder.auth[-1] == f"Bearer {SECRET}"


def test_the_model_reads_the_bounded_prefix(classifier_for: Any, recorder: Recorder) -> None:
    text = TEXT + "\n" + "log line\n" * 100_000
    result = classifier_for("fenced").classify(text)
    assert result.route == "planning_design/system_design" and result.fallback is None
    assert result.truncated and result.chars_read == MAX_CLASSIFY_CHARS
    assert recorder.bodies[-1]["messages"][1]["content"] == text[:MAX_CLASSIFY_CHARS]


def _assert_fell_back(result: Any, text: str, reason: str) -> None:
    embedded = default_classifier()
    assert result.fallback is not None and result.fallback.startswith(reason), result.fallback
    assert result.classifier == embedded.name
    assert result.route == embedded.classify(text).route
    assert SECRET not in result.fallback


def test_an_unknown_route_falls_back(classifier_for: Any) -> None:
    result = classifier_for("unknown-route").classify(TEXT)
    _assert_fell_back(result, TEXT, "llm answer invalid: route")
    assert "'bugfix'" in str(result.fallback)


def test_an_http_error_falls_back_without_the_key(classifier_for: Any) -> None:
    result = classifier_for("unauthorised").classify(TEXT)
    _assert_fell_back(result, TEXT, "llm error:")
    assert "HTTP 401" in str(result.fallback)


def test_a_slow_model_falls_back_at_the_deadline(classifier_for: Any) -> None:
    classifier = classifier_for("slow", timeout_s=1.0)
    started = time.monotonic()
    result = classifier.classify(TEXT)
    waited = time.monotonic() - started
    _assert_fell_back(result, TEXT, "llm timeout after 1.0s")
    assert waited < 2.5, f"the caller waited {waited:.1f}s for a 1 s deadline"


def test_a_missing_key_falls_back(server_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    classifier = build_classifier("llm", llm_model=_entry(f"{server_url}/ok/v1"))
    try:
        result = classifier.classify(TEXT)
    finally:
        classifier.close()  # type: ignore[attr-defined]
    _assert_fell_back(result, TEXT, "llm error:")
    assert KEY_ENV in str(result.fallback)


def _sim(model_id: str, **extra: Any) -> ModelEntry:
    return ModelEntry(
        id=model_id, provider="simulated", price=PRICE, skill={"default": 1.0}, **extra
    )


def test_the_simulated_farm_answers_prose_so_the_embedded_classifier_answers() -> None:
    models = [_sim("sim/router"), _sim("sim/slow-router", latency_ms=3000)]
    dataset = Dataset(name="empty", cases=(), identity="empty:0")
    with serve_farm(models, dataset, seed=0) as url:
        prose = build_classifier("llm", llm_model=models[0], sim_url=url)
        slow = build_classifier("llm", llm_model=models[1], sim_url=url, timeout_s=2.0)
        try:
            _assert_fell_back(prose.classify(TEXT), TEXT, "llm answer is not JSON: [simulated")
            _assert_fell_back(slow.classify(TEXT), TEXT, "llm timeout after 2.0s")
        finally:
            prose.close()  # type: ignore[attr-defined]
            slow.close()  # type: ignore[attr-defined]


def test_a_simulated_model_needs_the_farm_url() -> None:
    with pytest.raises(ConfigError, match="no simulated farm URL"):
        build_classifier("llm", llm_model=_sim("sim/router"))


def test_the_answer_is_json_serialisable(classifier_for: Any) -> None:
    result = classifier_for("ok").classify(TEXT)
    assert json.loads(json.dumps(result.as_dict()))["route"] == "debugging/bug_fixing"
