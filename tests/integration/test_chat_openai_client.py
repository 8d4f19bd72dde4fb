"""``autoray/auto`` driven by the official ``openai`` client, over real HTTP on 127.0.0.1.

A small FastAPI app mounts :func:`serve.chat.handle_chat` the way the Serve ingress does
(decision first, with the real :func:`autoray.decision.decide` over a routing table built here)
and forwards to the SIMULATED model farm, whose test hooks queue provider faults. The Serve
deployment itself is tested in the ``test_serve_*`` modules; this one pins down forwarding:
answers, headers, streams, failover, errors and usage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response

from autoray.cases import Dataset, GoldenCase
from autoray.config import ModelEntry, PriceConfig
from autoray.decision import decide
from autoray.providers.simfarm import serve_farm
from autoray.ranking import Candidate
from autoray.simulation import SIMULATED_FINGERPRINT
from autoray.table import RoutingTable
from serve.chat import AUTO_MODEL, ChatDeps, Usage, handle_chat
from serve.upstreams import UpstreamResolver
from tests.integration.http_apps import serve_app

ROUTE = "debugging/root_cause_analysis"
UNSET_KEY_ENV = "AUTORAY_TEST_KEY_NEVER_SET"
PRICE = PriceConfig(input_per_mtok=1.0, output_per_mtok=2.0)
CASE = GoldenCase.model_validate(
    {
        "id": "debugging-root_cause_analysis-chat-sample",
        "route": ROUTE,
        "language": "python",
        "difficulty": "easy",
        "prompt": "Which exception does int('x') raise?",
        "check": {"kind": "exact", "expected": "ValueError"},
        "reference": {"answer": "ValueError"},
        "wrong_answer": "TypeError",
    }
)
DATASET = Dataset(name="chat-test", cases=(CASE,), identity="chat-test:0")
MESSAGES: list[Any] = [{"role": "user", "content": CASE.prompt}]


def _sim(model_id: str, variant: str | None = None) -> ModelEntry:
    return ModelEntry(
        id=model_id, variant=variant, provider="simulated", price=PRICE, skill={"default": 1.0}
    )


NO_KEY = ModelEntry(
    id="gpt-no-key",
    provider="openai",
    price=PRICE,
    base_url="http://127.0.0.1:9/v1",
    api_key_env=UNSET_KEY_ENV,
)
MODELS = [_sim("sim-a"), _sim("sim-b", "fast"), _sim("sim-c"), _sim("sim-d"), NO_KEY]


def _table(*models: ModelEntry) -> RoutingTable:
    candidates = tuple(
        Candidate(
            m.id,
            m.variant,
            accuracy=0.9,
            avg_cost_usd=0.001 * (i + 1),
            cases=10,
            meets_threshold=True,
        )
        for i, m in enumerate(models)
    )
    return RoutingTable(
        version="rt-" + "-".join(m.id for m in models),
        generated_at="2025-01-01T00:00:00Z",
        min_accuracy=0.7,
        switch_cost_factor=3.0,
        routes={ROUTE: candidates},
        run_id=None,
        dataset_identity=None,
    )


FOUR_SIMULATED = _table(*MODELS[:4])


@dataclass
class Scenario:
    """What the test app decides with; tests change it, the fixture resets it."""

    table: RoutingTable | None = FOUR_SIMULATED
    fallback_model: str | None = None
    usages: list[Usage] = field(default_factory=list)


def _app(farm_url: str, scenario: Scenario) -> FastAPI:
    box: dict[str, ChatDeps] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient() as http:
            resolver = UpstreamResolver(MODELS, sim_url=farm_url)
            box["deps"] = ChatDeps(http, resolver, None, scenario.usages.append)
            yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await request.json()
        deps = box["deps"]
        deps.fallback_model = scenario.fallback_model
        if body["model"] != AUTO_MODEL:
            return await handle_chat(body, outcome=None, route=None, table_version=None, deps=deps)
        table = scenario.table
        return await handle_chat(
            body,
            outcome=decide(table, ROUTE),
            route=ROUTE,
            table_version=table.version if table else None,
            deps=deps,
        )

    return app


@pytest.fixture(scope="module")
def farm() -> Iterator[str]:
    with serve_farm(MODELS, DATASET, seed=0, test_hooks=True) as url:
        yield url


@pytest.fixture(scope="module")
def module_scenario() -> Scenario:
    return Scenario()


@pytest.fixture(scope="module")
def app_url(farm: str, module_scenario: Scenario) -> Iterator[str]:
    with serve_app(_app(farm, module_scenario)) as url:
        yield url + "/v1"


@pytest.fixture
def scenario(
    module_scenario: Scenario, farm: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Scenario]:
    monkeypatch.delenv(UNSET_KEY_ENV, raising=False)
    yield module_scenario
    module_scenario.table, module_scenario.fallback_model = FOUR_SIMULATED, None
    module_scenario.usages.clear()
    httpx.delete(farm.removesuffix("/v1") + "/_faults").raise_for_status()


@pytest.fixture
def client(app_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=app_url, api_key="client-key", max_retries=0, timeout=20)


def _fail(farm: str, model: str, status: int = 503, count: int = 1) -> None:
    faults = {"model": model, "faults": [{"status": status, "count": count}]}
    httpx.post(farm.removesuffix("/v1") + "/_faults", json=faults).raise_for_status()


def _stream_text(stream: Any) -> str:
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def _expected_usage(model: str) -> Usage:
    prompt, completion = 9, 3  # the farm's token counts: 4 bytes a token, rounded up
    return Usage(model, ROUTE, prompt, completion, PRICE.cost_usd(prompt, completion))


def test_auto_answers_with_the_chosen_model_and_stamps_the_decision(
    client: openai.OpenAI, scenario: Scenario
) -> None:
    raw = client.chat.completions.with_raw_response.create(model=AUTO_MODEL, messages=MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content == "ValueError"
    assert completion.model == "sim-a" and completion.system_fingerprint == SIMULATED_FINGERPRINT
    assert raw.headers["x-autoray-model"] == "sim-a"
    assert raw.headers["x-autoray-route"] == ROUTE
    assert raw.headers["x-autoray-table-version"] == FOUR_SIMULATED.version
    assert raw.headers["x-autoray-fallbacks"] == "0"
    assert scenario.usages == [_expected_usage("sim-a")]


def test_auto_streams_the_same_answer_chunk_by_chunk(
    client: openai.OpenAI, scenario: Scenario
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=AUTO_MODEL,
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.headers["x-autoray-model"] == "sim-a"
    assert raw.headers["x-autoray-route"] == ROUTE
    chunks = list(raw.parse())
    assert len(chunks) > 3 and {c.system_fingerprint for c in chunks} == {SIMULATED_FINGERPRINT}
    assert _stream_text(chunks) == "ValueError"
    assert scenario.usages == [_expected_usage("sim-a")]


def test_a_stream_without_usage_asked_reports_none(
    client: openai.OpenAI, scenario: Scenario
) -> None:
    stream = client.chat.completions.create(model=AUTO_MODEL, messages=MESSAGES, stream=True)
    assert _stream_text(stream) == "ValueError"
    assert scenario.usages == []


def test_a_failing_first_model_fails_over_to_the_next_candidate(
    client: openai.OpenAI, scenario: Scenario, farm: str
) -> None:
    _fail(farm, "sim-a")
    raw = client.chat.completions.with_raw_response.create(model=AUTO_MODEL, messages=MESSAGES)
    assert raw.parse().model == "sim-b@fast"
    assert raw.headers["x-autoray-model"] == "sim-b@fast"
    assert raw.headers["x-autoray-fallbacks"] == "1"
    assert scenario.usages == [_expected_usage("sim-b@fast")]


def test_a_stream_whose_first_model_fails_before_any_byte_fails_over(
    client: openai.OpenAI, scenario: Scenario, farm: str
) -> None:
    _fail(farm, "sim-a", status=429)
    raw = client.chat.completions.with_raw_response.create(
        model=AUTO_MODEL, messages=MESSAGES, stream=True
    )
    assert raw.headers["x-autoray-model"] == "sim-b@fast"
    assert raw.headers["x-autoray-fallbacks"] == "1"
    assert _stream_text(raw.parse()) == "ValueError"


def test_at_most_three_models_are_tried(
    client: openai.OpenAI, scenario: Scenario, farm: str
) -> None:
    _fail(farm, "*", count=3)  # a fourth attempt would reach sim-d and succeed
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=AUTO_MODEL, messages=MESSAGES)
    error = caught.value
    assert error.status_code == 503 and error.code == "upstream_unavailable"
    assert all(f"'{name}'" in error.message for name in ("sim-a", "sim-b@fast", "sim-c"))
    assert "sim-d" not in error.message
    assert error.response.headers["x-autoray-fallbacks"] == "3"
    assert error.response.headers["x-autoray-route"] == ROUTE
    assert "x-autoray-model" not in error.response.headers


def test_a_real_model_without_its_key_fails_over(client: openai.OpenAI, scenario: Scenario) -> None:
    scenario.table = _table(NO_KEY, MODELS[0])
    raw = client.chat.completions.with_raw_response.create(model=AUTO_MODEL, messages=MESSAGES)
    assert raw.headers["x-autoray-model"] == "sim-a"
    assert raw.headers["x-autoray-fallbacks"] == "1"


def test_a_real_model_without_its_key_alone_is_a_503_naming_the_variable(
    client: openai.OpenAI, scenario: Scenario
) -> None:
    scenario.table = _table(NO_KEY)
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=AUTO_MODEL, messages=MESSAGES)
    assert caught.value.status_code == 503
    assert UNSET_KEY_ENV in caught.value.message and "'gpt-no-key'" in caught.value.message


def test_an_upstream_client_error_is_returned_not_failed_over(
    client: openai.OpenAI, scenario: Scenario, farm: str
) -> None:
    _fail(farm, "sim-a", status=400)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=AUTO_MODEL, messages=MESSAGES)
    error = caught.value
    assert error.message.endswith("simulated fault: HTTP 400 (test hook)")
    assert error.code == "sim_fault"
    assert error.response.headers["x-autoray-model"] == "sim-a"
    assert error.response.headers["x-autoray-fallbacks"] == "0"


@pytest.mark.parametrize("name", ["sim-b@fast", "sim-b:fast", "sim-b"])
def test_a_named_model_is_passed_through(
    client: openai.OpenAI, scenario: Scenario, name: str
) -> None:
    raw = client.chat.completions.with_raw_response.create(model=name, messages=MESSAGES)
    assert raw.parse().choices[0].message.content == "ValueError"
    assert raw.headers["x-autoray-model"] == "sim-b@fast"
    assert "x-autoray-route" not in raw.headers and "x-autoray-table-version" not in raw.headers
    assert scenario.usages == [Usage("sim-b@fast", None, 9, 3, PRICE.cost_usd(9, 3))]


def test_an_unknown_named_model_is_404_in_openai_shape(
    client: openai.OpenAI, scenario: Scenario
) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-nowhere", messages=MESSAGES)
    error = caught.value
    assert error.code == "model_not_found" and error.param == "model"
    assert "'gpt-nowhere'" in error.message and AUTO_MODEL in error.message


def test_a_null_decision_without_a_fallback_is_a_503_with_the_reason(
    client: openai.OpenAI, scenario: Scenario
) -> None:
    scenario.table = None
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=AUTO_MODEL, messages=MESSAGES)
    error = caught.value
    assert error.status_code == 503 and error.code == "no_table"
    assert "fallback_model" in error.message
    assert error.response.headers["x-autoray-route"] == ROUTE
    assert "x-autoray-table-version" not in error.response.headers


def test_a_null_decision_with_a_fallback_model_is_answered_by_it(
    client: openai.OpenAI, scenario: Scenario
) -> None:
    scenario.table, scenario.fallback_model = None, "sim-c"
    raw = client.chat.completions.with_raw_response.create(
        model=AUTO_MODEL, messages=MESSAGES, stream=True
    )
    assert raw.headers["x-autoray-model"] == "sim-c"
    assert raw.headers["x-autoray-fallback"] == "null-decision"
    assert _stream_text(raw.parse()) == "ValueError"


def test_a_fallback_model_that_is_not_served_says_so(
    client: openai.OpenAI, scenario: Scenario
) -> None:
    scenario.table, scenario.fallback_model = None, "gpt-nowhere"
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=AUTO_MODEL, messages=MESSAGES)
    assert "'gpt-nowhere' is not served here" in caught.value.message
