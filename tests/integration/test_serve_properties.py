"""Bad input never reaches a 500: a property-based run (schemathesis over the app's OpenAPI
schema, real HTTP) and a hand-written list of nasty bodies, each a 4xx naming the field."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.integration.serve_support import RunningApp, seed, serve_app, table_of

pytestmark = pytest.mark.ray

APP_NAME = f"autoray-props-{uuid.uuid4().hex[:6]}"
TABLE = table_of()
EXAMPLES_PER_OPERATION = 40
USER = {"role": "user", "content": "fix the off-by-one in this loop"}


@pytest.fixture(scope="module")
def app(ray_cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    from serve.app import build_app
    from serve.args import AppArgs

    path: Path = tmp_path_factory.mktemp("serve-props") / "autoray.db"
    seed(f"sqlite+aiosqlite:///{path}", [TABLE], activate=TABLE)
    args = AppArgs(database_url=f"sqlite+aiosqlite:///{path}", max_body_bytes=1024 * 1024)
    with serve_app(build_app(args), APP_NAME) as running:
        yield running


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_request_gets_a_5xx(app: RunningApp, mode: GenerationMode) -> None:
    """Every operation of the app's OpenAPI schema, with bodies that fit it (positive) and
    bodies that break it (negative), over real HTTP: no answer may be a 5xx."""
    schema = schemathesis.openapi.from_url(f"{app.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    paths = {operation.path for operation in operations}
    assert {"/v1/decide", "/v1/chat/completions", "/v1/sessions/{session_id}"} <= paths

    @given(
        case=st.one_of([operation.as_strategy(generation_mode=mode) for operation in operations])
    )
    @settings(
        max_examples=EXAMPLES_PER_OPERATION * len(operations),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def no_5xx(case: Any) -> None:
        case.call_and_validate(checks=[not_a_server_error])

    no_5xx()


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


NASTY_DECIDE: list[tuple[str, bytes, str | None]] = [
    ("malformed JSON", b'{"prompt": "x"', None),
    ("not an object", b'["prompt"]', None),
    ("non-UTF-8 bytes", b'{"prompt": "\xff\xfe"}', None),
    ("JSON nested too deep", b"[" * 50_000 + b"]" * 50_000, None),
    ("NaN prompt", b'{"prompt": NaN}', "prompt"),
    ("empty body", b"", None),
    ("neither messages nor prompt", b"{}", "messages"),
    (
        "both messages and prompt",
        json.dumps({"prompt": "x", "messages": [USER]}).encode(),
        "messages",
    ),
    ("empty messages", b'{"messages": []}', "messages"),
    ("messages not a list", b'{"messages": "hi"}', "messages"),
    ("message not an object", b'{"messages": [5]}', "messages[0]"),
    ("unknown role", b'{"messages": [{"role": "bot", "content": "x"}]}', "messages[0].role"),
    ("content a number", b'{"messages": [{"role": "user", "content": 7}]}', "messages[0].content"),
    (
        "content part without text",
        b'{"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]}',
        "messages[0].content[0]",
    ),
    (
        "only a system message",
        b'{"messages": [{"role": "system", "content": "be nice"}]}',
        "messages",
    ),
    ("blank prompt", b'{"prompt": "   "}', "prompt"),
    ("prompt a list", b'{"prompt": ["x"]}', "prompt"),
    ("unknown mode", b'{"prompt": "x", "mode": "fastest"}', "mode"),
    ("unknown field", b'{"prompt": "x", "temperature": 0.2}', "temperature"),
    (
        "huge session_id",
        json.dumps({"prompt": "x", "session_id": "s" * 10_000}).encode(),
        "session_id",
    ),
    ("session_id a number", b'{"prompt": "x", "session_id": 12}', "session_id"),
    ("denied_models a string", b'{"prompt": "x", "denied_models": "a"}', "denied_models"),
    ("denied entry blank", b'{"prompt": "x", "denied_models": ["a", ":"]}', "denied_models[1]"),
    (
        "constraints zero",
        b'{"prompt": "x", "constraints": {"min_context_tokens": 0}}',
        "constraints.min_context_tokens",
    ),
    (
        "constraints a bool",
        b'{"prompt": "x", "constraints": {"min_context_tokens": true}}',
        "constraints.min_context_tokens",
    ),
    ("constraints unknown key", b'{"prompt": "x", "constraints": {"gpu": 1}}', "constraints.gpu"),
    ("nested garbage", json.dumps({"prompt": {"a": [{"b": [None] * 50}]}}).encode(), "prompt"),
    ("lone surrogate key", b'{"prompt": "x", "\\ud800": 1}', None),
]


@pytest.mark.parametrize(("what", "raw", "param"), NASTY_DECIDE, ids=[n[0] for n in NASTY_DECIDE])
def test_nasty_decide_bodies_get_a_4xx_naming_the_field(
    app: RunningApp, what: str, raw: bytes, param: str | None
) -> None:
    response = app.client.post(
        "/v1/decide", content=raw, headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500, (what, response.status_code, response.text)
    error = _error(response)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param, (what, error)
    if param is not None:
        assert param.split("[")[0].split(".")[0] in error["message"], (what, error)


def test_a_body_over_the_limit_is_413(app: RunningApp) -> None:
    raw = json.dumps({"prompt": "x" * (2 * 1024 * 1024)}).encode()
    response = app.client.post(
        "/v1/decide", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "bytes" in _error(response)["message"]


def test_a_prompt_with_a_lone_surrogate_is_refused_naming_it(app: RunningApp) -> None:
    """Valid JSON, but no Unicode text: a lone surrogate cannot be classified or forwarded."""
    raw = b'{"prompt": "fix this bug \\ud800 in the parser"}'
    response = app.client.post(
        "/v1/decide", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert _error(response)["param"] == "prompt"


NASTY_CHAT: list[tuple[str, bytes, str | None]] = [
    ("malformed JSON", b'{"model": ', None),
    ("non-UTF-8 bytes", b'{"model": "\xc3\x28"}', None),
    ("no model", json.dumps({"messages": [USER]}).encode(), "model"),
    ("model a number", json.dumps({"model": 4, "messages": [USER]}).encode(), "model"),
    ("no messages", b'{"model": "autoray/auto"}', "messages"),
    ("empty messages", b'{"model": "autoray/auto", "messages": []}', "messages"),
    (
        "stream a string",
        json.dumps({"model": "autoray/auto", "messages": [USER], "stream": "1"}).encode(),
        "stream",
    ),
    (
        "unknown mode",
        json.dumps({"model": "autoray/auto", "messages": [USER], "mode": "x"}).encode(),
        "mode",
    ),
    ("unknown model", json.dumps({"model": "no-such-model", "messages": [USER]}).encode(), "model"),
]


@pytest.mark.parametrize(("what", "raw", "param"), NASTY_CHAT, ids=[n[0] for n in NASTY_CHAT])
def test_nasty_chat_bodies_get_a_4xx_naming_the_field(
    app: RunningApp, what: str, raw: bytes, param: str | None
) -> None:
    response = app.client.post(
        "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500, (what, response.status_code, response.text)
    assert _error(response)["param"] == param, (what, response.text)


def test_chat_extra_fields_pass_through_untouched(app: RunningApp) -> None:
    body = {"model": "autoray/auto", "messages": [USER], "temperature": 0.1, "seed": 7}
    response = app.client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["x-autoray-model"]
