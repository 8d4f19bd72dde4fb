"""A run's live-container budget as a Ray placement group: one bundle per lane.

A lane mostly waits on its model and its container, so its bundle is small (``lane_cpu``,
``lane_memory_mb``). The group uses ``SPREAD`` so that lanes, and the containers they own,
spread over the nodes.

Live containers are a cluster-wide resource: each bundle, and each lane actor in it, also asks
for one unit of the custom resource :data:`CONTAINER_RESOURCE`, which nodes declare
(``ray start --resources='{"autoray_container": 100}'``; a local Ray started by autoray declares
the run's budget). Two concurrent runs then share the cluster's containers instead of each
reserving a full budget (issue 9 found 200 live containers against a budget of 100). A run that
does not fit because other runs hold the containers waits, saying so; a cluster that declares
fewer containers than the run needs fails it at once, since waiting cannot help; a group that
cannot be placed for want of CPU or memory fails the run after ``placement_timeout_s``. Each
failure comes before any case starts, with a message that says what the cluster has and what to
change.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import ray
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from autoray.config import EngineConfig
from autoray.errors import AutorayError

CONTAINER_RESOURCE = "autoray_container"
"""The custom Ray resource a node declares for each live container it can host."""

WAIT_NOTE_EVERY_S = 30.0
"""How often a run that waits for other runs' containers says so again."""

_POLL_S = 0.5
_MIB = 1024 * 1024

OnWait = Callable[[str], Awaitable[None] | None]
"""Told, in words, that a run waits for containers: once when the wait starts, then every
:data:`WAIT_NOTE_EVERY_S` seconds."""

log = logging.getLogger(__name__)


class PlacementError(AutorayError):
    """The cluster cannot place a run's placement group: too few containers declared, or too
    little CPU or memory within the timeout."""


def lane_bundle(engine: EngineConfig) -> dict[str, float]:
    bundle: dict[str, float] = {"CPU": engine.lane_cpu, CONTAINER_RESOURCE: 1.0}
    if engine.lane_memory_mb:
        bundle["memory"] = float(engine.lane_memory_mb * _MIB)
    return bundle


async def reserve(
    run_id: str, size: int, engine: EngineConfig, *, on_wait: OnWait | None = None
) -> PlacementGroup:
    """A ready placement group of ``size`` lane bundles, or :class:`PlacementError`.

    While other runs hold the containers this run needs, it waits as long as it takes and tells
    ``on_wait``; the group is removed if the wait fails or is cancelled.
    """
    _check_declared(run_id, size)
    bundle = lane_bundle(engine)
    pg = placement_group(
        [dict(bundle) for _ in range(size)], strategy="SPREAD", name=f"autoray:{run_id}"
    )
    try:
        await _until_ready(pg, run_id, size, engine, on_wait)
    except BaseException:
        remove_placement_group(pg)
        raise
    return pg


def release(pg: PlacementGroup | None) -> None:
    if pg is not None:
        remove_placement_group(pg)


def lane_options(pg: PlacementGroup, bundle_index: int, engine: EngineConfig) -> dict[str, Any]:
    """Ray actor options that put a lane in its own bundle with the bundle's resources."""
    options: dict[str, Any] = {
        "num_cpus": engine.lane_cpu,
        "resources": {CONTAINER_RESOURCE: 1},
        "scheduling_strategy": PlacementGroupSchedulingStrategy(
            placement_group=pg, placement_group_bundle_index=bundle_index
        ),
    }
    if engine.lane_memory_mb:
        options["memory"] = engine.lane_memory_mb * _MIB
    return options


def containers() -> tuple[int, int]:
    """(declared, free) units of :data:`CONTAINER_RESOURCE` over the whole cluster."""
    total = ray.cluster_resources().get(CONTAINER_RESOURCE, 0)
    free = ray.available_resources().get(CONTAINER_RESOURCE, 0)
    return int(total), int(free)


async def _until_ready(
    pg: PlacementGroup, run_id: str, size: int, engine: EngineConfig, on_wait: OnWait | None
) -> None:
    """Wait for ``pg``: without limit while other runs hold the containers, else for at most
    ``placement_timeout_s`` of continuous want of CPU or memory."""
    ready = asyncio.wrap_future(pg.ready().future())
    loop = asyncio.get_running_loop()
    fits_since = loop.time()
    noted_at: float | None = None
    try:
        while not ready.done():
            await asyncio.wait([ready], timeout=_POLL_S)
            total, free = containers()
            if ready.done():
                break
            now = loop.time()
            if total < size:
                raise PlacementError(_undeclared_message(run_id, size, total))
            if free >= size:
                if now - fits_since >= engine.placement_timeout_s:
                    raise PlacementError(_message(size, lane_bundle(engine), engine))
                continue
            fits_since = now
            if noted_at is None or now - noted_at >= WAIT_NOTE_EVERY_S:
                noted_at = now
                await _tell(on_wait, _waiting_message(run_id, size, total, free))
        ready.result()
    finally:
        ready.cancel()


async def _tell(on_wait: OnWait | None, message: str) -> None:
    """Say that the run waits; a broken listener is logged, never a reason to stop waiting."""
    log.info("%s", message)
    if on_wait is None:
        return
    try:
        result = on_wait(message)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("on_wait failed while a run waited for containers")


def _check_declared(run_id: str, size: int) -> None:
    total, _ = containers()
    if total < size:
        raise PlacementError(_undeclared_message(run_id, size, total))


def _undeclared_message(run_id: str, size: int, total: int) -> str:
    declared = f"declares only {total}" if total else "declares none"
    return (
        f"run {run_id} needs {size} {CONTAINER_RESOURCE} (one per lane) but the cluster "
        f"{declared}; declare them when starting Ray on each node, e.g. "
        f"`ray start --resources='{{\"{CONTAINER_RESOURCE}\": {max(size, 100)}}}'` "
        f"(the nodes' sum must reach {size}), or lower max_live_containers to {total or 'fit'}"
    )


def _waiting_message(run_id: str, size: int, total: int, free: int) -> str:
    return (
        f"run {run_id} waits for containers: it needs {size} {CONTAINER_RESOURCE}, the cluster "
        f"has {total} and {free} are free; waiting for other runs to finish and release theirs"
    )


def _message(size: int, bundle: dict[str, float], engine: EngineConfig) -> str:
    total, free = ray.cluster_resources(), ray.available_resources()
    memory = bundle.get("memory", 0) / _MIB
    timeout = engine.placement_timeout_s
    return (
        f"the cluster could not place a placement group of {size} lane bundles "
        f"(each CPU {bundle['CPU']:g}, memory {memory:.0f} MiB; "
        f"{size * bundle['CPU']:g} CPU and {size * memory:.0f} MiB in all) within {timeout:g} s; "
        f"the cluster has CPU {total.get('CPU', 0):g} ({free.get('CPU', 0):g} free) and memory "
        f"{total.get('memory', 0) / _MIB:.0f} MiB ({free.get('memory', 0) / _MIB:.0f} MiB free). "
        "Lower max_live_containers, engine.lane_cpu or engine.lane_memory_mb, add nodes, "
        "or raise engine.placement_timeout_s"
    )
