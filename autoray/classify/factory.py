"""Which classifier answers: the embedded default, trained once per process, or the LLM one.

The embedded classifier is trained on first use from the training split of the shipped
labelled set (about a second) and kept for the life of the process, so a Serve replica or a
CLI call pays for training once and every later request costs only the classification.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Literal

from autoray.classify.base import Classifier
from autoray.classify.embedded import EmbeddedClassifier, train_embedded
from autoray.classify.llm import DEFAULT_TIMEOUT_S, llm_classifier
from autoray.errors import ConfigError
from autoray.labelled import BUILTIN_REQUESTS, load_requests, split

if TYPE_CHECKING:
    from autoray.config import ModelEntry

ClassifierKind = Literal["embedded", "llm"]
CLASSIFIER_KINDS: tuple[str, ...] = ("embedded", "llm")

_lock = threading.Lock()
_trained: dict[str, EmbeddedClassifier] = {}


def embedded_classifier(source: str = BUILTIN_REQUESTS) -> EmbeddedClassifier:
    """The embedded classifier trained on the training split of ``source``, once per process."""
    with _lock:
        if source not in _trained:
            _trained[source] = train_embedded(split(load_requests(source), "train"))
        return _trained[source]


def default_classifier() -> EmbeddedClassifier:
    """The process-wide embedded classifier on the shipped labelled set."""
    return embedded_classifier(BUILTIN_REQUESTS)


def build_classifier(
    kind: ClassifierKind = "embedded",
    *,
    llm_model: ModelEntry | None = None,
    sim_url: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Classifier:
    """The classifier of ``kind``; ``llm`` needs ``llm_model`` and falls back to the embedded."""
    if kind == "embedded":
        return default_classifier()
    if kind != "llm":
        raise ConfigError(
            f"classifier {kind!r} is not a classifier kind; valid: {', '.join(CLASSIFIER_KINDS)}"
        )
    if llm_model is None:
        raise ConfigError(
            "classifier 'llm' needs a model entry (llm_model); give the model to ask, "
            "or use the 'embedded' classifier"
        )
    if timeout_s <= 0:
        raise ConfigError(f"timeout_s {timeout_s!r} must be above 0 seconds; the default is 2")
    return llm_classifier(
        llm_model, fallback=default_classifier(), sim_url=sim_url, timeout_s=timeout_s
    )
