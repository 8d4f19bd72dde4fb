"""The table watcher: each replica's copy of the active routing table, kept current.

A replica loads the active table when it starts, then re-reads the active version (one cheap
query) in two ways: when the table-events actor says a table was just activated (a publish by
the coordinator, or ``autoray table activate``), and every ``interval_s`` as the backstop. Only
a new version loads the table itself, with the model entries of the run that produced it (the
upstream endpoints for ``autoray/auto``).

A check that fails (database down, file gone, a body that does not parse) is logged, counted
and shown by ``/healthz``; the replica keeps serving the table it has. Decisions then stay
available through a database outage, at the price of missing a publish until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from autoray.config import ModelEntry
from autoray.store import Store, open_store, repo
from autoray.store.engine import scrub
from autoray.table import RoutingTable

logger = logging.getLogger("autoray.serve.tables")

LONG_POLL_S = 30.0
"""How long one wait on the events actor lasts before it is renewed."""

_RETRY_LISTEN_S = 5.0
_ERROR_MAX_CHARS = 300


@dataclass(frozen=True, slots=True)
class LoadedTable:
    """An active table with the model entries of the run(s) that produced it."""

    table: RoutingTable
    entries: tuple[ModelEntry, ...]
    loaded_at: datetime

    @property
    def version(self) -> str:
        return self.table.version


OnLoad = Callable[[LoadedTable], Awaitable[None]]
WaitForEvent = Callable[[int, float], Awaitable[int]]


class TableWatcher:
    """Holds the replica's current table; ``on_load`` runs before a new one is adopted.

    ``on_load`` lets the replica build what depends on the table (its upstream resolver)
    before the table becomes visible, so a request never sees a table without its endpoints.
    If it raises, the new table is not adopted and the next check tries again.
    """

    def __init__(
        self,
        database_url: str,
        *,
        interval_s: float,
        on_load: OnLoad,
        wait_for_event: WaitForEvent | None = None,
        on_outcome: Callable[[str], None] | None = None,
    ) -> None:
        self._url = database_url
        self._interval_s = interval_s
        self._on_load = on_load
        self._wait_for_event = wait_for_event
        self._on_outcome = on_outcome or (lambda _outcome: None)
        self._store: Store | None = None
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self.current: LoadedTable | None = None
        self.last_check_at: datetime | None = None
        self.last_check_error: str | None = None

    @property
    def table(self) -> RoutingTable | None:
        return None if self.current is None else self.current.table

    async def start(self) -> None:
        """Load the active table now, then keep checking in the background."""
        await self.check()
        self._tasks.append(asyncio.create_task(self._poll_forever(), name="table-poll"))
        if self._wait_for_event is not None:
            self._tasks.append(asyncio.create_task(self._listen_forever(), name="table-events"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self._close_store()

    async def check(self) -> bool:
        """Re-read the active version; load and adopt the table if it changed."""
        async with self._lock:
            self.last_check_at = datetime.now(UTC)
            try:
                loaded = await self._load_if_changed()
                if loaded is not None:
                    await self._on_load(loaded)
            except Exception as err:  # any failure to read keeps the last table (see module doc)
                await self._record_error(err)
                return False
            self.last_check_error = None
            if loaded is None:
                return False
            self.current = loaded
            self._on_outcome("loaded")
            logger.info("routing table %s loaded (run %s)", loaded.version, loaded.table.run_id)
            return True

    def health(self) -> dict[str, Any]:
        return {
            "table_version": None if self.current is None else self.current.version,
            "table_loaded_at": _iso(None if self.current is None else self.current.loaded_at),
            "last_check_at": _iso(self.last_check_at),
            "last_check_error": self.last_check_error,
        }

    async def _load_if_changed(self) -> LoadedTable | None:
        store = self._open()
        try:
            async with store.session() as session:
                version = await repo.active_version(session)
                if version is None or (self.current and self.current.version == version):
                    return None
                table = await repo.active_table(session)
                if table is None:
                    return None
                entries = await run_entries(session, _run_ids(table))
            return LoadedTable(table, entries, datetime.now(UTC))
        finally:
            if store.engine.url.get_backend_name() == "sqlite":
                # A pooled SQLite connection keeps reading a file that was deleted or replaced
                # (it holds the old inode), so it would never see a database restored or made
                # anew at that path; a fresh connection per check costs about a millisecond.
                await store.engine.dispose()

    async def _record_error(self, err: Exception) -> None:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        message = scrub(f"{type(err).__name__}: {first_line}", self._url)[:_ERROR_MAX_CHARS]
        self.last_check_error = message
        self._on_outcome("error")
        logger.warning(
            "routing table check failed (%s); still serving %s",
            message,
            self.current.version if self.current else "no table",
        )
        await self._close_store()  # reconnect from scratch next time

    def _open(self) -> Store:
        if self._store is None:
            self._store = open_store(self._url)
        return self._store

    async def _close_store(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            with contextlib.suppress(Exception):
                await store.close()

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.check()

    async def _listen_forever(self) -> None:
        """Long-poll the events actor; every new generation triggers a check.

        The first wait (``after=-1``) returns the current generation at once. After a failure
        (the actor restarting, its count back at 0) the generation is read afresh, and a check
        is made in case a notice was missed.
        """
        assert self._wait_for_event is not None
        generation: int | None = None
        while True:
            try:
                latest = await self._wait_for_event(
                    -1 if generation is None else generation, LONG_POLL_S
                )
            except Exception as err:  # the actor restarting: the periodic check covers the gap
                logger.info("table events unavailable (%s); retrying", err)
                generation = None
                await asyncio.sleep(_RETRY_LISTEN_S)
                await self.check()
                continue
            if generation is not None and latest != generation:
                await self.check()
            generation = latest


async def run_entries(session: Any, run_ids: Iterable[str]) -> tuple[ModelEntry, ...]:
    """The model entries in the config snapshots of ``run_ids`` (first run wins on a key).

    An entry that no longer validates (a snapshot from an older autoray) is skipped with a
    warning: its model can still be decided, only not forwarded to.
    """
    entries: dict[Any, ModelEntry] = {}
    for run_id in run_ids:
        record = await repo.get_run(session, run_id=run_id)
        if record is None:
            logger.warning("run %s of the active table is not in the database", run_id)
            continue
        for entry in _valid_entries(run_id, record.config):
            entries.setdefault(entry.key, entry)
    return tuple(entries.values())


def merge_entries(
    run: Iterable[ModelEntry], overrides: Iterable[ModelEntry]
) -> tuple[ModelEntry, ...]:
    """The run's entries with the app's own entries replacing those of the same model."""
    merged = {entry.key: entry for entry in run}
    merged.update({entry.key: entry for entry in overrides})
    return tuple(merged.values())


def _valid_entries(run_id: str, config: Mapping[str, Any]) -> list[ModelEntry]:
    found = []
    for index, raw in enumerate(config.get("models") or []):
        try:
            found.append(ModelEntry.model_validate(raw))
        except ValidationError as err:
            logger.warning("run %s models[%d] skipped: %s", run_id, index, err.errors()[0]["msg"])
    return found


def _run_ids(table: RoutingTable) -> list[str]:
    return [table.run_id] if table.run_id else []


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
