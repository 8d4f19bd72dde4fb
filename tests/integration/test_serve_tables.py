"""The table watcher on a real SQLite database: load at start, reload on a push or the periodic
check, keep the last table when the database fails, and the run's model entries."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path
from typing import Any

import pytest

from autoray.results import ModelKey
from serve.tables import LoadedTable, TableWatcher, merge_entries
from tests.integration.serve_support import (
    CHEAP,
    MID,
    PRICEY,
    activate,
    seed,
    sim_entry,
    table_of,
)

ROUTE = "debugging/bug_fixing"
TABLE_A = table_of()
TABLE_B = table_of({ROUTE: (PRICEY, CHEAP)})


class Loads:
    def __init__(self) -> None:
        self.seen: list[LoadedTable] = []
        self.fail_next = False

    async def __call__(self, loaded: LoadedTable) -> None:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("upstreams could not be built")
        self.seen.append(loaded)


class Events:
    """Stands in for the events actor's long-poll: a generation a test can bump."""

    def __init__(self) -> None:
        self.generation = 0
        self._changed = asyncio.Event()

    def bump(self) -> None:
        self.generation += 1
        self._changed.set()

    async def wait(self, after: int, timeout_s: float) -> int:
        if self.generation <= after:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout_s)
        return self.generation


def _url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def _until(check: Any, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "db" / "autoray.db"
    seed(_url(path), [TABLE_A, TABLE_B], activate=TABLE_A)
    return path


async def test_start_loads_the_active_table_with_its_run_entries(db: Path) -> None:
    loads = Loads()
    watcher = TableWatcher(_url(db), interval_s=3600, on_load=loads)
    await watcher.start()
    try:
        assert watcher.table is not None and watcher.table.version == TABLE_A.version
        entries = {entry.key for entry in loads.seen[0].entries}
        assert entries == {CHEAP.key, MID.key, PRICEY.key}
        health = watcher.health()
        assert health["table_version"] == TABLE_A.version and health["last_check_error"] is None
    finally:
        await watcher.close()


async def test_a_push_reloads_at_once_without_waiting_for_the_interval(db: Path) -> None:
    events = Events()
    watcher = TableWatcher(_url(db), interval_s=3600, on_load=Loads(), wait_for_event=events.wait)
    await watcher.start()
    try:
        await asyncio.sleep(0.1)  # the listener has read the current generation
        await asyncio.to_thread(activate, _url(db), TABLE_B)
        events.bump()
        await _until(lambda: watcher.table is not None and watcher.table.version == TABLE_B.version)
    finally:
        await watcher.close()


async def test_the_periodic_check_reloads_without_a_push(db: Path) -> None:
    watcher = TableWatcher(_url(db), interval_s=0.1, on_load=Loads())
    await watcher.start()
    try:
        await asyncio.to_thread(activate, _url(db), TABLE_B)
        await _until(lambda: watcher.table is not None and watcher.table.version == TABLE_B.version)
    finally:
        await watcher.close()


async def test_an_unchanged_version_does_not_reload(db: Path) -> None:
    loads = Loads()
    watcher = TableWatcher(_url(db), interval_s=3600, on_load=loads)
    await watcher.start()
    try:
        assert await watcher.check() is False
        assert len(loads.seen) == 1
    finally:
        await watcher.close()


async def test_a_vanished_database_keeps_the_last_table_and_reports_the_error(
    db: Path,
) -> None:
    outcomes: list[str] = []
    watcher = TableWatcher(_url(db), interval_s=3600, on_load=Loads(), on_outcome=outcomes.append)
    await watcher.start()
    try:
        shutil.rmtree(db.parent)
        (db.parent).write_text("not a directory any more")  # the path cannot be a database
        assert await watcher.check() is False
        assert watcher.table is not None and watcher.table.version == TABLE_A.version
        error = watcher.health()["last_check_error"]
        assert error and "OperationalError" in error
        assert outcomes == ["loaded", "error"]
    finally:
        await watcher.close()


async def test_the_database_coming_back_is_picked_up(db: Path, tmp_path: Path) -> None:
    saved = tmp_path / "saved.db"
    watcher = TableWatcher(_url(db), interval_s=3600, on_load=Loads())
    await watcher.start()
    try:
        shutil.copy(db, saved)
        shutil.rmtree(db.parent)
        assert await watcher.check() is False  # its directory is gone: cannot open
        assert watcher.table is not None and watcher.last_check_error
        db.parent.mkdir()
        shutil.copy(saved, db)
        await asyncio.to_thread(activate, _url(db), TABLE_B)
        assert await watcher.check() is True
        assert watcher.table.version == TABLE_B.version and watcher.last_check_error is None
    finally:
        await watcher.close()


async def test_a_failing_on_load_does_not_adopt_the_table(db: Path) -> None:
    loads = Loads()
    watcher = TableWatcher(_url(db), interval_s=3600, on_load=loads)
    await watcher.start()
    try:
        await asyncio.to_thread(activate, _url(db), TABLE_B)
        loads.fail_next = True
        assert await watcher.check() is False
        assert watcher.table is not None and watcher.table.version == TABLE_A.version
        assert "upstreams could not be built" in (watcher.last_check_error or "")
        assert await watcher.check() is True
        assert watcher.table.version == TABLE_B.version
    finally:
        await watcher.close()


def test_app_entries_override_the_runs_entries() -> None:
    from autoray.config import ModelEntry

    run = [ModelEntry.model_validate(sim_entry(CHEAP.key, price=1.0))]
    override = ModelEntry.model_validate(sim_entry(CHEAP.key, price=9.0))
    extra = ModelEntry.model_validate(sim_entry(ModelKey("sim/extra", None)))
    merged = merge_entries(run, [override, extra])
    assert [entry.price.input_per_mtok for entry in merged] == [9.0, 1.0]
