"""The preflight's pure part: which keys and endpoints, on which nodes, and what answers mean.

The ports are recorded fakes here; ``tests/integration/test_preflight_ray.py`` runs the real probes
on a local Ray and the real CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from autoray.config import BenchConfig, ModelEntry
from autoray.errors import PreflightError
from autoray.preflight import (
    KeyReport,
    NodeView,
    key_presence,
    key_problems,
    key_variables,
    lane_nodes,
    probed_models,
    run_preflight,
)

PRICE = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}
CONTAINERS = "autoray_container"


def _sim(model_id: str = "sim/a") -> dict[str, Any]:
    return {"id": model_id, "provider": "simulated", "price": PRICE, "skill": {"default": 0.5}}


def _openai(model_id: str = "gpt-x", key: str = "EXAMPLE_API_KEY", **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": model_id,
        "provider": "openai",
        "price": PRICE,
        "base_url": "https://api.example.com/v1",
        "api_key_env": key,
    }
    entry.update(extra)
    return entry


def _config(*models: dict[str, Any]) -> BenchConfig:
    return BenchConfig.model_validate({"name": "t", "models": list(models)})


@dataclass
class FakePorts:
    """Answers the probes from tables; records what it was asked."""

    nodes: dict[str, dict[str, bool]] = field(default_factory=lambda: {"10.0.0.1": {}})
    endpoint_reasons: dict[str, str] = field(default_factory=dict)
    asked_keys: list[list[str]] = field(default_factory=list)
    asked_endpoints: list[list[str]] = field(default_factory=list)

    def probe_keys(self, variables: Sequence[str]) -> list[KeyReport]:
        self.asked_keys.append(list(variables))
        return [
            KeyReport(node, {name: present.get(name, False) for name in variables})
            for node, present in self.nodes.items()
        ]

    def probe_endpoints(self, entries: Sequence[ModelEntry]) -> list[str | None]:
        self.asked_endpoints.append([entry.key.label() for entry in entries])
        return [self.endpoint_reasons.get(entry.id) for entry in entries]


def test_simulated_models_need_no_key_and_no_call() -> None:
    ports = FakePorts()
    run_preflight(_config(_sim("sim/a"), _sim("sim/b")), ports)
    assert (ports.asked_keys, ports.asked_endpoints) == ([], [])


def test_key_variables_name_the_models_that_need_them() -> None:
    config = _config(
        _openai("gpt-a", "KEY_A"),
        _openai("gpt-b", "KEY_B"),
        _openai("gpt-a", "KEY_A", variant="high"),
        _sim(),
    )
    assert key_variables(config) == {"KEY_A": ("gpt-a", "gpt-a[high]"), "KEY_B": ("gpt-b",)}


def test_one_call_per_distinct_request() -> None:
    """Two variants of one wire model on one endpoint send the same request: one call."""
    config = _config(
        _openai("gpt-a"),
        _openai("gpt-a", variant="high"),
        _openai("gpt-b", api_model="gpt-a"),
        _openai("gpt-c"),
        _sim(),
    )
    assert [entry.key.label() for entry in probed_models(config)] == ["gpt-a", "gpt-c"]


def test_missing_key_names_model_variable_node_and_fix_and_skips_the_calls() -> None:
    ports = FakePorts(nodes={"10.0.0.7": {"OTHER": True}})
    with pytest.raises(PreflightError) as info:
        run_preflight(_config(_openai("gpt-x", "EXAMPLE_API_KEY")), ports)
    message = str(info.value)
    assert "nothing was started" in message
    assert "model 'gpt-x' needs the key variable 'EXAMPLE_API_KEY'" in message
    assert "10.0.0.7" in message and "ray start" in message
    assert ports.asked_keys == [["EXAMPLE_API_KEY"]] and ports.asked_endpoints == []


def test_a_key_missing_on_one_node_of_three_is_a_failure_naming_that_node() -> None:
    nodes = {
        "10.0.0.1": {"KEY_A": True},
        "10.0.0.2": {"KEY_A": False},
        "10.0.0.3": {"KEY_A": True},
    }
    with pytest.raises(PreflightError, match=r"not set on 1 of the 3 lane nodes \(10\.0\.0\.2\)"):
        run_preflight(_config(_openai("gpt-a", "KEY_A")), FakePorts(nodes=nodes))


def test_every_problem_is_listed() -> None:
    config = _config(_openai("gpt-a", "KEY_A"), _openai("gpt-b", "KEY_B"))
    with pytest.raises(PreflightError) as info:
        run_preflight(config, FakePorts(nodes={"n1": {}}))
    assert "'KEY_A'" in str(info.value) and "'KEY_B'" in str(info.value)


def test_endpoint_failure_names_the_model_and_the_reason() -> None:
    reason = "model 'gpt-b' at https://api.example.com/v1/models: HTTP 401: bad key"
    ports = FakePorts(
        nodes={"n1": {"KEY_A": True, "KEY_B": True}}, endpoint_reasons={"gpt-b": reason}
    )
    config = _config(_openai("gpt-a", "KEY_A"), _openai("gpt-b", "KEY_B"))
    with pytest.raises(PreflightError) as info:
        run_preflight(config, ports)
    assert f"model 'gpt-b': its endpoint did not answer the preflight call: {reason}" in str(
        info.value
    )
    assert "gpt-a" not in str(info.value)
    assert ports.asked_endpoints == [["gpt-a", "gpt-b"]]


def test_keys_present_and_endpoints_answering_pass() -> None:
    ports = FakePorts(nodes={"n1": {"KEY_A": True}, "n2": {"KEY_A": True}})
    run_preflight(_config(_openai("gpt-a", "KEY_A"), _sim()), ports)
    assert ports.asked_endpoints == [["gpt-a"]]


def test_no_lane_node_is_a_failure_not_a_pass() -> None:
    with pytest.raises(PreflightError, match="no alive node"):
        run_preflight(_config(_openai()), FakePorts(nodes={}))


def test_key_problems_without_needs_or_with_all_present_are_empty() -> None:
    assert key_problems({}, [KeyReport("n1", {})]) == []
    assert key_problems({"K": ("m",)}, [KeyReport("n1", {"K": True})]) == []


def _node(address: str, alive: bool = True, **resources: float) -> NodeView:
    return NodeView(node_id=f"id-{address}", address=address, alive=alive, resources=resources)


def test_lane_nodes_are_the_alive_nodes_that_declare_containers() -> None:
    nodes = [
        _node("10.0.0.3", CPU=4, autoray_container=10),
        _node("10.0.0.1", CPU=8),  # a head node that hosts no lanes
        _node("10.0.0.2", alive=False, CPU=4, autoray_container=10),
        _node("10.0.0.0", CPU=4, autoray_container=10),
    ]
    hosts = lane_nodes(nodes, container_resource=CONTAINERS)
    assert [node.address for node in hosts] == ["10.0.0.0", "10.0.0.3"]


def test_without_declared_containers_every_alive_node_with_a_cpu_hosts_lanes() -> None:
    nodes = [_node("b", CPU=2), _node("a", CPU=1), _node("c", CPU=0), _node("d", False, CPU=2)]
    assert [node.address for node in lane_nodes(nodes, container_resource=CONTAINERS)] == [
        "a",
        "b",
    ]


def test_key_presence_reports_names_only(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-preflight-0123456789SECRET"
    monkeypatch.setenv("AUTORAY_TEST_SET", secret)
    monkeypatch.setenv("AUTORAY_TEST_EMPTY", "")
    monkeypatch.delenv("AUTORAY_TEST_UNSET", raising=False)
    answer = key_presence(["AUTORAY_TEST_SET", "AUTORAY_TEST_EMPTY", "AUTORAY_TEST_UNSET"])
    assert answer == {
        "AUTORAY_TEST_SET": True,
        "AUTORAY_TEST_EMPTY": False,
        "AUTORAY_TEST_UNSET": False,
    }
    assert secret not in repr(answer)
