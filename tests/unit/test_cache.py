"""The bounded TTL cache behind session stickiness and the classification cache."""

from __future__ import annotations

import pytest

from autoray.cache import TTLCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_get_returns_what_was_put_and_counts_hits_and_misses() -> None:
    cache: TTLCache[str, int] = TTLCache(4, 10, clock=Clock())
    cache.put("a", 1)
    assert cache.get("a") == 1
    assert cache.get("b") is None
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.size) == (1, 1, 1)


def test_least_recently_used_entry_is_evicted_first() -> None:
    cache: TTLCache[str, int] = TTLCache(2, 10, clock=Clock())
    cache.put("a", 1)
    cache.put("b", 2)
    cache.get("a")  # a is now the most recently used
    cache.put("c", 3)
    assert "b" not in cache
    assert cache.get("a") == 1 and cache.get("c") == 3
    assert len(cache) == 2 and cache.stats().evictions == 1


def test_entry_expires_ttl_after_its_last_use() -> None:
    clock = Clock()
    cache: TTLCache[str, int] = TTLCache(4, 10, clock=clock)
    cache.put("a", 1)
    clock.now += 9
    assert cache.get("a") == 1  # a read restarts the TTL
    clock.now += 9
    assert cache.get("a") == 1
    clock.now += 10
    assert cache.get("a") is None
    assert cache.stats().expirations == 1 and len(cache) == 0


def test_get_without_touch_keeps_the_original_expiry() -> None:
    clock = Clock()
    cache: TTLCache[str, int] = TTLCache(4, 10, clock=clock)
    cache.put("a", 1)
    clock.now += 9
    assert cache.get("a", touch=False) == 1
    clock.now += 1
    assert cache.get("a") is None


def test_put_overwrites_and_restarts_the_ttl() -> None:
    clock = Clock()
    cache: TTLCache[str, int] = TTLCache(4, 10, clock=clock)
    cache.put("a", 1)
    clock.now += 8
    cache.put("a", 2)
    clock.now += 8
    assert cache.get("a") == 2 and len(cache) == 1


def test_pop_removes_and_reports_only_live_values() -> None:
    clock = Clock()
    cache: TTLCache[str, int] = TTLCache(4, 10, clock=clock)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.pop("a") == 1 and cache.pop("a") is None
    clock.now += 10
    assert cache.pop("b") is None  # expired: gone, but not reported as removed
    assert len(cache) == 0


def test_purge_drops_every_expired_entry() -> None:
    clock = Clock()
    cache: TTLCache[int, int] = TTLCache(10, 5, clock=clock)
    for i in range(3):
        cache.put(i, i)
    clock.now += 3
    cache.put(3, 3)
    clock.now += 2
    assert cache.purge() == 3
    assert len(cache) == 1 and 3 in cache


def test_resize_shrinks_to_the_most_recent_entries() -> None:
    cache: TTLCache[int, int] = TTLCache(5, 10, clock=Clock())
    for i in range(5):
        cache.put(i, i)
    cache.resize(2, 10)
    assert len(cache) == 2 and 3 in cache and 4 in cache


@pytest.mark.parametrize(("size", "ttl"), [(0, 1), (-1, 1), (True, 1), (1, 0), (1, -5)])
def test_limits_are_checked_and_named(size: int, ttl: float) -> None:
    with pytest.raises(ValueError, match="max_size|ttl_s"):
        TTLCache(size, ttl)
