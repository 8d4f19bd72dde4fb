"""How the benchmark engine scales with the number of live lanes on this machine.

Runs real benchmark runs (simulated models, process sandbox) on a local Ray cluster and prints
one table row per budget: lanes, time to the first persisted row, wall time, case throughput,
and the resident memory of the lane processes (sampled every 0.5 s, peak reported).

    .venv/bin/python -m benchmarks.engine_scale --models 10 --repetitions 3 --budgets 10 30 90

Nothing here is asserted: machines are shared and noisy, so figures are printed, with the
machine they were taken on, for a person to read.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from actors.coordinator import get_or_create_coordinator
from actors.placement import CONTAINER_RESOURCE
from benchmarks.machine import machine


@dataclass
class Sample:
    budget: int
    lanes: int
    cases: int
    first_row_s: float
    wall_s: float
    peak_lane_rss_mb: float
    peak_lane_processes: int

    @property
    def cases_per_s(self) -> float:
        return self.cases / self.wall_s if self.wall_s else 0.0


def lane_rss() -> tuple[float, int]:
    """Summed resident memory (MiB) and count of the lane actor processes, read from /proc."""
    total_kib, count = 0, 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if b"ShardLane" not in (proc / "cmdline").read_bytes():
                continue
            status = (proc / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total_kib += int(line.split()[1])
                count += 1
    return total_kib / 1024, count


def config(args: argparse.Namespace, budget: int) -> dict[str, Any]:
    models = [
        {
            "id": f"sim/m{i:02d}",
            "provider": "simulated",
            "price": {"input_per_mtok": 0.1 * (i + 1), "output_per_mtok": 0.4 * (i + 1)},
            "skill": {"default": min(1.0, 0.4 + 0.06 * i)},
            "latency_ms": args.latency_ms,
        }
        for i in range(args.models)
    ]
    return {
        "name": f"scale-{budget}",
        "dataset": args.dataset,
        "repetitions": args.repetitions,
        "chunk_size": args.chunk_size,
        "max_live_containers": budget,
        "sandbox": {"backend": "process"},
        "engine": {"placement_timeout_s": 120},
        "models": models,
    }


def measure(client: Any, args: argparse.Namespace, budget: int) -> Sample:
    peak = {"rss": 0.0, "n": 0}
    stop = threading.Event()

    def sampler() -> None:
        while not stop.is_set():
            rss, count = lane_rss()
            peak["rss"], peak["n"] = max(peak["rss"], rss), max(peak["n"], count)
            time.sleep(0.5)

    thread = threading.Thread(target=sampler, daemon=True)
    started = time.monotonic()
    run_id = client.start_run(config(args, budget))
    thread.start()
    first_row = None
    while True:
        progress = client.status(run_id)
        if first_row is None and progress.cases_done:
            first_row = time.monotonic() - started
        if progress.status not in ("running", "finalizing"):
            break
        time.sleep(0.2)
    wall = time.monotonic() - started
    stop.set()
    thread.join()
    assert progress.status == "completed", progress.reason
    return Sample(
        budget,
        progress.lanes_total,
        progress.cases_done,
        first_row or wall,
        wall,
        peak["rss"],
        peak["n"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--budgets", type=int, nargs="+", default=[10, 30, 90])
    parser.add_argument("--chunk-size", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=0)
    parser.add_argument("--dataset", default="builtin:decider")
    args = parser.parse_args()

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    containers = {CONTAINER_RESOURCE: max(args.budgets)}
    ray.init(address="local", resources=containers, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        client = get_or_create_coordinator(url, namespace=f"autoray-bench-{uuid.uuid4().hex[:6]}")
        samples = [measure(client, args, budget) for budget in args.budgets]
        client.shutdown()
    ray.shutdown()

    print(f"machine: {machine()}; Ray {ray.__version__}")
    print(
        f"runs: {args.models} simulated models x {args.repetitions} reps over {args.dataset}, "
        f"chunk {args.chunk_size}, model latency {args.latency_ms:g} ms, process sandbox"
    )
    print()
    print(
        "| budget | lanes | cases | first row (s) | wall (s) | cases/s | peak lane RSS (MB) "
        "| lane processes | RSS per lane (MB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in samples:
        per_lane = s.peak_lane_rss_mb / s.peak_lane_processes if s.peak_lane_processes else 0
        print(
            f"| {s.budget} | {s.lanes} | {s.cases} | {s.first_row_s:.1f} | {s.wall_s:.1f} | "
            f"{s.cases_per_s:.1f} | {s.peak_lane_rss_mb:.0f} | {s.peak_lane_processes} | "
            f"{per_lane:.0f} |"
        )


if __name__ == "__main__":
    main()
