"""Preflight: what must hold before a run creates anything (a run row, a placement group).

Issue 9 found that a real model whose key variable was unset where the lanes ran became a
column of score-0 rows, and the published table routed everything away from a healthy model.
So before a run starts, for every model on provider ``openai``:

1. its key variable is set on every node that can host lanes: a small probe on each node
   reports, for each variable *name*, only whether it is present (never the value);
2. its endpoint answers one cheap call (``GET {base_url}/models``, else a 1-token completion),
   made from a node that runs lanes, with that node's key.

Simulated models need neither (the engine starts their farm). A failure raises
:class:`PreflightError` naming the model and the variable, or the endpoint and the status, and
the run is not started. This module is the pure part: which checks, on which nodes, and what
the answers mean; ``actors/preflight.py`` asks Ray.

Keys reach lanes through the environment of the nodes (``ray start`` inherits the shell's), not
through the run config, the database, a log or a job's ``runtime_env``, all of which Ray or
autoray store and show.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from autoray.errors import PreflightError, ProviderUnavailableError
from autoray.settings import read_secret

if TYPE_CHECKING:
    from autoray.config import BenchConfig, ModelEntry

KEYS_HELP = (
    "set it in the environment of `ray start` on every node that runs lanes (for a local Ray, "
    "in the shell that runs autoray); see the README, section Model keys"
)


@dataclass(frozen=True, slots=True)
class NodeView:
    """What the preflight needs to know of a cluster node (from ``ray.nodes()``)."""

    node_id: str
    address: str
    alive: bool
    resources: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class KeyReport:
    """One node's answer to the key probe: variable name -> present. Never a value."""

    node: str
    present: Mapping[str, bool]


class PreflightPorts(Protocol):
    """The outside world of a preflight: the cluster's lane nodes and the probes run there."""

    def probe_keys(self, variables: Sequence[str]) -> Sequence[KeyReport]:
        """Each lane node's :class:`KeyReport` for ``variables``."""
        ...

    def probe_endpoints(self, entries: Sequence[ModelEntry]) -> Sequence[str | None]:
        """For each entry, from a lane node: None when its endpoint answered, else the reason."""
        ...


def key_variables(config: BenchConfig) -> dict[str, tuple[str, ...]]:
    """Each key variable an ``openai`` model names -> the labels of the models that need it."""
    needs: dict[str, list[str]] = {}
    for entry in config.models:
        if entry.provider == "openai" and entry.api_key_env:
            needs.setdefault(entry.api_key_env, []).append(entry.key.label())
    return {name: tuple(labels) for name, labels in sorted(needs.items())}


def probed_models(config: BenchConfig) -> tuple[ModelEntry, ...]:
    """The ``openai`` entries to call once each; entries that would send the same request
    (same endpoint, key variable and wire model, e.g. two variants) share one call."""
    from autoray.providers import wire_model_name  # the providers pull in httpx: load on use

    seen: dict[tuple[str | None, str | None, str], ModelEntry] = {}
    for entry in config.models:
        if entry.provider != "openai":
            continue
        seen.setdefault((entry.base_url, entry.api_key_env, wire_model_name(entry)), entry)
    return tuple(seen.values())


def lane_nodes(nodes: Iterable[NodeView], *, container_resource: str) -> list[NodeView]:
    """The alive nodes that can host lanes: those that declare ``container_resource`` (the
    live-container resource each lane asks for), or every alive node with a CPU when no node
    declares it (a cluster started before that resource existed); sorted by address."""
    alive = [node for node in nodes if node.alive]
    hosts = [node for node in alive if node.resources.get(container_resource, 0) > 0]
    if not hosts:
        hosts = [node for node in alive if node.resources.get("CPU", 0) > 0]
    return sorted(hosts, key=lambda node: (node.address, node.node_id))


def key_presence(variables: Iterable[str]) -> dict[str, bool]:
    """What the probe on a node answers: for each variable name, whether it is set (non-empty,
    as the provider reads it). The value is read and dropped here; it never leaves the node."""
    return {name: read_secret(name) is not None for name in variables}


def probe_endpoint(entry: ModelEntry) -> str | None:
    """The one cheap call for ``entry``, made where this runs: None when it answered, else the
    key-free reason (endpoint and status, or the variable that is not set)."""
    from autoray.providers import create_provider

    try:
        with closing(create_provider(entry)) as provider:
            provider.probe()
    except ProviderUnavailableError as exc:
        return str(exc)
    return None


def key_problems(needs: Mapping[str, Sequence[str]], reports: Sequence[KeyReport]) -> list[str]:
    """One line per variable missing on some node, naming the models, the variable, the nodes
    and the fix; no lines when every node has every variable (or there are no lane nodes)."""
    problems = []
    for name, models in needs.items():
        missing = [report.node for report in reports if not report.present.get(name, False)]
        if missing:
            where = _nodes_phrase(missing, len(reports))
            problems.append(
                f"{_models_phrase(models)} the key variable {name!r}, "
                f"which is not set {where}; {KEYS_HELP}"
            )
    return problems


def endpoint_problems(entries: Sequence[ModelEntry], reasons: Sequence[str | None]) -> list[str]:
    return [
        f"model {entry.key.label()!r}: its endpoint did not answer the preflight call: {reason}"
        for entry, reason in zip(entries, reasons, strict=True)
        if reason is not None
    ]


def run_preflight(config: BenchConfig, ports: PreflightPorts) -> None:
    """Check keys on every lane node, then each endpoint once; raise :class:`PreflightError`
    listing every problem. A config with no ``openai`` model asks the ports nothing."""
    needs = key_variables(config)
    entries = probed_models(config)
    if not entries:
        return
    reports = ports.probe_keys(list(needs)) if needs else []
    if not reports and needs:
        raise PreflightError(
            "no alive node of the cluster can host lanes, so the model keys cannot be checked; "
            "start a node (`ray start`) before running"
        )
    problems = key_problems(needs, reports)
    if not problems:
        problems = endpoint_problems(entries, ports.probe_endpoints(entries))
    if problems:
        raise PreflightError(
            "preflight failed, nothing was started:\n" + "\n".join(f"  - {p}" for p in problems)
        )


def _models_phrase(models: Sequence[str]) -> str:
    """``model 'a' needs`` or ``models 'a', 'b' need``."""
    names = ", ".join(repr(label) for label in models)
    return f"model {names} needs" if len(models) == 1 else f"models {names} need"


def _nodes_phrase(missing: Sequence[str], total: int) -> str:
    if total == 1:
        return f"where the lanes run (node {missing[0]})"
    shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    return f"on {len(missing)} of the {total} lane nodes ({shown})"
