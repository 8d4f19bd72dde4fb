"""Faults of issue 9's Done-when, end to end through the driver `autoray bench run` uses, each
compared with a clean run of the same config (same table version: it hashes the content):

* a 12 s HTTP 503 outage of the simulated farm in the middle of a run leaves every row present
  and none carrying an error;
* SIGKILLing a working lane's process and then the coordinator's mid-run still ends (with one
  resume if the driver gave up) with every row once and the clean run's table;
* a coordinator stopped for good mid-run is finished by one resume, with the clean run's table.

Small configs (the one-case-per-route set, 2 models, 1 rep) keep each well under a minute of
run time; the faults are real: HTTP on 127.0.0.1 and SIGKILL of real Ray worker processes.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray
import yaml

from actors import driver
from autoray.engine.progress import RunProgress
from autoray.errors import InfrastructureError
from autoray.results import CaseResult
from autoray.settings import Settings
from benchmarks.chaos import (
    actor_pid,
    farm_base_url,
    row_key,
    row_verdict,
    sigkill,
    switch_farm,
)
from tests.integration.conftest import Engine, bench_config, two_models

pytestmark = pytest.mark.ray

OUTAGE_S = 12.0


@dataclass
class Driven:
    """Runs started as `autoray bench run` starts them, on a coordinator of this test's own."""

    options: driver.DriverOptions
    engine: Engine  # read-only helpers on the same database

    def start(self, config: dict[str, Any]) -> tuple[Any, str]:
        path = self.engine.tmp_path / f"config-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        client, run_id, _ = driver.start(str(path), self.options, Settings())
        self.engine.client = client
        return client, run_id

    def follow(self, client: Any, run_id: str) -> RunProgress:
        return driver.follow(client, run_id, out=io.StringIO(), live=False)

    def wait_for_rows(self, client: Any, run_id: str, rows: int) -> int:
        deadline = time.monotonic() + 120
        while (done := client.status(run_id).cases_done) < rows:
            assert time.monotonic() < deadline, f"fewer than {rows} rows after 120 s"
            time.sleep(0.05)
        return done


@pytest.fixture
def driven(ray_cluster: None, tmp_path: Path) -> Iterator[Driven]:
    namespace = f"autoray-e2e-{uuid.uuid4().hex[:8]}"
    url = f"sqlite+aiosqlite:///{tmp_path / 'autoray.db'}"
    options = driver.DriverOptions(database_url=url, namespace=namespace)
    runs = Driven(options, Engine(None, namespace, url, tmp_path))
    try:
        yield runs
    finally:
        client = driver.existing_coordinator(options)
        if client is not None:
            client.shutdown()


def _verdicts(rows: list[CaseResult]) -> dict[tuple[str, str | None, str, int], tuple]:
    return {row_key(row): row_verdict(row) for row in rows}


def _clean_run(driven: Driven, config: dict[str, Any]) -> tuple[RunProgress, list[CaseResult]]:
    client, run_id = driven.start(config)
    progress = driven.follow(client, run_id)
    assert progress.status == "completed", progress.reason
    assert progress.table_version is not None
    rows = driven.engine.rows(run_id)
    assert len(rows) == 36 and not [r for r in rows if r.outcome.error]
    return progress, rows


def _assert_same_as_clean(
    driven: Driven, run_id: str, progress: RunProgress, clean: tuple[RunProgress, list]
) -> None:
    clean_progress, clean_rows = clean
    assert progress.status == "completed", progress.reason
    rows = driven.engine.rows(run_id)
    keys = [row_key(row) for row in rows]
    assert len(keys) == len(set(keys)) == 36  # every row once
    assert _verdicts(rows) == _verdicts(clean_rows)
    assert [row.outcome.error for row in rows if row.outcome.error] == []
    assert driven.engine.lane_failures(run_id) == []
    assert progress.table_version == clean_progress.table_version


def test_a_12_s_http_503_outage_mid_run_leaves_every_row_and_no_error(
    driven: Driven, mini_dataset: str
) -> None:
    # Backoff of the lane policy from 1 s to 8 s: its retries since the last row span more
    # than the outage, as the defaults do (a lane attempt in the outage lasts the provider's
    # own retries, about 3.5 s, then fails as infrastructure).
    config = bench_config(
        mini_dataset,
        two_models(latency_ms=300),
        max_live_containers=4,
        engine={"backoff_base_s": 1.0, "backoff_max_s": 8.0},
    )
    clean = _clean_run(driven, config)

    client, run_id = driven.start(config)
    rows_then = driven.wait_for_rows(client, run_id, 6)
    base = farm_base_url(run_id, driven.options.namespace)
    switch_farm(base, {"status": 503, "for_s": OUTAGE_S})
    outage_ends = time.monotonic() + OUTAGE_S
    assert httpx.get(f"{base}/v1/models", timeout=5).status_code == 503
    assert rows_then < 36, "the run ended before the outage; it proves nothing"

    progress = driven.follow(client, run_id)
    assert time.monotonic() > outage_ends  # the run outlived the outage
    _assert_same_as_clean(driven, run_id, progress, clean)
    # The outage outlasted the provider's retries, so it reached the lane policy: some lane
    # needed more than one attempt, and not one of its failed attempts left a row.
    assert max(lane["attempts"] for lane in client.lanes(run_id)) > 1


def test_sigkill_a_working_lane_then_the_coordinator_mid_run_ends_with_the_clean_table(
    driven: Driven, mini_dataset: str
) -> None:
    config = bench_config(mini_dataset, two_models(latency_ms=300), max_live_containers=4)
    clean = _clean_run(driven, config)

    client, run_id = driven.start(config)
    rows_then = driven.wait_for_rows(client, run_id, 4)
    lane = next(lane for lane in client.lanes(run_id) if lane["state"] == "running")
    handle = ray.get_actor(lane["actor_name"], namespace=driven.options.namespace)
    sigkill(actor_pid(handle), "ray::ShardLane")

    rows_then = driven.wait_for_rows(client, run_id, rows_then + 2)
    assert rows_then < 36, "the run ended before the coordinator was killed"
    sigkill(actor_pid(client.handle), "ray::Coordinator")

    resumes = 0
    while True:
        try:
            progress = driven.follow(client, run_id)
            break
        except InfrastructureError:  # the driver gave up on the coordinator: resume, once
            resumes += 1
            assert resumes == 1, "a second resume was needed"
            client, _ = driver.resume(run_id, driven.options, Settings())
    _assert_same_as_clean(driven, run_id, progress, clean)


def test_a_coordinator_gone_for_good_mid_run_is_finished_by_one_resume(
    driven: Driven, mini_dataset: str
) -> None:
    """The coordinator stopped without a restart (`autoray bench shutdown`, or its restarts
    spent): nothing drives the run until one `bench resume`, which must end it as clean."""
    config = bench_config(mini_dataset, two_models(latency_ms=300), max_live_containers=4)
    clean = _clean_run(driven, config)
    free_before = _free_containers()

    client, run_id = driven.start(config)
    rows_then = driven.wait_for_rows(client, run_id, 4)
    client.shutdown()
    deadline = time.monotonic() + 30
    while driver.existing_coordinator(driven.options) is not None:
        assert time.monotonic() < deadline, "the coordinator did not go away"
        time.sleep(0.2)
    assert driven.engine.run_record(run_id).status == "running"
    assert len(driven.engine.rows(run_id)) < 36, f"the run ended first ({rows_then} rows then)"

    client, _ = driver.resume(run_id, driven.options, Settings())
    progress = driven.follow(client, run_id)
    _assert_same_as_clean(driven, run_id, progress, clean)
    # The lost coordinator's reservation was given back: no live container stays held.
    deadline = time.monotonic() + 30
    while _free_containers() < free_before:
        assert time.monotonic() < deadline, f"{_free_containers()} of {free_before} free"
        time.sleep(0.5)


def _free_containers() -> float:
    from actors.placement import CONTAINER_RESOURCE

    return float(ray.available_resources().get(CONTAINER_RESOURCE, 0.0))
