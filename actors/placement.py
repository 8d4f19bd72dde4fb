"""A run's live-container budget as a Ray placement group: one bundle per lane.

A lane mostly waits on its model and its container, so its bundle is small (``lane_cpu``,
``lane_memory_mb``). The group uses ``SPREAD`` so that lanes, and the containers they own,
spread over the nodes. A group that cannot be placed in time fails the run before any case
starts, with a message that says what the cluster has and what to change.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ray
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from autoray.config import EngineConfig
from autoray.errors import AutorayError

_MIB = 1024 * 1024


class PlacementError(AutorayError):
    """The cluster cannot place a run's placement group within the timeout."""


def lane_bundle(engine: EngineConfig) -> dict[str, float]:
    bundle: dict[str, float] = {"CPU": engine.lane_cpu}
    if engine.lane_memory_mb:
        bundle["memory"] = float(engine.lane_memory_mb * _MIB)
    return bundle


async def reserve(run_id: str, size: int, engine: EngineConfig) -> PlacementGroup:
    """A ready placement group of ``size`` lane bundles, or :class:`PlacementError`."""
    bundle = lane_bundle(engine)
    pg = placement_group(
        [dict(bundle) for _ in range(size)], strategy="SPREAD", name=f"autoray:{run_id}"
    )
    try:
        await asyncio.wait_for(pg.ready(), timeout=engine.placement_timeout_s)
    except TimeoutError:
        remove_placement_group(pg)
        raise PlacementError(_message(size, bundle, engine.placement_timeout_s)) from None
    return pg


def release(pg: PlacementGroup | None) -> None:
    if pg is not None:
        remove_placement_group(pg)


def lane_options(pg: PlacementGroup, bundle_index: int, engine: EngineConfig) -> dict[str, Any]:
    """Ray actor options that put a lane in its own bundle with the bundle's resources."""
    options: dict[str, Any] = {
        "num_cpus": engine.lane_cpu,
        "scheduling_strategy": PlacementGroupSchedulingStrategy(
            placement_group=pg, placement_group_bundle_index=bundle_index
        ),
    }
    if engine.lane_memory_mb:
        options["memory"] = engine.lane_memory_mb * _MIB
    return options


def _message(size: int, bundle: dict[str, float], timeout: float) -> str:
    total, free = ray.cluster_resources(), ray.available_resources()
    memory = bundle.get("memory", 0) / _MIB
    return (
        f"the cluster could not place a placement group of {size} lane bundles "
        f"(each CPU {bundle['CPU']:g}, memory {memory:.0f} MiB; "
        f"{size * bundle['CPU']:g} CPU and {size * memory:.0f} MiB in all) within {timeout:g} s; "
        f"the cluster has CPU {total.get('CPU', 0):g} ({free.get('CPU', 0):g} free) and memory "
        f"{total.get('memory', 0) / _MIB:.0f} MiB ({free.get('memory', 0) / _MIB:.0f} MiB free). "
        "Lower max_live_containers, engine.lane_cpu or engine.lane_memory_mb, add nodes, "
        "or raise engine.placement_timeout_s"
    )
