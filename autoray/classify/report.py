"""The embedded classifier against the baseline on one labelled set, as data and as text.

``autoray classify --evaluate`` and ``benchmarks/classifier_accuracy.py`` print the same
report from the same code: both classifiers trained on the training split, scored on the
evaluation split, each accuracy with its 95 % interval, the paired interval of the gap, the
accuracy per route, the confusion matrix and the pairs of routes still confused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from autoray.classify.baseline import BASELINE_DESCRIPTION, train_baseline
from autoray.classify.embedded import train_embedded
from autoray.classify.evaluation import (
    Evaluation,
    Interval,
    LengthStats,
    evaluate,
    paired_difference,
)
from autoray.classify.selection import DEFAULT_CV, DEFAULT_SPEC
from autoray.labelled import LabelledRequest, split
from autoray.taxonomy import ROUTES

CONFUSION_PAIRS_SHOWN = 10


@dataclass(frozen=True, slots=True)
class Comparison:
    """Both classifiers scored on the same evaluation requests."""

    train_size: int
    embedded: Evaluation
    baseline: Evaluation
    gap: Interval

    @property
    def difference(self) -> float:
        return self.embedded.accuracy - self.baseline.accuracy


def compare(requests: Sequence[LabelledRequest]) -> Comparison:
    """Train both classifiers on ``requests``' training split; score them on its eval split."""
    train, held = split(requests, "train"), split(requests, "eval")
    embedded = train_embedded(train)
    baseline = train_baseline(train)
    scored = evaluate(embedded.name, embedded.predict, held)
    reference = evaluate(baseline.name, baseline.predict, held)
    return Comparison(len(train), scored, reference, paired_difference(scored, reference))


def comparison_dict(comparison: Comparison) -> dict[str, Any]:
    """Everything the report shows, for ``--json``."""
    return {
        "train_requests": comparison.train_size,
        "eval_requests": comparison.embedded.total,
        "embedded": _evaluation_dict(comparison.embedded),
        "baseline": _evaluation_dict(comparison.baseline),
        "difference": round(comparison.difference, 4),
        "difference_interval_95": _interval(comparison.gap),
        "embedded_setting": DEFAULT_SPEC.label(),
        "embedded_setting_cv": DEFAULT_CV,
        "baseline_setting": BASELINE_DESCRIPTION,
        "routes": list(ROUTES),
    }


def _evaluation_dict(evaluation: Evaluation) -> dict[str, Any]:
    return {
        "classifier": evaluation.classifier,
        "accuracy": round(evaluation.accuracy, 4),
        "interval_95": _interval(evaluation.interval),
        "correct": evaluation.hits,
        "task_type_accuracy": round(evaluation.task_type_accuracy, 4),
        "per_route": {
            route: {"correct": hits, "requests": total}
            for route, (hits, total) in evaluation.per_route().items()
        },
        "confusion": evaluation.confusion(),
        "confusion_pairs": [
            {"actual": pair.actual, "predicted": pair.predicted, "count": pair.count}
            for pair in evaluation.confusion_pairs(CONFUSION_PAIRS_SHOWN)
        ],
    }


def _interval(interval: Interval) -> list[float]:
    return [round(interval.low, 4), round(interval.high, 4)]


def render_comparison(comparison: Comparison) -> list[str]:
    """The report as lines of text (markdown tables)."""
    embedded, baseline = comparison.embedded, comparison.baseline
    gap = comparison.gap
    lines = [
        f"evaluation split: {embedded.total} requests; trained on the training split "
        f"({comparison.train_size} requests)",
        "",
        "| classifier | route accuracy | 95 % interval | task-type accuracy |",
        "|---|---:|---:|---:|",
        _summary_row(embedded),
        _summary_row(baseline),
        "",
        f"embedded - baseline: {comparison.difference * 100:+.1f} points "
        f"(paired bootstrap 95 % interval {gap.low * 100:+.1f} to {gap.high * 100:+.1f})",
        f"embedded setting: {DEFAULT_SPEC.label()} ({DEFAULT_CV})",
        f"baseline setting: {BASELINE_DESCRIPTION}",
        "",
        *render_per_route(embedded, baseline),
        "",
        "confusion matrix of the embedded classifier (rows: actual, columns: predicted; "
        "routes numbered as in the table above):",
        *render_confusion(embedded),
        "",
        "routes still confused (embedded):",
        *render_pairs(embedded),
    ]
    return lines


def _summary_row(evaluation: Evaluation) -> str:
    interval = evaluation.interval
    return (
        f"| {evaluation.classifier} | {evaluation.accuracy:.1%} ({evaluation.hits}/"
        f"{evaluation.total}) | {interval.low:.1%} – {interval.high:.1%} | "
        f"{evaluation.task_type_accuracy:.1%} |"
    )


def render_per_route(embedded: Evaluation, baseline: Evaluation) -> list[str]:
    ours, theirs = embedded.per_route(), baseline.per_route()
    lines = ["| # | route | embedded | baseline |", "|---:|---|---:|---:|"]
    for number, route in enumerate(ROUTES, start=1):
        if route in ours:
            lines.append(
                f"| {number} | {route} | {_share(*ours[route])} | {_share(*theirs[route])} |"
            )
    return lines


def _share(hits: int, total: int) -> str:
    return f"{hits}/{total}"


def render_confusion(evaluation: Evaluation) -> list[str]:
    matrix = evaluation.confusion()
    header = "    " + "".join(f"{n:>4}" for n in range(1, len(ROUTES) + 1))
    rows = [
        f"{number:>3} " + "".join(f"{count or '.':>4}" for count in row)
        for number, row in enumerate(matrix, start=1)
    ]
    return [header, *rows]


def render_pairs(evaluation: Evaluation, limit: int = CONFUSION_PAIRS_SHOWN) -> list[str]:
    pairs = evaluation.confusion_pairs(limit)
    if not pairs:
        return ["none"]
    return [f"{pair.count:>3}  {pair.actual} -> {pair.predicted}" for pair in pairs]


def render_lengths(stats: Sequence[LengthStats]) -> list[str]:
    lines = [
        "| route | requests | median chars | < 120 chars | > 400 chars |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in stats:
        lines.append(
            f"| {row.route} | {row.count} | {row.median_chars:.0f} | {row.short_share:.0%} | "
            f"{row.long_share:.0%} |"
        )
    return lines
