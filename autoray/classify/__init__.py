"""Route classifiers: map a request to one of the 18 routes."""

from autoray.classify.base import (
    MAX_CLASSIFY_CHARS,
    TOP_ROUTES,
    Classification,
    Classifier,
    RouteScore,
    bounded_prefix,
    request_text,
)

__all__ = [
    "MAX_CLASSIFY_CHARS",
    "TOP_ROUTES",
    "Classification",
    "Classifier",
    "RouteScore",
    "bounded_prefix",
    "request_text",
]
