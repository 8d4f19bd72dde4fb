"""The async repository: keyword-only functions that take an ``AsyncSession`` first.

The caller owns the transaction: nothing here commits or rolls back, so several calls can
form one atomic step (``async with factory() as s, s.begin(): ...`` or
``async with store.session() as s: ...``). Functions flush when they need the database to
have seen their writes (to report a conflict, or to count inserted rows).

Case rows, lane failures and routing tables are written once: a second write of the same key
is ignored (``INSERT ... ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL alike) and the
function reports whether it inserted. ``variant`` is ``None`` for a model without a variant
here and ``''`` in the database (see :mod:`autoray.store.models`); an empty-string variant
is treated as no variant.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from autoray.errors import StoreError
from autoray.ranking import Candidate
from autoray.results import CaseOutcome, CaseResult, ModelKey
from autoray.store.models import (
    RUN_STATUSES,
    TERMINAL_RUN_STATUSES,
    ActiveTableRow,
    Base,
    CaseResultRow,
    LaneFailureRow,
    RoutingCandidateRow,
    RoutingTableRow,
    RunModelRow,
    RunRow,
    SummaryRow,
)
from autoray.summaries import RouteSummary
from autoray.table import RoutingTable
from autoray.taxonomy import ROUTES

_INSERT_BATCH_ROWS = 200
_ACTIVE_ROW_ID = 1
_ROUTE_ORDER = {route: index for index, route in enumerate(ROUTES)}
_DIALECT_INSERTS: dict[str, Callable[[Any], Any]] = {
    "sqlite": sqlite.insert,
    "postgresql": postgresql.insert,
}


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as stored, with its model entries in config order."""

    run_id: str
    name: str
    status: str
    config: dict[str, Any]
    engine_identity: str
    dataset_identity: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    status_reason: str | None
    table_version: str | None
    last_heartbeat_at: datetime | None
    models: tuple[ModelKey, ...]
    prices: Mapping[ModelKey, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_RUN_STATUSES


@dataclass(frozen=True, slots=True)
class LaneFailureRecord:
    run_id: str
    lane_identity: str
    reason: str
    attempts: int
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class ActiveTableInfo:
    """The active table's version and when it was activated (the run guard compares it with
    a finishing run's start)."""

    version: str
    activated_at: datetime


@dataclass(frozen=True, slots=True)
class TableInfo:
    version: str
    generated_at: str
    run_id: str | None
    active: bool


# --- runs -------------------------------------------------------------------------------


async def create_run(
    session: AsyncSession,
    *,
    run_id: str,
    name: str,
    config: dict[str, Any],
    engine_identity: str,
    dataset_identity: str,
    models: Sequence[ModelKey],
    created_at: datetime | None = None,
    prices: Mapping[ModelKey, Mapping[str, Any]] | None = None,
) -> RunRecord:
    """Insert a run in status ``running`` with its model entries (and their price snapshot)."""
    if await session.get(RunRow, run_id) is not None:
        raise StoreError(
            f"run {run_id!r} already exists; choose another run id, "
            f"or resume it with `autoray bench resume {run_id}`"
        )
    keys = _unique_models(run_id, models)
    if created_at is not None and created_at.tzinfo is None:
        raise StoreError(
            f"created_at {created_at.isoformat()!r} has no timezone; pass an aware UTC datetime"
        )
    now = created_at or _utcnow()
    row = RunRow(
        run_id=run_id,
        name=name,
        status="running",
        config=config,
        engine_identity=engine_identity,
        dataset_identity=dataset_identity,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()  # the run row first: its model rows refer to it
    session.add_all(_run_model_rows(run_id, keys, prices or {}))
    await session.flush()
    return _run_record(row, await _models_of(session, [run_id]))


async def get_run(session: AsyncSession, *, run_id: str) -> RunRecord | None:
    row = await session.get(RunRow, run_id)
    if row is None:
        return None
    return _run_record(row, await _models_of(session, [run_id]))


async def list_runs(
    session: AsyncSession, *, status: str | None = None, limit: int = 50
) -> list[RunRecord]:
    """The newest runs first (by creation time), optionally only those in ``status``."""
    if limit < 1:
        raise StoreError(f"limit must be at least 1, got {limit!r}")
    query = select(RunRow).order_by(RunRow.created_at.desc(), RunRow.run_id.desc()).limit(limit)
    if status is not None:
        query = query.where(RunRow.status == _checked_status(status))
    return await _run_records(session, query)


async def running_runs(session: AsyncSession) -> list[RunRecord]:
    """Runs still ``running`` or ``finalizing``, oldest first: what a restarted coordinator
    resumes (a run stays ``finalizing`` until its table is saved)."""
    query = (
        select(RunRow)
        .where(RunRow.status.in_(("running", "finalizing")))
        .order_by(RunRow.created_at, RunRow.run_id)
    )
    return await _run_records(session, query)


async def set_run_status(
    session: AsyncSession,
    *,
    run_id: str,
    status: str,
    reason: str | None = None,
    table_version: str | None = None,
) -> None:
    """Move a run to ``status``; terminal statuses stamp ``finished_at``, ``running`` clears it.

    Which transitions are allowed is the run state machine's business, not the store's.
    ``reason`` replaces the previous reason; ``table_version`` is kept unless given.
    """
    status = _checked_status(status)
    row = await _require_run(session, run_id)
    now = _utcnow()
    if status not in TERMINAL_RUN_STATUSES:
        row.finished_at = None
    elif row.status != status or row.finished_at is None:
        row.finished_at = now
    row.status, row.status_reason, row.updated_at = status, reason, now
    if table_version is not None:
        row.table_version = table_version
    await session.flush()


async def touch_run(session: AsyncSession, *, run_id: str) -> datetime:
    """Record a heartbeat of the coordinator working on ``run_id``; returns its time."""
    row = await _require_run(session, run_id)
    row.last_heartbeat_at = now = _utcnow()
    await session.flush()
    return now


# --- case rows --------------------------------------------------------------------------


async def upsert_case_result(session: AsyncSession, *, result: CaseResult) -> bool:
    """Write a case row once; True if it was new, False if a row with its key already existed."""
    return await upsert_case_results(session, results=[result]) == 1


async def upsert_case_results(session: AsyncSession, *, results: Iterable[CaseResult]) -> int:
    """Write case rows once each; returns how many were new (existing rows stay unchanged)."""
    now = _utcnow()
    rows = [_case_row(result, now) for result in results]
    inserted = 0
    for start in range(0, len(rows), _INSERT_BATCH_ROWS):
        batch = rows[start : start + _INSERT_BATCH_ROWS]
        inserted += await _insert_or_ignore(session, CaseResultRow, batch, _of_runs(batch))
    return inserted


async def existing_case_ids(
    session: AsyncSession,
    *,
    run_id: str,
    model: ModelKey,
    rep: int,
    case_ids: Collection[str] | None = None,
) -> set[str]:
    """Case ids that already have a row for (run, model, rep), limited to ``case_ids`` if given."""
    if case_ids is not None and not case_ids:
        return set()
    query = select(CaseResultRow.case_id).where(
        CaseResultRow.run_id == run_id,
        CaseResultRow.model_id == model.model_id,
        CaseResultRow.variant == _variant_key(model.variant),
        CaseResultRow.rep == rep,
    )
    if case_ids is not None:
        query = query.where(CaseResultRow.case_id.in_(list(case_ids)))
    return set((await session.scalars(query)).all())


async def case_results(session: AsyncSession, *, run_id: str) -> list[CaseResult]:
    """Every case row of a run, ordered by model, variant, rep, case id."""
    query = (
        select(CaseResultRow)
        .where(CaseResultRow.run_id == run_id)
        .order_by(
            CaseResultRow.model_id,
            CaseResultRow.variant,
            CaseResultRow.rep,
            CaseResultRow.case_id,
        )
    )
    return [_case_result(row) for row in (await session.scalars(query)).all()]


async def case_keys(session: AsyncSession, *, run_id: str) -> set[tuple[ModelKey, int, str]]:
    """The (model, rep, case id) of every row of a run: which cases already have a row."""
    query = select(
        CaseResultRow.model_id, CaseResultRow.variant, CaseResultRow.rep, CaseResultRow.case_id
    ).where(CaseResultRow.run_id == run_id)
    return {
        (ModelKey(model_id, _variant_value(variant)), rep, case_id)
        for model_id, variant, rep, case_id in (await session.execute(query)).all()
    }


async def count_case_results(session: AsyncSession, *, run_id: str) -> int:
    query = select(func.count()).select_from(CaseResultRow).where(CaseResultRow.run_id == run_id)
    return int(await session.scalar(query) or 0)


async def count_case_errors(session: AsyncSession, *, run_id: str) -> int:
    """Rows of the run whose ``error`` is set (model failures, timeouts included)."""
    query = (
        select(func.count())
        .select_from(CaseResultRow)
        .where(CaseResultRow.run_id == run_id, CaseResultRow.error.is_not(None))
    )
    return int(await session.scalar(query) or 0)


# --- lanes ------------------------------------------------------------------------------


async def record_lane_failure(
    session: AsyncSession, *, run_id: str, lane_identity: str, reason: str, attempts: int
) -> bool:
    """Record a dead lane once; True if this call recorded it (the first record wins)."""
    row = {
        "run_id": run_id,
        "lane_identity": lane_identity,
        "reason": reason,
        "attempts": attempts,
        "recorded_at": _utcnow(),
    }
    return await _insert_or_ignore(session, LaneFailureRow, [row], {run_id}) == 1


async def clear_lane_failures(session: AsyncSession, *, run_id: str) -> int:
    """Forget a run's dead lanes (``bench resume`` revives them); returns how many there were."""
    result = await session.execute(delete(LaneFailureRow).where(LaneFailureRow.run_id == run_id))
    return int(getattr(result, "rowcount", 0) or 0)


async def lane_failures(session: AsyncSession, *, run_id: str) -> list[LaneFailureRecord]:
    query = (
        select(LaneFailureRow)
        .where(LaneFailureRow.run_id == run_id)
        .order_by(LaneFailureRow.recorded_at, LaneFailureRow.lane_identity)
    )
    return [_lane_failure(row) for row in (await session.scalars(query)).all()]


# --- summaries --------------------------------------------------------------------------


async def replace_summaries(
    session: AsyncSession, *, run_id: str, summaries: Sequence[RouteSummary]
) -> None:
    """Make ``summaries`` the run's only summaries (finalising twice leaves one set)."""
    rows = _summary_rows(run_id, summaries)
    await _require_run(session, run_id)
    await session.execute(delete(SummaryRow).where(SummaryRow.run_id == run_id))
    if rows:
        await session.execute(insert(SummaryRow), rows)


async def get_summaries(session: AsyncSession, *, run_id: str) -> list[RouteSummary]:
    """The run's summaries by model, variant (none first), then canonical route order."""
    query = select(SummaryRow).where(SummaryRow.run_id == run_id)
    summaries = [_route_summary(row) for row in (await session.scalars(query)).all()]
    return sorted(summaries, key=_summary_order)


# --- routing tables ---------------------------------------------------------------------


async def save_table(session: AsyncSession, *, table: RoutingTable) -> bool:
    """Store a table under its version; False (and no change) if that version exists.

    The version hashes the table's content, so a second run that ranks the same publishes the
    same version: the stored table, with the provenance of the run that first published it, is
    kept, and the later run's own row still records the version it produced.
    """
    row = {
        "version": table.version,
        "generated_at": table.generated_at,
        "min_accuracy": table.min_accuracy,
        "switch_cost_factor": table.switch_cost_factor,
        "run_id": table.run_id,
        "dataset_identity": table.dataset_identity,
        "created_at": _utcnow(),
        "body": table.as_dict(),
    }
    if await _insert_or_ignore(session, RoutingTableRow, [row], set()) == 0:
        return False
    candidates = _candidate_rows(table)
    if candidates:
        await session.execute(insert(RoutingCandidateRow), candidates)
    return True


async def activate_table(session: AsyncSession, *, version: str) -> str | None:
    """Serve the table ``version`` from now on (also a rollback); returns the previous one."""
    if await session.get(RoutingTableRow, version) is None:
        raise StoreError(
            f"no routing table with version {version!r}; `autoray table list` shows the versions"
        )
    active = await session.get(ActiveTableRow, _ACTIVE_ROW_ID)
    if active is None:
        session.add(ActiveTableRow(id=_ACTIVE_ROW_ID, version=version, activated_at=_utcnow()))
        await session.flush()
        return None
    previous = active.version
    active.version, active.activated_at = version, _utcnow()
    await session.flush()
    return previous


async def active_version(session: AsyncSession) -> str | None:
    """The active table's version alone: a cheap check for whether a reload is needed."""
    query = select(ActiveTableRow.version).where(ActiveTableRow.id == _ACTIVE_ROW_ID)
    return await session.scalar(query)


async def active_table_info(session: AsyncSession) -> ActiveTableInfo | None:
    active = await session.get(ActiveTableRow, _ACTIVE_ROW_ID)
    return None if active is None else ActiveTableInfo(active.version, active.activated_at)


async def active_table(session: AsyncSession) -> RoutingTable | None:
    query = (
        select(RoutingTableRow.version, RoutingTableRow.body)
        .join(ActiveTableRow, ActiveTableRow.version == RoutingTableRow.version)
        .where(ActiveTableRow.id == _ACTIVE_ROW_ID)
    )
    row = (await session.execute(query)).one_or_none()
    return None if row is None else _table_from_body(row.version, row.body)


async def get_table(session: AsyncSession, *, version: str) -> RoutingTable | None:
    row = await session.get(RoutingTableRow, version)
    return None if row is None else _table_from_body(row.version, row.body)


async def list_tables(session: AsyncSession) -> list[TableInfo]:
    """Every stored table, the most recently saved first, flagging the active one."""
    query = (
        select(
            RoutingTableRow.version,
            RoutingTableRow.generated_at,
            RoutingTableRow.run_id,
            ActiveTableRow.id,
        )
        .outerjoin(ActiveTableRow, ActiveTableRow.version == RoutingTableRow.version)
        .order_by(
            RoutingTableRow.created_at.desc(),
            RoutingTableRow.generated_at.desc(),
            RoutingTableRow.version.desc(),
        )
    )
    rows = (await session.execute(query)).all()
    return [
        TableInfo(version, generated, run, active is not None)
        for version, generated, run, active in rows
    ]


# --- helpers ----------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _variant_key(variant: str | None) -> str:
    return variant or ""


def _variant_value(stored: str) -> str | None:
    return stored or None


def _checked_status(status: str) -> str:
    if status not in RUN_STATUSES:
        raise StoreError(
            f"unknown run status {status!r}; valid statuses: {', '.join(RUN_STATUSES)}"
        )
    return str(status)


async def _require_run(session: AsyncSession, run_id: str) -> RunRow:
    row = await session.get(RunRow, run_id)
    if row is None:
        raise StoreError(f"no run with id {run_id!r}; `autoray bench list` shows the runs")
    return row


def _unique_models(run_id: str, models: Sequence[ModelKey]) -> list[ModelKey]:
    keys = [
        ModelKey(model_id, _variant_value(_variant_key(variant))) for model_id, variant in models
    ]
    seen: set[ModelKey] = set()
    for key in keys:
        if key in seen:
            raise StoreError(
                f"model {key.label()!r} is listed twice for run {run_id!r}; "
                "list each (model, variant) entry once"
            )
        seen.add(key)
    return keys


def _run_model_rows(
    run_id: str, keys: list[ModelKey], prices: Mapping[ModelKey, Mapping[str, Any]]
) -> list[RunModelRow]:
    return [
        RunModelRow(
            run_id=run_id,
            model_id=key.model_id,
            variant=_variant_key(key.variant),
            position=position,
            prices=dict(prices[key]) if key in prices else None,
        )
        for position, key in enumerate(keys)
    ]


async def _models_of(session: AsyncSession, run_ids: list[str]) -> dict[str, list[RunModelRow]]:
    query = (
        select(RunModelRow)
        .where(RunModelRow.run_id.in_(run_ids))
        .order_by(RunModelRow.run_id, RunModelRow.position)
    )
    grouped: dict[str, list[RunModelRow]] = defaultdict(list)
    for row in (await session.scalars(query)).all():
        grouped[row.run_id].append(row)
    return grouped


async def _run_records(session: AsyncSession, query: Select[RunRow]) -> list[RunRecord]:
    rows = list((await session.scalars(query)).all())
    models = await _models_of(session, [row.run_id for row in rows])
    return [_run_record(row, models) for row in rows]


def _run_record(row: RunRow, models: Mapping[str, list[RunModelRow]]) -> RunRecord:
    entries = models.get(row.run_id, [])
    keys = [ModelKey(entry.model_id, _variant_value(entry.variant)) for entry in entries]
    return RunRecord(
        run_id=row.run_id,
        name=row.name,
        status=row.status,
        config=row.config,
        engine_identity=row.engine_identity,
        dataset_identity=row.dataset_identity,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        status_reason=row.status_reason,
        table_version=row.table_version,
        last_heartbeat_at=row.last_heartbeat_at,
        models=tuple(keys),
        prices={
            key: e.prices for key, e in zip(keys, entries, strict=True) if e.prices is not None
        },
    )


async def _insert_or_ignore(
    session: AsyncSession, model: type[Base], rows: list[dict[str, Any]], run_ids: set[str]
) -> int:
    """Insert rows, skipping those whose key exists; returns how many were inserted."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    make_insert = _DIALECT_INSERTS.get(dialect)
    if make_insert is None:
        raise StoreError(f"database dialect {dialect!r} is not supported; use SQLite or PostgreSQL")
    primary_key = list(model.__mapper__.primary_key)
    statement = make_insert(model).values(rows).on_conflict_do_nothing().returning(*primary_key)
    try:
        return len((await session.execute(statement)).all())
    except IntegrityError as exc:
        raise _integrity_error(model, run_ids, exc) from None


def _integrity_error(model: type[Base], run_ids: set[str], exc: IntegrityError) -> StoreError:
    if not run_ids:
        return StoreError(f"cannot write to {model.__tablename__}: {exc.orig}")
    runs = ", ".join(repr(run_id) for run_id in sorted(run_ids))
    return StoreError(
        f"cannot write to {model.__tablename__} for run {runs}: {exc.orig}; "
        "create the run (create_run) before writing its rows"
    )


def _of_runs(rows: list[dict[str, Any]]) -> set[str]:
    return {row["run_id"] for row in rows}


def _case_row(result: CaseResult, now: datetime) -> dict[str, Any]:
    row = result.as_row()
    row["variant"] = _variant_key(result.variant)
    row["score"] = float(row["score"])
    row["created_at"] = now
    return row


def _case_result(row: CaseResultRow) -> CaseResult:
    outcome = CaseOutcome(
        score=row.score,
        latency_ms=row.latency_ms,
        cost_usd=row.cost_usd,
        error=row.error,
        timed_out=row.timed_out,
        retried=row.retried,
        output_prefix=row.output_prefix,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
    )
    return CaseResult(
        run_id=row.run_id,
        model_id=row.model_id,
        variant=_variant_value(row.variant),
        case_id=row.case_id,
        rep=row.rep,
        route=row.route,
        outcome=outcome,
    )


def _lane_failure(row: LaneFailureRow) -> LaneFailureRecord:
    return LaneFailureRecord(
        run_id=row.run_id,
        lane_identity=row.lane_identity,
        reason=row.reason,
        attempts=row.attempts,
        recorded_at=row.recorded_at,
    )


def _summary_rows(run_id: str, summaries: Sequence[RouteSummary]) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for summary in summaries:
        if summary.run_id != run_id:
            raise StoreError(
                f"summary of run {summary.run_id!r} passed to replace_summaries for run "
                f"{run_id!r}; replace the summaries of one run at a time"
            )
        key = (summary.model_id, _variant_key(summary.variant), summary.route)
        if key in rows:
            label = ModelKey(summary.model_id, summary.variant).label()
            raise StoreError(
                f"two summaries for model {label!r} on route {summary.route!r}; "
                "pass one summary per (model, variant, route)"
            )
        rows[key] = _summary_row(summary)
    return list(rows.values())


def _summary_row(summary: RouteSummary) -> dict[str, Any]:
    return {
        "run_id": summary.run_id,
        "model_id": summary.model_id,
        "variant": _variant_key(summary.variant),
        "route": summary.route,
        "accuracy": summary.accuracy,
        "avg_cost_usd": summary.avg_cost_usd,
        "p50_latency_ms": summary.p50_latency_ms,
        "p95_latency_ms": summary.p95_latency_ms,
        "cases": summary.cases,
        "errors": summary.errors,
        "timeouts": summary.timeouts,
    }


def _route_summary(row: SummaryRow) -> RouteSummary:
    return RouteSummary(
        run_id=row.run_id,
        model_id=row.model_id,
        variant=_variant_value(row.variant),
        route=row.route,
        accuracy=row.accuracy,
        avg_cost_usd=row.avg_cost_usd,
        p50_latency_ms=row.p50_latency_ms,
        p95_latency_ms=row.p95_latency_ms,
        cases=row.cases,
        errors=row.errors,
        timeouts=row.timeouts,
    )


def _summary_order(summary: RouteSummary) -> tuple[str, bool, str, int, str]:
    route_rank = _ROUTE_ORDER.get(summary.route, len(_ROUTE_ORDER))
    variant = summary.variant
    return (summary.model_id, variant is not None, variant or "", route_rank, summary.route)


def _table_from_body(version: str, body: Any) -> RoutingTable:
    """Read a stored body of any schema version; a body no reader can use is a StoreError."""
    try:
        return RoutingTable.from_dict(body)
    except ValueError as exc:
        raise StoreError(
            f"stored routing table {version!r} cannot be read ({exc}); "
            "`autoray table activate` another version from `autoray table list`"
        ) from None


def _candidate_rows(table: RoutingTable) -> list[dict[str, Any]]:
    return [
        _candidate_row(table.version, route, rank, candidate)
        for route, candidates in table.routes.items()
        for rank, candidate in enumerate(candidates, start=1)
    ]


def _candidate_row(version: str, route: str, rank: int, candidate: Candidate) -> dict[str, Any]:
    return {
        "version": version,
        "route": route,
        "rank": rank,
        "model_id": candidate.model_id,
        "variant": _variant_key(candidate.variant),
        "accuracy": candidate.accuracy,
        "avg_cost_usd": candidate.avg_cost_usd,
        "cases": candidate.cases,
        "meets_threshold": candidate.meets_threshold,
        "p50_latency_ms": candidate.p50_latency_ms,
        "context_length": candidate.context_length,
    }
