"""What every route classifier returns, and how a request becomes the text it reads.

A classifier reads one text: the last user message of a chat, cut to a bounded prefix. The
bound keeps a pasted 5 MB log from costing more than a short question, and the result says when
it cut (``truncated``), so a caller can tell a decision made on a prefix from one made on the
whole request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from autoray.taxonomy import RouteParts

MAX_CLASSIFY_CHARS = 4000
"""How much of a request a classifier reads: the opening of a message carries its intent."""

TOP_ROUTES = 3
"""How many routes (best first, with probabilities) a classification lists."""


@dataclass(frozen=True, slots=True)
class RouteScore:
    route: str
    probability: float


@dataclass(frozen=True, slots=True)
class Classification(RouteParts):
    """One request's route, how sure the classifier is, and which classifier said so.

    ``fallback`` names why the configured classifier was not the one that answered (an LLM
    classifier that timed out falls back to the embedded one); None when it answered itself.
    """

    route: str
    confidence: float
    top: tuple[RouteScore, ...]
    classifier: str
    chars_read: int
    truncated: bool = False
    fallback: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "task_type": self.task_type,
            "subtask_type": self.subtask_type,
            "confidence": self.confidence,
            "top": [{"route": s.route, "probability": s.probability} for s in self.top],
            "classifier": self.classifier,
            "chars_read": self.chars_read,
            "truncated": self.truncated,
            "fallback": self.fallback,
        }


class Classifier(Protocol):
    """Anything that maps a request text to a :class:`Classification`; must not raise on text."""

    name: str

    def classify(self, text: str) -> Classification: ...


def ranked_classification(
    routes: Sequence[str],
    probabilities: Sequence[float],
    *,
    classifier: str,
    prefix: str,
    truncated: bool,
) -> Classification:
    """The classification a probability vector over ``routes`` gives for ``prefix``.

    Ties keep the routes' order (a reversed sort is still stable), so equal inputs always
    name the same route.
    """
    order = sorted(range(len(routes)), key=probabilities.__getitem__, reverse=True)[:TOP_ROUTES]
    top = tuple(RouteScore(routes[i], round(float(probabilities[i]), 6)) for i in order)
    return Classification(
        route=top[0].route,
        confidence=top[0].probability,
        top=top,
        classifier=classifier,
        chars_read=len(prefix),
        truncated=truncated,
    )


def bounded_prefix(text: str, limit: int = MAX_CLASSIFY_CHARS) -> tuple[str, bool]:
    """The first ``limit`` characters of ``text`` and whether anything was cut."""
    return (text, False) if len(text) <= limit else (text[:limit], True)


def request_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text of the last user message: what the request asks for now.

    Content may be a string or OpenAI's list of parts; only ``text`` parts count. No user
    message gives ``''`` (the caller decides whether that is an error).
    """
    for message in reversed(messages):
        if message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = [p.get("text", "") for p in content if isinstance(p, Mapping)]
        return "\n".join(part for part in parts if isinstance(part, str))
    return ""
