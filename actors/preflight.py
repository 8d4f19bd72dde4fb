"""The Ray side of the preflight (:mod:`autoray.preflight`): probes on the nodes that host lanes.

The key probe is a tiny task pinned to each lane node (strict node affinity, no CPU) that
answers, for each variable name, only present or absent; the endpoint probe runs once, on the
first lane node, with that node's keys, and answers only the key-free reason of a failure.
Neither puts a key anywhere Ray records (no ``runtime_env``, no argument, no return value).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors import driver
from actors.driver import DriverOptions
from actors.placement import CONTAINER_RESOURCE
from autoray import preflight
from autoray.config import BenchConfig, ModelEntry, load_config
from autoray.errors import PreflightError
from autoray.preflight import KeyReport, NodeView
from autoray.settings import Settings

PROBE_TIMEOUT_S = 60.0


@ray.remote(num_cpus=0, max_retries=0)
def _key_presence(variables: list[str]) -> dict[str, bool]:
    return preflight.key_presence(variables)


@ray.remote(num_cpus=0, max_retries=0)
def _probe_endpoints(entries: list[ModelEntry]) -> list[str | None]:
    return [preflight.probe_endpoint(entry) for entry in entries]


class RayPreflight:
    """:class:`autoray.preflight.PreflightPorts` over the connected Ray cluster."""

    def __init__(self, timeout_s: float = PROBE_TIMEOUT_S) -> None:
        self._timeout_s = timeout_s
        self._nodes = preflight.lane_nodes(
            (_node_view(raw) for raw in ray.nodes()), container_resource=CONTAINER_RESOURCE
        )

    def probe_keys(self, variables: Sequence[str]) -> list[KeyReport]:
        refs = [_on(node, _key_presence).remote(list(variables)) for node in self._nodes]
        answers = self._get(refs, "the key probe")
        return [
            KeyReport(node.address, answer)
            for node, answer in zip(self._nodes, answers, strict=True)
        ]

    def probe_endpoints(self, entries: Sequence[ModelEntry]) -> list[str | None]:
        if not self._nodes:
            return ["no alive node can host lanes" for _ in entries]
        ref = _on(self._nodes[0], _probe_endpoints).remote(list(entries))
        answers: list[str | None] = self._get([ref], "the endpoint probe")[0]
        return answers

    def _get(self, refs: list[Any], what: str) -> list[Any]:
        try:
            return list(ray.get(refs, timeout=self._timeout_s))
        except ray.exceptions.GetTimeoutError:
            raise PreflightError(
                f"{what} got no answer from the lane nodes within {self._timeout_s:g} s; "
                "check that every node is up (`ray status`) and try again"
            ) from None


def check_run(config: BenchConfig) -> None:
    """Run the preflight for ``config`` on the connected cluster; :class:`PreflightError` when
    a check fails. A config without ``openai`` models returns before asking Ray anything."""
    if not preflight.probed_models(config):
        return
    preflight.run_preflight(config, RayPreflight())


def _on(node: NodeView, remote: Any) -> Any:
    strategy = NodeAffinitySchedulingStrategy(node_id=node.node_id, soft=False)
    return remote.options(scheduling_strategy=strategy)


def _node_view(raw: dict[str, Any]) -> NodeView:
    return NodeView(
        node_id=str(raw["NodeID"]),
        address=str(raw.get("NodeManagerAddress", raw["NodeID"])),
        alive=bool(raw.get("Alive")),
        resources=dict(raw.get("Resources") or {}),
    )


def check_config(config_path: str, options: DriverOptions, settings: Settings) -> None:
    """The preflight of ``autoray bench run`` and the job entry point, before the run starts:
    reach the cluster (as the run will) only when the config has ``openai`` models."""
    config = load_config(config_path)
    if not preflight.probed_models(config):
        return
    driver.connect(options, settings, budget=config.max_live_containers)
    check_run(config)
