"""The ``openai`` provider over real HTTP on 127.0.0.1, against the simulated farm.

The farm's test hooks (``POST /_faults``) make it misbehave deterministically, so retries,
backoff and error handling are exercised through the real client and server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx
import pytest

from autoray.cases import Dataset, GoldenCase
from autoray.config import ModelEntry, PriceConfig
from autoray.errors import ConfigError, ProviderError
from autoray.providers import OpenAIProvider, create_provider, wire_model_name
from autoray.providers.simfarm import serve_farm
from autoray.runner import TOOL_SCHEMAS
from autoray.simulation import SIMULATED_FINGERPRINT, passes

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


def test_500_until_retries_run_out_raises(farm_url: str) -> None:
    _faults(farm_url, "sim-good", {"status": 500, "count": 10})
    sleeps = _Sleeps()
    entry = _entry("sim-good", max_retries=2)
    with _provider(entry, farm_url, sleeps) as provider, pytest.raises(ProviderError) as info:
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


def test_unknown_model_is_a_404_without_retry(farm_url: str) -> None:
    sleeps = _Sleeps()
    entry = _entry("sim-missing")
    with _provider(entry, farm_url, sleeps) as provider, pytest.raises(ProviderError) as info:
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


def test_timeout_after_retries_raises_naming_the_timeout(farm_url: str) -> None:
    _faults(farm_url, "sim-good", {"delay_ms": 1500})
    entry = _entry("sim-good", timeout_s=0.3, max_retries=0)
    with (
        _provider(entry, farm_url, _Sleeps()) as provider,
        pytest.raises(ProviderError, match="ReadTimeout"),
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


def test_missing_key_names_the_variable_to_set(
    farm_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_VAR, raising=False)
    provider = create_provider(_openai_entry(farm_url))
    with closing(provider), pytest.raises(ProviderError, match=f"export {KEY_VAR}="):
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
    with provider, pytest.raises(ProviderError) as info:
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
