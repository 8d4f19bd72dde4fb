"""Table events: a named actor that tells Serve replicas "a routing table was just activated".

Replicas long-poll :meth:`TableEvents.wait`; the coordinator (after publishing) and
``autoray table activate`` (with a cluster address) call :func:`notify_table_activated`. The
event carries no table and names no database: a woken replica only re-reads the active version
from its own database, so a notice meant for another database costs one cheap query and
nothing else. The periodic version check in each replica stays the backstop (a CLI without a
cluster address, a notice lost while a replica restarts), so this actor only makes a publish or
rollback reach replicas in milliseconds rather than within the check interval.

The actor is detached and named ``autoray_table_events`` in the ``autoray`` namespace; replicas
create it when they start (``get_if_exists``). Notifiers never create it: with no replica
running there is nobody to tell, and no stray actor is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import ray

logger = logging.getLogger("autoray.table_events")

EVENTS_NAME = "autoray_table_events"
EVENTS_NAMESPACE = "autoray"


class TableEvents:
    """An async actor: a generation counter that waiters watch; each activation bumps it."""

    def __init__(self) -> None:
        self._generation = 0
        self._version: str | None = None
        self._changed = asyncio.Condition()

    async def notify(self, version: str | None) -> int:
        async with self._changed:
            self._generation += 1
            self._version = version
            self._changed.notify_all()
            return self._generation

    async def wait(self, after: int, timeout_s: float) -> int:
        """The generation once it passes ``after``, or the current one after ``timeout_s``."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self._generation > after), timeout_s
                )
            return self._generation

    async def current(self) -> dict[str, Any]:
        return {"generation": self._generation, "version": self._version}


def events_actor(*, create: bool) -> Any | None:
    """The events actor's handle; created (detached, 0 CPU) when ``create``, else None if absent."""
    if create:
        return (
            ray.remote(TableEvents)
            .options(
                name=EVENTS_NAME,
                namespace=EVENTS_NAMESPACE,
                lifetime="detached",
                get_if_exists=True,
                num_cpus=0,
                max_restarts=-1,
            )
            .remote()
        )
    try:
        return ray.get_actor(EVENTS_NAME, namespace=EVENTS_NAMESPACE)
    except ValueError:
        return None


def notify_table_activated(version: str | None, *, wait_s: float | None = None) -> bool:
    """Tell running replicas to re-read the active table now; False when none listens.

    With ``wait_s`` None the notice is fire and forget (the coordinator never waits on Serve);
    a process about to exit (the CLI) passes a few seconds so the notice is delivered first.
    Any failure only delays the reload to the replicas' next periodic check, so it is logged,
    never raised.
    """
    try:
        handle = events_actor(create=False)
        if handle is None:
            return False
        ref = handle.notify.remote(version)
        if wait_s is not None:
            ray.get(ref, timeout=wait_s)
        return True
    except Exception as err:  # the periodic version check covers any failure here
        logger.warning("could not notify Serve replicas of table %s: %s", version, err)
        return False
