"""The simulated model farm over real HTTP on 127.0.0.1: its OpenAI-compatible surface,
labelling, latency, error format, test hooks, test fault switches, the address it listens on,
and its lifecycle helpers."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from autoray.cases import Dataset, GoldenCase
from autoray.config import BenchConfig, ModelEntry, PriceConfig
from autoray.errors import ConfigError
from autoray.providers.simfarm import (
    LOOPBACK,
    build_farm_app,
    farm_host,
    farm_url_for,
    is_loopback,
    serve_farm,
)
from autoray.settings import Settings
from autoray.simulation import SIMULATED_FINGERPRINT, count_tokens

PRICE = PriceConfig(input_per_mtok=1.0, output_per_mtok=2.0)
CASE = GoldenCase.model_validate(
    {
        "id": "debugging-root_cause_analysis-farm-sample",
        "route": "debugging/root_cause_analysis",
        "language": "python",
        "difficulty": "easy",
        "prompt": "Which exception does int('x') raise?",
        "check": {"kind": "exact", "expected": "ValueError"},
        "reference": {
            "answer": "ValueError",
            "steps": [{"tool": "bash", "command": "python3 -c \"int('x')\""}],
        },
        "wrong_answer": "TypeError",
    }
)
DATASET = Dataset(name="farm-test", cases=(CASE,), identity="farm-test:0")


def _sim(model_id: str, **extra: Any) -> ModelEntry:
    fields: dict[str, Any] = {
        "id": model_id,
        "provider": "simulated",
        "price": PRICE,
        "skill": {"default": 1.0},
    }
    fields.update(extra)
    return ModelEntry(**fields)


REAL = ModelEntry(
    id="gpt-real",
    provider="openai",
    price=PRICE,
    base_url="https://api.example.com/v1",
    api_key_env="SOME_KEY",
)
MODELS = [_sim("sim-a"), _sim("sim-a", variant="fast"), _sim("sim-slow", latency_ms=300), REAL]


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with serve_farm(MODELS, DATASET, seed=0, test_hooks=True) as url:
        yield url.removesuffix("/v1")


def _chat(
    base: str, model: str = "sim-a", prompt: str = CASE.prompt, **extra: Any
) -> httpx.Response:
    body = {
        "model": model,
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": prompt}],
    }
    body.update(extra)
    return httpx.post(f"{base}/v1/chat/completions", json=body, timeout=10)


def test_serve_farm_yields_a_loopback_v1_url() -> None:
    with serve_farm(MODELS, DATASET, seed=0) as url:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        assert httpx.get(url.removesuffix("/v1") + "/healthz").json()["status"] == "ok"
    with pytest.raises(httpx.ConnectError):
        httpx.get(url.removesuffix("/v1") + "/healthz", timeout=2)


def test_healthz_says_it_is_simulated(base: str) -> None:
    assert httpx.get(f"{base}/healthz").json() == {
        "status": "ok",
        "simulated": True,
        "models": 3,
        "cases": 1,
    }


def test_models_lists_simulated_wire_names_only(base: str) -> None:
    body = httpx.get(f"{base}/v1/models").json()
    assert body["object"] == "list"
    assert [card["id"] for card in body["data"]] == ["sim-a", "sim-a@fast", "sim-slow"]
    assert {card["owned_by"] for card in body["data"]} == {SIMULATED_FINGERPRINT}


def test_completion_is_openai_shaped_and_labelled_simulated(base: str) -> None:
    body = _chat(base).json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-sim-")
    assert body["model"] == "sim-a" and isinstance(body["created"], int)
    assert body["system_fingerprint"] == SIMULATED_FINGERPRINT
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "ValueError"}
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["completion_tokens"] == count_tokens("ValueError")
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_tool_results_cost_the_same_whatever_they_say(base: str) -> None:
    """A sandbox's ``ls -la`` differs between runs (link counts, dates); the price must not."""

    def prompt_tokens(tool_output: str) -> int:
        messages = [
            *MESSAGES,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_0",
                        "type": "function",
                        "function": {"name": "bash", "arguments": '{"command": "ls -la"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_0", "content": tool_output},
        ]
        response = _chat(base, tools=TOOLS, messages=messages)
        assert response.status_code == 200
        return int(response.json()["usage"]["prompt_tokens"])

    short = prompt_tokens("drwxr-xr-x 3 root root 4096 Dec  1 07:48 .")
    assert short == prompt_tokens("drwxr-xr-x 12 root root 4096 Dec 10 17:48 .\n" * 40)
    assert short > _chat(base).json()["usage"]["prompt_tokens"]  # a tool result still costs


def test_same_request_same_answer(base: str) -> None:
    first, second = _chat(base).json(), _chat(base).json()
    assert first["id"] == second["id"]
    assert first["choices"] == second["choices"] and first["usage"] == second["usage"]


def test_tools_offered_gives_the_reference_tool_call(base: str) -> None:
    body = _chat(base, tools=[{"type": "function", "function": {"name": "bash"}}]).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["id"] == "call_0"
    assert call["function"] == {
        "name": "bash",
        "arguments": '{"command": "python3 -c \\"int(\'x\')\\""}',
    }


def test_unknown_prompt_gets_a_generic_reply_not_an_error(base: str) -> None:
    response = _chat(base, prompt="What is the weather like?")
    assert response.status_code == 200
    content = response.json()["choices"][0]["message"]["content"]
    assert "simulated model farm" in content
    assert (
        content
        == _chat(base, prompt="What is the weather like?").json()["choices"][0]["message"][
            "content"
        ]
    )


def test_unknown_model_is_404_in_openai_error_format(base: str) -> None:
    response = _chat(base, model="gpt-real")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["param"] == "model" and error["code"] == "model_not_found"
    assert "'gpt-real'" in error["message"] and "sim-a@fast" in error["message"]


def test_invalid_request_is_400_naming_the_field(base: str) -> None:
    response = httpx.post(f"{base}/v1/chat/completions", json={"model": "sim-a"})
    assert response.status_code == 400
    assert "messages" in response.json()["error"]["message"]


def test_bad_rep_is_400(base: str) -> None:
    response = _chat(base, metadata={"rep": "two"})
    assert response.status_code == 400
    assert "metadata.rep" in response.json()["error"]["message"]


def test_model_latency_is_slept(base: str) -> None:
    started = time.monotonic()
    assert _chat(base, model="sim-slow").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_faults_are_consumed_in_order_model_first_then_global(base: str) -> None:
    hooks = f"{base}/_faults"
    httpx.post(hooks, json={"faults": [{"status": 503}]}).raise_for_status()
    queued = httpx.post(
        hooks, json={"model": "sim-a", "faults": [{"status": 429, "retry_after": 2, "count": 2}]}
    ).json()
    assert queued["queued"] == {"*": 1, "sim-a": 2}
    first = _chat(base)
    assert (first.status_code, first.headers["retry-after"]) == (429, "2")
    assert first.json()["error"]["code"] == "sim_fault"
    assert _chat(base).status_code == 429
    assert _chat(base).status_code == 503
    assert _chat(base).status_code == 200
    httpx.delete(hooks).raise_for_status()


def test_malformed_fault_returns_a_body_that_is_not_json(base: str) -> None:
    httpx.post(f"{base}/_faults", json={"model": "sim-a", "faults": [{"malformed": True}]})
    response = _chat(base)
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_unknown_fault_field_is_rejected(base: str) -> None:
    response = httpx.post(f"{base}/_faults", json={"faults": [{"stauts": 500}]})
    assert response.status_code == 400 and "stauts" in response.json()["error"]["message"]


def test_fault_hooks_are_off_unless_asked_for() -> None:
    with serve_farm(MODELS, DATASET, seed=0) as url:
        response = httpx.post(
            url.removesuffix("/v1") + "/_faults", json={"faults": [{"status": 500}]}
        )
    assert response.status_code in (404, 405)


def test_duplicate_wire_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="'sim-a' is listed twice"):
        build_farm_app([_sim("sim-a"), _sim("sim-a")], DATASET, seed=0)


def test_skill_without_default_is_refused_up_front() -> None:
    entry = _sim("sim-a").model_copy(update={"skill": {"debugging/*": 1.0}})
    with pytest.raises(ConfigError, match="add a 'default' key"):
        build_farm_app([entry], DATASET, seed=0)


def test_port_in_use_is_a_config_error_naming_the_port() -> None:
    with serve_farm(MODELS, DATASET, seed=0) as url:
        port = int(url.rsplit(":", 1)[1].removesuffix("/v1"))
        with (
            pytest.raises(ConfigError, match=f"127.0.0.1:{port}"),
            serve_farm(MODELS, DATASET, seed=0, port=port),
        ):
            pass


TOOLS: list[Any] = [{"type": "function", "function": {"name": "bash"}}]
MESSAGES: list[Any] = [
    {"role": "system", "content": "s"},
    {"role": "user", "content": CASE.prompt},
]


def _client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=10)


def _reassemble(chunks: list[Any]) -> dict[str, Any]:
    """Join streamed deltas back into one message, as an OpenAI client application does."""
    content, calls, finish = "", {}, None
    for chunk in chunks:
        for choice in chunk.choices:
            content += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or ():
                call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
                call["id"] = delta.id or call["id"]
                call["name"] += (delta.function and delta.function.name) or ""
                call["arguments"] += (delta.function and delta.function.arguments) or ""
    return {"content": content, "tool_calls": [calls[i] for i in sorted(calls)], "finish": finish}


class TestStreaming:
    def test_chunks_reassemble_the_non_streamed_answer(self, base: str) -> None:
        client = _client(base)
        whole = client.chat.completions.create(model="sim-a", messages=MESSAGES)
        with client.chat.completions.create(
            model="sim-a", messages=MESSAGES, stream=True
        ) as stream:
            chunks = list(stream)
        assert len(chunks) > 3, "content should arrive in several chunks"
        assert chunks[0].choices[0].delta.role == "assistant"
        assert {chunk.id for chunk in chunks} == {whole.id}
        assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}
        assert {chunk.system_fingerprint for chunk in chunks} == {SIMULATED_FINGERPRINT}
        assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1
        assert _reassemble(chunks) == {
            "content": whole.choices[0].message.content,
            "tool_calls": [],
            "finish": "stop",
        }
        assert all(chunk.usage is None for chunk in chunks)

    def test_tool_call_streams_id_name_then_arguments_in_pieces(self, base: str) -> None:
        client = _client(base)
        whole = client.chat.completions.create(model="sim-a", messages=MESSAGES, tools=TOOLS)
        expected = whole.choices[0].message.tool_calls[0]
        stream = client.chat.completions.create(
            model="sim-a", messages=MESSAGES, tools=TOOLS, stream=True
        )
        chunks = list(stream)
        argument_pieces = [
            c
            for c in chunks
            if c.choices
            and c.choices[0].delta.tool_calls
            and c.choices[0].delta.tool_calls[0].id is None
        ]
        assert len(argument_pieces) > 1
        assert _reassemble(chunks) == {
            "content": "",
            "tool_calls": [
                {
                    "id": expected.id,
                    "name": expected.function.name,
                    "arguments": expected.function.arguments,
                }
            ],
            "finish": "tool_calls",
        }

    def test_usage_chunk_comes_last_when_asked_for(self, base: str) -> None:
        client = _client(base)
        whole = client.chat.completions.create(model="sim-a", messages=MESSAGES)
        chunks = list(
            client.chat.completions.create(
                model="sim-a",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        last = chunks[-1]
        assert last.choices == [] and last.usage == whole.usage
        assert all(chunk.usage is None for chunk in chunks[:-1])
        assert _reassemble(chunks)["content"] == whole.choices[0].message.content

    def test_wire_format_is_server_sent_events_ending_in_done(self, base: str) -> None:
        with httpx.stream(
            "POST",
            f"{base}/v1/chat/completions",
            json={"model": "sim-a", "messages": MESSAGES, "stream": True},
            timeout=10,
        ) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            events = [line for line in response.iter_lines() if line]
        assert all(line.startswith("data: ") for line in events)
        assert events[-1] == "data: [DONE]"

    @pytest.mark.parametrize(
        ("extra", "field"),
        [
            ({"stream": "yes"}, "stream"),
            ({"stream_options": {"include_usage": 1}}, "include_usage"),
        ],
    )
    def test_stream_flags_must_be_booleans(
        self, base: str, extra: dict[str, Any], field: str
    ) -> None:
        response = _chat(base, **extra)
        assert response.status_code == 400 and field in response.json()["error"]["message"]

    def test_a_queued_fault_answers_before_the_stream_starts(self, base: str) -> None:
        httpx.post(
            f"{base}/_faults", json={"model": "sim-a", "faults": [{"status": 503}]}
        ).raise_for_status()
        client = _client(base)
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model="sim-a", messages=MESSAGES, stream=True)
        assert caught.value.status_code == 503
        chunks = list(client.chat.completions.create(model="sim-a", messages=MESSAGES, stream=True))
        assert _reassemble(chunks)["content"] == "ValueError"


class TestFarmUrlFor:
    def test_no_simulated_models_means_no_farm(self) -> None:
        config = BenchConfig(name="t", models=[REAL])
        with ExitStack() as stack:
            assert farm_url_for(config, Settings(), stack, dataset=DATASET) is None

    def test_configured_sim_url_is_used_as_is(self) -> None:
        config = BenchConfig(name="t", models=MODELS)
        settings = Settings(sim_url="http://127.0.0.1:1/v1")
        with ExitStack() as stack:
            assert farm_url_for(config, settings, stack, dataset=DATASET) == settings.sim_url

    def test_farm_started_in_the_stack_and_stopped_with_it(self) -> None:
        config = BenchConfig(name="t", models=MODELS, seed=5)
        with ExitStack() as stack:
            url = farm_url_for(config, Settings(), stack, dataset=DATASET)
            assert url is not None
            assert httpx.get(url + "/models").json()["data"][0]["id"] == "sim-a"
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/models", timeout=2)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config_file(tmp_path: Path, models: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"name: sim-serve-test\nmodels:\n{models}")
    return path


SIM_MODEL = (
    "  - {id: sim/a, provider: simulated, skill: {default: 1.0},\n"
    "     price: {input_per_mtok: 1.0, output_per_mtok: 2.0}}\n"
)


def test_sim_serve_cli_serves_until_interrupted(tmp_path: Path) -> None:
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "autoray.cli",
        "sim",
        "serve",
        str(_config_file(tmp_path, SIM_MODEL)),
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        health = _poll(f"http://127.0.0.1:{port}/healthz", proc)
        assert health["simulated"] is True and health["models"] == 1
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()["data"]
        assert [card["id"] for card in models] == ["sim/a"]
        assert httpx.post(f"http://127.0.0.1:{port}/_faults", json={}).status_code in (404, 405)
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    assert "SIMULATED model farm (not real models)" in stderr
    assert f"AUTORAY_SIM_URL=http://127.0.0.1:{port}/v1" in stderr


def _poll(url: str, proc: subprocess.Popen[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            return dict(httpx.get(url, timeout=2).json())
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


def test_sim_serve_cli_without_simulated_models_exits_2(tmp_path: Path) -> None:
    real = (
        "  - {id: gpt, provider: openai, base_url: 'https://api.example.com/v1',\n"
        "     api_key_env: SOME_KEY, price: {input_per_mtok: 1.0, output_per_mtok: 2.0}}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "autoray.cli", "sim", "serve", str(_config_file(tmp_path, real))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "has no simulated models" in result.stderr
    assert "Traceback" not in result.stderr


def test_sim_serve_cli_port_in_use_exits_2(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "autoray.cli",
                "sim",
                "serve",
                str(_config_file(tmp_path, SIM_MODEL)),
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2 and f"127.0.0.1:{port}" in result.stderr
    assert "pick another --port" in result.stderr and "Traceback" not in result.stderr


class TestFaultSwitches:
    """``/admin/faults``: outages and refused connections for a while, loopback callers only."""

    def test_outage_answers_every_v1_request_then_ends_by_itself(self) -> None:
        with serve_farm(MODELS, DATASET, seed=0) as url:
            base = url.removesuffix("/v1")
            switched = httpx.post(f"{base}/admin/faults", json={"status": 503, "for_s": 1.5})
            assert switched.status_code == 202
            assert switched.json()["test_fault"] is True and switched.json()["status"] == 503
            outage = _chat(base)
            assert outage.status_code == 503
            assert outage.json()["error"]["code"] == "sim_outage"
            assert "test fault switch" in outage.json()["error"]["message"]
            assert _chat(base, model="no-such-model").status_code == 503  # before any lookup
            assert httpx.get(f"{base}/v1/models").status_code == 503
            state = httpx.get(f"{base}/admin/faults").json()
            assert state["status"] == 503 and 0 < state["remaining_s"] <= 1.5
            time.sleep(1.6)
            assert _chat(base).status_code == 200
            assert httpx.get(f"{base}/admin/faults").json()["status"] is None

    def test_outage_can_be_switched_off(self) -> None:
        with serve_farm(MODELS, DATASET, seed=0) as url:
            base = url.removesuffix("/v1")
            httpx.post(f"{base}/admin/faults", json={"status": 429, "for_s": 60})
            assert _chat(base).status_code == 429
            assert httpx.delete(f"{base}/admin/faults").json()["status"] is None
            assert _chat(base).status_code == 200

    def test_streamed_request_gets_the_outage_before_any_chunk(self) -> None:
        with serve_farm(MODELS, DATASET, seed=0) as url:
            httpx.post(url.removesuffix("/v1") + "/admin/faults", json={"status": 503, "for_s": 30})
            with pytest.raises(openai.InternalServerError) as caught:
                _client(url.removesuffix("/v1")).chat.completions.create(
                    model="sim-a", messages=MESSAGES, stream=True
                )
            assert caught.value.status_code == 503

    def test_refuse_closes_the_port_then_listens_again_on_it(self) -> None:
        with serve_farm(MODELS, DATASET, seed=0) as url:
            base = url.removesuffix("/v1")
            with httpx.Client(timeout=5) as keep_alive:
                assert keep_alive.get(f"{base}/healthz").status_code == 200
                switched = httpx.post(f"{base}/admin/faults", json={"refuse": True, "for_s": 2})
                assert switched.status_code == 202 and switched.json()["refuse"] is True
                refused_at = time.monotonic()
                _wait_refused(base)
                # The idle keep-alive connection was closed too: no answer comes through it.
                with pytest.raises(httpx.TransportError):
                    keep_alive.get(f"{base}/healthz")
                with pytest.raises(httpx.ConnectError):
                    _chat(base)
                health = _poll_until_up(base, within_s=15)
                assert time.monotonic() - refused_at >= 1.5
            assert health["status"] == "ok"
            assert _chat(base).json()["choices"][0]["message"]["content"] == "ValueError"
        with pytest.raises(httpx.ConnectError):  # and the farm still stops for good
            httpx.get(f"{base}/healthz", timeout=2)

    def test_refuse_without_a_server_socket_is_501(self) -> None:
        from fastapi.testclient import TestClient

        app = build_farm_app(MODELS, DATASET, seed=0)
        with TestClient(app, client=("127.0.0.1", 50000)) as client:
            response = client.post("/admin/faults", json={"refuse": True, "for_s": 1})
        assert (
            response.status_code == 501 and "status instead" in response.json()["error"]["message"]
        )

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"status": 503}, "for_s"),
            ({"for_s": 5}, "exactly one of status"),
            ({"status": 503, "refuse": True, "for_s": 5}, "exactly one of status"),
            ({"status": 200, "for_s": 5}, "status"),
            ({"status": 503, "for_s": 601}, "for_s"),
            ({"status": 503, "for_s": 5, "model": "sim-a"}, "model"),
        ],
    )
    def test_bad_switch_is_400_naming_the_field(
        self, base: str, body: dict[str, Any], field: str
    ) -> None:
        response = httpx.post(f"{base}/admin/faults", json=body)
        assert response.status_code == 400 and field in response.json()["error"]["message"]
        assert _chat(base).status_code == 200

    def test_a_caller_that_is_not_loopback_is_refused(self) -> None:
        address = _non_loopback_address()
        with serve_farm(MODELS, DATASET, seed=0, host="0.0.0.0") as url:
            port = url.rsplit(":", 1)[1].removesuffix("/v1")
            remote = f"http://{address}:{port}"
            for method in ("POST", "GET", "DELETE"):
                response = httpx.request(
                    method, f"{remote}/admin/faults", json={"status": 503, "for_s": 30}
                )
                assert response.status_code == 403, method
                error = response.json()["error"]
                assert error["code"] == "test_faults_loopback_only"
                assert repr(address) in error["message"] and "127.0.0.1" in error["message"]
            assert httpx.post(f"{remote}/v1/chat/completions", json=_body()).status_code == 200
            # The same farm obeys a loopback caller.
            local = f"http://127.0.0.1:{port}"
            assert httpx.post(f"{local}/admin/faults", json={"status": 503, "for_s": 30})
            assert httpx.post(f"{remote}/v1/chat/completions", json=_body()).status_code == 503


def _body() -> dict[str, Any]:
    return {"model": "sim-a", "messages": MESSAGES}


def _non_loopback_address() -> str:
    """An IPv4 address of this machine that is not loopback, to call the farm from it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # UDP connect sends nothing; it picks the route
        address = str(probe.getsockname()[0])
    assert not is_loopback(address), "this machine needs one non-loopback IPv4 address"
    return address


def _wait_refused(base: str) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base}/healthz", timeout=1)
        except httpx.ConnectError:
            return
        time.sleep(0.02)
    raise AssertionError("the farm kept accepting connections after refuse")


def _poll_until_up(base: str, within_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            return dict(httpx.get(f"{base}/healthz", timeout=1).json())
        except httpx.ConnectError:
            time.sleep(0.05)
    raise AssertionError(f"the farm did not listen again within {within_s} s")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("192.0.2.7", False),
        ("::ffff:192.0.2.7", False),
        ("fd00::2", False),
        ("localhost", False),  # a peer address is never a name; do not resolve one
        ("", False),
        (None, False),
    ],
)
def test_loopback_is_decided_by_the_peer_address(host: str | None, expected: bool) -> None:
    assert is_loopback(host) is expected


class TestFarmAddress:
    """Where the farm listens: a pure choice standing in for a multi-node cluster here."""

    def test_one_node_listens_on_loopback_only(self) -> None:
        assert farm_host(1, "10.0.3.7") == LOOPBACK == "127.0.0.1"

    def test_several_nodes_listen_on_the_node_ip(self) -> None:
        assert farm_host(2, "10.0.3.7") == "10.0.3.7"
        assert farm_host(40, "fd00::7") == "fd00::7"

    def test_a_cluster_with_no_node_reported_alive_stays_on_loopback(self) -> None:
        assert farm_host(0, "10.0.3.7") == LOOPBACK

    def test_the_chosen_node_ip_is_reachable_from_another_address(self) -> None:
        """What the multi-node choice buys: a lane on another host reaches the farm."""
        address = _non_loopback_address()
        with serve_farm(MODELS, DATASET, seed=0, host=farm_host(3, address)) as url:
            assert url.startswith(f"http://{address}:")
            assert httpx.get(url + "/models").json()["data"][0]["id"] == "sim-a"
            port = url.rsplit(":", 1)[1].removesuffix("/v1")
            with pytest.raises(httpx.ConnectError):  # not on loopback as well
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
