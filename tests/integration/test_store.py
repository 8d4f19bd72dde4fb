"""The store on real databases: migrations and the repository.

Every repository test runs on a SQLite file under ``tmp_path``, and again on a throwaway
PostgreSQL cluster on a loopback port where ``initdb``/``pg_ctl`` and ``asyncpg`` are present
(skipped otherwise), so the dialect-specific upserts are exercised on both.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import Connection

from autoray.errors import StoreError
from autoray.ranking import Candidate
from autoray.results import CaseOutcome, CaseResult, ModelKey
from autoray.store import (
    Base,
    Store,
    activate_table,
    active_table,
    active_version,
    case_results,
    check_schema,
    count_case_errors,
    count_case_results,
    create_run,
    current_revision,
    existing_case_ids,
    get_run,
    get_summaries,
    get_table,
    head_revision,
    lane_failures,
    list_runs,
    list_tables,
    make_engine,
    open_store,
    record_lane_failure,
    replace_summaries,
    running_runs,
    save_table,
    set_run_status,
    touch_run,
    upgrade,
    upgrade_async,
    upsert_case_result,
    upsert_case_results,
)
from autoray.store.models import RoutingCandidateRow, RoutingTableRow
from autoray.summaries import RouteSummary
from autoray.table import RoutingTable, build_table
from autoray.taxonomy import ROUTES

EXPECTED_TABLES = {
    "alembic_version",
    "runs",
    "run_models",
    "case_results",
    "lane_failures",
    "summaries",
    "routing_tables",
    "routing_candidates",
    "active_table",
}
ROUTE = ROUTES[0]
PLAIN = ModelKey("m-plain", None)
FAST = ModelKey("m-plain", "fast")
OTHER = ModelKey("m-other", None)
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def _tables_in(path: Path) -> set[str]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows}


def _result(
    case_id: str,
    *,
    model: ModelKey = PLAIN,
    rep: int = 0,
    run_id: str = "run-1",
    score: float = 1.0,
    error: str | None = None,
) -> CaseResult:
    outcome = CaseOutcome(
        score=score,
        latency_ms=120.5,
        cost_usd=0.002,
        error=error,
        timed_out=error == "timeout",
        output_prefix="answer",
        input_tokens=11,
        output_tokens=7,
    )
    return CaseResult(run_id, model.model_id, model.variant, case_id, rep, ROUTE, outcome)


def _summary(model: ModelKey, route: str, *, run_id: str = "run-1", acc: float = 0.8):
    return RouteSummary(
        run_id=run_id,
        model_id=model.model_id,
        variant=model.variant,
        route=route,
        accuracy=acc,
        avg_cost_usd=0.003,
        p50_latency_ms=200.0,
        p95_latency_ms=1900.0,
        cases=10,
        errors=1,
        timeouts=0,
    )


def _candidate(model: ModelKey, accuracy: float = 0.9) -> Candidate:
    return Candidate(
        model_id=model.model_id,
        variant=model.variant,
        accuracy=accuracy,
        avg_cost_usd=0.008,
        cases=10,
        meets_threshold=accuracy >= 0.7,
        p50_latency_ms=150.0,
        context_length=None,
    )


def _table(version: str, *, generated_at: str = "2025-01-01T00:00:00+00:00") -> RoutingTable:
    routes = {route: (_candidate(FAST), _candidate(PLAIN, 0.5)) for route in ROUTES}
    return RoutingTable(
        version=version,
        generated_at=generated_at,
        min_accuracy=0.7,
        switch_cost_factor=3.0,
        routes=routes,
        run_id="run-1",
        dataset_identity="builtin:decider@abc",
    )


def _postgres_user_prefix() -> list[str]:
    """initdb refuses to run as root; run the cluster as the ``postgres`` account then."""
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None or shutil.which("postgres") is None:
        pytest.skip("running as root without runuser or a postgres account for PostgreSQL")
    return ["runuser", "-u", "postgres", "--"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a loopback port, if the binaries and asyncpg exist."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not on PATH")
    pytest.importorskip("asyncpg")
    as_user = _postgres_user_prefix()
    root = Path(tempfile.mkdtemp(prefix="autoray-pg-"))
    if as_user:
        shutil.chown(root, "postgres")
    data, port = root / "data", _free_port()
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    run = [*as_user, pg_ctl, "-D", str(data), "-w", "-t", "60"]
    try:
        _start_cluster(
            [*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "autoray", "--no-sync"],
            [*run, "-l", str(root / "log"), "-o", options, "start"],
        )
        yield f"postgresql+asyncpg://autoray@127.0.0.1:{port}"
    finally:
        subprocess.run([*run, "-m", "immediate", "stop"], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


def _start_cluster(*commands: list[str]) -> None:
    """PostgreSQL is the optional second backend: a cluster that cannot start skips its tests."""
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot start PostgreSQL ({command[-1]}): {done.stderr.strip()[-300:]}")


async def _fresh_postgres_database(server: str) -> str:
    name = f"autoray_{uuid.uuid4().hex[:12]}"
    admin = make_engine(f"{server}/postgres").execution_options(isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    return f"{server}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A migrated store: a SQLite file always, and PostgreSQL where a cluster can be started."""
    if request.param == "sqlite":
        url = _sqlite_url(tmp_path / "autoray.db")
    else:
        url = await _fresh_postgres_database(request.getfixturevalue("postgres_server"))
    await upgrade_async(url)
    handle = open_store(url)
    yield handle
    await handle.close()


async def _new_run(
    store: Store,
    run_id: str = "run-1",
    *,
    models: tuple[ModelKey, ...] = (PLAIN, FAST),
    created_at: datetime | None = None,
) -> None:
    async with store.session() as s:
        await create_run(
            s,
            run_id=run_id,
            name=f"bench {run_id}",
            config={"repetitions": 2, "models": [m.label() for m in models]},
            engine_identity="engine-abc",
            dataset_identity="builtin:decider@abc",
            models=models,
            created_at=created_at,
        )


# --- migrations -------------------------------------------------------------------------


def test_upgrade_from_empty_creates_every_table_and_repeats_as_no_op(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "autoray.db"
    url = _sqlite_url(path)
    assert not path.parent.exists()
    assert upgrade(url) == head_revision() == "0002"
    assert _tables_in(path) == EXPECTED_TABLES
    assert upgrade(url) == "0002"
    assert current_revision(url) == "0002"
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_current_revision_of_an_empty_database_is_none(tmp_path: Path) -> None:
    assert current_revision(_sqlite_url(tmp_path / "empty.db")) is None


def test_upgrade_to_an_unknown_revision_names_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"'9999'.*one of: 0001, 0002"):
        upgrade(_sqlite_url(tmp_path / "a.db"), revision="9999")


async def test_sync_upgrade_inside_an_event_loop_points_to_the_async_one(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="await upgrade_async"):
        upgrade(_sqlite_url(tmp_path / "a.db"))


async def test_migrated_schema_matches_the_orm_models(store: Store) -> None:
    def diff(connection: Connection) -> list[object]:
        return compare_metadata(MigrationContext.configure(connection), Base.metadata)

    async with store.engine.connect() as connection:
        assert await connection.run_sync(diff) == []


async def test_check_schema_refuses_an_unmigrated_database_with_the_fix(tmp_path: Path) -> None:
    handle = open_store(_sqlite_url(tmp_path / "fresh.db"))
    try:
        with pytest.raises(StoreError, match="autoray db upgrade"):
            await check_schema(handle.engine)
        await upgrade_async(_sqlite_url(tmp_path / "fresh.db"))
        assert await check_schema(handle.engine) == "0002"
    finally:
        await handle.close()


# --- runs -------------------------------------------------------------------------------


async def test_create_and_get_run_round_trips_models_in_order(store: Store) -> None:
    await _new_run(store, models=(OTHER, FAST, PLAIN))
    async with store.session() as s:
        run = await get_run(s, run_id="run-1")
        missing = await get_run(s, run_id="nope")
    assert missing is None
    assert run is not None
    assert run.models == (OTHER, FAST, PLAIN)
    assert run.models[2].variant is None
    assert run.status == "running" and run.finished_at is None and not run.is_terminal
    assert run.config == {"repetitions": 2, "models": ["m-other", "m-plain[fast]", "m-plain"]}
    assert run.created_at.tzinfo is not None


async def test_create_run_keeps_a_price_snapshot_per_model(store: Store) -> None:
    async with store.session() as s:
        record = await create_run(
            s,
            run_id="priced",
            name="priced",
            config={},
            engine_identity="e",
            dataset_identity="d",
            models=[PLAIN, FAST],
            prices={FAST: {"input_per_mtok": 0.5, "output_per_mtok": 1.5}},
        )
    assert record.prices == {FAST: {"input_per_mtok": 0.5, "output_per_mtok": 1.5}}
    async with store.session() as s:
        stored = await get_run(s, run_id="priced")
    assert stored is not None and stored.prices == record.prices


async def test_create_run_twice_or_with_a_repeated_model_fails_helpfully(store: Store) -> None:
    await _new_run(store)
    with pytest.raises(StoreError, match=r"run 'run-1' already exists.*bench resume run-1"):
        await _new_run(store)
    with pytest.raises(StoreError, match=r"'m-plain\[fast\]' is listed twice"):
        await _new_run(store, "run-2", models=(FAST, OTHER, FAST))
    with pytest.raises(StoreError, match="no timezone"):
        await _new_run(store, "run-3", created_at=datetime(2025, 1, 1))


async def test_list_runs_is_newest_first_with_status_filter_and_limit(store: Store) -> None:
    for offset, run_id in enumerate(["old", "mid", "new"]):
        await _new_run(store, run_id, created_at=T0 + timedelta(minutes=offset))
    async with store.session() as s:
        await set_run_status(s, run_id="mid", status="completed")
        newest_first = [r.run_id for r in await list_runs(s)]
        completed = [r.run_id for r in await list_runs(s, status="completed")]
        limited = [r.run_id for r in await list_runs(s, limit=2)]
        still_running = [r.run_id for r in await running_runs(s)]
    assert newest_first == ["new", "mid", "old"]
    assert completed == ["mid"]
    assert limited == ["new", "mid"]
    assert still_running == ["old", "new"]


async def test_list_runs_rejects_a_bad_status_or_limit(store: Store) -> None:
    async with store.session() as s:
        with pytest.raises(
            StoreError, match=r"'done'.*running, finalizing, completed, failed, cancelled"
        ):
            await list_runs(s, status="done")
        with pytest.raises(StoreError, match="at least 1, got 0"):
            await list_runs(s, limit=0)


async def test_status_transitions_stamp_and_clear_finished_at(store: Store) -> None:
    await _new_run(store)
    async with store.session() as s:
        await set_run_status(s, run_id="run-1", status="failed", reason="3 lanes dead")
    async with store.session() as s:
        failed = await get_run(s, run_id="run-1")
        await set_run_status(s, run_id="run-1", status="running")
        resumed = await get_run(s, run_id="run-1")
        await set_run_status(s, run_id="run-1", status="completed", table_version="rt-1")
        done = await get_run(s, run_id="run-1")
    assert failed is not None and failed.status == "failed" and failed.is_terminal
    assert failed.finished_at is not None and failed.status_reason == "3 lanes dead"
    assert resumed is not None and resumed.finished_at is None and resumed.status_reason is None
    assert done is not None and done.finished_at is not None and done.table_version == "rt-1"
    assert done.finished_at >= failed.finished_at
    assert done.updated_at >= done.created_at


async def test_set_status_of_an_unknown_run_or_to_an_unknown_status_fails(store: Store) -> None:
    await _new_run(store)
    async with store.session() as s:
        with pytest.raises(StoreError, match=r"no run with id 'ghost'.*bench list"):
            await set_run_status(s, run_id="ghost", status="failed")
        with pytest.raises(StoreError, match="unknown run status 'finished'"):
            await set_run_status(s, run_id="run-1", status="finished")


async def test_touch_run_records_a_heartbeat(store: Store) -> None:
    await _new_run(store)
    async with store.session() as s:
        beat = await touch_run(s, run_id="run-1")
    async with store.session() as s:
        run = await get_run(s, run_id="run-1")
        with pytest.raises(StoreError, match="no run with id 'ghost'"):
            await touch_run(s, run_id="ghost")
    assert run is not None and run.last_heartbeat_at == beat


async def test_a_failed_session_block_rolls_back(store: Store) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with store.session() as s:
            await create_run(
                s,
                run_id="doomed",
                name="doomed",
                config={},
                engine_identity="e",
                dataset_identity="d",
                models=[PLAIN],
            )
            raise RuntimeError("boom")
    async with store.session() as s:
        assert await get_run(s, run_id="doomed") is None


# --- case rows --------------------------------------------------------------------------


async def test_case_row_is_written_once_and_another_rep_is_a_new_row(store: Store) -> None:
    await _new_run(store)
    async with store.session() as s:
        assert await upsert_case_result(s, result=_result("c1", score=1.0)) is True
        assert await upsert_case_result(s, result=_result("c1", score=0.0, error="x")) is False
        assert await upsert_case_result(s, result=_result("c1", rep=1, score=0.0)) is True
    async with store.session() as s:
        rows = await case_results(s, run_id="run-1")
    assert [(r.case_id, r.rep, r.outcome.score, r.outcome.error) for r in rows] == [
        ("c1", 0, 1.0, None),
        ("c1", 1, 0.0, None),
    ]
    assert rows[0] == _result("c1", score=1.0)


async def test_bulk_upsert_counts_only_new_rows_across_batches(store: Store) -> None:
    await _new_run(store)
    first = [_result(f"c{i:03d}") for i in range(450)]
    async with store.session() as s:
        assert await upsert_case_results(s, results=first) == 450
        again = [*first[:5], _result("c999"), _result("c999")]
        assert await upsert_case_results(s, results=again) == 1
        assert await upsert_case_results(s, results=[]) == 0
        assert await count_case_results(s, run_id="run-1") == 451


async def test_variant_none_and_a_named_variant_are_distinct_and_round_trip(store: Store) -> None:
    await _new_run(store)
    async with store.session() as s:
        assert await upsert_case_result(s, result=_result("c1", model=PLAIN))
        assert await upsert_case_result(s, result=_result("c1", model=FAST))
        rows = await case_results(s, run_id="run-1")
    assert [r.model for r in rows] == [PLAIN, FAST]
    assert rows[0].variant is None and rows[1].variant == "fast"


async def test_existing_case_ids_filters_by_model_variant_rep_and_ids(store: Store) -> None:
    await _new_run(store)
    async with store.session() as s:
        await upsert_case_results(
            s,
            results=[
                _result("a"),
                _result("b"),
                _result("c", rep=1),
                _result("d", model=FAST),
            ],
        )
        plain_rep0 = await existing_case_ids(s, run_id="run-1", model=PLAIN, rep=0)
        chunk = await existing_case_ids(
            s, run_id="run-1", model=PLAIN, rep=0, case_ids=["b", "c", "zz"]
        )
        nothing = await existing_case_ids(s, run_id="run-1", model=PLAIN, rep=0, case_ids=[])
        fast = await existing_case_ids(s, run_id="run-1", model=FAST, rep=0)
        other_run = await existing_case_ids(s, run_id="run-2", model=PLAIN, rep=0)
    assert plain_rep0 == {"a", "b"}
    assert chunk == {"b"}
    assert nothing == set()
    assert fast == {"d"}
    assert other_run == set()


async def test_count_case_errors_counts_rows_with_an_error(store: Store) -> None:
    await _new_run(store)
    async with store.session() as s:
        await upsert_case_results(
            s,
            results=[
                _result("a"),
                _result("b", score=0.0, error="wrong answer"),
                _result("c", score=0.0, error="timeout"),
            ],
        )
        assert await count_case_errors(s, run_id="run-1") == 2
        assert await count_case_results(s, run_id="run-1") == 3
        assert await count_case_errors(s, run_id="other") == 0


async def test_case_rows_of_an_unknown_run_are_refused(store: Store) -> None:
    with pytest.raises(StoreError, match=r"run 'ghost'.*create the run"):
        async with store.session() as s:
            await upsert_case_result(s, result=_result("c1", run_id="ghost"))


# --- lanes ------------------------------------------------------------------------------


async def test_lane_failure_is_recorded_once_first_record_wins(store: Store) -> None:
    await _new_run(store)
    lane = "run-1:m-plain::0:1"
    async with store.session() as s:
        assert await record_lane_failure(
            s, run_id="run-1", lane_identity=lane, reason="capacity", attempts=3
        )
        assert not await record_lane_failure(
            s, run_id="run-1", lane_identity=lane, reason="later", attempts=5
        )
        assert await record_lane_failure(
            s, run_id="run-1", lane_identity="run-1:m-plain::0:2", reason="lost", attempts=1
        )
        failures = await lane_failures(s, run_id="run-1")
    assert [(f.lane_identity, f.reason, f.attempts) for f in failures] == [
        (lane, "capacity", 3),
        ("run-1:m-plain::0:2", "lost", 1),
    ]


# --- summaries --------------------------------------------------------------------------


async def test_replace_summaries_replaces_the_whole_set(store: Store) -> None:
    await _new_run(store)
    first = [_summary(PLAIN, ROUTES[1]), _summary(PLAIN, ROUTES[0]), _summary(FAST, ROUTES[0])]
    second = [_summary(OTHER, ROUTES[2], acc=0.5)]
    async with store.session() as s:
        await replace_summaries(s, run_id="run-1", summaries=first)
        stored_first = await get_summaries(s, run_id="run-1")
        await replace_summaries(s, run_id="run-1", summaries=second)
        stored_second = await get_summaries(s, run_id="run-1")
    assert stored_first == [first[1], first[0], first[2]]
    assert stored_first[0].variant is None
    assert stored_second == second


async def test_replace_summaries_rejects_foreign_duplicate_or_unknown_run(store: Store) -> None:
    await _new_run(store)
    async with store.session() as s:
        with pytest.raises(StoreError, match="summary of run 'run-9'"):
            await replace_summaries(
                s, run_id="run-1", summaries=[_summary(PLAIN, ROUTE, run_id="run-9")]
            )
        with pytest.raises(StoreError, match="two summaries for model 'm-plain'"):
            await replace_summaries(
                s, run_id="run-1", summaries=[_summary(PLAIN, ROUTE), _summary(PLAIN, ROUTE)]
            )
        with pytest.raises(StoreError, match="no run with id 'ghost'"):
            await replace_summaries(s, run_id="ghost", summaries=[])


# --- routing tables ---------------------------------------------------------------------


async def test_save_table_is_idempotent_by_version_and_round_trips(store: Store) -> None:
    table = _table("rt-1")
    async with store.session() as s:
        assert await save_table(s, table=table) is True
        assert await save_table(s, table=_table("rt-1", generated_at="2030-01-01")) is False
    async with store.session() as s:
        loaded = await get_table(s, version="rt-1")
        ranks = (
            await s.execute(
                select(RoutingCandidateRow.rank, RoutingCandidateRow.variant)
                .where(RoutingCandidateRow.route == ROUTE)
                .order_by(RoutingCandidateRow.rank)
            )
        ).all()
        count = await s.scalar(select(func.count()).select_from(RoutingCandidateRow))
        assert await get_table(s, version="rt-missing") is None
    assert loaded == table
    assert loaded is not None and loaded.routes[ROUTE][1].variant is None
    assert [tuple(row) for row in ranks] == [(1, "fast"), (2, "")]
    assert count == 2 * len(ROUTES)


async def test_activate_switches_and_rolls_back_to_an_older_version(store: Store) -> None:
    async with store.session() as s:
        assert await active_table(s) is None
        assert await active_version(s) is None
        await save_table(s, table=_table("rt-old"))
        assert await activate_table(s, version="rt-old") is None
    async with store.session() as s:
        await save_table(s, table=_table("rt-new", generated_at="2025-02-01T00:00:00+00:00"))
        assert await activate_table(s, version="rt-new") == "rt-old"
        active_new = await active_table(s)
        listed_new = await list_tables(s)
    async with store.session() as s:
        assert await activate_table(s, version="rt-old") == "rt-new"
        rolled_back = await active_table(s)
        listed_old = await list_tables(s)
    assert active_new == _table("rt-new", generated_at="2025-02-01T00:00:00+00:00")
    assert rolled_back == _table("rt-old")
    assert [(t.version, t.active) for t in listed_new] == [("rt-new", True), ("rt-old", False)]
    assert [(t.version, t.active) for t in listed_old] == [("rt-new", False), ("rt-old", True)]
    assert listed_old[0].run_id == "run-1"
    assert listed_old[0].generated_at == "2025-02-01T00:00:00+00:00"


def _built(run_id: str, dataset: str, p50: float) -> RoutingTable:
    summaries = [
        replace(_summary(model, route, run_id=run_id, acc=acc), p50_latency_ms=p50)
        for route in ROUTES
        for model, acc in ((PLAIN, 0.9), (FAST, 0.75), (OTHER, 0.4))
    ]
    return build_table(
        summaries=summaries,
        run_id=run_id,
        models=[PLAIN, FAST, OTHER],
        dataset_identity=dataset,
        min_accuracy=0.7,
        switch_cost_factor=3.0,
        best_accuracy_gap=0.1,
        generated_at=f"2025-03-01T00:00:00+00:00 {run_id}",
    )


async def test_a_second_run_with_equal_content_keeps_the_first_publishers_table(
    store: Store,
) -> None:
    first, second = _built("run-a", "ds@1", 100.0), _built("run-b", "ds@2", 900.0)
    assert first.version == second.version and first != second
    async with store.session() as s:
        assert await save_table(s, table=first) is True
        await activate_table(s, version=first.version)
    async with store.session() as s:
        assert await save_table(s, table=second) is False
        assert await activate_table(s, version=second.version) == first.version
        loaded = await active_table(s)
        listed = await list_tables(s)
    assert loaded == first
    assert loaded is not None and loaded.best_accuracy_gap == 0.1
    assert (loaded.run_id, loaded.dataset_identity) == ("run-a", "ds@1")
    assert loaded.models == (PLAIN, FAST, OTHER)
    assert [(t.version, t.run_id) for t in listed] == [(first.version, "run-a")]


def _schema_0_body(version: str) -> dict[str, Any]:
    """A body as stored before the format had schema_version, best_accuracy_gap, provenance."""
    candidate = {
        "model_id": "m-plain",
        "variant": None,
        "accuracy": 0.9,
        "avg_cost_usd": 0.008,
        "cases": 10,
        "meets_threshold": True,
        "p50_latency_ms": 150.0,
        "context_length": None,
        "cost_per_accuracy": 0.008 / 0.9,
    }
    return {
        "version": version,
        "generated_at": "2024-12-01T00:00:00+00:00",
        "min_accuracy": 0.7,
        "switch_cost_factor": 3.0,
        "run_id": "run-old",
        "dataset_identity": "builtin:decider@old",
        "routes": {route: [candidate] for route in ROUTES},
    }


async def _store_raw_table(store: Store, version: str, body: dict[str, Any]) -> None:
    row = {
        "version": version,
        "generated_at": "2024-12-01T00:00:00+00:00",
        "min_accuracy": 0.7,
        "switch_cost_factor": 3.0,
        "run_id": "run-old",
        "dataset_identity": "builtin:decider@old",
        "created_at": T0,
        "body": body,
    }
    async with store.session() as s:
        await s.execute(insert(RoutingTableRow), [row])
        await activate_table(s, version=version)


async def test_a_row_stored_before_schema_version_still_loads(store: Store) -> None:
    await _store_raw_table(store, "rt-0000000000000000", _schema_0_body("rt-0000000000000000"))
    async with store.session() as s:
        active = await active_table(s)
        by_version = await get_table(s, version="rt-0000000000000000")
    assert active is not None and active == by_version
    assert active.version == "rt-0000000000000000" and active.best_accuracy_gap == 0.05
    assert (active.run_id, active.dataset_identity, active.models) == (
        "run-old",
        "builtin:decider@old",
        (),
    )
    assert active.is_publishable and active.routes[ROUTE][0].key == PLAIN
    assert active.as_dict()["schema_version"] == 1


async def test_a_stored_body_no_reader_can_use_names_the_version_and_field(store: Store) -> None:
    body = _schema_0_body("rt-broken")
    del body["routes"][ROUTE][0]["accuracy"]
    await _store_raw_table(store, "rt-broken", body)
    for load in (active_table, lambda s: get_table(s, version="rt-broken")):
        with pytest.raises(StoreError) as caught:
            async with store.session() as s:
                await load(s)
        message = str(caught.value)
        assert "stored routing table 'rt-broken' cannot be read" in message
        assert f"routes[{ROUTE!r}][0].accuracy: required field is missing" in message
        assert "autoray table activate" in message


async def test_activating_an_unknown_version_says_how_to_list_them(store: Store) -> None:
    async with store.session() as s:
        await save_table(s, table=_table("rt-1"))
        await activate_table(s, version="rt-1")
    with pytest.raises(StoreError) as caught:
        async with store.session() as s:
            await activate_table(s, version="rt-nope")
    assert str(caught.value) == (
        "no routing table with version 'rt-nope'; `autoray table list` shows the versions"
    )
    async with store.session() as s:
        assert await active_version(s) == "rt-1"
