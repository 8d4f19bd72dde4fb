"""How fast the embedded route classifier decides, on one CPU core, and what it costs to hold.

    .venv/bin/python -m benchmarks.classify [--core 0] [--rounds 5]

Pins the process to one core (``os.sched_setaffinity``) with BLAS limited to one thread, trains
the default classifier as a Serve replica would at first use, then times ``classify`` on every
request of the evaluation split (``--rounds`` times each) and on a 5 MB prompt (read through
its 4000-character prefix). For comparison it times the scikit-learn baseline's
``predict_proba`` on the same requests. Figures are printed with the machine, never asserted.

Each request is timed twice: *hot* (the call right after the previous one, every cache warm,
as in a loop) and *cold* (after touching a 64 MiB array, which evicts the CPU caches: a Serve
replica runs the client, the proxy and Ray's threads between two requests, and timed inside a
replica ``classify`` cost twice its hot figure). Beside today's serving path it times the
reference path (the training-time features of :func:`autoray.classify.features.featurize` and
the weights as fitted), which is what ``classify`` ran before the serving index; both run in
the same loop, request by request, so a busy machine slows both alike.
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

import numpy as np  # noqa: E402

from benchmarks.machine import machine  # noqa: E402

FIVE_MB = 5 * 2**20
EVICT_BYTES = 64 * 2**20
"""Twice the last-level cache of the machines measured so far (32 MiB)."""

Samples = tuple[list[float], list[float]]


def percentile(samples: Sequence[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def warm_up(call: Callable[[str], object], texts: Sequence[str]) -> None:
    """Untimed calls first, so imports and first-call allocations stay out of the figures."""
    for text in texts[:20]:
        call(text)


def sample(call: Callable[[str], object], text: str, samples: Samples) -> None:
    """Add the wall-clock and CPU milliseconds of one ``call(text)`` to ``samples``.

    CPU time (this thread's) leaves out the time the scheduler gave the core to another
    process, which on a shared machine is most of the tail of the wall-clock figures.
    """
    wall, cpu = samples
    started, started_cpu = time.perf_counter_ns(), time.thread_time_ns()
    call(text)
    cpu.append((time.thread_time_ns() - started_cpu) / 1e6)
    wall.append((time.perf_counter_ns() - started) / 1e6)


def timed(call: Callable[[str], object], texts: Sequence[str], rounds: int) -> Samples:
    """Wall-clock and CPU milliseconds of each call, after an untimed warm-up."""
    warm_up(call, texts)
    samples: Samples = ([], [])
    for _ in range(rounds):
        for text in texts:
            sample(call, text, samples)
    return samples


class Evictor:
    """Touches (reads and writes) every cache line of a 64 MiB array: caches cold after it."""

    def __init__(self) -> None:
        self.scratch = np.ones(EVICT_BYTES // 8)

    def __call__(self) -> None:
        self.scratch += 1.0


def interleaved(
    calls: dict[str, Callable[[str], object]], texts: Sequence[str], rounds: int, cold: bool
) -> dict[str, Samples]:
    """Wall and CPU milliseconds of each call on each text, the calls taking turns per text.

    Taking turns request by request spreads the machine's other load over every path alike,
    so the ratios hold even where the absolute figures move between runs.
    """
    evict = Evictor()
    samples: dict[str, Samples] = {label: ([], []) for label in calls}
    for call in calls.values():
        warm_up(call, texts)
    for _ in range(rounds):
        for text in texts:
            for label, call in calls.items():
                if cold:
                    evict()
                else:
                    call(text)
                sample(call, text, samples[label])
    return samples


def reference_classify(classifier: object) -> Callable[[str], object]:
    """``classify`` as it was before the serving index: the training-time feature path."""
    from autoray.classify.base import bounded_prefix, ranked_classification

    model, name = classifier.model, classifier.name  # type: ignore[attr-defined]

    def classify(text: str) -> object:
        prefix, truncated = bounded_prefix(text)
        return ranked_classification(
            model.routes,
            model.probabilities(prefix).tolist(),
            classifier=name,
            prefix=prefix,
            truncated=truncated,
        )

    return classify


def row(label: str, samples: Samples) -> str:
    wall, cpu = samples
    return (
        f"| {label} | {len(wall)} | {statistics.median(wall):.3f} | "
        f"{percentile(wall, 0.99):.3f} | {statistics.median(cpu):.3f} | "
        f"{percentile(cpu, 0.99):.3f} | {max(cpu):.3f} |"
    )


def model_bytes(classifier: object) -> tuple[int, int]:
    """Bytes of what ``classify`` reads (rows and key tables) and of the weights as fitted,
    which the classifier keeps as the reference for evaluation and tests."""
    served = 0
    for member in classifier._served:  # type: ignore[attr-defined]
        table = member.index.table
        served += member.rows.nbytes + table.keys.nbytes + table.columns.nbytes
    fitted = 0
    for member in classifier.model.members:  # type: ignore[attr-defined]
        fitted += member.coef.nbytes + member.intercept.nbytes
        for block in member.blocks:
            fitted += block.idf.nbytes + block.hashes.nbytes
            fitted += sum(len(key) + 8 for key in block.index)
    return served, fitted


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
    paths = {"serving index": classifier.classify, "reference": reference_classify(classifier)}
    hot = interleaved(paths, texts, args.rounds, cold=False)
    cold = interleaved(paths, texts, args.rounds, cold=True)
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
    for state, samples in (("hot", hot), ("cold", cold)):
        for path, figures in samples.items():
            print(row(f"embedded, eval requests, {state}, {path}", figures))
    print(row("embedded, 5 MB prompt (4000-char prefix), hot", prompt))
    print(row("baseline (scikit-learn predict_proba), eval requests", theirs))
    print()
    for state, samples in (("hot", hot), ("cold", cold)):
        ours, theirs = (statistics.median(samples[path][1]) for path in paths)
        print(f"{state}: serving index / reference, CPU p50: {ours / theirs:.2f}")
    print()
    print(f"import autoray.classify: {imported - started:.2f} s")
    print(f"training at first use (load the set, fit on train): {trained - imported:.2f} s")
    served, fitted = model_bytes(classifier)
    print(f"serving index held in memory: {served / 2**20:.1f} MiB")
    print(f"weights as fitted (the reference path): {fitted / 2**20:.1f} MiB")
    print(f"process peak RSS after training: {rss_mib:.0f} MiB")


if __name__ == "__main__":
    main()
