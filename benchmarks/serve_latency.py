"""What a routing decision costs, in process and over HTTP, side by side in one run.

Rows, all against one routing table in a SQLite file and the labelled set's evaluation texts
(each request made distinct with a counter, so no classification cache ever answers):

* ``in process``: ``classify`` + ``decide`` in a plain loop, pinned to one core;
* ``serve (INGRESS) /v1/decide``: the autoray Serve application (``serve.app.build_app``);
* ``serve (INGRESS) constant``: a FastAPI ingress deployed with the same options that returns a
  fixed decision-sized body without reading the request: what Serve itself costs;
* ``uvicorn /v1/decide``: the same decide path (body validation, classify, decide, JSON) in a
  plain FastAPI app on uvicorn, in its own process, without Serve.

Serve runs once per HTTP ingress setting (:data:`INGRESSES`): ``proxy`` (Serve's Python proxy
actor, Serve's default), ``haproxy`` (HAProxy sends HTTP straight to the replicas; ``autoray
serve`` uses it on a Ray it starts) and ``haproxy, one loop`` (also runs handlers on the
replica's HTTP event loop, Serve's throughput-optimised mode). Each HTTP row runs at 1 and 16
connections with the same closed-loop client (:mod:`benchmarks.load`); the ratio column divides
a row's p50 by the constant handler's p50 on the same ingress at the same concurrency.

    .venv/bin/python -m benchmarks.serve_latency [--requests 2000]

Nothing is asserted: figures are printed with the machine they came from, for people to read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from starlette.responses import Response

from autoray.labelled import load_requests, split
from autoray.ranking import Candidate
from autoray.table import RoutingTable, content_version
from autoray.taxonomy import ROUTES
from benchmarks.load import LoadResult, run_load
from benchmarks.machine import machine

CONNECTIONS = (1, 16)
CONSTANT_BODY: dict[str, Any] = {
    "decision": {
        "model": "sim/cheap",
        "variant": None,
        "route": "debugging/bug_fixing",
        "task_type": "debugging",
        "subtask_type": "bug_fixing",
        "table_version": "rt-0000000000000000",
        "sticky": False,
        "switch_reason": None,
        "explanation": "2 candidates, 2 meet the bar (0.7); sim/cheap is the cheapest per unit.",
    },
    "classification": {"route": "debugging/bug_fixing", "confidence": 0.9, "classifier": "x"},
    "reason": None,
}


# --- the table and the request texts ------------------------------------------------------


def bench_table() -> RoutingTable:
    """Three candidates on every route, all meeting the bar, cheapest first."""
    candidates = (
        Candidate("sim/cheap", None, 0.8, 0.001, 10, True, context_length=32_000),
        Candidate("sim/mid", "fast", 0.85, 0.004, 10, True, context_length=128_000),
        Candidate("sim/pricey", None, 0.95, 0.02, 10, True),
    )
    routes = {route: candidates for route in ROUTES}
    version = content_version(
        routes=routes, min_accuracy=0.7, switch_cost_factor=3.0, best_accuracy_gap=0.05
    )
    return RoutingTable(
        version=version,
        generated_at="2026-01-01T00:00:00+00:00",
        min_accuracy=0.7,
        switch_cost_factor=3.0,
        routes=routes,
        run_id=None,
        dataset_identity=None,
    )


def write_table(database_url: str) -> RoutingTable:
    from autoray.store import open_store, repo, upgrade_async

    table = bench_table()

    async def _save() -> None:
        await upgrade_async(database_url)
        store = open_store(database_url)
        try:
            async with store.session() as session:
                await repo.save_table(session, table=table)
                await repo.activate_table(session, version=table.version)
        finally:
            await store.close()

    asyncio.run(_save())
    return table


def texts() -> list[str]:
    return [request.text for request in split(load_requests(), "eval")]


def decide_body(pool: list[str]) -> Callable[[int], dict[str, Any]]:
    """Request ``i``: an evaluation text with ``#i`` appended, so every text is new."""
    return lambda i: {"messages": [{"role": "user", "content": f"{pool[i % len(pool)]} #{i}"}]}


# --- in process ---------------------------------------------------------------------------


def in_process(pool: list[str], table: RoutingTable, count: int) -> LoadResult:
    """classify + decide, one request after another, pinned to one core."""
    from autoray.classify import default_classifier
    from autoray.decision import decide

    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})
    try:
        classifier = default_classifier()
        for text in pool[:50]:  # warm: first calls build caches
            decide(table, classifier.classify(text).route)
        latencies: list[float] = []
        started = time.perf_counter()
        for i in range(count):
            text = f"{pool[i % len(pool)]} #{i}"
            sent = time.perf_counter()
            decide(table, classifier.classify(text).route)
            latencies.append(time.perf_counter() - sent)
        return LoadResult(latencies_s=latencies, wall_s=time.perf_counter() - started)
    finally:
        os.sched_setaffinity(0, cores)


# --- Serve ----------------------------------------------------------------------------------


def start_serve(database_url: str, port: int) -> None:
    import ray
    from ray import serve

    from serve.app import build_app
    from serve.args import AppArgs

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(AppArgs(database_url=database_url)), name="autoray", route_prefix="/")

    constant_api = FastAPI()

    @serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=100)
    @serve.ingress(constant_api)
    class Constant:
        @constant_api.post("/v1/decide")
        async def decide(self) -> dict[str, Any]:
            return CONSTANT_BODY

    serve.run(Constant.bind(), name="constant", route_prefix="/constant")  # type: ignore[attr-defined]


def stop_serve() -> None:
    import ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()


# --- plain uvicorn ----------------------------------------------------------------------------


def plain_app(database_url: str) -> Any:
    """The decide path of the Serve app on a plain FastAPI app (no Serve, no sessions)."""
    from autoray.cache import TTLCache
    from autoray.classify import default_classifier
    from serve.app import _decide_input
    from serve.decisions import DecisionService
    from serve.errors import json_response
    from serve.schemas import DecideRequest, parse_json_body, validate_body
    from serve.upstreams import model_label

    table = write_table(database_url)
    service = DecisionService(
        classifier=default_classifier(),
        cache=TTLCache(10_000, 600),
        sessions=_NoSessions(),
        table=lambda: table,
        recorder=_NoMetrics(),
        label=model_label,
    )
    app = FastAPI()

    @app.post("/v1/decide")
    async def decide(request: Request) -> Response:
        body = validate_body(DecideRequest, await parse_json_body(request, 8 * 2**20))
        result = await service.decide(_decide_input(body), endpoint="decide")
        return json_response(result.as_dict())

    return app


class _NoSessions:
    ttl_s = 0.0

    async def get(self, session_id: str) -> None:
        return None

    async def put(self, session_id: str, sticky: Any) -> None:
        return None


class _NoMetrics:
    def record_decision(self, **_: Any) -> None:
        return None

    def record_fallback(self, kind: str) -> None:
        return None


def start_plain(database_url: str, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "benchmarks.serve_latency", "--plain-server"]
    command += ["--port", str(port), "--database-url", database_url]
    process = subprocess.Popen(command)
    _wait_listening(port, process)
    return process


def run_plain_server(database_url: str, port: int) -> None:
    import uvicorn

    uvicorn.run(plain_app(database_url), host="127.0.0.1", port=port, log_level="warning")


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the plain uvicorn server exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after 60 s")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the run --------------------------------------------------------------------------------

Row = dict[str, Any]
INGRESSES: dict[str, dict[str, str]] = {
    # Serve's default: a Python proxy actor per node; replicas call it back for request bodies.
    "proxy": {"RAY_SERVE_ENABLE_HA_PROXY": "0", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "0"},
    # HAProxy sends HTTP to the replicas' own servers (``autoray serve``'s default).
    "haproxy": {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "0"},
    # ... and the handler runs on the replica's HTTP event loop instead of a thread of its own.
    "haproxy, one loop": {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
}


def row(path: str, connections: int, result: LoadResult) -> Row:
    return {
        "path": path,
        "connections": connections,
        "requests": result.requests,
        "p50_ms": result.percentile_ms(0.5),
        "p99_ms": result.percentile_ms(0.99),
        "rps": result.rps,
    }


def measure(pool: list[str], requests: int) -> list[Row]:
    """Every row of the table, in one run: in process, each Serve ingress, plain uvicorn."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        table = write_table(database_url)
        rows.append(row("in process (classify + decide)", 1, in_process(pool, table, requests)))
        for ingress in INGRESSES:
            rows += serve_rows(ingress, database_url, requests)
        rows += plain_rows(pool, database_url, requests)
    return rows


def serve_rows(ingress: str, database_url: str, requests: int) -> list[Row]:
    """Serve's rows in a child process: Ray reads the ingress switch when it starts."""
    env = {**os.environ, **INGRESSES[ingress]}
    command = [sys.executable, "-m", "benchmarks.serve_latency", "--serve-child", ingress]
    command += ["--database-url", database_url, "--requests", str(requests)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the {ingress} measurement failed:\n{done.stderr[-3000:]}")
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def serve_child(ingress: str, database_url: str, requests: int) -> None:
    """Deploy both Serve apps, time them, print the rows as one JSON line."""
    body = decide_body(texts())
    port = _free_port()
    start_serve(database_url, port)
    rows: list[Row] = []
    try:
        _check_decides(f"http://127.0.0.1:{port}/v1/decide")
        for connections in CONNECTIONS:
            for name, path in (
                (f"serve ({ingress}) /v1/decide", "/v1/decide"),
                (f"serve ({ingress}) constant", "/constant/v1/decide"),
            ):
                url = f"http://127.0.0.1:{port}{path}"
                rows.append(row(name, connections, _load(url, body, connections, requests)))
    finally:
        stop_serve()
    print(json.dumps(rows))


def plain_rows(pool: list[str], database_url: str, requests: int) -> list[Row]:
    body = decide_body(pool)
    port = _free_port()
    plain = start_plain(database_url, port)
    try:
        url = f"http://127.0.0.1:{port}/v1/decide"
        return [
            row("uvicorn /v1/decide", conns, _load(url, body, conns, requests))
            for conns in CONNECTIONS
        ]
    finally:
        plain.terminate()
        plain.wait(timeout=30)


def _load(url: str, body: Callable[[int], dict[str, Any]], connections: int, n: int) -> LoadResult:
    result = run_load(url, body, connections=connections, requests=n, warmup=50)
    bad = {status: count for status, count in result.statuses.items() if status != 200}
    if bad:
        raise RuntimeError(f"{url} answered non-200 statuses {bad}")
    return result


def _check_decides(url: str) -> None:
    """The Serve app has loaded its table and answers a real decision before we time it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = httpx.post(url, json={"prompt": "fix this off-by-one"}, timeout=30)
        if response.status_code == 200 and response.json().get("decision"):
            return
        time.sleep(0.5)
    raise RuntimeError(f"{url} gave no decision within 60 s: {response.text[:300]}")


def render(rows: list[Row]) -> str:
    """The table; the ratio is a row's p50 over the constant handler's on the same ingress."""
    constants = {
        (r["path"].split(")")[0], r["connections"]): r["p50_ms"]
        for r in rows
        if r["path"].endswith("constant")
    }
    lines = [
        "| path | connections | requests | p50 ms | p99 ms | requests/s | p50 / constant |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        base = constants.get((r["path"].split(")")[0], r["connections"]))
        ratio = f"{r['p50_ms'] / base:.2f}" if base and r["path"].startswith("serve") else "-"
        lines.append(
            f"| {r['path']} | {r['connections']} | {r['requests']} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['rps']:.0f} | {ratio} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per row")
    parser.add_argument("--plain-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-child", choices=list(INGRESSES), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if args.plain_server:
        run_plain_server(args.database_url, args.port)
    elif args.serve_child:
        serve_child(args.serve_child, args.database_url, args.requests)
    else:
        import ray

        rows = measure(texts(), args.requests)
        print(f"machine: {machine()}; Ray {ray.__version__}")
        print(render(rows))


if __name__ == "__main__":
    main()
