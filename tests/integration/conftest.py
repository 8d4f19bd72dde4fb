"""Fixtures for integration tests: one shared local Ray cluster, and a fresh coordinator (own
namespace, own SQLite file) per test that needs the benchmark engine."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoray.cases import load_dataset
from autoray.engine.progress import RunProgress
from autoray.results import CaseResult
from autoray.store import open_store, repo
from autoray.table import RoutingTable

CLUSTER_CONTAINERS = 64
"""The live containers (``autoray_container``) the shared cluster declares: more than any one
test's run needs, so every run fits; placement tests hold most of them to make a run wait."""


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    import ray

    from actors.placement import CONTAINER_RESOURCE

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(
        address="local",
        num_cpus=2,
        resources={CONTAINER_RESOURCE: CLUSTER_CONTAINERS},
        include_dashboard=False,
        log_to_driver=False,
    )
    try:
        yield
    finally:
        ray.shutdown()


@dataclass
class Engine:
    """A coordinator of its own for one test, with helpers to run configs and read the DB."""

    client: Any
    namespace: str
    database_url: str
    tmp_path: Path

    def start(self, config: dict[str, Any], **options: Any) -> str:
        return str(self.client.start_run(config, **options))

    def wait(self, run_id: str, timeout: float = 240) -> RunProgress:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            progress = self.client.status(run_id)
            if progress.status not in ("running", "finalizing"):
                return progress
            time.sleep(0.25)
        raise AssertionError(f"run {run_id} did not finish within {timeout} s: {progress}")

    def wait_for_rows(self, run_id: str, rows: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.client.status(run_id).cases_done < rows:
            assert time.monotonic() < deadline, f"fewer than {rows} rows after {timeout} s"
            time.sleep(0.05)

    def rows(self, run_id: str) -> list[CaseResult]:
        return self._db(lambda s: repo.case_results(s, run_id=run_id))

    def table(self) -> RoutingTable | None:
        return self._db(lambda s: repo.active_table(s))

    def lane_failures(self, run_id: str) -> list[Any]:
        return self._db(lambda s: repo.lane_failures(s, run_id=run_id))

    def run_record(self, run_id: str) -> Any:
        return self._db(lambda s: repo.get_run(s, run_id=run_id))

    def _db(self, work: Any) -> Any:
        async def _go() -> Any:
            store = open_store(self.database_url)
            try:
                async with store.session() as session:
                    return await work(session)
            finally:
                await store.close()

        return asyncio.run(_go())


@pytest.fixture
def engine(ray_cluster: None, tmp_path: Path) -> Iterator[Engine]:
    import ray

    from actors.coordinator import get_or_create_coordinator

    namespace = f"autoray-test-{uuid.uuid4().hex[:8]}"
    url = f"sqlite+aiosqlite:///{tmp_path / 'autoray.db'}"
    client = get_or_create_coordinator(url, namespace=namespace)
    try:
        yield Engine(client, namespace, url, tmp_path)
    finally:
        ray.kill(client.handle, no_restart=True)


@pytest.fixture(scope="session")
def mini_dataset(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One case per route from the built-in set (all check kinds and agentic cases included),
    written as case files: every route stays covered, so tables publish, at a tenth the cost."""
    directory = tmp_path_factory.mktemp("mini-dataset")
    full = load_dataset("builtin:decider")
    by_task: dict[str, list[dict[str, Any]]] = {}
    for route in full.routes():
        case = full.by_route(route)[0]
        by_task.setdefault(case.task_type, []).append(case.model_dump(mode="json"))
    for task_type, cases in by_task.items():
        (directory / f"{task_type}.yaml").write_text(
            yaml.safe_dump({"task_type": task_type, "cases": cases}, sort_keys=False)
        )
    return str(directory)


def sim_model(
    model_id: str,
    *,
    price: float,
    skill: dict[str, float],
    latency_ms: float = 0,
    variant: str | None = None,
) -> dict[str, Any]:
    return {
        "id": model_id,
        "variant": variant,
        "provider": "simulated",
        "price": {"input_per_mtok": price, "output_per_mtok": 4 * price},
        "skill": skill,
        "latency_ms": latency_ms,
    }


def bench_config(dataset: str, models: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": "test",
        "dataset": dataset,
        "repetitions": 1,
        "chunk_size": 3,
        "max_live_containers": 4,
        "sandbox": {"backend": "process", "timeout_s": 30},
        "engine": {"backoff_base_s": 0.05, "backoff_max_s": 0.2, "placement_timeout_s": 30},
        "models": models,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def two_models(latency_ms: float = 0) -> list[dict[str, Any]]:
    """A: cheap and perfect on debugging only. B: dear and perfect everywhere."""
    return [
        sim_model(
            "sim/cheap-debugger",
            price=0.1,
            latency_ms=latency_ms,
            skill={"default": 0.0, "debugging/*": 1.0},
        ),
        sim_model("sim/generalist", price=1.0, latency_ms=latency_ms, skill={"default": 1.0}),
    ]
