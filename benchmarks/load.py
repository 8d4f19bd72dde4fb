"""A closed-loop HTTP load generator: N connections, each sending its next request as soon as
the previous one is answered, so the figures are latency under a fixed concurrency.

Every benchmark that compares servers drives them with this one client, from one process, so
that client overhead is the same on every side of a comparison.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class LoadResult:
    latencies_s: list[float]
    wall_s: float
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def requests(self) -> int:
        return len(self.latencies_s)

    @property
    def rps(self) -> float:
        return self.requests / self.wall_s if self.wall_s else 0.0

    def percentile_ms(self, q: float) -> float:
        """The ``q`` quantile (0..1) of the latencies, in milliseconds (nearest rank)."""
        ordered = sorted(self.latencies_s)
        rank = max(1, min(len(ordered), round(q * len(ordered) + 0.5)))
        return ordered[rank - 1] * 1000

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.latencies_s) * 1000


def run_load(
    url: str,
    body: Callable[[int], dict[str, Any]] | None,
    *,
    connections: int,
    requests: int,
    warmup: int = 20,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """POST ``body(i)`` (or GET when ``body`` is None) ``requests`` times over ``connections``."""
    return asyncio.run(_load(url, body, connections, requests, warmup, headers or {}))


async def _load(
    url: str,
    body: Callable[[int], dict[str, Any]] | None,
    connections: int,
    requests: int,
    warmup: int,
    headers: dict[str, str],
) -> LoadResult:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30, headers=headers) as client:
        await _workers(client, url, body, connections, range(warmup), None)
        result = LoadResult(latencies_s=[], wall_s=0.0)
        started = time.perf_counter()
        await _workers(client, url, body, connections, range(warmup, warmup + requests), result)
        result.wall_s = time.perf_counter() - started
        return result


async def _workers(
    client: httpx.AsyncClient,
    url: str,
    body: Callable[[int], dict[str, Any]] | None,
    connections: int,
    indices: range,
    result: LoadResult | None,
) -> None:
    """Send one request per index of ``indices``; each worker takes the next free index."""
    pending = iter(indices)

    async def worker() -> None:
        for i in pending:
            sent = time.perf_counter()
            if body is None:
                response = await client.get(url)
            else:
                response = await client.post(url, json=body(i))
            elapsed = time.perf_counter() - sent
            if result is not None:
                result.latencies_s.append(elapsed)
                result.statuses[response.status_code] += 1

    await asyncio.gather(*(worker() for _ in range(connections)))
