"""The ``openai`` provider over real HTTP on 127.0.0.1, against the simulated farm.

The farm's test hooks (``POST /_faults``) make it misbehave deterministically, so retries,
backoff and error handling are exercised through the real client and server.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from autoray.cases import Dataset, GoldenCase
from autoray.config import ModelEntry, PriceConfig, RunnerConfig
from autoray.errors import (
    ConfigError,
    ModelTimeoutError,
    ProviderError,
    ProviderUnavailableError,
)
from autoray.providers import OpenAIProvider, create_provider, wire_model_name
from autoray.providers.simfarm import serve_farm
from autoray.runner import TOOL_SCHEMAS, run_case
from autoray.simulation import SIMULATED_FINGERPRINT, passes
from tests.integration.http_apps import closed_port, serve_app

PRICE = PriceConfig(input_per_mtok=3.0, output_per_mtok=15.0)
KEY_VAR = "AUTORAY_TEST_PROVIDER_KEY"
SECRET = "sk-test-0123456789abcdefSECRET"

PLAIN = GoldenCase.model_validate(
    {
        "id": "implementation-code_generation-provider-plain",
        "route": "implementation/code_generation",
        "language": "python",
        "difficulty": "easy",
        "prompt": "Name the Python builtin that returns the length of a list.",
        "check": {"kind": "exact", "expected": "len"},
        "reference": {"answer": "len"},
        "wrong_answer": "size",
    }
)
AGENTIC = GoldenCase.model_validate(
    {
        "id": "agentic_execution-tool_usage-provider-tools",
        "route": "agentic_execution/tool_usage",
        "language": "shell",
        "difficulty": "easy",
        "prompt": "Create notes.txt containing 'hi', then show it.",
        "check": {"kind": "exact", "expected": "hi"},
        "reference": {
            "answer": "hi",
            "steps": [
                {"tool": "write_file", "path": "notes.txt", "content": "hi\n"},
                {"tool": "bash", "command": "cat notes.txt"},
            ],
        },
        "wrong_answer": "bye",
    }
)


def _entry(model_id: str, skill: float = 1.0, **extra: Any) -> ModelEntry:
    fields: dict[str, Any] = {
        "id": model_id,
        "provider": "simulated",
        "price": PRICE,
        "skill": {"default": skill},
    }
    fields.update(extra)
    return ModelEntry(**fields)


GOOD = _entry("sim-good")
GOOD_HIGH = _entry("sim-good", variant="high")
BAD = _entry("sim-bad", skill=0.0)
COIN = _entry("sim-coin", skill=0.5)


@pytest.fixture(scope="module")
def farm_url() -> Iterator[str]:
    dataset = Dataset(name="provider-test", cases=(PLAIN, AGENTIC), identity="provider-test:0")
    with serve_farm([GOOD, GOOD_HIGH, BAD, COIN], dataset, seed=3, test_hooks=True) as url:
        yield url


@pytest.fixture(autouse=True)
def _clear_faults(farm_url: str) -> Iterator[None]:
    yield
    httpx.delete(farm_url.removesuffix("/v1") + "/_faults").raise_for_status()


def _faults(farm_url: str, model: str, *faults: dict[str, Any]) -> None:
    body = {"model": model, "faults": list(faults)}
    httpx.post(farm_url.removesuffix("/v1") + "/_faults", json=body).raise_for_status()


class _Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _provider(entry: ModelEntry, url: str, sleeps: _Sleeps, **kwargs: Any) -> OpenAIProvider:
    return OpenAIProvider(
        entry,
        base_url=url,
        api_key_env=kwargs.pop("api_key_env", None),
        sleep=sleeps,
        jitter=lambda: 1.0,
        **kwargs,
    )


def _ask(case: GoldenCase) -> list[dict[str, Any]]:
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": case.prompt}]


def test_normal_call_returns_answer_usage_and_priced_cost(farm_url: str) -> None:
    with closing(create_provider(GOOD, sim_url=farm_url)) as provider:
        response = provider.chat(_ask(PLAIN))
    assert response.content == "len"
    assert response.tool_calls == ()
    assert response.input_tokens > 0 and response.output_tokens == 1
    assert response.cost_usd == pytest.approx(
        PRICE.cost_usd(response.input_tokens, response.output_tokens)
    )
    assert response.system_fingerprint == SIMULATED_FINGERPRINT
    assert (response.model, response.finish_reason) == ("sim-good", "stop")


def test_variant_is_its_own_wire_model_and_failing_model_gives_wrong_answer(
    farm_url: str,
) -> None:
    assert wire_model_name(GOOD_HIGH) == "sim-good@high"
    with closing(create_provider(GOOD_HIGH, sim_url=farm_url)) as high:
        assert high.chat(_ask(PLAIN)).model == "sim-good@high"
    with closing(create_provider(BAD, sim_url=farm_url)) as bad:
        assert bad.chat(_ask(PLAIN)).content == "size"


def test_metadata_rep_reaches_the_farm(farm_url: str) -> None:
    reps = {rep: passes("sim-coin", None, PLAIN.id, rep, 3, 0.5) for rep in range(40)}
    passing = next(rep for rep, ok in reps.items() if ok)
    failing = next(rep for rep, ok in reps.items() if not ok)
    with closing(create_provider(COIN, sim_url=farm_url)) as provider:
        assert provider.chat(_ask(PLAIN), metadata={"rep": str(passing)}).content == "len"
        assert provider.chat(_ask(PLAIN), metadata={"rep": str(failing)}).content == "size"


def test_tool_calls_round_trip(farm_url: str) -> None:
    sleeps = _Sleeps()
    messages = _ask(AGENTIC)
    calls = []
    with _provider(GOOD, farm_url, sleeps) as provider:
        for _ in range(3):
            response = provider.chat(messages, tools=TOOL_SCHEMAS)
            if not response.tool_calls:
                break
            call = response.tool_calls[0]
            calls.append((call.name, call.arguments))
            messages += [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": call.id,
                            "type": "function",
                            "function": {
                                "name": call.name,
                                "arguments": json.dumps(call.arguments),
                            },
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": call.id, "content": "ok"},
            ]
    assert calls == [
        ("write_file", {"path": "notes.txt", "content": "hi\n"}),
        ("bash", {"command": "cat notes.txt"}),
    ]
    assert response.content == "hi" and response.finish_reason == "stop"


def test_429_then_success_honours_small_retry_after(farm_url: str) -> None:
    _faults(farm_url, "sim-good", {"status": 429, "retry_after": 0.25, "count": 1})
    sleeps = _Sleeps()
    with _provider(GOOD, farm_url, sleeps) as provider:
        assert provider.chat(_ask(PLAIN)).content == "len"
    assert sleeps == [0.25]


def test_429_without_retry_after_backs_off_exponentially(farm_url: str) -> None:
    _faults(farm_url, "sim-good", {"status": 429, "count": 2})
    sleeps = _Sleeps()
    with _provider(GOOD, farm_url, sleeps) as provider:
        assert provider.chat(_ask(PLAIN)).content == "len"
    assert sleeps == [0.5, 1.0]


def test_500_until_retries_run_out_is_infrastructure(farm_url: str) -> None:
    _faults(farm_url, "sim-good", {"status": 500, "count": 10})
    sleeps = _Sleeps()
    entry = _entry("sim-good", max_retries=2)
    with (
        _provider(entry, farm_url, sleeps) as provider,
        pytest.raises(ProviderUnavailableError) as info,
    ):
        provider.chat(_ask(PLAIN))
    assert "HTTP 500" in str(info.value) and "3 attempt(s)" in str(info.value)
    assert "simulated fault" in str(info.value)
    assert sleeps == [0.5, 1.0]


def test_client_error_other_than_429_is_not_retried(farm_url: str) -> None:
    _faults(farm_url, "sim-good", {"status": 400, "count": 1})
    sleeps = _Sleeps()
    with _provider(GOOD, farm_url, sleeps) as provider, pytest.raises(ProviderError, match="400"):
        provider.chat(_ask(PLAIN))
    assert sleeps == []


def test_unknown_model_is_a_404_without_retry_and_infrastructure(farm_url: str) -> None:
    sleeps = _Sleeps()
    entry = _entry("sim-missing")
    with (
        _provider(entry, farm_url, sleeps) as provider,
        pytest.raises(ProviderUnavailableError) as info,
    ):
        provider.chat(_ask(PLAIN))
    assert "HTTP 404" in str(info.value) and "does not exist" in str(info.value)
    assert sleeps == []


def test_malformed_body_raises_without_retry(farm_url: str) -> None:
    _faults(farm_url, "sim-good", {"malformed": True})
    sleeps = _Sleeps()
    with (
        _provider(GOOD, farm_url, sleeps) as provider,
        pytest.raises(ProviderError, match="malformed completion"),
    ):
        provider.chat(_ask(PLAIN))
    assert sleeps == []


def test_tool_arguments_that_are_not_json_raise(farm_url: str) -> None:
    _faults(farm_url, "sim-good", {"bad_tool_arguments": True})
    with (
        _provider(GOOD, farm_url, _Sleeps()) as provider,
        pytest.raises(ProviderError, match="not JSON"),
    ):
        provider.chat(_ask(AGENTIC), tools=TOOL_SCHEMAS)


def test_timeout_is_a_transport_error_that_is_retried(farm_url: str) -> None:
    _faults(farm_url, "sim-good", {"delay_ms": 1500})
    sleeps = _Sleeps()
    entry = _entry("sim-good", timeout_s=0.3, max_retries=1)
    with _provider(entry, farm_url, sleeps) as provider:
        assert provider.chat(_ask(PLAIN)).content == "len"
    assert len(sleeps) == 1


def test_timeout_after_retries_is_the_models_own_timeout(farm_url: str) -> None:
    _faults(farm_url, "sim-good", {"delay_ms": 1500})
    entry = _entry("sim-good", timeout_s=0.3, max_retries=0)
    with (
        _provider(entry, farm_url, _Sleeps()) as provider,
        pytest.raises(ModelTimeoutError, match="ReadTimeout"),
    ):
        provider.chat(_ask(PLAIN))


def _openai_entry(url: str, **extra: Any) -> ModelEntry:
    fields: dict[str, Any] = {
        "id": "gpt-like",
        "provider": "openai",
        "price": PRICE,
        "base_url": url,
        "api_key_env": KEY_VAR,
        "api_model": "sim-good",
    }
    fields.update(extra)
    return ModelEntry(**fields)


def test_openai_entry_sends_api_model_with_the_key(
    farm_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VAR, SECRET)
    with closing(create_provider(_openai_entry(farm_url))) as provider:
        response = provider.chat(_ask(PLAIN))
        assert SECRET not in repr(provider)
    assert (response.model, response.content) == ("sim-good", "len")


def test_missing_key_is_infrastructure_naming_the_variable_to_set(
    farm_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_VAR, raising=False)
    provider = create_provider(_openai_entry(farm_url))
    with closing(provider), pytest.raises(ProviderUnavailableError, match=f"export {KEY_VAR}="):
        provider.chat(_ask(PLAIN))


def test_simulated_entry_without_farm_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="AUTORAY_SIM_URL"):
        create_provider(GOOD)


def test_key_is_redacted_from_errors_even_when_the_server_echoes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A misbehaving server that echoes the Authorization header must not leak the key."""
    monkeypatch.setenv(KEY_VAR, SECRET)

    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, text=f"bad credentials: {request.headers['authorization']}")

    entry = _openai_entry("http://127.0.0.1:9/v1")
    provider = OpenAIProvider(
        entry,
        base_url="http://127.0.0.1:9/v1",
        api_key_env=KEY_VAR,
        transport=httpx.MockTransport(echo),
    )
    with provider, pytest.raises(ProviderUnavailableError) as info:
        provider.chat(_ask(PLAIN))
    assert SECRET not in str(info.value) and "Bearer ***" in str(info.value)


def test_provider_reported_cost_wins_over_prices(monkeypatch: pytest.MonkeyPatch) -> None:
    def priced(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "model": "m",
                "choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "cost": 0.0123},
            },
        )

    provider = OpenAIProvider(
        GOOD,
        base_url="http://127.0.0.1:9/v1",
        api_key_env=None,
        transport=httpx.MockTransport(priced),
    )
    with provider:
        response = provider.chat(_ask(PLAIN))
    assert (response.cost_usd, response.input_tokens, response.output_tokens) == (0.0123, 10, 5)


def test_no_usage_means_unknown_cost() -> None:
    def bare(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"choices": [{"message": {"content": "ok"}}]})

    provider = OpenAIProvider(
        GOOD,
        base_url="http://127.0.0.1:9/v1",
        api_key_env=None,
        transport=httpx.MockTransport(bare),
    )
    with provider:
        response = provider.chat(_ask(PLAIN))
    assert (response.cost_usd, response.input_tokens, response.model) == (None, 0, "sim-good")


# Failure boundaries (issue 9, finding 1): what the endpoint did wrong is infrastructure, raised
# as ProviderUnavailableError for the lane's policy to retry; only the model's own failures stay
# ProviderError, a score-0 row. Each of these was a ProviderError, a row, before.

OK_COMPLETION = {
    "model": "m",
    "choices": [{"message": {"content": "len"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1},
}
CONTEXT_400 = {
    "error": {
        "message": "This model's maximum context length is 8192 tokens; your messages "
        "resulted in 9001 tokens. Please reduce the length of the messages.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}


@dataclass
class Script:
    """What a scripted endpoint answers; ``models`` None means it has no ``/models``."""

    chat: tuple[int, dict[str, Any]] = (200, OK_COMPLETION)
    models: int | None = 200
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)


def _scripted_app(script: Script) -> Starlette:
    async def models(request: Request) -> JSONResponse:
        script.seen.append(("GET", request.url.path, request.headers.get("authorization")))
        if script.models is None:
            return JSONResponse({"error": {"message": "no such route"}}, status_code=404)
        return JSONResponse({"object": "list", "data": []}, status_code=script.models)

    async def chat(request: Request) -> JSONResponse:
        script.seen.append(("POST", request.url.path, request.headers.get("authorization")))
        status, body = script.chat
        return JSONResponse(body, status_code=status)

    return Starlette(
        routes=[
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
        ]
    )


@contextmanager
def _endpoint(script: Script) -> Iterator[str]:
    with serve_app(_scripted_app(script)) as url:
        yield url + "/v1"


@contextmanager
def _resetting_server() -> Iterator[str]:
    """Accepts connections and resets them at once (RST), as a crashing proxy would."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/v1"
    finally:
        stop.set()
        thread.join(5)
        server.close()


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_credentials_are_infrastructure_without_retry(farm_url: str, status: int) -> None:
    _faults(farm_url, "sim-good", {"status": status})
    sleeps = _Sleeps()
    with (
        _provider(GOOD, farm_url, sleeps) as provider,
        pytest.raises(ProviderUnavailableError, match=f"HTTP {status}"),
    ):
        provider.chat(_ask(PLAIN))
    assert sleeps == []


@pytest.mark.parametrize("status", [429, 503])
def test_outage_longer_than_the_retries_is_infrastructure(farm_url: str, status: int) -> None:
    _faults(farm_url, "sim-good", {"status": status, "count": 10})
    sleeps = _Sleeps()
    entry = _entry("sim-good", max_retries=2)
    with (
        _provider(entry, farm_url, sleeps) as provider,
        pytest.raises(ProviderUnavailableError, match=f"HTTP {status}") as info,
    ):
        provider.chat(_ask(PLAIN))
    assert len(sleeps) == 2 and "3 attempt(s)" in str(info.value)


def test_connection_refused_is_infrastructure_after_retries() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    sleeps = _Sleeps()
    entry = _entry("sim-good", max_retries=1)
    with (
        _provider(entry, url, sleeps) as provider,
        pytest.raises(ProviderUnavailableError, match="ConnectError") as info,
    ):
        provider.chat(_ask(PLAIN))
    assert len(sleeps) == 1 and url in str(info.value)


def test_connection_reset_is_infrastructure() -> None:
    with (
        _resetting_server() as url,
        _provider(_entry("sim-good", max_retries=0), url, _Sleeps()) as provider,
        pytest.raises(ProviderUnavailableError) as info,
    ):
        provider.chat(_ask(PLAIN))
    text = str(info.value).lower()
    assert "reset" in text or "disconnected" in text


def test_tls_failure_is_infrastructure(farm_url: str) -> None:
    """The farm speaks plain HTTP, so an https client fails its TLS handshake."""
    url = farm_url.replace("http://", "https://")
    with (
        _provider(_entry("sim-good", max_retries=0), url, _Sleeps()) as provider,
        pytest.raises(ProviderUnavailableError, match="ConnectError"),
    ):
        provider.chat(_ask(PLAIN))


def test_unresolvable_host_is_infrastructure() -> None:
    url = "http://autoray-no-such-host.invalid/v1"
    entry = _entry("sim-good", max_retries=0, timeout_s=5)
    with (
        _provider(entry, url, _Sleeps()) as provider,
        pytest.raises(ProviderUnavailableError, match="ConnectError"),
    ):
        provider.chat(_ask(PLAIN))


def test_context_length_400_stays_the_models_failure() -> None:
    sleeps = _Sleeps()
    with (
        _endpoint(Script(chat=(400, CONTEXT_400))) as url,
        _provider(GOOD, url, sleeps) as provider,
        pytest.raises(ProviderError, match="maximum context length") as info,
    ):
        provider.chat(_ask(PLAIN))
    assert not isinstance(info.value, ProviderUnavailableError) and sleeps == []


def test_run_case_raises_instead_of_writing_a_row_when_the_endpoint_is_down() -> None:
    """Before, this was a score-0 row, and the table routed away from a healthy model."""
    url = f"http://127.0.0.1:{closed_port()}/v1"
    provider = _provider(_entry("sim-good", max_retries=0), url, _Sleeps())
    with provider, pytest.raises(ProviderUnavailableError):
        run_case(PLAIN, provider=provider, sandbox=None, config=RunnerConfig())


def test_run_case_raises_when_the_key_variable_is_unset(
    farm_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_VAR, raising=False)
    provider = create_provider(_openai_entry(farm_url))
    with closing(provider), pytest.raises(ProviderUnavailableError, match=KEY_VAR):
        run_case(PLAIN, provider=provider, sandbox=None, config=RunnerConfig())


# The preflight's one cheap call (OpenAIProvider.probe).


def test_probe_lists_models_with_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_VAR, SECRET)
    script = Script()
    with _endpoint(script) as url, closing(create_provider(_openai_entry(url))) as provider:
        provider.probe()
    assert script.seen == [("GET", "/v1/models", f"Bearer {SECRET}")]


def test_probe_against_the_farm_passes(farm_url: str) -> None:
    with closing(create_provider(GOOD, sim_url=farm_url)) as provider:
        provider.probe()


@pytest.mark.parametrize("status", [401, 403, 503])
def test_probe_fails_naming_the_endpoint_and_status(
    status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VAR, SECRET)
    entry = _openai_entry("http://127.0.0.1:9/v1", max_retries=0)
    with (
        _endpoint(Script(models=status)) as url,
        closing(OpenAIProvider(entry, base_url=url, api_key_env=KEY_VAR)) as provider,
        pytest.raises(ProviderUnavailableError) as info,
    ):
        provider.probe()
    assert f"{url}/models" in str(info.value) and f"HTTP {status}" in str(info.value)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("chat", "passes"),
    [((200, OK_COMPLETION), True), ((400, CONTEXT_400), True), ((401, {}), False)],
)
def test_probe_without_a_models_list_sends_a_one_token_completion(
    chat: tuple[int, dict[str, Any]], passes: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 400 still proves the endpoint took the key; a 401 does not."""
    monkeypatch.setenv(KEY_VAR, SECRET)
    script = Script(chat=chat, models=None)
    with _endpoint(script) as url, closing(create_provider(_openai_entry(url))) as provider:
        if passes:
            provider.probe()
        else:
            with pytest.raises(ProviderUnavailableError, match="HTTP 401"):
                provider.probe()
    assert [(method, path) for method, path, _ in script.seen] == [
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
    ]


def test_probe_with_the_key_unset_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_VAR, raising=False)
    script = Script()
    with (
        _endpoint(script) as url,
        closing(create_provider(_openai_entry(url))) as provider,
        pytest.raises(ProviderUnavailableError, match=KEY_VAR),
    ):
        provider.probe()
    assert script.seen == []
