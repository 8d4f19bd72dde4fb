"""The baseline the embedded classifier must beat: word-and-character TF-IDF, linear model.

Defined once, with scikit-learn's defaults, and never tuned: a word ``TfidfVectorizer()``
(unigrams of two or more word characters, lower-cased, raw tf, smoothed idf, l2 norm) and a
character ``TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5))`` side by side, then
``LogisticRegression()`` (L2, ``C=1``, lbfgs) with ``max_iter`` raised until it converges.
It reads the same bounded prefix as every classifier and is trained on the training split.
Whatever the embedded classifier gains over it is measured against exactly this.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autoray.classify.base import Classification, bounded_prefix, ranked_classification
from autoray.classify.embedded import training_hash, training_texts
from autoray.labelled import LabelledRequest

BASELINE_MAX_ITER = 5000
BASELINE_DESCRIPTION = (
    'TfidfVectorizer() + TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5)), '
    "LogisticRegression(C=1.0, max_iter=5000)"
)


def baseline_pipeline() -> Any:
    """A fresh, unfitted baseline: scikit-learn defaults except ``max_iter``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    features = make_union(
        TfidfVectorizer(), TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5))
    )
    return make_pipeline(features, LogisticRegression(max_iter=BASELINE_MAX_ITER))


class BaselineClassifier:
    """The baseline behind the :class:`~autoray.classify.base.Classifier` interface."""

    def __init__(self, pipeline: Any, name: str) -> None:
        self.pipeline = pipeline
        self.name = name

    def classify(self, text: str) -> Classification:
        prefix, truncated = bounded_prefix(text)
        probabilities = self.pipeline.predict_proba([prefix])[0]
        routes = list(self.pipeline.classes_)
        return ranked_classification(
            routes,
            probabilities.tolist(),
            classifier=self.name,
            prefix=prefix,
            truncated=truncated,
        )

    def predict(self, texts: Sequence[str]) -> list[str]:
        prefixes = [bounded_prefix(text)[0] for text in texts]
        return [str(route) for route in self.pipeline.predict(prefixes)]


def train_baseline(requests: Sequence[LabelledRequest]) -> BaselineClassifier:
    """Fit the baseline on ``requests`` (callers pass the training split)."""
    pipeline = baseline_pipeline()
    pipeline.fit(training_texts(requests), [r.route for r in requests])
    digest = training_hash(requests, BASELINE_DESCRIPTION)
    return BaselineClassifier(pipeline, f"baseline:tfidf-lr:{digest}")
