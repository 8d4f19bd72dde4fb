"""The simulated model farm as a Ray actor, so lanes of a run reach it wherever they run.

SIMULATED: the farm answers from the golden cases' reference answers with a configured per-route
skill; it is the one stand-in autoray uses, because no real model is reachable in tests. It
binds to 127.0.0.1, so on a multi-node cluster lanes on other nodes cannot reach it: point
``AUTORAY_SIM_URL`` at a farm they can reach (``autoray sim serve``) instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack

from autoray.cases import Dataset
from autoray.config import ModelEntry
from autoray.providers.simfarm import serve_farm


class SimFarm:
    def __init__(self, models: Sequence[ModelEntry], dataset: Dataset, seed: int) -> None:
        self._stack = ExitStack()
        self._url: str = self._stack.enter_context(serve_farm(models, dataset, seed=seed))

    def url(self) -> str:
        return self._url

    def close(self) -> None:
        self._stack.close()
