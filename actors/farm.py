"""The simulated model farm as a Ray actor, so lanes of a run reach it wherever they run.

SIMULATED: the farm answers from the golden cases' reference answers with a configured per-route
skill; it is the one stand-in autoray uses, because no real model is reachable in tests. On a
one-node cluster it listens on 127.0.0.1; when the cluster has more than one node it listens on
its node's IP, so lanes on every node reach it (:func:`autoray.providers.simfarm.farm_host`).
Its test fault switches (``/admin/faults``) answer loopback callers only, so on a multi-node
cluster nobody can throw them; ``autoray sim serve`` is the farm to use for anything shared.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack

import ray

from autoray.cases import Dataset
from autoray.config import ModelEntry
from autoray.providers.simfarm import farm_host, serve_farm


class SimFarm:
    def __init__(self, models: Sequence[ModelEntry], dataset: Dataset, seed: int) -> None:
        self._stack = ExitStack()
        host = _listen_host()
        self._url: str = self._stack.enter_context(
            serve_farm(models, dataset, seed=seed, host=host)
        )

    def url(self) -> str:
        return self._url

    def close(self) -> None:
        self._stack.close()


def _listen_host() -> str:
    """Loopback unless other nodes are alive now (nodes that join later are not foreseen)."""
    alive = sum(1 for node in ray.nodes() if node.get("Alive"))
    return farm_host(alive, ray.util.get_node_ip_address())
