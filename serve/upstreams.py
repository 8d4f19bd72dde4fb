"""Where a model named by the routing table (or by a client) is sent: its upstream endpoint.

The table names models by identity ``(id, variant)`` only; how to reach one lives in the model
entries of the run that produced the table, optionally overridden by the app's own ``models``
(a deployment may reach the same model through another gateway than the benchmark did). Entries
given later win, so ``[*run_entries, *app_models]`` means "the app's settings override".

Simulated entries go to the SIMULATED model farm: ``AUTORAY_SIM_URL`` or a farm the replica
starts itself (:func:`simulated_farm_for`). Without a farm URL a simulated entry resolves to
nothing, so a replica never forwards traffic to a stand-in it cannot reach.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from autoray.cases import BUILTIN_DATASET, load_dataset
from autoray.config import ModelEntry, PriceConfig
from autoray.providers.base import wire_model_name
from autoray.providers.simfarm import serve_farm
from autoray.results import ModelKey

logger = logging.getLogger(__name__)


def model_label(key: ModelKey) -> str:
    """How a model is named to clients and in headers: ``id``, or ``id@variant``."""
    return f"{key.model_id}@{key.variant}" if key.variant else key.model_id


@dataclass(frozen=True, slots=True)
class Upstream:
    """One model's endpoint; the API key is named (``api_key_env``), read at call time only."""

    key: ModelKey
    base_url: str
    wire_model: str
    api_key_env: str | None
    simulated: bool
    timeout_s: float
    price: PriceConfig | None

    @property
    def label(self) -> str:
        return model_label(self.key)

    @property
    def chat_url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"


class UpstreamResolver:
    """Model entries by identity and by every name a client may use for them."""

    def __init__(self, entries: Sequence[ModelEntry], *, sim_url: str | None) -> None:
        self._sim_url = sim_url
        latest: dict[ModelKey, ModelEntry] = {}
        for entry in entries:
            latest.pop(entry.key, None)  # a later entry overrides and takes the later place
            latest[entry.key] = entry
        self._upstreams = {
            key: upstream
            for key, entry in latest.items()
            if (upstream := self._upstream(entry)) is not None
        }
        self._by_name = _name_index(list(self._upstreams.values()))

    def resolve(self, key: ModelKey) -> Upstream | None:
        """A table model's endpoint; None when no entry (or no farm, if simulated) serves it."""
        return self._upstreams.get(ModelKey(*key))

    def by_name(self, name: str) -> Upstream | None:
        """A client-named model: ``id@variant``, ``id:variant``, a unique ``id``, or the wire
        name sent upstream (a real entry's ``api_model``); None when unknown or ambiguous."""
        key = self._by_name.get(name)
        return None if key is None else self._upstreams[key]

    def names(self) -> list[str]:
        """The labels of every reachable model, in entry order (for ``GET /v1/models``)."""
        return [upstream.label for upstream in self._upstreams.values()]

    def _upstream(self, entry: ModelEntry) -> Upstream | None:
        simulated = entry.provider == "simulated"
        base_url = self._sim_url if simulated else entry.base_url
        if not base_url:
            return None
        return Upstream(
            key=entry.key,
            base_url=base_url,
            wire_model=wire_model_name(entry),
            api_key_env=None if simulated else entry.api_key_env,
            simulated=simulated,
            timeout_s=entry.timeout_s,
            price=entry.price,
        )


def _name_index(upstreams: list[Upstream]) -> dict[str, ModelKey]:
    """Names in order of precedence: labels, then ``id:variant``, then names that are unique
    among the entries (a bare id, a wire name). A name two entries share maps to neither."""
    index: dict[str, ModelKey] = {}
    for upstream in upstreams:
        index.setdefault(upstream.label, upstream.key)
    for upstream in upstreams:
        if upstream.key.variant:
            index.setdefault(f"{upstream.key.model_id}:{upstream.key.variant}", upstream.key)
    for name, keys in _shared_names(upstreams).items():
        if len(keys) == 1:
            index.setdefault(name, keys[0])
    return index


def _shared_names(upstreams: list[Upstream]) -> dict[str, list[ModelKey]]:
    names: dict[str, list[ModelKey]] = {}
    for upstream in upstreams:
        for name in {upstream.key.model_id, upstream.wire_model}:
            names.setdefault(name, []).append(upstream.key)
    return names


@contextmanager
def simulated_farm_for(
    entries: Sequence[ModelEntry], *, seed: int = 0, dataset: str = BUILTIN_DATASET
) -> Iterator[str]:
    """Start the SIMULATED model farm on 127.0.0.1 for the simulated entries; yield its base URL.

    For a replica with simulated models in its table and no ``AUTORAY_SIM_URL``: the models the
    table names still answer (from the golden cases of ``dataset``), and the log says loudly that
    they are simulated, not real. The farm stops when the context exits.
    """
    simulated = {entry.key: entry for entry in entries if entry.provider == "simulated"}
    with serve_farm(list(simulated.values()), load_dataset(dataset), seed=seed) as url:
        logger.warning(
            "serving %d SIMULATED model(s) (not real models) from a farm started at %s: %s",
            len(simulated),
            url,
            ", ".join(model_label(key) for key in simulated) or "(none)",
        )
        yield url
