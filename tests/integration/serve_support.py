"""Helpers for the Serve tests: routing tables built directly, a seeded SQLite database, and a
Serve application on a free loopback port (one per test module)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import httpx

from autoray.config import ModelEntry
from autoray.ranking import Candidate
from autoray.results import ModelKey
from autoray.store import open_store, repo, upgrade_async
from autoray.table import RoutingTable, content_version
from autoray.taxonomy import ROUTES

RUN_ID = "run-serve-test"
MIN_ACCURACY = 0.7


def candidate(
    model_id: str, accuracy: float, cost: float, *, variant: str | None = None
) -> Candidate:
    return Candidate(
        model_id=model_id,
        variant=variant,
        accuracy=accuracy,
        avg_cost_usd=cost,
        cases=10,
        meets_threshold=accuracy >= MIN_ACCURACY,
    )


CHEAP = candidate("sim/cheap", 0.85, 0.002)
MID = candidate("sim/mid", 0.8, 0.005, variant="medium")
PRICEY = candidate("sim/pricey", 0.9, 0.02)
REFERENCE = (CHEAP, MID, PRICEY)


def table_of(
    routes: Mapping[str, Sequence[Candidate]] | None = None,
    *,
    default: Sequence[Candidate] = REFERENCE,
    run_id: str = RUN_ID,
    generated_at: str = "2026-01-01T00:00:00+00:00",
) -> RoutingTable:
    """A publishable table: every route gets ``default`` unless ``routes`` says otherwise."""
    ranked = {route: tuple((routes or {}).get(route, default)) for route in ROUTES}
    version = content_version(
        routes=ranked, min_accuracy=MIN_ACCURACY, switch_cost_factor=3.0, best_accuracy_gap=0.05
    )
    keys = list(dict.fromkeys(c.key for cands in ranked.values() for c in cands))
    return RoutingTable(
        version=version,
        generated_at=generated_at,
        min_accuracy=MIN_ACCURACY,
        switch_cost_factor=3.0,
        routes=ranked,
        run_id=run_id,
        dataset_identity="test-dataset",
        models=tuple(keys),
    )


def sim_entry(key: ModelKey, *, price: float = 1.0, skill: float = 1.0) -> dict[str, Any]:
    return {
        "id": key.model_id,
        "variant": key.variant,
        "provider": "simulated",
        "price": {"input_per_mtok": price, "output_per_mtok": 4 * price},
        "skill": {"default": skill},
    }


def run_config(models: Sequence[ModelKey]) -> dict[str, Any]:
    entries = [sim_entry(key) for key in models]
    for entry in entries:
        ModelEntry.model_validate(entry)
    return {"name": "serve-test", "dataset": "builtin:decider", "models": entries}


def run_db(url: str, work: Any) -> Any:
    """Run ``await work(session)`` in one transaction on a migrated database."""

    async def _go() -> Any:
        await upgrade_async(url)
        store = open_store(url)
        try:
            async with store.session() as session:
                return await work(session)
        finally:
            await store.close()

    return asyncio.run(_go())


def seed(url: str, tables: Sequence[RoutingTable], *, activate: RoutingTable | None) -> None:
    """A run (whose config names every table's models) and ``tables``; ``activate`` made active."""
    keys = list(dict.fromkeys(key for table in tables for key in table.models))

    async def _work(session: Any) -> None:
        if await repo.get_run(session, run_id=RUN_ID) is None:
            await repo.create_run(
                session,
                run_id=RUN_ID,
                name="serve-test",
                config=run_config(keys),
                engine_identity="test-engine",
                dataset_identity="test-dataset",
                models=keys,
            )
        for table in tables:
            await repo.save_table(session, table=table)
        if activate is not None:
            await repo.activate_table(session, version=activate.version)

    run_db(url, _work)


def activate(url: str, table: RoutingTable) -> None:
    run_db(url, lambda s: repo.activate_table(s, version=table.version))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Any, *, timeout: float, every: float = 0.1) -> float:
    """Poll ``check()`` until it is truthy; returns the seconds it took."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"not true within {timeout} s"
        time.sleep(every)


@dataclass
class RunningApp:
    name: str
    url: str
    client: httpx.Client


@contextmanager
def serve_app(application: Any, name: str, *, port: int | None = None) -> Iterator[RunningApp]:
    """Start Serve on a free loopback port, run ``application`` under ``name``, yield its URL;
    shut Serve down and remove the app's shared actors afterwards."""
    import ray
    from ray import serve

    from serve.sessions import SERVE_NAMESPACE, store_name

    port = port or free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        serve.run(application, name=name, route_prefix="/", blocking=False)
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=30) as client:
            wait_until(lambda: _healthy(client), timeout=120, every=0.25)
            yield RunningApp(name, url, client)
    finally:
        serve.shutdown()
        with suppress(ValueError):
            ray.kill(ray.get_actor(store_name(name), namespace=SERVE_NAMESPACE))


def _healthy(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False
