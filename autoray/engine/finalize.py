"""Finalizing a run: whole entries only, then summaries, table, save, and a guarded activation.

Two rules live here (issue 9, findings 2 and 3):

* **Whole entries or nothing.** An entry (model, variant, rep) with a dead lane is incomplete;
  its rows never reach the summaries, because a model ranked on the half of a route its lane
  got through (its fast cases, when the lane was swept) would bend the table.
* **No stale activation.** A run activates its table only if no table was activated after the
  run started; an older run finishing late used to put its older table back in service.

:func:`final_table` and :func:`activation_block` are pure; :func:`finalize_run` does the I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from autoray.engine.controller import FinalizeOutcome
from autoray.engine.run import RunState, entry_label, now
from autoray.engine.states import LaneState
from autoray.results import CaseResult
from autoray.store import repo
from autoray.summaries import RouteSummary, summarize
from autoray.table import RoutingTable, build_table

SessionFactory = Callable[[], AbstractAsyncContextManager[Any]]


@dataclass(frozen=True, slots=True)
class FinalTable:
    summaries: list[RouteSummary]
    table: RoutingTable
    left_out: tuple[str, ...]


def final_table(run: RunState, rows: Sequence[CaseResult], *, generated_at: str) -> FinalTable:
    """Summaries and table from the rows of whole entries only."""
    dead = set(run.dead_entries())
    kept = [row for row in rows if (row.model, row.rep) not in dead]
    summaries = summarize(kept)
    config = run.config
    table = build_table(
        summaries=summaries,
        run_id=run.run_id,
        models=config.model_keys,
        dataset_identity=run.dataset.identity,
        min_accuracy=config.min_accuracy,
        switch_cost_factor=config.switch_cost_factor,
        best_accuracy_gap=config.best_accuracy_gap,
        generated_at=generated_at,
        context_lengths={m.key: m.context_length for m in config.models},
    )
    return FinalTable(summaries, table, tuple(entry_label(e) for e in run.dead_entries()))


def activation_block(
    *,
    version: str,
    run_started: datetime,
    active: repo.ActiveTableInfo | None,
    own_previous: str | None,
) -> str | None:
    """Why the run's table must not be activated, or None when it may be."""
    if active is None or active.version in (version, own_previous):
        return None
    if active.activated_at <= run_started:
        return None
    return (
        f"table {version} saved but not activated: table {active.version} was activated at "
        f"{active.activated_at:%Y-%m-%d %H:%M:%S} UTC, after this run started "
        f"({run_started:%Y-%m-%d %H:%M:%S} UTC); `autoray table activate {version}` serves it"
    )


def completion_reason(final: FinalTable, dead_lanes: int, blocked: str | None) -> str | None:
    """The run's reason: what was left out, what was not published or not activated."""
    parts: list[str] = []
    if final.left_out:
        parts.append(
            f"{dead_lanes} lane(s) dead; incomplete entries left out of the table: "
            f"{', '.join(final.left_out)} (`autoray bench resume RUN` revives them)"
        )
    if not final.table.is_publishable:
        missing = final.table.missing_routes()
        more = ", ..." if len(missing) > 5 else ""
        parts.append(
            f"routing table not published: {len(missing)} route(s) without a candidate "
            f"({', '.join(missing[:5])}{more}); the previous table stays active"
        )
    if blocked:
        parts.append(blocked)
    return "; ".join(parts) or None


async def finalize_run(session: SessionFactory, run: RunState) -> FinalizeOutcome:
    """Read the rows, save summaries and table, activate it unless a newer one was."""
    async with session() as s:
        rows = await repo.case_results(s, run_id=run.run_id)
    final = final_table(run, rows, generated_at=now().isoformat())
    version = final.table.version if final.table.is_publishable else None
    blocked: str | None = None
    async with session() as s:
        await repo.replace_summaries(s, run_id=run.run_id, summaries=final.summaries)
        if version is not None:
            await repo.save_table(s, table=final.table)
            blocked = activation_block(
                version=version,
                run_started=run.started_at,
                active=await repo.active_table_info(s),
                own_previous=run.table_version,
            )
            if blocked is None:
                await repo.activate_table(s, version=version)
    dead = sum(1 for lane in run.lanes.values() if lane.state is LaneState.DEAD)
    reason = completion_reason(final, dead, blocked)
    return FinalizeOutcome(version, reason, activated=version is not None and blocked is None)
