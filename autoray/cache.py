"""A bounded map whose entries expire: least recently used out first, and none older than a TTL.

Serve keeps two such maps: the sessions' sticky models (shared by every replica, 30 min TTL)
and each replica's classification cache. Both see keys chosen by clients (session ids, request
texts), so both must stay bounded whatever clients send: a size cap evicts the least recently
used entry, and a TTL drops entries nobody has touched for a while, so a session that went
quiet gives up its model and a stale classification is not served forever.

Pure and single-threaded: the session actor and each replica call it from one event loop. Time
comes from an injectable clock (monotonic seconds), so tests step it instead of sleeping.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class CacheStats:
    size: int
    max_size: int
    ttl_s: float
    hits: int
    misses: int
    evictions: int
    expirations: int


class TTLCache(Generic[K, V]):
    """At most ``max_size`` entries, each dropped ``ttl_s`` seconds after its last write or read.

    ``get`` counts as use: it moves the entry to the most recently used end and, when
    ``touch`` is true (the default), restarts its TTL, so an active session keeps its model.
    Values must not be None (None is what a miss returns).
    """

    def __init__(
        self,
        max_size: int,
        ttl_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _check_limits(max_size, ttl_s)
        self._max_size = max_size
        self._ttl_s = ttl_s
        self._clock = clock
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._hits = self._misses = self._evictions = self._expirations = 0

    def get(self, key: K, *, touch: bool = True) -> V | None:
        """The live value for ``key`` (None if absent or expired)."""
        found = self._live(key)
        if found is None:
            self._misses += 1
            return None
        self._hits += 1
        self._items.move_to_end(key)
        if touch:
            self._items[key] = (self._clock(), found)
        return found

    def put(self, key: K, value: V) -> None:
        """Store ``value`` as the most recently used entry, evicting the oldest if full."""
        self._items.pop(key, None)
        self._items[key] = (self._clock(), value)
        while len(self._items) > self._max_size:
            self._items.popitem(last=False)
            self._evictions += 1

    def pop(self, key: K) -> V | None:
        """Remove ``key``; its live value, or None when there was none."""
        found = self._live(key)
        self._items.pop(key, None)
        return found

    def resize(self, max_size: int, ttl_s: float) -> None:
        """Change the limits in place (entries beyond the new size go, oldest first)."""
        _check_limits(max_size, ttl_s)
        self._max_size, self._ttl_s = max_size, ttl_s
        while len(self._items) > max_size:
            self._items.popitem(last=False)
            self._evictions += 1

    def purge(self) -> int:
        """Drop every expired entry now; returns how many went."""
        now = self._clock()
        expired = [key for key, (at, _) in self._items.items() if now - at >= self._ttl_s]
        for key in expired:
            del self._items[key]
        self._expirations += len(expired)
        return len(expired)

    def stats(self) -> CacheStats:
        return CacheStats(
            size=len(self._items),
            max_size=self._max_size,
            ttl_s=self._ttl_s,
            hits=self._hits,
            misses=self._misses,
            evictions=self._evictions,
            expirations=self._expirations,
        )

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return self._live(key) is not None  # type: ignore[arg-type]

    def _live(self, key: K) -> V | None:
        entry = self._items.get(key)
        if entry is None:
            return None
        at, value = entry
        if self._clock() - at >= self._ttl_s:
            del self._items[key]
            self._expirations += 1
            return None
        return value


def _check_limits(max_size: int, ttl_s: float) -> None:
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
        raise ValueError(f"max_size must be a whole number >= 1, got {max_size!r}")
    if not ttl_s > 0:
        raise ValueError(f"ttl_s must be a number of seconds > 0, got {ttl_s!r}")
