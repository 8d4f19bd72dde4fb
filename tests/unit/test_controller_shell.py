"""The coordinator shell survives its own errors (issue 9, finding 5), shown without a Ray
cluster: the ``Coordinator`` is a plain class until Ray makes it an actor, and its database is
real SQLite under tmp_path.

Once, one database error in a sweep ended sweeping for every run, and a failed resume at
start-up left the sweeper unstarted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from actors.coordinator import Coordinator, RunShell
from autoray.cases import Dataset, load_dataset
from autoray.config import parse_config
from autoray.engine.controller import RunController
from autoray.engine.run import build_run
from autoray.store import repo


@pytest.fixture
async def coordinator(tmp_path: Path) -> AsyncIterator[Coordinator]:
    shell = Coordinator(f"sqlite+aiosqlite:///{tmp_path / 'autoray.db'}", "unit")
    try:
        yield shell
    finally:
        if shell._sweeper is not None:
            shell._sweeper.cancel()
            await asyncio.gather(shell._sweeper, return_exceptions=True)
        if shell._store is not None:
            await shell._store.close()


def _shell(coordinator: Coordinator, dataset: Dataset) -> RunShell:
    config = parse_config(
        {
            "name": "t",
            "dataset": "builtin:decider",
            "max_live_containers": 1,
            "engine": {"heartbeat_s": 0.5, "sweep_after_s": 2},
            "models": [
                {
                    "id": "sim/a",
                    "provider": "simulated",
                    "price": {"input_per_mtok": 1, "output_per_mtok": 2},
                    "skill": {"default": 1.0},
                }
            ],
        },
        source="test",
    )
    run = build_run(run_id="r", config=config, dataset=dataset, engine_identity="e")
    return coordinator._shell(RunController(run, time.monotonic), None)


async def _until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_a_failing_tick_is_logged_and_the_sweeper_carries_on(
    coordinator: Coordinator, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = load_dataset("builtin:decider")
    live = _shell(coordinator, Dataset("one", (full.cases[0],), "one"))
    ticks: list[int] = []

    def tick() -> list[Any]:
        ticks.append(1)
        if len(ticks) == 1:
            raise OSError("database is locked")
        return []

    monkeypatch.setattr(live.controller, "tick", tick)
    await coordinator._ensure_started()
    coordinator._runs["r"] = live
    await _until(lambda: len(ticks) >= 3)
    assert coordinator._sweeper is not None and not coordinator._sweeper.done()


async def test_start_up_survives_a_failed_resume_and_retries_it_on_a_tick(
    coordinator: Coordinator, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = repo.running_runs

    async def flaky(session: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("database is locked")
        return await real(session)

    monkeypatch.setattr(repo, "running_runs", flaky)
    await coordinator._ensure_started()  # does not raise
    assert coordinator._resume_pending
    assert coordinator._sweeper is not None and not coordinator._sweeper.done()
    await _until(lambda: not coordinator._resume_pending)
    assert len(calls) == 2
