"""Sessions' sticky models, in one named actor every replica of the app shares.

Stickiness must not depend on which replica a request lands on: with two replicas and a store
per replica, a session would bounce between two models. One named actor per application
(``autoray-sessions-<app>`` in Serve's namespace, detached, created by whichever replica starts
first) holds ``session_id -> (model, variant, route, table_version, updated_at)`` in a bounded
LRU map with a TTL (:class:`~autoray.cache.TTLCache`), so memory stays bounded whatever session
ids clients invent. An actor, not the database: a decision is a few microseconds of work and a
database write per request would cost more than the decision itself, and sessions are soft
state, so losing them with the actor only means the next request picks fresh.

A request with a ``session_id`` costs one actor call (``get``, which also refreshes the TTL);
a second call (``put``) happens only when the session's model, route or table changed. A
request without one costs none. A store that does not answer in time is treated as "no
incumbent": a decision without stickiness beats no decision.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

import ray

from autoray.cache import TTLCache
from autoray.results import ModelKey

logger = logging.getLogger("autoray.serve.sessions")

SERVE_NAMESPACE = "serve"
STORE_PREFIX = "autoray-sessions-"
CALL_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class StickyModel:
    """A session's model as last decided (``updated_at``) and last used (``used_at``).

    Times are wall-clock epoch seconds, so every replica reads them alike.
    """

    model_id: str
    variant: str | None
    route: str
    table_version: str
    updated_at: float
    used_at: float

    @property
    def key(self) -> ModelKey:
        return ModelKey(self.model_id, self.variant)

    def same_choice(self, other: StickyModel) -> bool:
        """Equal but for the time: no write needed."""
        return (self.key, self.route, self.table_version) == (
            other.key,
            other.route,
            other.table_version,
        )

    def as_dict(self, session_id: str, ttl_s: float, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        return {
            "session_id": session_id,
            "model": self.model_id,
            "variant": self.variant,
            "route": self.route,
            "table_version": self.table_version,
            "updated_at": datetime.fromtimestamp(self.updated_at, UTC).isoformat(),
            "expires_in_s": round(max(0.0, self.used_at + ttl_s - now), 3),
        }


class SessionStore:
    """The actor's body: a bounded TTL map. Sync methods, so Ray runs one call at a time."""

    def __init__(self, max_sessions: int, ttl_s: float) -> None:
        self._sessions: TTLCache[str, StickyModel] = TTLCache(max_sessions, ttl_s)

    def configure(self, max_sessions: int, ttl_s: float) -> None:
        """A replica of a redeployed app may bring new limits; the latest start wins."""
        self._sessions.resize(max_sessions, ttl_s)

    def get(self, session_id: str) -> StickyModel | None:
        """The session's model, marking it used (its TTL starts again)."""
        found = self._sessions.get(session_id)
        if found is None:
            return None
        used = replace(found, used_at=time.time())
        self._sessions.put(session_id, used)
        return used

    def peek(self, session_id: str) -> StickyModel | None:
        """The session's model without marking it used (for the sessions API)."""
        return self._sessions.get(session_id, touch=False)

    def put(self, session_id: str, sticky: StickyModel) -> None:
        self._sessions.put(session_id, sticky)

    def delete(self, session_id: str) -> bool:
        return self._sessions.pop(session_id) is not None

    def stats(self) -> dict[str, Any]:
        self._sessions.purge()
        return asdict(self._sessions.stats())


def store_name(app_name: str) -> str:
    return STORE_PREFIX + app_name


class SessionClient:
    """What a replica uses: async calls with a timeout; failures mean "no session" and a log."""

    def __init__(self, handle: Any, ttl_s: float) -> None:
        self._handle = handle
        self.ttl_s = ttl_s

    @classmethod
    def connect(cls, app_name: str, *, max_sessions: int, ttl_s: float) -> SessionClient:
        """Attach to the app's store, creating it (detached, 0 CPU) if no replica has yet."""
        handle: Any = (
            ray.remote(SessionStore)
            .options(
                name=store_name(app_name),
                namespace=SERVE_NAMESPACE,
                lifetime="detached",
                get_if_exists=True,
                num_cpus=0,
                max_restarts=-1,
            )
            .remote(max_sessions, ttl_s)
        )
        handle.configure.remote(max_sessions, ttl_s)
        return cls(handle, ttl_s)

    async def get(self, session_id: str) -> StickyModel | None:
        found = await self._call("get", session_id)
        return found if isinstance(found, StickyModel) else None

    async def peek(self, session_id: str) -> StickyModel | None:
        found = await self._call("peek", session_id)
        return found if isinstance(found, StickyModel) else None

    async def put(self, session_id: str, sticky: StickyModel) -> None:
        await self._call("put", session_id, sticky)

    async def delete(self, session_id: str) -> bool:
        return bool(await self._call("delete", session_id))

    async def _call(self, method: str, *args: Any) -> Any:
        try:
            ref = getattr(self._handle, method).remote(*args)
            return await asyncio.wait_for(ref, timeout=CALL_TIMEOUT_S)
        except (TimeoutError, ray.exceptions.RayError) as err:
            logger.warning("session store %s failed (%s); deciding without stickiness", method, err)
            return None
