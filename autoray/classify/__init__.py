"""Route classifiers: map a request to one of the 18 routes.

``default_classifier()`` is the embedded classifier (TF-IDF and a linear model trained on the
shipped labelled set at first use); ``build_classifier("llm", llm_model=...)`` asks a model
and falls back to it. Every classifier reads a bounded prefix of the last user message.
"""

from autoray.classify.base import (
    MAX_CLASSIFY_CHARS,
    TOP_ROUTES,
    Classification,
    Classifier,
    RouteScore,
    bounded_prefix,
    request_text,
)
from autoray.classify.embedded import EmbeddedClassifier, ModelSpec, train_embedded
from autoray.classify.factory import (
    CLASSIFIER_KINDS,
    ClassifierKind,
    build_classifier,
    default_classifier,
    embedded_classifier,
)
from autoray.classify.llm import DEFAULT_TIMEOUT_S, LLMClassifier, llm_classifier

__all__ = [
    "CLASSIFIER_KINDS",
    "DEFAULT_TIMEOUT_S",
    "MAX_CLASSIFY_CHARS",
    "TOP_ROUTES",
    "Classification",
    "Classifier",
    "ClassifierKind",
    "EmbeddedClassifier",
    "LLMClassifier",
    "ModelSpec",
    "RouteScore",
    "bounded_prefix",
    "build_classifier",
    "default_classifier",
    "embedded_classifier",
    "llm_classifier",
    "request_text",
    "train_embedded",
]
