"""Route-classifier accuracy before and after the labelled set's rewrite, and how it was chosen.

    .venv/bin/python -m benchmarks.classifier_accuracy            # before/after, lengths
    .venv/bin/python -m benchmarks.classifier_accuracy --cv       # and the CV tables on train
    .venv/bin/python -m benchmarks.classifier_accuracy --cv-only  # the CV tables alone
    .venv/bin/python -m benchmarks.classifier_accuracy --ablation-only  # one change at a time

"Before" is the labelled set as of commit ``15d5b26`` (v1, read with ``git show``), "after"
the set in the working tree (v2). On each, the baseline (word-and-character TF-IDF, logistic
regression, scikit-learn defaults) and the embedded classifier (its setting chosen by 5-fold CV
on the v2 training split, ``autoray.classify.selection``) are trained on the training split and
scored on the evaluation split, with 95 % Wilson intervals and a paired bootstrap interval of
their gap. ``--cv`` re-runs the search over the fixed grid, on the training split only.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from autoray.classify.embedded import ModelSpec
from autoray.classify.evaluation import length_stats
from autoray.classify.report import (
    Comparison,
    compare,
    render_comparison,
    render_lengths,
    render_pairs,
)
from autoray.classify.selection import (
    C_VALUES,
    CV_FOLDS,
    CV_SEED,
    DEFAULT_SPEC,
    CvScore,
    baseline_cv,
    best,
    cross_validate,
    grid,
)
from autoray.labelled import LabelledRequest, load_requests, split
from autoray.taxonomy import TASK_TYPES

BEFORE_COMMIT = "15d5b26"
ROOT = Path(__file__).resolve().parents[1]
CV_ROWS_SHOWN = 25


def before_set(commit: str, folder: Path) -> tuple[LabelledRequest, ...]:
    """The labelled set as committed at ``commit``, written to ``folder`` and loaded."""
    for task in TASK_TYPES:
        done = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{commit}:autoray/data/requests/{task}.jsonl"],
            capture_output=True,
            text=True,
            check=True,
        )
        (folder / f"{task}.jsonl").write_text(done.stdout, encoding="utf-8")
    return load_requests(str(folder))


def summary_row(label: str, requests: tuple[LabelledRequest, ...], result: Comparison) -> str:
    per_route = len(requests) // 18
    base, ours, gap = result.baseline, result.embedded, result.gap
    return (
        f"| {label} | {len(requests)} ({per_route}/route) | {result.train_size} / {ours.total} | "
        f"{base.accuracy:.1%} [{base.interval.low:.1%}, {base.interval.high:.1%}] | "
        f"{ours.accuracy:.1%} [{ours.interval.low:.1%}, {ours.interval.high:.1%}] | "
        f"{result.difference * 100:+.1f} [{gap.low * 100:+.1f}, {gap.high * 100:+.1f}] |"
    )


def print_cv(train: tuple[LabelledRequest, ...]) -> None:
    started = time.monotonic()
    scores = cross_validate(train, grid())
    reference = baseline_cv(train)
    winner = best(scores)
    print(
        f"## {CV_FOLDS}-fold stratified CV on the training split ({len(train)} requests, "
        f"seed {CV_SEED}): {len(scores)} candidates in {time.monotonic() - started:.0f} s"
    )
    print()
    print("| rank | setting | CV accuracy | sd over folds |")
    print("|---:|---|---:|---:|")
    ranked = sorted(scores, key=lambda score: -score.mean)
    for rank, score in enumerate(ranked[:CV_ROWS_SHOWN], start=1):
        print(_cv_row(rank, score))
    print(
        f"| – | baseline (untuned) | {statistics.fmean(reference):.3f} | "
        f"{statistics.stdev(reference):.3f} |"
    )
    print()
    print(f"best: {winner.spec.label()} at {winner.mean:.3f}")
    chosen = next((s for s in scores if s.spec == DEFAULT_SPEC), None)
    status = f"{chosen.mean:.3f}" if chosen else "not in the grid"
    print(f"in code (DEFAULT_SPEC): {DEFAULT_SPEC.label()} at {status}")
    print()


def one_change_at_a_time() -> list[tuple[str, ModelSpec]]:
    """The chosen setting with one option changed, to read what each option is worth."""
    chosen, features = DEFAULT_SPEC, DEFAULT_SPEC.features
    changes: list[tuple[str, ModelSpec]] = [("chosen setting", chosen)]
    flips = {
        "sublinear tf off": replace(features, sublinear_tf=False),
        "structural signs off": replace(features, structural=False),
        "words from the whole text, not prose only": replace(features, prose_words=False),
        "word unigrams only": replace(features, word_ngrams=1),
        "char 3-6-grams instead of 2-5": replace(features, char_ngrams=(3, 6)),
        "no char n-grams": replace(features, char_ngrams=None),
    }
    changes += [(label, replace(chosen, features=spec)) for label, spec in flips.items()]
    changes += [(f"C={c:g}", replace(chosen, c=c)) for c in C_VALUES if c != chosen.c]
    changes.append(("average of a word and a char model", replace(chosen, combine="average")))
    return changes


def print_ablation(train: tuple[LabelledRequest, ...]) -> None:
    changes = one_change_at_a_time()
    scores = cross_validate(train, [spec for _, spec in changes])
    reference = scores[0].mean
    print(f"## One change at a time from the chosen setting ({CV_FOLDS}-fold CV on train)")
    print()
    print("| change | CV accuracy | vs chosen (points) |")
    print("|---|---:|---:|")
    for (label, _), score in zip(changes, scores, strict=True):
        print(f"| {label} | {score.mean:.3f} | {(score.mean - reference) * 100:+.1f} |")
    print()


def _cv_row(rank: int, score: CvScore) -> str:
    mark = " (in code)" if score.spec == DEFAULT_SPEC else ""
    return f"| {rank} | {score.spec.label()}{mark} | {score.mean:.3f} | {score.stdev:.3f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--cv", action="store_true", help="also re-run the CV search on train")
    parser.add_argument(
        "--cv-only", action="store_true", help="only the CV search: never reads the eval split"
    )
    parser.add_argument(
        "--ablation-only",
        action="store_true",
        help="only the one-change-at-a-time CV table: never reads the eval split",
    )
    parser.add_argument("--before", default=BEFORE_COMMIT, help="commit of the 'before' set")
    args = parser.parse_args()

    after = load_requests()
    if args.cv or args.cv_only:
        print_cv(split(after, "train"))
    if args.cv or args.cv_only or args.ablation_only:
        print_ablation(split(after, "train"))
    if args.cv_only or args.ablation_only:
        return
    with tempfile.TemporaryDirectory() as tmp:
        before = before_set(args.before, Path(tmp))
    results = {"before": compare(before), "after": compare(after)}
    print("## Before and after: accuracy on the evaluation split (95 % intervals)")
    print()
    print(
        "| labelled set | requests | train / eval | baseline | embedded | "
        "embedded − baseline (points) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    print(summary_row(f"before (v1, {args.before})", before, results["before"]))
    print(summary_row("after (v2)", after, results["after"]))
    print()
    for label, requests in (("before (v1)", before), ("after (v2)", after)):
        print(f"## Length per route, {label}")
        print()
        print("\n".join(render_lengths(length_stats(requests))))
        print()
    print("## After (v2) in detail")
    print()
    print("\n".join(render_comparison(results["after"])))
    print()
    print("routes still confused (baseline):")
    print("\n".join(render_pairs(results["after"].baseline)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
