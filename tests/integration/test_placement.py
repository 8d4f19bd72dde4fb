"""Live containers as a cluster-wide resource, on the real shared local Ray.

The shared cluster declares ``CLUSTER_CONTAINERS`` units of ``autoray_container``; a test that
needs a run to wait first holds most of them, as another run would.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
import ray
from ray.util.placement_group import PlacementGroup, placement_group_table

from actors import placement
from actors.driver import local_containers, stored_budget
from actors.placement import CONTAINER_RESOURCE, PlacementError, containers
from autoray.config import EngineConfig
from autoray.results import ModelKey
from autoray.store import open_store, repo, upgrade_async
from tests.integration.conftest import CLUSTER_CONTAINERS

REPO = Path(__file__).resolve().parents[2]

# No memory per lane: these tests hold dozens of bundles on a small machine.
LEAN = EngineConfig(lane_memory_mb=0, placement_timeout_s=60)


def _state(pg: PlacementGroup) -> str:
    return str(placement_group_table(pg)["state"])


class _Notes:
    """An async ``on_wait`` listener that keeps what it was told."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    async def __call__(self, message: str) -> None:
        self.messages.append(message)


async def _until(condition, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"{what} after {timeout} s"
        await asyncio.sleep(0.1)


async def _hold_all_but(spare: int) -> PlacementGroup:
    """Reserve every free container except ``spare``, as a run in flight would."""
    await _until(lambda: containers()[1] == CLUSTER_CONTAINERS, 60, "containers still held")
    return await placement.reserve("holder", CLUSTER_CONTAINERS - spare, LEAN)


@pytest.mark.ray
async def test_a_run_that_does_not_fit_waits_for_another_to_release(
    ray_cluster: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(placement, "WAIT_NOTE_EVERY_S", 1.0)
    holder = await _hold_all_but(2)
    notes = _Notes()
    short_timeout = EngineConfig(lane_memory_mb=0, placement_timeout_s=3)
    waiting = asyncio.create_task(placement.reserve("second", 4, short_timeout, on_wait=notes))
    try:
        # Five notes a second apart: the wait outlasts placement_timeout_s, which must not apply.
        await _until(lambda: len(notes.messages) >= 5, 60, "fewer than five waiting notes")
        assert not waiting.done(), "the run did not wait: it failed or overcommitted"
        first = notes.messages[0]
        assert f"needs 4 {CONTAINER_RESOURCE}" in first
        assert f"has {CLUSTER_CONTAINERS} and 2 are free" in first
        assert "other runs" in first
    finally:
        placement.release(holder)
    pg = await asyncio.wait_for(waiting, timeout=60)
    try:
        assert _state(pg) == "CREATED"
        held = CLUSTER_CONTAINERS - 4
        await _until(lambda: containers() == (CLUSTER_CONTAINERS, held), 30, "not 4 held")
    finally:
        placement.release(pg)


@pytest.mark.ray
async def test_a_cancelled_wait_leaves_no_placement_group_behind(ray_cluster: None) -> None:
    holder = await _hold_all_but(0)
    notes = _Notes()
    waiting = asyncio.create_task(placement.reserve("cancelled", 1, LEAN, on_wait=notes.__call__))
    try:
        await _until(lambda: bool(notes.messages), 30, "no waiting note")
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    finally:
        placement.release(holder)
    await _until(lambda: containers()[1] == CLUSTER_CONTAINERS, 30, "a container stayed held")
    named = [pg for pg in placement_group_table().values() if pg["name"] == "autoray:cancelled"]
    assert [pg["state"] for pg in named] == ["REMOVED"]


@pytest.mark.ray
async def test_a_cluster_declaring_too_few_containers_fails_at_once(ray_cluster: None) -> None:
    patient = EngineConfig(lane_memory_mb=0, placement_timeout_s=300)
    with pytest.raises(PlacementError) as failure:
        await asyncio.wait_for(
            placement.reserve("too-big", CLUSTER_CONTAINERS + 1, patient), timeout=60
        )
    message = str(failure.value)
    assert f"needs {CLUSTER_CONTAINERS + 1} {CONTAINER_RESOURCE}" in message
    assert f"declares only {CLUSTER_CONTAINERS}" in message
    assert f"""ray start --resources='{{"{CONTAINER_RESOURCE}": 100}}'""" in message
    assert f"lower max_live_containers to {CLUSTER_CONTAINERS}" in message
    assert not [pg for pg in placement_group_table().values() if pg["name"] == "autoray:too-big"]


@pytest.mark.ray
async def test_too_little_cpu_still_fails_after_the_placement_timeout(ray_cluster: None) -> None:
    greedy = EngineConfig(lane_cpu=64, lane_memory_mb=0, placement_timeout_s=1)
    with pytest.raises(PlacementError, match="could not place a placement group of 1 lane"):
        await asyncio.wait_for(placement.reserve("no-cpu", 1, greedy), timeout=60)
    named = [pg for pg in placement_group_table().values() if pg["name"] == "autoray:no-cpu"]
    assert [pg["state"] for pg in named] == ["REMOVED"]


@ray.remote
class _Lane:
    def held(self) -> float:
        """The containers this actor's worker was given (its bundle's resource, renamed)."""
        ids = ray.get_runtime_context().get_assigned_resources()
        return sum(v for k, v in ids.items() if k.startswith(CONTAINER_RESOURCE))


@pytest.mark.ray
async def test_lane_bundles_and_lane_options_ask_for_one_container_each(ray_cluster: None) -> None:
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    assert placement.lane_bundle(LEAN)[CONTAINER_RESOURCE] == 1
    pg = await placement.reserve("lanes", 2, LEAN)
    try:
        options = placement.lane_options(pg, 1, LEAN)
        assert options["resources"] == {CONTAINER_RESOURCE: 1}
        lane = _Lane.options(**options).remote()
        assert await lane.held.remote() == 1
        ray.kill(lane)
    finally:
        placement.release(pg)


def test_a_local_ray_declares_the_budget_or_a_larger_configured_number() -> None:
    assert local_containers(12) == 12
    assert local_containers(12, 40) == 40
    assert local_containers(12, 5) == 12
    assert local_containers(None) == 100  # the default max_live_containers


@pytest.mark.ray
def test_the_driver_starts_a_local_ray_that_declares_the_runs_budget() -> None:
    script = (
        "import ray\n"
        "from actors.driver import DriverOptions, connect\n"
        "from autoray.settings import Settings\n"
        "connect(DriverOptions(), Settings(), budget=12)\n"
        f"print(int(ray.cluster_resources()[{CONTAINER_RESOURCE!r}]))\n"
        "ray.shutdown()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "12"


async def test_resume_reads_the_budget_the_run_was_started_with(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'autoray.db'}"
    await upgrade_async(url)
    store = open_store(url)
    try:
        async with store.session() as session:
            await repo.create_run(
                session,
                run_id="run-7",
                name="seven",
                config={"max_live_containers": 7},
                engine_identity="e",
                dataset_identity="d:1",
                models=[ModelKey("sim/a", None)],
            )
    finally:
        await store.close()
    budgets = await asyncio.to_thread(
        lambda: (stored_budget(url, "run-7"), stored_budget(url, "nope"))
    )
    assert budgets == (7, None)
