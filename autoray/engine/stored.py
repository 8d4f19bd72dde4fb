"""Stored runs: creating one, loading one back into a controller, and what users see of runs
read from the database alone.

The coordinator answers for runs it holds live; everything else (finished runs, runs of a
cluster that went down, ``autoray bench status`` without a cluster) is answered from here.
"""

from __future__ import annotations

from typing import Any

from autoray.cases import Dataset
from autoray.config import BenchConfig, config_snapshot
from autoray.engine.controller import Clock, RunController
from autoray.engine.progress import RunProgress, stored_progress
from autoray.engine.run import RunState, build_run
from autoray.engine.states import RunStatus
from autoray.errors import AutorayError
from autoray.identity import engine_identity
from autoray.results import ModelKey
from autoray.store import repo
from autoray.store.repo import RunRecord


async def load_progress(session: Any, run_id: str | None) -> RunProgress:
    """Progress of ``run_id`` (the newest run when None) from the database."""
    if run_id is None:
        newest = await repo.list_runs(session, limit=1)
        if not newest:
            raise AutorayError("no runs yet; start one with `autoray bench run CONFIG`")
        run_id = newest[0].run_id
    record = await repo.get_run(session, run_id=run_id)
    if record is None:
        raise AutorayError(f"no run with id {run_id!r}; `autoray bench list` shows the runs")
    return stored_progress(
        record,
        cases_done=await repo.count_case_results(session, run_id=run_id),
        errors=await repo.count_case_errors(session, run_id=run_id),
        dead_lanes=len(await repo.lane_failures(session, run_id=run_id)),
    )


def run_summary(record: Any) -> dict[str, Any]:
    """One line of ``autoray bench list`` as a JSON-safe dict."""
    return {
        "run_id": record.run_id,
        "name": record.name,
        "status": record.status,
        "created_at": record.created_at.isoformat(),
        "finished_at": record.finished_at.isoformat() if record.finished_at else None,
        "table_version": record.table_version,
        "reason": record.status_reason,
        "models": [ModelKey(*model).label() for model in record.models],
    }


async def create_stored_run(
    session: Any, *, run_id: str, config: BenchConfig, dataset: Dataset
) -> RunState:
    """Plan a new run (which checks the budget) and store it, config snapshot included."""
    run = build_run(
        run_id=run_id, config=config, dataset=dataset, engine_identity=engine_identity(dataset)
    )
    record = await repo.create_run(
        session,
        run_id=run_id,
        name=config.name,
        config=config_snapshot(config),
        engine_identity=run.engine_identity,
        dataset_identity=dataset.identity,
        models=config.model_keys,
    )
    run.started_at = record.created_at
    return run


async def load_stored_run(
    session: Any, record: RunRecord, config: BenchConfig, dataset: Dataset, *, clock: Clock
) -> RunController:
    """A controller for a stored run, in the state its rows and dead lanes say. ``config`` is
    the run's parsed snapshot, which the caller already needed to load ``dataset``.

    Refused (:class:`AutorayError`, the run cannot resume) when the engine identity changed:
    the dataset or the graders differ, so the run's rows cannot be reused.
    """
    identity = engine_identity(dataset)
    if identity != record.engine_identity:
        raise AutorayError(
            f"engine identity changed since the run started ({record.engine_identity} -> "
            f"{identity}): the dataset or the graders differ, so its rows cannot be reused; "
            "start a new run"
        )
    present = await repo.case_keys(session, run_id=record.run_id)
    run = build_run(
        run_id=record.run_id,
        config=config,
        dataset=dataset,
        engine_identity=identity,
        present=present,
    )
    run.started_at, run.status = record.created_at, RunStatus(record.status)
    run.table_version, run.reason = record.table_version, record.status_reason
    run.errors = await repo.count_case_errors(session, run_id=record.run_id)
    controller = RunController(run, clock)
    dead = await repo.lane_failures(session, run_id=record.run_id)
    controller.restore({failure.lane_identity: failure.reason for failure in dead})
    return controller
