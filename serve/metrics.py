"""Ray custom metrics of the decision endpoint, named as Prometheus expects.

Counters are declared with names ending in ``_total``: Ray exports a counter under its name
with ``_total`` appended unless it already ends so, and for names without the suffix it also
exports a deprecated gauge of the bare name; declaring the suffix gives one series, named
``ray_autoray_decisions_total`` and so on in Prometheus. Latencies are histograms in seconds.

Every label takes values from a bounded set, whatever clients send: ``route`` is one of the 18
routes (or ``none``), ``model`` a model of the active table or the app's configuration (else
``other``), ``reason`` a :class:`~autoray.decision.NullReason`, ``key`` a key id (``key-1``...),
``endpoint`` and ``kind`` fixed words. Built lazily inside a replica (never at import), because
Ray metrics need a connected worker.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property

from ray.util.metrics import Counter, Histogram

from autoray.decision import NullReason
from autoray.taxonomy import ROUTES

NONE = "none"
OTHER = "other"
ENDPOINTS = ("decide", "chat", "models", "routing_table", "sessions")
FALLBACK_KINDS = ("classifier", "fallback_model", "failover")
_LATENCY_BOUNDARIES_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
_ROUTES = frozenset(ROUTES)
_REASONS = frozenset(reason.value for reason in NullReason)
_KEY_ID_PREFIX = "key-"


def route_label(route: str | None) -> str:
    return route if route in _ROUTES else NONE


def reason_label(reason: str | None) -> str:
    return reason if reason in _REASONS else OTHER


def key_label(key_id: str) -> str:
    if key_id.startswith(_KEY_ID_PREFIX) and key_id[len(_KEY_ID_PREFIX) :].isdigit():
        return key_id
    return "anonymous"


def one_of(value: str, allowed: Iterable[str]) -> str:
    return value if value in allowed else OTHER


class ServeMetrics:
    """The replica's metrics; ``known_models`` bounds the ``model`` label (updated on reload)."""

    def __init__(self) -> None:
        self.known_models: frozenset[str] = frozenset()

    def model_label(self, model: str | None) -> str:
        if model is None:
            return NONE
        return model if model in self.known_models else OTHER

    @cached_property
    def decisions(self) -> Counter:
        return Counter(
            "autoray_decisions_total",
            description="Routing decisions that chose a model, by route and model.",
            tag_keys=("route", "model"),
        )

    @cached_property
    def null_decisions(self) -> Counter:
        return Counter(
            "autoray_null_decisions_total",
            description="Decisions without a model, by reason (no_table, no_candidate, "
            "all_denied).",
            tag_keys=("reason",),
        )

    @cached_property
    def fallbacks(self) -> Counter:
        return Counter(
            "autoray_fallbacks_total",
            description="Fallbacks: classifier (LLM classifier fell back to the embedded one), "
            "fallback_model (a null decision served by the configured model), failover (a later "
            "candidate answered).",
            tag_keys=("kind",),
        )

    @cached_property
    def forwarded_tokens(self) -> Counter:
        return Counter(
            "autoray_forwarded_tokens_total",
            description="Tokens of forwarded chat traffic, by model, route and direction.",
            tag_keys=("model", "route", "direction"),
        )

    @cached_property
    def forwarded_cost(self) -> Counter:
        return Counter(
            "autoray_forwarded_cost_usd_total",
            description="Cost in USD of forwarded chat traffic, by model and route.",
            tag_keys=("model", "route"),
        )

    @cached_property
    def client_requests(self) -> Counter:
        return Counter(
            "autoray_client_requests_total",
            description="Requests to /v1 routes by client key id and endpoint.",
            tag_keys=("key", "endpoint"),
        )

    @cached_property
    def client_tokens(self) -> Counter:
        return Counter(
            "autoray_client_tokens_total",
            description="Tokens of forwarded chat traffic by client key id and direction.",
            tag_keys=("key", "direction"),
        )

    @cached_property
    def table_reloads(self) -> Counter:
        return Counter(
            "autoray_table_reloads_total",
            description="Routing table checks that loaded a new version (loaded) or failed "
            "(error; the replica keeps its last table).",
            tag_keys=("outcome",),
        )

    @cached_property
    def decision_latency(self) -> Histogram:
        return Histogram(
            "autoray_decision_latency_seconds",
            description="Time to classify and decide one request (session lookup included), "
            "in seconds.",
            boundaries=_LATENCY_BOUNDARIES_S,
            tag_keys=("endpoint",),
        )

    def record_decision(
        self, *, endpoint: str, route: str, model: str | None, reason: str | None, seconds: float
    ) -> None:
        if model is None:
            self.null_decisions.inc(1.0, tags={"reason": reason_label(reason)})
        else:
            tags = {"route": route_label(route), "model": self.model_label(model)}
            self.decisions.inc(1.0, tags=tags)
        self.decision_latency.observe(seconds, tags={"endpoint": one_of(endpoint, ENDPOINTS)})

    def record_fallback(self, kind: str) -> None:
        self.fallbacks.inc(1.0, tags={"kind": one_of(kind, FALLBACK_KINDS)})

    def record_request(self, *, key_id: str, endpoint: str) -> None:
        tags = {"key": key_label(key_id), "endpoint": one_of(endpoint, ENDPOINTS)}
        self.client_requests.inc(1.0, tags=tags)

    def record_usage(
        self,
        *,
        key_id: str,
        model: str,
        route: str | None,
        input_tokens: int,
        output_tokens: int,
        cost_usd: float | None,
    ) -> None:
        labels = {"model": self.model_label(model), "route": route_label(route)}
        for direction, tokens in (("input", input_tokens), ("output", output_tokens)):
            if tokens > 0:
                self.forwarded_tokens.inc(float(tokens), tags={**labels, "direction": direction})
                key_tags = {"key": key_label(key_id), "direction": direction}
                self.client_tokens.inc(float(tokens), tags=key_tags)
        if cost_usd is not None and cost_usd > 0:
            self.forwarded_cost.inc(cost_usd, tags=labels)

    def record_reload(self, outcome: str) -> None:
        self.table_reloads.inc(1.0, tags={"outcome": one_of(outcome, ("loaded", "error"))})
