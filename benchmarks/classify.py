"""How fast the embedded route classifier decides, on one CPU core, and what it costs to hold.

    .venv/bin/python -m benchmarks.classify [--core 0] [--rounds 5]

Pins the process to one core (``os.sched_setaffinity``) with BLAS limited to one thread, trains
the default classifier as a Serve replica would at first use, then times ``classify`` on every
request of the evaluation split (``--rounds`` times each) and on a 5 MB prompt (read through
its 4000-character prefix). For comparison it times the scikit-learn baseline's
``predict_proba`` on the same requests. Figures are printed with the machine, never asserted.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402

from benchmarks.machine import machine  # noqa: E402

FIVE_MB = 5 * 2**20


def percentile(samples: Sequence[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def timed(
    call: Callable[[str], object], texts: Sequence[str], rounds: int
) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds of each call, after an untimed warm-up.

    CPU time (this thread's) leaves out the time the scheduler gave the core to another
    process, which on a shared machine is most of the tail of the wall-clock figures.
    """
    for text in texts[:20]:
        call(text)
    wall, cpu = [], []
    for _ in range(rounds):
        for text in texts:
            started, started_cpu = time.perf_counter_ns(), time.thread_time_ns()
            call(text)
            cpu.append((time.thread_time_ns() - started_cpu) / 1e6)
            wall.append((time.perf_counter_ns() - started) / 1e6)
    return wall, cpu


def row(label: str, samples: tuple[list[float], list[float]]) -> str:
    wall, cpu = samples
    return (
        f"| {label} | {len(wall)} | {statistics.median(wall):.3f} | "
        f"{percentile(wall, 0.99):.3f} | {statistics.median(cpu):.3f} | "
        f"{percentile(cpu, 0.99):.3f} | {max(cpu):.3f} |"
    )


def model_bytes(classifier: object) -> int:
    model = classifier.model  # type: ignore[attr-defined]
    total = 0
    for member in model.members:
        total += member.coef.nbytes + member.intercept.nbytes
        for block in member.blocks:
            total += block.idf.nbytes + block.hashes.nbytes
            total += sum(len(key) + 8 for key in block.index)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--core", type=int, default=0, help="the one CPU core to run on")
    parser.add_argument("--rounds", type=int, default=5, help="passes over the eval split")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.core})

    started = time.perf_counter()
    from autoray.classify import default_classifier
    from autoray.classify.baseline import train_baseline
    from autoray.labelled import load_requests, split

    imported = time.perf_counter()
    requests = load_requests()
    classifier = default_classifier()
    trained = time.perf_counter()
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    texts = [r.text for r in split(requests, "eval")]
    huge = ("Our export job dies with the traceback below, please have a look.\n" * 80_000)[
        :FIVE_MB
    ]
    ours = timed(classifier.classify, texts, args.rounds)
    prompt = timed(classifier.classify, [huge], 500)
    baseline = train_baseline(split(requests, "train"))
    theirs = timed(baseline.classify, texts, 1)
    lengths = sorted(len(text) for text in texts)

    load = os.getloadavg()
    print(f"machine: {machine()}; pinned to core {args.core}, BLAS threads 1")
    print(f"load average when done: {load[0]:.1f} (1 min), {load[1]:.1f} (5 min)")
    print(f"classifier: {classifier.name}")
    print(
        f"eval requests: {len(texts)}, length median {statistics.median(lengths):.0f} chars, "
        f"max {lengths[-1]} chars; 5 MB prompt: {len(huge):,} chars"
    )
    print()
    print("| what | calls | wall p50 (ms) | wall p99 | CPU p50 (ms) | CPU p99 | CPU max |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(row("embedded, eval requests", ours))
    print(row("embedded, 5 MB prompt (4000-char prefix)", prompt))
    print(row("baseline (scikit-learn predict_proba), eval requests", theirs))
    print()
    print(f"import autoray.classify: {imported - started:.2f} s")
    print(f"training at first use (load the set, fit on train): {trained - imported:.2f} s")
    print(f"model held in memory: {model_bytes(classifier) / 2**20:.1f} MiB")
    print(f"process peak RSS after training: {rss_mib:.0f} MiB")


if __name__ == "__main__":
    main()
