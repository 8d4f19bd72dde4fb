"""Forwarding mechanics over real HTTP on 127.0.0.1: what goes upstream (the key, never the
client's header), how each kind of upstream answer is judged, streams relayed and closed, and
errors normalised to OpenAI's shape. The upstream is a small provider app run by uvicorn whose
behaviour is chosen by the ``model`` it is sent."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from autoray.config import ModelEntry, PriceConfig
from autoray.decision import decide
from autoray.ranking import Candidate
from autoray.results import ModelKey
from autoray.table import RoutingTable
from serve.chat import AUTO_MODEL, ChatDeps, Usage, handle_chat
from serve.forward import (
    Completion,
    Failure,
    OpenStream,
    UsageTap,
    complete,
    normalised_error,
    open_stream,
)
from serve.upstreams import Upstream, UpstreamResolver
from tests.integration.http_apps import closed_port, serve_app

KEY_ENV = "AUTORAY_TEST_PROVIDER_KEY"
SECRET = "sk-test-provider-secret-4242"
PRICE = PriceConfig(input_per_mtok=1.0, output_per_mtok=2.0)
ROUTE = "debugging/bug_fixing"
MESSAGES = [{"role": "user", "content": "hello"}]
USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


@dataclass
class Provider:
    """What the test provider saw, and whether its endless stream was closed."""

    url: str = ""
    seen: list[dict[str, Any]] = field(default_factory=list)
    stream_closed: threading.Event = field(default_factory=threading.Event)

    def last(self) -> dict[str, Any]:
        return self.seen[-1]


def _completion(model: str, content: str = "hi") -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
    }


def _sse(events: list[Any]) -> bytes:
    return b"".join(f"data: {json.dumps(event)}\n\n".encode() for event in events)


def _chunk(content: str | None, usage: Any = None) -> dict[str, Any]:
    choices = [] if content is None else [{"index": 0, "delta": {"content": content}}]
    return {"id": "c", "object": "chat.completion.chunk", "choices": choices, "usage": usage}


async def _echo(body: dict[str, Any], provider: Provider) -> Response:
    if body.get("stream") is not True:
        return JSONResponse(_completion(body["model"]))
    events = [_chunk("h"), _chunk("i")]
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append(_chunk(None, USAGE))
    return Response(_sse(events) + b"data: [DONE]\n\n", media_type="text/event-stream")


async def _endless(body: dict[str, Any], provider: Provider) -> Response:
    async def events() -> AsyncIterator[bytes]:
        try:
            while True:
                yield _sse([_chunk("x")])
                await asyncio.sleep(0.02)
        finally:
            provider.stream_closed.set()

    return StreamingResponse(events(), media_type="text/event-stream")


async def _broken(body: dict[str, Any], provider: Provider) -> Response:
    async def events() -> AsyncIterator[bytes]:
        yield _sse([_chunk("partial")])
        await asyncio.sleep(0.05)
        raise RuntimeError("the test provider breaks its stream on purpose")

    return StreamingResponse(events(), media_type="text/event-stream")


async def _empty_stream(body: dict[str, Any], provider: Provider) -> Response:
    async def events() -> AsyncIterator[bytes]:
        for _ in ():
            yield b""

    return StreamingResponse(events(), media_type="text/event-stream")


async def _slow(body: dict[str, Any], provider: Provider) -> Response:
    await asyncio.sleep(3)
    return JSONResponse(_completion(body["model"]))


async def _leaky_401(body: dict[str, Any], provider: Provider) -> Response:
    seen = provider.last()["headers"].get("authorization", "")
    error = {"message": f"Incorrect API key provided: {seen}", "type": "auth", "code": "401"}
    return JSONResponse({"error": error}, status_code=401)


def _fixed(status: int, response: Response | dict[str, Any]) -> Any:
    async def behave(body: dict[str, Any], provider: Provider) -> Response:
        if isinstance(response, Response):
            return response
        return JSONResponse(response, status_code=status)

    return behave


BEHAVIOURS: dict[str, Any] = {
    "echo": _echo,
    "endless-stream": _endless,
    "broken-stream": _broken,
    "empty-stream": _empty_stream,
    "slow": _slow,
    "leaky-401": _leaky_401,
    "json-for-stream": _fixed(200, _completion("json-for-stream")),
    "not-completion": _fixed(200, {"hello": "world"}),
    "gone-404": _fixed(404, {"error": {"message": "no such model", "type": "not_found"}}),
    "busy-503": _fixed(503, {"error": {"message": "overloaded", "type": "server_error"}}),
    "plain-400": _fixed(400, PlainTextResponse("context too long", status_code=400)),
    "detail-422": _fixed(422, {"detail": "temperature: must be at most 2"}),
    "openai-400": _fixed(
        400,
        {
            "error": {
                "message": "maximum context length is 8192 tokens",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        },
    ),
}


def _provider_app(provider: Provider) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await request.json()
        provider.seen.append({"headers": dict(request.headers), "body": body})
        behaviour = BEHAVIOURS[body["model"]]
        response: Response = await behaviour(body, provider)
        return response

    return app


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    state = Provider()
    with serve_app(_provider_app(state)) as url:
        state.url = url + "/v1"
        yield state


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, SECRET)
    return SECRET


def _upstream(provider: Provider, name: str, *, timeout_s: float = 5) -> Upstream:
    return Upstream(
        key=ModelKey(name, None),
        base_url=provider.url,
        wire_model=name,
        api_key_env=KEY_ENV,
        simulated=False,
        timeout_s=timeout_s,
        price=PRICE,
    )


async def _complete(upstream: Upstream, **extra: Any) -> Completion | Failure:
    async with httpx.AsyncClient() as http:
        return await complete(
            http, upstream, {"model": upstream.wire_model, "messages": MESSAGES, **extra}
        )


async def _open(upstream: Upstream, **extra: Any) -> OpenStream | Completion | Failure:
    http = httpx.AsyncClient()
    payload = {"model": upstream.wire_model, "messages": MESSAGES, "stream": True, **extra}
    result = await open_stream(http, upstream, payload)
    if not isinstance(result, OpenStream):
        await http.aclose()
    return result


class TestComplete:
    async def test_sends_the_key_from_its_variable_and_the_body_as_given(
        self, provider: Provider, key: str
    ) -> None:
        result = await _complete(_upstream(provider, "echo"), temperature=0.2, tools=[])
        assert isinstance(result, Completion) and result.ok
        assert json.loads(result.content)["choices"][0]["message"]["content"] == "hi"
        assert result.usage == USAGE
        seen = provider.last()
        assert seen["headers"]["authorization"] == f"Bearer {key}"
        assert seen["body"] == {
            "model": "echo",
            "messages": MESSAGES,
            "temperature": 0.2,
            "tools": [],
        }

    async def test_a_missing_key_fails_without_calling_and_names_the_variable(
        self, provider: Provider, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv(KEY_ENV, raising=False)
        calls = len(provider.seen)
        result = await _complete(_upstream(provider, "echo"))
        assert isinstance(result, Failure) and KEY_ENV in result.reason
        assert len(provider.seen) == calls

    async def test_a_key_echoed_by_the_provider_is_redacted(
        self, provider: Provider, key: str
    ) -> None:
        result = await _complete(_upstream(provider, "leaky-401"))
        assert isinstance(result, Failure) and result.status == 401
        assert key not in result.reason and "***" in result.reason

    @pytest.mark.parametrize(
        ("model", "status"), [("busy-503", 503), ("gone-404", 404), ("not-completion", None)]
    )
    async def test_provider_faults_fail_over(
        self, provider: Provider, key: str, model: str, status: int | None
    ) -> None:
        result = await _complete(_upstream(provider, model))
        assert isinstance(result, Failure) and result.status == status
        assert repr(model) in result.reason

    @pytest.mark.parametrize("model", ["plain-400", "detail-422", "openai-400"])
    async def test_client_errors_are_answers_not_failures(
        self, provider: Provider, key: str, model: str
    ) -> None:
        result = await _complete(_upstream(provider, model))
        assert isinstance(result, Completion) and not result.ok and result.status in (400, 422)

    async def test_connection_refused_fails_over(self, key: str) -> None:
        upstream = Upstream(
            ModelKey("nobody", None),
            f"http://127.0.0.1:{closed_port()}/v1",
            "nobody",
            KEY_ENV,
            False,
            5,
            None,
        )
        result = await _complete(upstream)
        assert isinstance(result, Failure) and "ConnectError" in result.reason

    async def test_a_timeout_fails_over_naming_the_limit(
        self, provider: Provider, key: str
    ) -> None:
        result = await _complete(_upstream(provider, "slow", timeout_s=0.2))
        assert isinstance(result, Failure) and "no answer within 0.2 s" in result.reason


class TestOpenStream:
    async def test_relays_the_bytes_and_taps_the_usage(self, provider: Provider, key: str) -> None:
        stream = await _open(_upstream(provider, "echo"), stream_options={"include_usage": True})
        assert isinstance(stream, OpenStream)
        tap = UsageTap()
        data = b"".join([piece async for piece in stream.relay(tap)])
        assert data.endswith(b"data: [DONE]\n\n") and b'"content": "h"' in data
        assert tap.usage == USAGE
        assert stream.response.is_closed

    async def test_an_error_status_before_the_stream_fails_over(
        self, provider: Provider, key: str
    ) -> None:
        result = await _open(_upstream(provider, "busy-503"))
        assert isinstance(result, Failure) and result.status == 503

    async def test_a_client_error_before_the_stream_is_an_answer(
        self, provider: Provider, key: str
    ) -> None:
        result = await _open(_upstream(provider, "openai-400"))
        assert isinstance(result, Completion) and result.status == 400

    @pytest.mark.parametrize(
        ("model", "why"),
        [("json-for-stream", "application/json"), ("empty-stream", "before any byte")],
    )
    async def test_no_stream_at_all_fails_over(
        self, provider: Provider, key: str, model: str, why: str
    ) -> None:
        result = await _open(_upstream(provider, model))
        assert isinstance(result, Failure) and why in result.reason

    async def test_a_stream_broken_after_its_first_bytes_ends_with_an_error_event(
        self, provider: Provider, key: str
    ) -> None:
        stream = await _open(_upstream(provider, "broken-stream"))
        assert isinstance(stream, OpenStream)
        data = b"".join([piece async for piece in stream.relay(UsageTap())])
        events = [line for line in data.decode().split("\n") if line.startswith("data: ")]
        assert json.loads(events[0].removeprefix("data: "))["choices"][0]["delta"] == {
            "content": "partial"
        }
        error = json.loads(events[-1].removeprefix("data: "))["error"]
        assert "'broken-stream' stopped mid-stream" in error["message"]


class TestUsageTap:
    def test_finds_usage_across_arbitrary_splits(self) -> None:
        data = _sse([_chunk("a"), _chunk(None, USAGE)]) + b"data: [DONE]\n\n"
        for size in (1, 3, 7, len(data)):
            tap = UsageTap()
            for start in range(0, len(data), size):
                tap.feed(data[start : start + size])
            assert tap.usage == USAGE

    def test_null_usage_and_garbage_are_ignored(self) -> None:
        tap = UsageTap()
        tap.feed(_sse([_chunk("a")]) + b'data: {"usage": \n\n' + b"event: ping\n\n")
        assert tap.usage is None


class TestNormalisedError:
    def test_an_openai_shaped_error_is_kept(self) -> None:
        content = json.dumps(
            {"error": {"message": "m", "type": "t", "param": "messages", "code": "c", "x": 1}}
        ).encode()
        assert normalised_error(400, content, label="a") == {
            "error": {"message": "m", "type": "t", "param": "messages", "code": "c"}
        }

    @pytest.mark.parametrize(
        ("content", "text"),
        [
            (b"context too long", "context too long"),
            (b'{"detail": "temperature: too high"}', "temperature: too high"),
            (b'{"error": "quota"}', "quota"),
            (b"", "(no body)"),
        ],
    )
    def test_anything_else_becomes_the_message_naming_model_and_status(
        self, content: bytes, text: str
    ) -> None:
        error = normalised_error(422, content, label="m@v")["error"]
        assert error["message"] == f"model 'm@v' answered HTTP 422: {text}"
        assert error["type"] == "invalid_request_error" and error["code"] == "upstream_error"


# --- through handle_chat: headers upstream, body fields, streams closed on disconnect -------


def _entry(name: str, provider: Provider) -> ModelEntry:
    return ModelEntry(
        id=name, provider="openai", price=PRICE, base_url=provider.url, api_key_env=KEY_ENV
    )


def _table(*names: str) -> RoutingTable:
    candidates = tuple(
        Candidate(
            name, None, accuracy=0.9, avg_cost_usd=0.001 * (i + 1), cases=10, meets_threshold=True
        )
        for i, name in enumerate(names)
    )
    return RoutingTable(
        version="rt-test",
        generated_at="2025-01-01T00:00:00Z",
        min_accuracy=0.7,
        switch_cost_factor=3.0,
        routes={ROUTE: candidates},
        run_id=None,
        dataset_identity=None,
    )


def _chat_app(provider: Provider, table: RoutingTable, usages: list[Usage]) -> FastAPI:
    entries = [_entry(name, provider) for name in BEHAVIOURS]
    deps_box: dict[str, ChatDeps] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient() as http:
            deps_box["deps"] = ChatDeps(
                http, UpstreamResolver(entries, sim_url=None), None, usages.append
            )
            yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await request.json()
        deps = deps_box["deps"]
        if body["model"] != AUTO_MODEL:
            return await handle_chat(body, outcome=None, route=None, table_version=None, deps=deps)
        outcome = decide(table, ROUTE)
        return await handle_chat(
            body, outcome=outcome, route=ROUTE, table_version=table.version, deps=deps
        )

    return app


@pytest.fixture(scope="module")
def usages() -> list[Usage]:
    return []


@pytest.fixture(scope="module")
def chat_url(provider: Provider, usages: list[Usage]) -> Iterator[str]:
    app = _chat_app(provider, _table("busy-503", "echo"), usages)
    with serve_app(app) as url:
        yield url + "/v1/chat/completions"


def test_the_client_key_stays_here_and_autoray_fields_are_not_forwarded(
    provider: Provider, chat_url: str, key: str
) -> None:
    body = {
        "model": AUTO_MODEL,
        "messages": MESSAGES,
        "session_id": "s1",
        "mode": "best_accuracy",
        "denied_models": [],
        "constraints": {},
        "user": "u1",
        "temperature": 0,
    }
    response = httpx.post(chat_url, json=body, headers={"Authorization": "Bearer client-key"})
    assert response.status_code == 200 and response.headers["x-autoray-model"] == "echo"
    assert response.headers["x-autoray-fallbacks"] == "1"
    seen = provider.last()
    assert seen["headers"]["authorization"] == f"Bearer {key}"
    assert seen["body"] == {"model": "echo", "messages": MESSAGES, "user": "u1", "temperature": 0}


def test_a_named_model_is_forwarded_with_every_field(
    provider: Provider, chat_url: str, key: str, usages: list[Usage]
) -> None:
    usages.clear()
    body = {"model": "echo", "messages": MESSAGES, "mode": "kept", "n": 1}
    response = httpx.post(chat_url, json=body)
    assert response.status_code == 200 and "x-autoray-route" not in response.headers
    assert provider.last()["body"] == body
    assert usages == [Usage("echo", None, 10, 5, PRICE.cost_usd(10, 5))]


def test_an_upstream_client_error_comes_back_in_openai_shape(
    provider: Provider, chat_url: str, key: str
) -> None:
    response = httpx.post(chat_url, json={"model": "plain-400", "messages": MESSAGES})
    assert response.status_code == 400 and response.headers["x-autoray-model"] == "plain-400"
    assert response.json()["error"]["message"] == (
        "model 'plain-400' answered HTTP 400: context too long"
    )


def test_a_client_that_disconnects_closes_the_upstream_stream(
    provider: Provider, chat_url: str, key: str
) -> None:
    provider.stream_closed.clear()
    body = {"model": "endless-stream", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", chat_url, json=body, timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
    assert provider.stream_closed.wait(10), "the upstream stream was left open"
