"""Stored runs as users see them: progress and summaries read from the database alone.

The coordinator answers for runs it holds live; everything else (finished runs, runs of a
cluster that went down, ``autoray bench status`` without a cluster) is answered from here.
"""

from __future__ import annotations

from typing import Any

from autoray.engine.progress import RunProgress, stored_progress
from autoray.errors import AutorayError
from autoray.results import ModelKey
from autoray.store import repo


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
