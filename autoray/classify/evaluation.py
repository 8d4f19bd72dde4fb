"""How a classifier is scored on the evaluation split, with the uncertainty of the score.

The evaluation split is small (a few hundred requests), so a bare accuracy would overstate what
is known: every accuracy comes with its 95 % Wilson interval, and the gap between two classifiers
scored on the same requests with a paired bootstrap interval (same requests resampled for both,
fixed seed). The confusion matrix and its largest off-diagonal pairs say where the errors are.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from autoray.labelled import LabelledRequest
from autoray.taxonomy import ROUTES, task_type_of

Z_95 = 1.959963984540054
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
SHORT_CHARS = 120
LONG_CHARS = 400


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float


def wilson_interval(hits: int, total: int, z: float = Z_95) -> Interval:
    """Wilson score interval of a proportion: sound near 0 and 1 and for small ``total``."""
    if total <= 0:
        return Interval(0.0, 1.0)
    share = hits / total
    denominator = 1 + z * z / total
    centre = (share + z * z / (2 * total)) / denominator
    half = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / denominator
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True, slots=True)
class ConfusionPair:
    """``count`` requests of route ``actual`` that were sent to ``predicted``."""

    actual: str
    predicted: str
    count: int


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One classifier's predictions on labelled requests, and what they add up to."""

    classifier: str
    actual: tuple[str, ...]
    predicted: tuple[str, ...]

    @property
    def total(self) -> int:
        return len(self.actual)

    @property
    def hits(self) -> int:
        return sum(self.correct())

    @property
    def accuracy(self) -> float:
        return self.hits / self.total if self.total else 0.0

    @property
    def interval(self) -> Interval:
        return wilson_interval(self.hits, self.total)

    @property
    def task_type_accuracy(self) -> float:
        pairs = zip(self.actual, self.predicted, strict=True)
        right = sum(task_type_of(a) == task_type_of(p) for a, p in pairs)
        return right / self.total if self.total else 0.0

    def correct(self) -> list[bool]:
        return [a == p for a, p in zip(self.actual, self.predicted, strict=True)]

    def per_route(self) -> dict[str, tuple[int, int]]:
        """``route -> (hits, requests)`` for every route with requests, in canonical order."""
        totals = Counter(self.actual)
        hits = Counter(a for a, ok in zip(self.actual, self.correct(), strict=True) if ok)
        return {route: (hits[route], totals[route]) for route in ROUTES if totals[route]}

    def confusion(self) -> list[list[int]]:
        """Counts ``[actual][predicted]`` over :data:`~autoray.taxonomy.ROUTES`."""
        position = {route: i for i, route in enumerate(ROUTES)}
        matrix = [[0] * len(ROUTES) for _ in ROUTES]
        for actual, predicted in zip(self.actual, self.predicted, strict=True):
            matrix[position[actual]][position[predicted]] += 1
        return matrix

    def confusion_pairs(self, limit: int = 10) -> list[ConfusionPair]:
        """The most frequent mistakes, largest first (ties in canonical route order)."""
        mistakes = Counter(
            (a, p) for a, p in zip(self.actual, self.predicted, strict=True) if a != p
        )
        ordered = sorted(
            mistakes.items(),
            key=lambda item: (-item[1], ROUTES.index(item[0][0]), ROUTES.index(item[0][1])),
        )
        return [ConfusionPair(a, p, count) for (a, p), count in ordered[:limit]]


def evaluate(
    name: str,
    predict: Callable[[Sequence[str]], Sequence[str]],
    requests: Sequence[LabelledRequest],
) -> Evaluation:
    """Score ``predict`` (texts → routes) on ``requests`` (the evaluation split)."""
    predicted = tuple(predict([r.text for r in requests]))
    return Evaluation(name, tuple(r.route for r in requests), predicted)


def paired_difference(
    first: Evaluation,
    second: Evaluation,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Interval:
    """95 % bootstrap interval of ``first.accuracy - second.accuracy`` on the same requests."""
    if first.actual != second.actual:
        raise ValueError("paired_difference needs two evaluations of the same requests")
    gaps = np.array(first.correct(), dtype=float) - np.array(second.correct(), dtype=float)
    if not len(gaps):
        return Interval(0.0, 0.0)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(gaps), size=(resamples, len(gaps)))
    means = gaps[draws].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return Interval(float(low), float(high))


@dataclass(frozen=True, slots=True)
class LengthStats:
    """How long one route's requests are: the share of terse and of long ones matters most."""

    route: str
    count: int
    median_chars: float
    short_share: float
    long_share: float


def length_stats(requests: Sequence[LabelledRequest]) -> list[LengthStats]:
    """Per route, in canonical order: count, median length, share < 120 and > 400 chars."""
    lengths: dict[str, list[int]] = {route: [] for route in ROUTES}
    for request in requests:
        lengths[request.route].append(len(request.text))
    return [_stats(route, sizes) for route, sizes in lengths.items() if sizes]


def _stats(route: str, sizes: list[int]) -> LengthStats:
    count = len(sizes)
    return LengthStats(
        route=route,
        count=count,
        median_chars=float(statistics.median(sizes)),
        short_share=sum(size < SHORT_CHARS for size in sizes) / count,
        long_share=sum(size > LONG_CHARS for size in sizes) / count,
    )
